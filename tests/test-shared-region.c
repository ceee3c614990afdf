/* SPDX-License-Identifier: Apache-2.0 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shared-region.h"
#include "tests.h"

static char dir[] = "/var/tmp/test-shared-region.XXXXXX";

static const char *region_path(const char *name) {
        static char buf[256];
        snprintf(buf, sizeof(buf), "%s/%s", dir, name);
        return buf;
}

static void test_create_and_read(void) {
        uint64_t limits[2] = { 1 << 20, 2 << 20 };
        uint32_t sm[2] = { 30, 0 };
        SharedRegionUsage u;
        const char *p = region_path("a");
        struct stat st;

        ASSERT_OK(shared_region_create(p, 2, 64, limits, sm, 0640));
        ASSERT_ERROR(shared_region_create(p, 2, 64, limits, sm, 0640), EEXIST);
        ASSERT_OK(stat(p, &st));
        ASSERT_EQ(st.st_mode & 07777, 0640);
        ASSERT_EQ_U(st.st_size, shared_region_file_size(64));
        ASSERT_OK(shared_region_read_usage(p, &u));
        ASSERT_EQ(u.n_devices, 2);
        ASSERT_EQ(u.n_active, 0);
        ASSERT_EQ_U(u.limit[1], 2 << 20);
        ASSERT_EQ(u.sm_limit[0], 30);
        ASSERT_EQ_U(u.used[0], 0);

        ASSERT_ERROR(shared_region_create(region_path("b"), 0, 64, NULL, NULL, 0600), EINVAL);
        ASSERT_ERROR(shared_region_create(region_path("b"), 17, 64, NULL, NULL, 0600), EINVAL);
        ASSERT_ERROR(shared_region_create(region_path("b"), 1, 1025, NULL, NULL, 0600), EINVAL);
}

/* In place, relative to a directory fd: the same file, an existing one refused and kept. */
static void test_create_at(void) {
        uint64_t limits[1] = { 3 << 20 };
        uint32_t sm[1] = { 50 };
        SharedRegionUsage u;
        struct stat st;
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        ASSERT_TRUE(dfd >= 0);
        ASSERT_OK(shared_region_create_at(dfd, "at", 1, 32, limits, sm, 0666));
        ASSERT_ERROR(shared_region_create_at(dfd, "at", 1, 32, NULL, NULL, 0600), EEXIST);
        ASSERT_OK(stat(region_path("at"), &st));
        ASSERT_EQ(st.st_mode & 07777, 0666);
        ASSERT_EQ_U(st.st_size, shared_region_file_size(32));
        ASSERT_OK(shared_region_read_usage(region_path("at"), &u));
        ASSERT_EQ(u.n_devices, 1);
        ASSERT_EQ_U(u.limit[0], 3 << 20);
        ASSERT_EQ(u.sm_limit[0], 50);
        ASSERT_ERROR(shared_region_create_at(dfd, "at-bad", 0, 32, NULL, NULL, 0600), EINVAL);
        ASSERT_ERROR(shared_region_create_at(dfd, "no/such/dir", 1, 32, NULL, NULL, 0600), ENOENT);
        ASSERT_TRUE(access(region_path("at-bad"), F_OK) < 0);
        close(dfd);
}

static void test_reserve_release(void) {
        SharedRegion r;
        const char *p = region_path("c");
        uint64_t used[3];

        ASSERT_OK(shared_region_create(p, 2, 16, NULL, NULL, 0600));
        ASSERT_OK(shared_region_attach(&r, p, 0));
        ASSERT_OK(shared_region_reserve(&r, 0, 600, 1000));
        ASSERT_ERROR(shared_region_reserve(&r, 0, 401, 1000), ENOMEM);
        ASSERT_OK(shared_region_reserve(&r, 0, 400, 1000));
        ASSERT_ERROR(shared_region_reserve(&r, 0, 1, 1000), ENOMEM);
        ASSERT_ERROR(shared_region_reserve(&r, 0, UINT64_MAX, 1000), ENOMEM);
        ASSERT_ERROR(shared_region_reserve(&r, 2, 1, 1000), EINVAL);
        ASSERT_OK(shared_region_reserve(&r, 1, 5, 0)); /* no limit */
        ASSERT_EQ_U(shared_region_used(&r, 0), 1000);
        ASSERT_OK(shared_region_read_used(p, used, 3));
        ASSERT_EQ_U(used[0], 1000);
        ASSERT_EQ_U(used[1], 5);
        ASSERT_EQ_U(used[2], 0);
        shared_region_release(&r, 0, 600);
        shared_region_release(&r, 0, 999999); /* never below zero */
        ASSERT_EQ_U(shared_region_used(&r, 0), 0);
        shared_region_detach(&r);
        ASSERT_OK(shared_region_read_used(p, used, 2));
        ASSERT_EQ_U(used[1], 0);
}

/* Several processes race to the limit: the sum never exceeds it. */
static void test_concurrent_limit(void) {
        const char *p = region_path("d");
        const uint64_t limit = 1000, chunk = 7;
        enum { n_children = 6 };
        pid_t racers[n_children];
        uint64_t total = 0;
        int fds[2];

        ASSERT_OK(shared_region_create(p, 1, 32, NULL, NULL, 0600));
        ASSERT_OK(pipe(fds));
        for (int c = 0; c < n_children; c++) {
                pid_t pid = racers[c] = fork();
                ASSERT_TRUE(pid >= 0);
                if (pid == 0) {
                        SharedRegion r;
                        uint64_t got = 0;
                        if (shared_region_attach(&r, p, 0) < 0)
                                _exit(2);
                        for (int i = 0; i < 1000; i++)
                                if (shared_region_reserve(&r, 0, chunk, limit) >= 0)
                                        got += chunk;
                        if (write(fds[1], &got, sizeof(got)) != sizeof(got))
                                _exit(3);
                        /* Stay attached (and counted) until the parent has summed. */
                        pause();
                        _exit(0);
                }
        }
        close(fds[1]);
        for (int c = 0; c < n_children; c++) {
                uint64_t got;
                ASSERT_EQ(read(fds[0], &got, sizeof(got)), sizeof(got));
                total += got;
        }
        close(fds[0]);
        ASSERT_TRUE(total <= limit);
        ASSERT_TRUE(total > limit - chunk);

        SharedRegionUsage u;
        ASSERT_OK(shared_region_read_usage(p, &u));
        ASSERT_EQ_U(u.used[0], total);
        ASSERT_EQ(u.n_active, n_children);

        /* SIGKILL them all: the reader stops counting them at once, and the next process
         * reclaims their reservations. */
        for (int c = 0; c < n_children; c++) {
                ASSERT_OK(kill(racers[c], SIGKILL));
                ASSERT_TRUE(waitpid(racers[c], NULL, 0) == racers[c]);
        }
        ASSERT_OK(shared_region_read_usage(p, &u));
        ASSERT_EQ_U(u.used[0], 0);
        ASSERT_EQ(u.n_active, 0);
        SharedRegion r;
        ASSERT_OK(shared_region_attach(&r, p, 0));
        ASSERT_OK(shared_region_reserve(&r, 0, limit, limit));
        shared_region_detach(&r);
}

static pid_t children[8];

static void test_sigkill_reclaim(void) {
        const char *p = region_path("e");
        SharedRegionUsage u;
        SharedRegion r;
        int fds[2];

        ASSERT_OK(shared_region_create(p, 1, 8, NULL, NULL, 0600));
        ASSERT_OK(pipe(fds));
        for (int c = 0; c < 3; c++) {
                children[c] = fork();
                ASSERT_TRUE(children[c] >= 0);
                if (children[c] == 0) {
                        SharedRegion cr;
                        char ok = 1;
                        if (shared_region_attach(&cr, p, 0) < 0 ||
                            shared_region_reserve(&cr, 0, 300, 1000) < 0)
                                ok = 0;
                        if (write(fds[1], &ok, 1) != 1)
                                _exit(3);
                        pause();
                        _exit(0);
                }
        }
        for (int c = 0; c < 3; c++) {
                char ok;
                ASSERT_EQ(read(fds[0], &ok, 1), 1);
                ASSERT_EQ(ok, 1);
        }
        ASSERT_OK(shared_region_read_usage(p, &u));
        ASSERT_EQ_U(u.used[0], 900);

        ASSERT_OK(shared_region_attach(&r, p, 0));
        ASSERT_ERROR(shared_region_reserve(&r, 0, 200, 1000), ENOMEM);

        ASSERT_OK(kill(children[0], SIGKILL));
        ASSERT_OK(kill(children[1], SIGKILL));
        ASSERT_TRUE(waitpid(children[0], NULL, 0) == children[0]);
        ASSERT_TRUE(waitpid(children[1], NULL, 0) == children[1]);

        /* The daemon's view drops the dead at once; the writer reclaims when short. */
        ASSERT_OK(shared_region_read_usage(p, &u));
        ASSERT_EQ_U(u.used[0], 300);
        ASSERT_EQ(u.n_active, 2);
        ASSERT_OK(shared_region_reserve(&r, 0, 700, 1000));
        ASSERT_EQ_U(shared_region_used(&r, 0), 1000);

        ASSERT_OK(kill(children[2], SIGKILL));
        ASSERT_TRUE(waitpid(children[2], NULL, 0) == children[2]);
        ASSERT_EQ(shared_region_reclaim_dead(&r), 1);
        ASSERT_EQ_U(shared_region_used(&r, 0), 700);
        shared_region_detach(&r);
        close(fds[0]);
        close(fds[1]);
}

/* A process killed while holding the region lock: the next locker recovers. */
static void test_owner_dead(void) {
        const char *p = region_path("f");
        SharedRegion r;
        int fds[2];
        pid_t pid;

        ASSERT_OK(shared_region_create(p, 1, 8, NULL, NULL, 0600));
        ASSERT_OK(shared_region_attach(&r, p, 0));
        ASSERT_OK(shared_region_reserve(&r, 0, 100, 1000));
        ASSERT_OK(pipe(fds));
        pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                SharedRegion cr;
                char c = 1;
                if (shared_region_attach(&cr, p, 0) < 0 || shared_region_reserve(&cr, 0, 50, 0) < 0)
                        _exit(2);
                /* Corrupt the total as if killed half-way, then die holding the lock. */
                pthread_mutex_lock(&cr.header->lock);
                cr.header->devices[0].used = 123456;
                if (write(fds[1], &c, 1) != 1)
                        _exit(3);
                pause();
                _exit(0);
        }
        char c;
        ASSERT_EQ(read(fds[0], &c, 1), 1);
        ASSERT_OK(kill(pid, SIGKILL));
        ASSERT_TRUE(waitpid(pid, NULL, 0) == pid);
        /* Rebuilt from the slots: ours (100) + the dead one's (50, until reclaimed). */
        ASSERT_OK(shared_region_reserve(&r, 0, 1, 0));
        ASSERT_EQ_U(shared_region_used(&r, 0), 151);
        ASSERT_EQ(shared_region_reclaim_dead(&r), 1);
        ASSERT_EQ_U(shared_region_used(&r, 0), 101);
        shared_region_detach(&r);
        close(fds[0]);
        close(fds[1]);
}

static void write_file(const char *p, const void *data, size_t n) {
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(write(fd, data, n), (ssize_t) n);
        close(fd);
}

static void test_hostile_files(void) {
        SharedRegionUsage u;
        SharedRegion r;
        const char *good = region_path("g");
        uint8_t *buf;
        size_t size = shared_region_file_size(4);
        int fd;

        ASSERT_OK(shared_region_create(good, 1, 4, NULL, NULL, 0600));
        buf = calloc(1, size);
        fd = open(good, O_RDONLY | O_CLOEXEC);
        ASSERT_EQ(read(fd, buf, size), (ssize_t) size);
        close(fd);
        ASSERT_OK(shared_region_validate(buf, size));
        ASSERT_ERROR(shared_region_validate(buf, size - 1), EBADMSG);
        ASSERT_ERROR(shared_region_validate(NULL, 0), EBADMSG);

        SharedRegionHeader *h = (SharedRegionHeader *) buf;
        h->version = 2;
        ASSERT_ERROR(shared_region_validate(buf, size), EPROTONOSUPPORT);
        h->version = SHARED_REGION_VERSION;
        h->n_slots = 1000; /* file too small for it */
        ASSERT_ERROR(shared_region_validate(buf, size), EBADMSG);
        h->n_slots = 4;
        h->n_devices = 99;
        ASSERT_ERROR(shared_region_validate(buf, size), EBADMSG);
        h->n_devices = 1;
        h->slot_hwm = 5; /* beyond n_slots */
        ASSERT_ERROR(shared_region_validate_prefix(buf, size), EBADMSG);
        h->slot_hwm = 4;
        ASSERT_OK(shared_region_validate_prefix(buf, shared_region_file_size(4)));
        ASSERT_ERROR(shared_region_validate_prefix(buf, shared_region_file_size(3)), EBADMSG);
        /* Saturating sums over hostile slot values. */
        for (uint32_t i = 0; i < 4; i++) {
                SharedRegionSlot *s = (SharedRegionSlot *) (buf + shared_region_slot_offset(i));
                s->state = SHARED_REGION_SLOT_ACTIVE;
                s->used[0] = UINT64_MAX - 1;
        }
        ASSERT_OK(shared_region_parse_usage(buf, size, -1, &u));
        ASSERT_EQ_U(u.used[0], UINT64_MAX);
        ASSERT_EQ(u.n_active, 4);
        h->magic[0] = 'X';
        write_file(region_path("bad"), buf, size);
        ASSERT_ERROR(shared_region_read_usage(region_path("bad"), &u), EBADMSG);
        ASSERT_ERROR(shared_region_attach(&r, region_path("bad"), 0), EBADMSG);
        write_file(region_path("short"), buf, 10);
        ASSERT_ERROR(shared_region_read_usage(region_path("short"), &u), EBADMSG);
        ASSERT_ERROR(shared_region_attach(&r, region_path("short"), 0), EBADMSG);
        free(buf);

        ASSERT_OK(mkfifo(region_path("fifo"), 0600));
        ASSERT_ERROR(shared_region_read_usage(region_path("fifo"), &u), EBADMSG);
        ASSERT_OK(symlink(good, region_path("link")));
        ASSERT_ERROR(shared_region_read_usage(region_path("link"), &u), ELOOP);
        ASSERT_ERROR(shared_region_read_usage(region_path("missing"), &u), ENOENT);
        ASSERT_ERROR(shared_region_read_usage(dir, &u), EBADMSG);
}

static void test_private_region(void) {
        SharedRegion r;

        ASSERT_OK(shared_region_attach(&r, NULL, 2));
        ASSERT_OK(shared_region_reserve(&r, 1, 10, 10));
        ASSERT_ERROR(shared_region_reserve(&r, 1, 1, 10), ENOMEM);
        ASSERT_OK(shared_region_reattach_after_fork(&r));
        ASSERT_OK(shared_region_reserve(&r, 1, 10, 10));
        shared_region_detach(&r);
}

/* The monitor's measurements come back through the reader; a hostile share is clamped. */
static void test_measurements_read_back(void) {
        const char *p = region_path("measured");
        SharedRegionMeasurement m[2] = {
                { .footprint_extra = 500 << 20, .measured_sm = 250, .measured_procs = 3, .measured = true },
                { .measured = false },
        };
        SharedRegionUsage u;
        struct stat st;

        ASSERT_OK(shared_region_create(p, 2, 8, NULL, NULL, 0600));
        ASSERT_OK(shared_region_read_usage(p, &u));
        ASSERT_EQ_U(u.measured_seq[0], 0);
        ASSERT_OK(stat(p, &st));
        ASSERT_OK(shared_region_write_measurements(p, &st, m, 2));
        ASSERT_OK(shared_region_read_usage(p, &u));
        ASSERT_EQ_U(u.footprint_extra[0], 500 << 20);
        ASSERT_EQ(u.measured_sm[0], 250);
        ASSERT_EQ(u.measured_procs[0], 3);
        ASSERT_EQ_U(u.measured_seq[0], 1);
        ASSERT_EQ_U(u.measured_seq[1], 0);

        m[0].measured_sm = 70000; /* as a container could write it */
        ASSERT_OK(shared_region_write_measurements(p, &st, m, 1));
        ASSERT_OK(shared_region_read_usage(p, &u));
        ASSERT_EQ(u.measured_sm[0], 1000);
}

int main(void) {
        ASSERT_TRUE(mkdtemp(dir));
        test_create_and_read();
        test_create_at();
        test_reserve_release();
        test_sigkill_reclaim();
        test_owner_dead();
        test_hostile_files();
        test_private_region();
        test_measurements_read_back();
        test_concurrent_limit();
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        ASSERT_EQ(system(cmd), 0);
        return 0;
}
