/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The prepare core end to end on a fixture host: canned claims through the preparer,
 * every reject case leaving nothing behind, idempotence, unprepare, start-up recovery
 * (orphans, missing specs) and a simulated reboot (new boot ID, empty CDI dir).
 */

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "cdi.h"
#include "checkpoint.h"
#include "fsutil.h"
#include "macro.h"
#include "prepare-fixture.h"
#include "prepare.h"
#include "tests.h"
#include "shared-region.h"

#define UID1 "0c6a3d6e-2f8e-4c6b-9b7e-4a2a0f1c9d11"
#define UID2 "1c6a3d6e-2f8e-4c6b-9b7e-4a2a0f1c9d12"
#define S1 "6f1c2f1e-0000-4000-8000-000000000001"

static Fixture fx;

static Preparer *new_preparer(const char *boot_id) {
        Preparer *p;
        PrepareOptions o = fx.options;

        if (boot_id)
                o.boot_id = boot_id;
        ASSERT_OK(preparer_new(&o, &fx.gpus, &p));
        ASSERT_OK(preparer_recover(p, NULL, NULL));
        return p;
}

static bool claim_present(const char *uid) {
        return fixture_exists("%s/checkpoints/%s.ckpt", fx.state_dir, uid) &&
               fixture_exists("%s/k8s." FIXTURE_DRIVER "-claim_%s.json", fx.cdi_dir, uid) &&
               fixture_exists("%s/claims/%s/vgpu/vgpu.cache", fx.state_dir, uid) &&
               fixture_exists("%s/ld.so.preload", fx.state_dir);
}

static bool claim_absent(const char *uid) {
        return !fixture_exists("%s/checkpoints/%s.ckpt", fx.state_dir, uid) &&
               !fixture_exists("%s/k8s." FIXTURE_DRIVER "-claim_%s.json", fx.cdi_dir, uid) &&
               !fixture_exists("%s/claims/%s", fx.state_dir, uid);
}

static int prepare(Preparer *p, const char *uid, const char *json, PreparedClaim *ret, char *err) {
        PrepareClaimRef ref = { .namespace_ = "default", .name = "c", .uid = uid };
        return preparer_prepare(p, &ref, json, json ? strlen(json) : 0, ret, err, 512);
}

static void copy_record(void *userdata, const PreparedClaim *c) {
        ASSERT_OK(prepared_claim_copy(c, true, userdata));
}

static void test_prepare_unprepare(void) {
        Preparer *p = new_preparer(NULL);
        FixtureResult r[] = { { .device = "hami-gpu-0", .share_id = S1, .memory = "10Gi", .cores = "50" } };
        _cleanup_free_ char *json = fixture_claim(UID1, "c", r, 1, NULL);
        _cleanup_(prepared_claim_done) PreparedClaim c = {}, again = {};
        char err[512], path[1024];
        struct stat st;

        ASSERT_OK(prepare(p, UID1, json, &c, err));
        ASSERT_EQ(c.n_devices, 1);
        ASSERT_STREQ(c.devices[0].cdi_device_id, "k8s." FIXTURE_DRIVER "/claim=" UID1 "-hami-gpu-0-" S1);
        ASSERT_STREQ(c.devices[0].share_id, S1);
        ASSERT_STREQ(c.devices[0].request, "gpu");
        ASSERT_STREQ(c.devices[0].pool, FIXTURE_NODE);
        ASSERT_EQ_U(c.devices[0].memory_mib, 10240);
        ASSERT_EQ(c.devices[0].cores, 50);
        ASSERT_TRUE(claim_present(UID1));
        ASSERT_TRUE(preparer_is_prepared(p, UID1));
        ASSERT_EQ(preparer_n_prepared(p), 1);

        /*
         * On the host nobody but root gets past <state>/claims; inside the claim's bind mount
         * every process of its containers, whatever its uid, can use the region.
         */
        snprintf(path, sizeof(path), "%s/claims", fx.state_dir);
        ASSERT_OK(stat(path, &st));
        ASSERT_EQ(st.st_mode & 07777, 0700);
        ASSERT_EQ(st.st_uid, getuid());
        snprintf(path, sizeof(path), "%s/claims/%s/vgpu", fx.state_dir, UID1);
        ASSERT_OK(stat(path, &st));
        ASSERT_EQ(st.st_mode & 07777, 0755);
        snprintf(path, sizeof(path), "%s/claims/%s/vgpu/vgpu.cache", fx.state_dir, UID1);
        ASSERT_OK(stat(path, &st));
        ASSERT_EQ(st.st_mode & 07777, 0666);
        /* A valid region with the claim's limits. */
        SharedRegionUsage usage;
        ASSERT_OK(shared_region_read_usage(path, &usage));
        ASSERT_EQ(usage.n_devices, 1);
        ASSERT_EQ_U(usage.limit[0], UINT64_C(10240) << 20);
        ASSERT_EQ(usage.sm_limit[0], 50);

        /* The record kept in memory: the devices, not the spec text (that stays on disk). */
        PreparedClaim seen = {};
        ASSERT_EQ(preparer_foreach(p, copy_record, &seen), 1);
        ASSERT_STREQ(seen.uid, UID1);
        ASSERT_EQ(seen.n_devices, 1);
        ASSERT_STREQ(seen.devices[0].cdi_device_id, c.devices[0].cdi_device_id);
        ASSERT_TRUE(seen.cdi_spec == NULL);
        prepared_claim_done(&seen);

        /* Idempotent: the same answer, also without the claim JSON, and a lost spec comes
         * back, byte for byte, from the checkpoint file. */
        _cleanup_free_ char *spec = NULL, *restored = NULL;
        size_t spec_len, restored_len;
        snprintf(path, sizeof(path), "%s/k8s." FIXTURE_DRIVER "-claim_%s.json", fx.cdi_dir, UID1);
        ASSERT_OK(read_file_bounded_at(AT_FDCWD, path, 1 << 20, 0, &spec, &spec_len));
        ASSERT_OK(unlink(path));
        ASSERT_OK(prepare(p, UID1, NULL, &again, err));
        ASSERT_STREQ(again.devices[0].cdi_device_id, c.devices[0].cdi_device_id);
        ASSERT_TRUE(claim_present(UID1));
        ASSERT_OK(read_file_bounded_at(AT_FDCWD, path, 1 << 20, 0, &restored, &restored_len));
        ASSERT_EQ_U(restored_len, spec_len);
        ASSERT_TRUE(memcmp(restored, spec, spec_len) == 0);
        ASSERT_EQ(preparer_n_prepared(p), 1);

        ASSERT_OK(preparer_unprepare(p, UID1, err, sizeof(err)));
        ASSERT_TRUE(claim_absent(UID1));
        ASSERT_OK(preparer_unprepare(p, UID1, err, sizeof(err)));   /* unknown: success */
        ASSERT_OK(preparer_unprepare(p, UID2, err, sizeof(err)));
        ASSERT_EQ(preparer_n_prepared(p), 0);
        ASSERT_ERROR(preparer_unprepare(p, "../../etc", err, sizeof(err)), EINVAL);
        preparer_free(p);
}

static void test_rejects_leave_nothing(void) {
        Preparer *p = new_preparer(NULL);
        FixtureResult ok[] = { { .device = "hami-gpu-0", .memory = "1Gi", .cores = "10" } };
        FixtureResult other_node[] = { { .device = "hami-gpu-0", .pool = "node2" } };
        FixtureResult exceeds[] = { { .device = "hami-gpu-0", .memory = "100Gi", .cores = "10" } };
        FixtureResult unknown[] = { { .device = "hami-gpu-7" } };
        FixtureResult no_cores[] = { { .device = "hami-gpu-0", .memory = "1Gi", .cores = "0" } };
        /* Issue 14 item 3: the tenant's own config lifting the SM limit of a 0-core share. */
        const char *relax_config =
                "[{\"source\":\"FromClaim\",\"opaque\":{\"driver\":\"" FIXTURE_DRIVER "\",\"parameters\":"
                "{\"apiVersion\":\"gpu.project-hami.io/v1alpha1\",\"kind\":\"GpuConfig\",\"smLimitPolicy\":\"disabled\"}}}]";
        const char *bad_config =
                "[{\"source\":\"FromClaim\",\"opaque\":{\"driver\":\"" FIXTURE_DRIVER "\",\"parameters\":{\"kind\":\"Nope\"}}}]";
        struct {
                const char *what;
                char *json;
                const char *uid;
                int error;
                const char *message;
        } cases[] = {
                { "UID mismatch", fixture_claim(UID2, "c", ok, 1, NULL), UID1, ESTALE, "UID mismatch" },
                { "not allocated", strdup("{\"metadata\":{\"uid\":\"" UID1 "\",\"name\":\"c\",\"namespace\":\"default\"}}"),
                  UID1, ENODATA, "not allocated" },
                { "another node", fixture_claim(UID1, "c", other_node, 1, NULL), UID1, EXDEV, "another node" },
                { "exceeds", fixture_claim(UID1, "c", exceeds, 1, NULL), UID1, ERANGE, "exceeds the device" },
                { "opaque config", fixture_claim(UID1, "c", ok, 1, bad_config), UID1, EBADMSG, "malformed opaque config" },
                { "unknown device", fixture_claim(UID1, "c", unknown, 1, NULL), UID1, ENODEV, "does not have" },
                { "claim relaxes", fixture_claim(UID1, "c", no_cores, 1, relax_config), UID1, EPERM,
                  "only the DeviceClass may relax" },
                { "zero cores", fixture_claim(UID1, "c", no_cores, 1, NULL), UID1, ERANGE, "0 means no limit" },
                { "garbage", strdup("{{{"), UID1, EBADMSG, "JSON" },
        };
        char err[512];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                PreparedClaim c = {};
                int r = prepare(p, cases[i].uid, cases[i].json, &c, err);
                if (r != -cases[i].error || !strstr(err, cases[i].message))
                        TEST_FAIL("%s: got %d \"%s\"", cases[i].what, r, err);
                ASSERT_TRUE(claim_absent(UID1));
                ASSERT_TRUE(claim_absent(UID2));
                free(cases[i].json);
        }
        /* Not found at the API server is the fetcher's answer; without JSON and checkpoint: retry. */
        PreparedClaim c = {};
        ASSERT_ERROR(prepare(p, UID1, NULL, &c, err), EAGAIN);

        /* A GPU whose device node is missing is refused too. */
        Gpu gpus[3];
        memcpy(gpus, fx.gpus.gpus, 2 * sizeof(Gpu));
        gpus[2] = gpus[1];
        snprintf(gpus[2].name, sizeof(gpus[2].name), "hami-gpu-5");
        gpus[2].minor = 5;
        GpuList l = { .gpus = gpus, .n_gpus = 3 };
        ASSERT_OK(preparer_set_gpus(p, &l));
        FixtureResult five[] = { { .device = "hami-gpu-5" } };
        _cleanup_free_ char *json5 = fixture_claim(UID1, "c", five, 1, NULL);
        ASSERT_ERROR(prepare(p, UID1, json5, &c, err), ENOENT);
        ASSERT_TRUE(strstr(err, "/dev/nvidia5") != NULL);
        ASSERT_TRUE(claim_absent(UID1));
        ASSERT_OK(preparer_set_gpus(p, &fx.gpus));
        preparer_free(p);
        ASSERT_EQ(fixture_count(fx.cdi_dir), 0);
}

static void test_several_gpus_and_devices(void) {
        Preparer *p = new_preparer(NULL);
        FixtureResult r[] = {
                { .device = "hami-gpu-0", .memory = "1Gi", .cores = "10" },
                { .device = "hami-gpu-1" },
                { .device = "gpu-0", .driver = "gpu.nvidia.com", .pool = "x" },
        };
        _cleanup_free_ char *json = fixture_claim(UID2, "multi", r, 3, NULL);
        _cleanup_(prepared_claim_done) PreparedClaim c = {};
        char err[512];

        ASSERT_OK(prepare(p, UID2, json, &c, err));
        ASSERT_EQ(c.n_devices, 2);
        ASSERT_STREQ(c.devices[1].cdi_device_id, "k8s." FIXTURE_DRIVER "/claim=" UID2 "-hami-gpu-1");
        ASSERT_NULL(c.devices[1].share_id);
        ASSERT_EQ_U(c.devices[1].memory_mib, 24576);
        ASSERT_EQ(c.devices[1].cores, 100);
        ASSERT_OK(preparer_unprepare(p, UID2, err, sizeof(err)));
        ASSERT_TRUE(claim_absent(UID2));

        /* A claim with nothing for our driver: prepared, no devices, nothing on disk. */
        prepared_claim_done(&c);
        _cleanup_free_ char *foreign = fixture_claim(UID2, "foreign", r + 2, 1, NULL);
        ASSERT_OK(prepare(p, UID2, foreign, &c, err));
        ASSERT_EQ(c.n_devices, 0);
        ASSERT_TRUE(claim_absent(UID2));
        preparer_free(p);
}

/* Issue 14 item 4: a claim with two requests on two GPUs holds both limits in its region. */
static void test_two_requests_region(void) {
        Preparer *p = new_preparer(NULL);
        FixtureResult r[] = {
                { .request = "a", .device = "hami-gpu-0", .memory = "2Gi", .cores = "20" },
                { .request = "b", .device = "hami-gpu-1", .memory = "1Gi", .cores = "10" },
        };
        _cleanup_free_ char *json = fixture_claim(UID2, "two", r, 2, NULL);
        _cleanup_(prepared_claim_done) PreparedClaim c = {};
        SharedRegionUsage u;
        char err[512], path[1024];

        ASSERT_OK(prepare(p, UID2, json, &c, err));
        ASSERT_EQ(c.n_devices, 2);
        ASSERT_EQ(c.devices[0].cuda_index, 1);   /* hami-gpu-0 comes second in PCI order */
        ASSERT_EQ(c.devices[1].cuda_index, 0);
        snprintf(path, sizeof(path), "%s/claims/%s/vgpu/vgpu.cache", fx.state_dir, UID2);
        ASSERT_OK(shared_region_read_usage(path, &u));
        ASSERT_EQ(u.n_devices, 2);
        ASSERT_EQ_U(u.limit[1], UINT64_C(2) << 30);
        ASSERT_EQ(u.sm_limit[1], 20);
        ASSERT_EQ_U(u.limit[0], UINT64_C(1) << 30);
        ASSERT_EQ(u.sm_limit[0], 10);
        ASSERT_OK(preparer_unprepare(p, UID2, err, sizeof(err)));
        preparer_free(p);
}

static void count_claim(void *userdata, const PreparedClaim *c) {
        ASSERT_STREQ(c->uid, UID1);
        (*(size_t *) userdata)++;
}

static void test_recovery_and_reboot(void) {
        size_t n_seen = 0;
        Preparer *p = new_preparer(NULL);
        FixtureResult r[] = { { .device = "hami-gpu-0", .share_id = S1, .memory = "2Gi", .cores = "20" } };
        _cleanup_free_ char *json = fixture_claim(UID1, "c", r, 1, NULL);
        _cleanup_(prepared_claim_done) PreparedClaim c = {}, loaded = {};
        PrepareClaimRef *claims = NULL;
        size_t n = 0;
        char err[512], path[1024];

        ASSERT_OK(prepare(p, UID1, json, &c, err));
        preparer_free(p);

        /* Orphans: a spec and a claim dir without checkpoint, temp files. */
        snprintf(path, sizeof(path), "%s/k8s." FIXTURE_DRIVER "-claim_%s.json", fx.cdi_dir, UID2);
        ASSERT_OK(write_file_atomic(fx.cdi_dir, strrchr(path, '/') + 1, "{}", 2, 0644, 0));
        snprintf(path, sizeof(path), "%s/claims/%s/vgpu", fx.state_dir, UID2);
        ASSERT_OK(mkdir_parents(path, 0700));
        ASSERT_OK(write_file_atomic(fx.cdi_dir, ".k8s." FIXTURE_DRIVER "-claim_x.json.123456.tmp", "{", 1, 0644, 0));
        snprintf(path, sizeof(path), "%s/checkpoints", fx.state_dir);
        ASSERT_OK(write_file_atomic(path, "." UID2 ".ckpt.abcdef.tmp", "x", 1, 0600, 0));
        /* Another driver's spec is not ours to touch. */
        ASSERT_OK(write_file_atomic(fx.cdi_dir, "k8s.other.io-claim_" UID2 ".json", "{}", 2, 0644, 0));

        /* Reboot: /var/run/cdi is empty (except the other driver's file), new boot ID. */
        snprintf(path, sizeof(path), "%s/k8s." FIXTURE_DRIVER "-claim_%s.json", fx.cdi_dir, UID1);
        ASSERT_OK(unlink(path));
        PrepareOptions o = fx.options;
        o.boot_id = "fedcba9876543210fedcba9876543210";
        ASSERT_OK(preparer_new(&o, &fx.gpus, &p));
        ASSERT_OK(preparer_recover(p, &claims, &n));
        ASSERT_EQ(n, 1);
        ASSERT_STREQ(claims[0].uid, UID1);
        ASSERT_STREQ(claims[0].name, "c");
        preparer_claims_free(claims, n);

        ASSERT_TRUE(claim_present(UID1));
        ASSERT_TRUE(claim_absent(UID2));
        ASSERT_EQ(fixture_count(fx.cdi_dir), 2);  /* ours, recreated, and the other driver's */
        ASSERT_OK(checkpoint_load(fx.state_dir, UID1, &loaded));
        ASSERT_STREQ(loaded.boot_id, "fedcba9876543210fedcba9876543210");
        ASSERT_STREQ(loaded.cdi_spec, c.cdi_spec);

        /* Every prepared claim, e.g. for the D-Bus objects at start. */
        ASSERT_EQ(preparer_foreach(p, count_claim, &n_seen), 1);
        ASSERT_EQ(n_seen, 1);

        /* The API server says the claim is gone: forget it. */
        ASSERT_OK(preparer_forget(p, UID1, "deleted while we were down"));
        ASSERT_TRUE(claim_absent(UID1));

        /* A damaged checkpoint: the claim is removed. */
        prepared_claim_done(&c);
        ASSERT_OK(prepare(p, UID1, json, &c, err));
        snprintf(path, sizeof(path), "%s/checkpoints/%s.ckpt", fx.state_dir, UID1);
        FILE *f = fopen(path, "r+e");
        ASSERT_NOT_NULL(f);
        fseek(f, 60, SEEK_SET);
        fputc('#', f);
        fclose(f);
        preparer_free(p);
        p = new_preparer(NULL);
        ASSERT_TRUE(claim_absent(UID1));
        snprintf(path, sizeof(path), "%s/k8s.other.io-claim_" UID2 ".json", fx.cdi_dir);
        ASSERT_OK(unlink(path));
        preparer_free(p);
}

/* /dev/nvidiactl missing at start (the driver installed later): prepares fail with the
 * reason, and work as soon as the node is there, without a new preparer. */
static void test_control_node_appears_later(void) {
        FixtureResult r[] = { { .device = "hami-gpu-0", .share_id = S1, .memory = "1Gi", .cores = "10" } };
        _cleanup_free_ char *json = fixture_claim(UID1, "c", r, 1, NULL);
        _cleanup_(prepared_claim_done) PreparedClaim c = {};
        char err[512], why[256] = "", ctl[1024];
        Preparer *p;

        snprintf(ctl, sizeof(ctl), "%s/dev/nvidiactl", fx.dev_root);
        ASSERT_OK(unlink(ctl) < 0 ? -errno : 0);
        p = new_preparer(NULL);
        ASSERT_TRUE(preparer_host_check(p, why, sizeof(why)) < 0);
        ASSERT_TRUE(strstr(why, "nvidiactl") != NULL);
        ASSERT_TRUE(prepare(p, UID1, json, &c, err) < 0);
        ASSERT_TRUE(strstr(err, "nvidiactl") != NULL);
        ASSERT_FALSE(claim_present(UID1));

        ASSERT_OK(mknod(ctl, S_IFCHR | 0666, makedev(195, 255)) < 0 ? -errno : 0);
        ASSERT_OK(prepare(p, UID1, json, &c, err));
        ASSERT_TRUE(preparer_host_check(p, why, sizeof(why)) >= 0);
        ASSERT_TRUE(claim_present(UID1));
        ASSERT_OK(preparer_unprepare(p, UID1, err, sizeof(err)));
        preparer_free(p);
}

int main(void) {
        fixture_init(&fx, 2);
        TEST(test_control_node_appears_later);
        TEST(test_prepare_unprepare);
        TEST(test_rejects_leave_nothing);
        TEST(test_several_gpus_and_devices);
        TEST(test_two_requests_region);
        TEST(test_recovery_and_reboot);
        fixture_done(&fx);
        return 0;
}
