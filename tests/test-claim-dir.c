/* SPDX-License-Identifier: Apache-2.0 */

/*
 * A claim directory against its containers (issue 14). What container root can leave in
 * vgpu/ (read-only and unreadable directories, deep trees, sticky directories, files of
 * other owners, symlinks out) is removed by an unprepare that runs as the daemon does:
 * uid 0 without any capability. What it cannot remove (a directory of another owner)
 * fails the unprepare and keeps the claim; a restart, even after a reboot, serves the
 * other claims. A non-root container, through its bind mount, can neither add files to
 * vgpu/ nor keep vgpu.cache grown, and other claims still prepare.
 *
 * Needs root (mknod fixtures, chown, a private mount namespace): skipped otherwise.
 */

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "cdi.h"
#include "checkpoint.h"
#include "fsutil.h"
#include "macro.h"
#include "prepare-fixture.h"
#include "prepare.h"
#include "shared-region.h"
#include "tests.h"

#define UID1 "0c6a3d6e-2f8e-4c6b-9b7e-4a2a0f1c9d11"
#define UID2 "1c6a3d6e-2f8e-4c6b-9b7e-4a2a0f1c9d12"
#define S1 "6f1c2f1e-0000-4000-8000-000000000001"
#define S2 "6f1c2f1e-0000-4000-8000-000000000002"
#define BOOT2 "fedcba9876543210fedcba9876543210"
#define CONTAINER_UID 1000

static Fixture fx;

static Preparer *new_preparer(const char *boot_id) {
        PrepareOptions o = fx.options;
        Preparer *p;

        if (boot_id)
                o.boot_id = boot_id;
        ASSERT_OK(preparer_new(&o, &fx.gpus, &p));
        ASSERT_OK(preparer_recover(p, NULL, NULL));
        return p;
}

static void prepare_ok(Preparer *p, const char *uid, const char *device, const char *share) {
        FixtureResult r[] = { { .device = device, .share_id = share, .memory = "1Gi", .cores = "10" } };
        _cleanup_free_ char *json = fixture_claim(uid, "c", r, 1, NULL);
        _cleanup_(prepared_claim_done) PreparedClaim c = {};
        PrepareClaimRef ref = { .namespace_ = "default", .name = "c", .uid = uid };
        char err[512] = "";

        if (preparer_prepare(p, &ref, json, strlen(json), &c, err, sizeof(err)) < 0)
                TEST_FAIL("prepare %s: %s", uid, err);
}

static bool claim_present(const char *uid) {
        return fixture_exists("%s/checkpoints/%s.ckpt", fx.state_dir, uid) &&
               fixture_exists("%s/k8s." FIXTURE_DRIVER "-claim_%s.json", fx.cdi_dir, uid) &&
               fixture_exists("%s/claims/%s/vgpu/vgpu.cache", fx.state_dir, uid);
}

static bool claim_absent(const char *uid) {
        return !fixture_exists("%s/checkpoints/%s.ckpt", fx.state_dir, uid) &&
               !fixture_exists("%s/k8s." FIXTURE_DRIVER "-claim_%s.json", fx.cdi_dir, uid) &&
               !fixture_exists("%s/claims/%s", fx.state_dir, uid);
}

static void vgpu_path(const char *uid, const char *rel, char *buf, size_t size) {
        snprintf(buf, size, "%s/claims/%s/vgpu%s%s", fx.state_dir, uid, rel ? "/" : "", rel ?: "");
}

/* ---------------------------------------------------------------- as the daemon runs */

/* uid 0 without any capability, like the unit (CapabilityBoundingSet= empty) and the
 * daemon's own sandbox_drop_capabilities(); checked, not assumed. */
static void drop_capabilities(void) {
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct d[2] = {};
        char probe[512];

        ASSERT_OK(syscall(SYS_capset, &h, d) < 0 ? -errno : 0);
        snprintf(probe, sizeof(probe), "%s/cap-probe", fx.root);
        ASSERT_ERROR(open(probe, O_RDONLY | O_CLOEXEC) < 0 ? -errno : 0, EACCES); /* 0000, ours: no DAC_OVERRIDE */
}

/* Run f in a child process as the daemon; the test fails if it does. */
static void as_daemon(void (*f)(void)) {
        int status = 0;
        pid_t pid;

        fflush(NULL);
        pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                drop_capabilities();
                f();
                fflush(NULL);
                _exit(0);
        }
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                TEST_FAIL("the daemon-side check failed (status 0x%x)", status);
}

/* ---------------------------------------------------------------- what container root leaves */

static void mkdir_ok(const char *path, mode_t mode) {
        ASSERT_OK(mkdir(path, 0755) < 0 ? -errno : 0);
        ASSERT_OK(chmod(path, mode) < 0 ? -errno : 0);
}

static void file_ok(const char *path, mode_t mode) {
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(write(fd, "x", 1), 1);
        close(fd);
        ASSERT_OK(chmod(path, mode) < 0 ? -errno : 0);
}

/* levels nested directories "d" under dir, each with a file, every seventh one 0555. */
static void deep_tree(const char *dir, unsigned levels) {
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        ASSERT_TRUE(fd >= 0);
        for (unsigned i = 0; i < levels; i++) {
                int sub;
                ASSERT_OK(mkdirat(fd, "d", 0755) < 0 ? -errno : 0);
                sub = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                ASSERT_TRUE(sub >= 0);
                close(openat(sub, "f", O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
                if (i % 7 == 6)
                        ASSERT_OK(fchmod(fd, 0555) < 0 ? -errno : 0);
                close(fd);
                fd = sub;
        }
        close(fd);
}

static void hostile_tree(const char *uid) {
        char p[1024], q[1024];

        vgpu_path(uid, "ro", p, sizeof(p));
        mkdir_ok(p, 0755);
        vgpu_path(uid, "ro/f", q, sizeof(q));
        file_ok(q, 0444);
        vgpu_path(uid, "ro/closed", q, sizeof(q));
        mkdir_ok(q, 0755);
        vgpu_path(uid, "ro/closed/g", q, sizeof(q));
        file_ok(q, 0000);
        vgpu_path(uid, "ro/closed", q, sizeof(q));
        ASSERT_OK(chmod(q, 0000));
        ASSERT_OK(chmod(p, 0555));

        vgpu_path(uid, "deep", p, sizeof(p));
        mkdir_ok(p, 0755);
        deep_tree(p, 10);
        vgpu_path(uid, "deeper", p, sizeof(p));
        mkdir_ok(p, 0755);
        deep_tree(p, 3 * RM_TREE_OPEN_MAX + 5);

        vgpu_path(uid, "sticky", p, sizeof(p));
        mkdir_ok(p, 01777);
        vgpu_path(uid, "sticky/theirs", q, sizeof(q));
        file_ok(q, 0600);
        ASSERT_OK(chown(q, CONTAINER_UID, CONTAINER_UID));

        vgpu_path(uid, "out", p, sizeof(p));
        snprintf(q, sizeof(q), "%s/outside", fx.root);
        ASSERT_OK(symlink(q, p));
        vgpu_path(uid, "fifo", p, sizeof(p));
        ASSERT_OK(mkfifo(p, 0600));
        vgpu_path(uid, "vgpu.cache", p, sizeof(p));
        ASSERT_OK(chmod(p, 0444));
        vgpu_path(uid, NULL, p, sizeof(p));
        ASSERT_OK(chmod(p, 0555));
}

/* A directory of another owner that we may neither write nor chmod. */
static void foreign_dir(const char *uid, uid_t owner) {
        char p[1024], q[1024];

        vgpu_path(uid, "foreign", p, sizeof(p));
        if (!fixture_exists("%s", p))
                mkdir_ok(p, 0755);
        vgpu_path(uid, "foreign/x", q, sizeof(q));
        if (!fixture_exists("%s", q))
                file_ok(q, 0644);
        ASSERT_OK(chown(p, owner, owner));
        ASSERT_OK(chmod(p, 0555));
}

/* ---------------------------------------------------------------- tests */

static void unprepare_hostile(void) {
        Preparer *p = new_preparer(NULL);
        char err[512] = "";

        ASSERT_TRUE(preparer_is_prepared(p, UID1));
        if (preparer_unprepare(p, UID1, err, sizeof(err)) < 0)
                TEST_FAIL("unprepare: %s", err);
        ASSERT_TRUE(claim_absent(UID1));
        preparer_free(p);
}

static void test_unprepare_removes_everything(void) {
        Preparer *p = new_preparer(NULL);
        char outside[512];

        snprintf(outside, sizeof(outside), "%s/outside", fx.root);
        mkdir_ok(outside, 0755);
        snprintf(outside, sizeof(outside), "%s/outside/keep", fx.root);
        file_ok(outside, 0644);

        prepare_ok(p, UID1, "hami-gpu-0", S1);
        preparer_free(p);
        hostile_tree(UID1);

        as_daemon(unprepare_hostile);
        ASSERT_TRUE(claim_absent(UID1));
        ASSERT_TRUE(fixture_exists("%s", outside)); /* the symlink went, not its target */
        ASSERT_EQ(fixture_count(fx.state_dir), 1);  /* ld.so.preload; checkpoints/ and claims/ empty */
}

static void unprepare_must_fail(void) {
        Preparer *p = new_preparer(NULL);
        char err[512] = "";

        ASSERT_TRUE(preparer_unprepare(p, UID1, err, sizeof(err)) < 0);
        if (!strstr(err, "vgpu/foreign"))
                TEST_FAIL("the error does not say what is left: %s", err);
        ASSERT_TRUE(preparer_is_prepared(p, UID1));
        ASSERT_TRUE(fixture_exists("%s/checkpoints/%s.ckpt", fx.state_dir, UID1));
        ASSERT_TRUE(claim_present(UID2));
        preparer_free(p);
}

static void reboot_serves_others(void) {
        PrepareOptions o = fx.options;
        PrepareClaimRef *claims = NULL;
        size_t n = 0;
        char err[512] = "";
        Preparer *p;

        /* /run/cdi is a fresh tmpfs after a reboot. */
        ASSERT_OK(rm_rf(fx.cdi_dir));
        o.boot_id = BOOT2;
        ASSERT_OK(preparer_new(&o, &fx.gpus, &p));
        ASSERT_OK(preparer_recover(p, &claims, &n));
        ASSERT_EQ(n, 2);
        preparer_claims_free(claims, n);
        ASSERT_TRUE(claim_present(UID2));                  /* its region and spec made afresh */
        ASSERT_TRUE(preparer_is_prepared(p, UID1));        /* recorded, for its own unprepare */
        ASSERT_TRUE(preparer_unprepare(p, UID1, err, sizeof(err)) < 0);
        ASSERT_TRUE(fixture_exists("%s/checkpoints/%s.ckpt", fx.state_dir, UID1));
        prepare_ok(p, UID2, "hami-gpu-1", S2); /* serves: idempotent from its record */
        preparer_free(p);
}

static void unprepare_both(void) {
        Preparer *p = new_preparer(BOOT2);
        char err[512] = "";

        if (preparer_unprepare(p, UID1, err, sizeof(err)) < 0 || preparer_unprepare(p, UID2, err, sizeof(err)) < 0)
                TEST_FAIL("unprepare: %s", err);
        ASSERT_TRUE(claim_absent(UID1));
        ASSERT_TRUE(claim_absent(UID2));
        preparer_free(p);
}

static void test_unremovable_fails_and_restart_serves(void) {
        Preparer *p = new_preparer(NULL);

        prepare_ok(p, UID1, "hami-gpu-0", S1);
        prepare_ok(p, UID2, "hami-gpu-1", S2);
        preparer_free(p);
        foreign_dir(UID1, CONTAINER_UID);

        as_daemon(unprepare_must_fail);
        as_daemon(reboot_serves_others);

        /* The administrator (or whoever owns it) makes it removable: the kubelet's retry works. */
        foreign_dir(UID1, 0);
        as_daemon(unprepare_both);
}

/* ---------------------------------------------------------------- a non-root container */

static char container_dir[] = "/tmp/hami-claim-ctr-XXXXXX";

/* The runtime bind-mounts vgpu/ (read-write) into the container; the process is uid 1000. */
static void container_writes(void) {
        char src[1024], path[1024];
        static char chunk[1 << 20];
        int fd;

        vgpu_path(UID1, NULL, src, sizeof(src));
        if (unshare(CLONE_NEWNS) < 0) {
                if (errno == EPERM)
                        _exit(77); /* root without CAP_SYS_ADMIN (a container): no runtime's view */
                TEST_FAIL("unshare: %m");
        }
        ASSERT_OK(mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0 ? -errno : 0);
        ASSERT_OK(mount(src, container_dir, "none", MS_BIND | MS_REC, NULL) < 0 ? -errno : 0);
        ASSERT_OK(setgroups(0, NULL) < 0 ? -errno : 0);
        ASSERT_OK(setresgid(CONTAINER_UID, CONTAINER_UID, CONTAINER_UID) < 0 ? -errno : 0);
        ASSERT_OK(setresuid(CONTAINER_UID, CONTAINER_UID, CONTAINER_UID) < 0 ? -errno : 0);

        /* No new file, no directory: vgpu/ is not the container's to fill. */
        snprintf(path, sizeof(path), "%s/junk", container_dir);
        ASSERT_ERROR(open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644) < 0 ? -errno : 0, EACCES);
        ASSERT_ERROR(mkdir(path, 0755) < 0 ? -errno : 0, EACCES);

        /* The region works for uid 1000 (libvgpu maps it)... */
        snprintf(path, sizeof(path), "%s/" CDI_SHARED_CACHE_NAME, container_dir);
        SharedRegion r = {};
        ASSERT_OK(shared_region_attach(&r, path, 1));
        ASSERT_OK(shared_region_reserve(&r, 0, 4096, 0));
        shared_region_detach(&r);
        /* ...and nothing stops a writer from growing it: that is the daemon's to undo. */
        fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        memset(chunk, 'z', sizeof(chunk));
        for (unsigned i = 0; i < 16; i++)
                ASSERT_EQ(write(fd, chunk, sizeof(chunk)), (ssize_t) sizeof(chunk));
        close(fd);
}

/* The preparer of the test that forks: a forked child that _exit()s leaves it reachable
 * from here, not lost (valgrind checks the child's leaks too). */
static Preparer *forked_preparer;

static void test_container_cannot_fill(void) {
        const size_t bound = shared_region_file_size(SHARED_REGION_SLOTS_MAX);
        Preparer *p = forked_preparer = new_preparer(NULL);
        char path[1024];
        struct stat st;
        int status = 0;
        pid_t pid;

        prepare_ok(p, UID1, "hami-gpu-0", S1);
        vgpu_path(UID1, CDI_SHARED_CACHE_NAME, path, sizeof(path));
        ASSERT_OK(stat(path, &st));
        ASSERT_EQ_U(st.st_size, bound);
        /* Preallocated: a full disk never faults a container's mapping. */
        ASSERT_TRUE((uint64_t) st.st_blocks * 512 >= bound);

        ASSERT_NOT_NULL(mkdtemp(container_dir));
        ASSERT_OK(chmod(container_dir, 0755));
        fflush(NULL);
        pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                container_writes();
                fflush(NULL);
                _exit(0);
        }
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT_OK(rmdir(container_dir));
        if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
                fprintf(stderr, "skipped: no mount namespace\n");
                preparer_free(p);
                return;
        }
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

        ASSERT_OK(stat(path, &st));
        ASSERT_EQ_U(st.st_size, bound + (16u << 20));
        ASSERT_EQ(preparer_trim_regions(p), 1); /* the daemon's guard, every PREPARER_TRIM_INTERVAL_MS */
        ASSERT_OK(stat(path, &st));
        ASSERT_EQ_U(st.st_size, bound);
        ASSERT_TRUE((uint64_t) st.st_blocks * 512 <= bound + (64u << 10));
        ASSERT_EQ(preparer_trim_regions(p), 0);

        /* Blocks past the end, which st_size does not show. */
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t) bound, 8 << 20) < 0 ? -errno : 0);
        close(fd);
        ASSERT_EQ(preparer_trim_regions(p), 1);
        ASSERT_OK(stat(path, &st));
        ASSERT_TRUE((uint64_t) st.st_blocks * 512 <= bound + (64u << 10));

        /* The region is intact, and other claims prepare. */
        SharedRegionUsage u;
        ASSERT_OK(shared_region_read_usage(path, &u));
        prepare_ok(p, UID2, "hami-gpu-1", S2);
        ASSERT_TRUE(claim_present(UID2));
        preparer_free(p);
}

/* With more claims than a tick visits, the ticks take them in turn: every grown region is
 * cut back within ceil(n / PREPARER_TRIM_PER_TICK) ticks, and a tick never visits more. */
static void test_trim_takes_claims_in_turn(void) {
        const size_t n = PREPARER_TRIM_PER_TICK + 100, bound = shared_region_file_size(SHARED_REGION_SLOTS_MAX);
        Preparer *p = new_preparer(NULL);
        char uid[64], share[64], path[1024];
        struct stat st;

        for (size_t i = 0; i < n; i++) {
                snprintf(uid, sizeof(uid), "%08zx-7e57-4000-8000-000000000000", i);
                snprintf(share, sizeof(share), "6f1c2f1e-0000-4000-8000-%012zx", i);
                prepare_ok(p, uid, "hami-gpu-0", share);
                vgpu_path(uid, CDI_SHARED_CACHE_NAME, path, sizeof(path));
                ASSERT_OK(truncate(path, (off_t) bound + 4096) < 0 ? -errno : 0);
        }
        ASSERT_EQ(preparer_trim_regions(p), PREPARER_TRIM_PER_TICK);
        ASSERT_EQ(preparer_trim_regions(p), 100);   /* the rest, and 400 already cut */
        ASSERT_EQ(preparer_trim_regions(p), 0);
        for (size_t i = 0; i < n; i++) {
                snprintf(uid, sizeof(uid), "%08zx-7e57-4000-8000-000000000000", i);
                vgpu_path(uid, CDI_SHARED_CACHE_NAME, path, sizeof(path));
                ASSERT_OK(stat(path, &st));
                ASSERT_EQ_U(st.st_size, bound);
        }
        preparer_free(p);
}

/* One test by name (argv[1]), or all. */
#define RUN(fn)                                                                                  \
        do {                                                                                     \
                if (argc < 2 || streq(argv[1], #fn))                                             \
                        TEST(fn);                                                                \
        } while (0)

int main(int argc, char **argv) {
        char probe[512];

        if (geteuid() != 0) {
                fprintf(stderr, "SKIP: needs root (chown, mknod, mount namespaces)\n");
                return 77;
        }
        fixture_init(&fx, 2);
        snprintf(probe, sizeof(probe), "%s/cap-probe", fx.root);
        file_ok(probe, 0000);
        RUN(test_unprepare_removes_everything);
        RUN(test_unremovable_fails_and_restart_serves);
        RUN(test_container_cannot_fill);
        RUN(test_trim_takes_claims_in_turn);
        fixture_done(&fx);
        return 0;
}
