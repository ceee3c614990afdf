/* SPDX-License-Identifier: Apache-2.0 */

#include <stdio.h>

#include "checkpoint.h"
#include "fsutil.h"
#include "macro.h"
#include "prepare-fixture.h"
#include "tests.h"

#define UID "0c6a3d6e-2f8e-4c6b-9b7e-4a2a0f1c9d11"

static void make(PreparedClaim *c) {
        *c = (PreparedClaim) {
                .uid = strdup(UID),
                .namespace_ = strdup("default"),
                .name = strdup("c1"),
                .cdi_spec = strdup("{\"cdiVersion\":\"0.5.0\"}"),
                .devices = calloc(2, sizeof(PreparedClaimDevice)),
                .n_devices = 2,
        };
        memcpy(c->boot_id, FIXTURE_BOOT_ID, 33);
        for (size_t i = 0; i < 2; i++) {
                PreparedClaimDevice *d = &c->devices[i];
                d->request = strdup("gpu");
                d->pool = strdup("node1");
                d->device = strdup(i ? "hami-gpu-1" : "hami-gpu-0");
                d->cdi_device_id = strdup("k8s.x/claim=y");
                d->share_id = i ? strdup("6f1c2f1e-0000-4000-8000-000000000001") : NULL;
                d->gpu_uuid = strdup("GPU-1");
                d->memory_mib = 10240 + i;
                d->cores = 30;
        }
}

static void assert_same(const PreparedClaim *a, const PreparedClaim *b) {
        ASSERT_STREQ(a->uid, b->uid);
        ASSERT_STREQ(a->namespace_, b->namespace_);
        ASSERT_STREQ(a->name, b->name);
        ASSERT_STREQ(a->boot_id, b->boot_id);
        ASSERT_STREQ(a->cdi_spec, b->cdi_spec);
        ASSERT_EQ(a->n_devices, b->n_devices);
        for (size_t i = 0; i < a->n_devices; i++) {
                ASSERT_STREQ(a->devices[i].device, b->devices[i].device);
                ASSERT_STREQ(a->devices[i].cdi_device_id, b->devices[i].cdi_device_id);
                ASSERT_TRUE(streq_ptr(a->devices[i].share_id, b->devices[i].share_id));
                ASSERT_EQ_U(a->devices[i].memory_mib, b->devices[i].memory_mib);
                ASSERT_EQ(a->devices[i].cores, b->devices[i].cores);
        }
}

static void test_crc32c(void) {
        ASSERT_EQ_U(crc32c(0, "123456789", 9), 0xe3069283u);
        ASSERT_EQ_U(crc32c(0, "", 0), 0);
}

static void test_round_trip(void) {
        _cleanup_(prepared_claim_done) PreparedClaim c = {}, d = {};
        _cleanup_free_ char *data = NULL;
        size_t len;

        make(&c);
        ASSERT_OK(checkpoint_encode(&c, &data, &len));
        ASSERT_TRUE(strncmp(data, "HAMI-DRA-CHECKPOINT 2 ", 22) == 0);
        /* The spec follows the payload as written, not escaped into it. */
        ASSERT_TRUE(len > strlen(c.cdi_spec) && streq(data + len - strlen(c.cdi_spec), c.cdi_spec));
        ASSERT_OK(checkpoint_decode(data, len, &d));
        assert_same(&c, &d);
}

static char *versioned(unsigned version, const char *payload, const char *spec) {
        uint32_t crc = crc32c(crc32c(0, payload, strlen(payload)), spec, strlen(spec));
        char *s;

        if (version == 1)
                ASSERT_TRUE(asprintf(&s, "HAMI-DRA-CHECKPOINT 1 %08x %zu\n%s", crc, strlen(payload), payload) > 0);
        else
                ASSERT_TRUE(asprintf(&s, "HAMI-DRA-CHECKPOINT %u %08x %zu %zu\n%s%s", version, crc, strlen(payload),
                                     strlen(spec), payload, spec) > 0);
        return s;
}

/* Files of the first version (the spec as a JSON string in the payload) are still read. */
static void test_version_1(void) {
        const char *v1 = "{\"uid\":\"" UID "\",\"namespace\":\"default\",\"name\":\"c1\",\"bootId\":\""
                         FIXTURE_BOOT_ID "\",\"cdiSpec\":\"{\\\"cdiVersion\\\":\\\"0.5.0\\\"}\",\"devices\":[]}";
        _cleanup_(prepared_claim_done) PreparedClaim d = {};
        _cleanup_free_ char *old = versioned(1, v1, ""), *mixed = versioned(2, v1, "{}");

        ASSERT_OK(checkpoint_decode(old, strlen(old), &d));
        ASSERT_STREQ(d.uid, UID);
        ASSERT_STREQ(d.cdi_spec, "{\"cdiVersion\":\"0.5.0\"}");
        ASSERT_EQ(d.n_devices, 0);

        /* Version 2 with the spec in the payload as well: which one? Neither. */
        PreparedClaim e = {};
        ASSERT_ERROR(checkpoint_decode(mixed, strlen(mixed), &e), EBADMSG);
}

static void test_corruption(void) {
        _cleanup_(prepared_claim_done) PreparedClaim c = {};
        _cleanup_free_ char *data = NULL;
        size_t len;

        make(&c);
        ASSERT_OK(checkpoint_encode(&c, &data, &len));

        /* Every single-bit flip and every truncation is detected. */
        for (size_t i = 0; i < len; i++)
                for (int bit = 0; bit < 8; bit++) {
                        PreparedClaim d = {};
                        data[i] ^= (char) (1 << bit);
                        int r = checkpoint_decode(data, len, &d);
                        data[i] ^= (char) (1 << bit);
                        if (r >= 0)
                                TEST_FAIL("flip of bit %d at %zu not detected", bit, i);
                }
        for (size_t n = 0; n < len; n++) {
                PreparedClaim d = {};
                ASSERT_TRUE(checkpoint_decode(data, n, &d) < 0);
        }

        /* Another version is told apart from damage. */
        char *v3 = strdup(data);
        v3[20] = '3';
        PreparedClaim d = {};
        ASSERT_ERROR(checkpoint_decode(v3, len, &d), EPROTONOSUPPORT);
        free(v3);
}

static void test_files(void) {
        _cleanup_(prepared_claim_done) PreparedClaim c = {}, d = {};
        Fixture fx;
        char path[1024];
        uint64_t before;

        fixture_init(&fx, 1);
        make(&c);
        before = fsutil_fsync_count();
        ASSERT_OK(checkpoint_save(fx.state_dir, &c));
        ASSERT_EQ_U(fsutil_fsync_count() - before, 2);    /* the file, then the directory */
        ASSERT_OK(checkpoint_load(fx.state_dir, UID, &d));
        assert_same(&c, &d);
        prepared_claim_done(&d);

        /* A file copied under another claim's name is refused. */
        const char *other = "bc6a3d6e-2f8e-4c6b-9b7e-4a2a0f1c9d11";
        snprintf(path, sizeof(path), "cp %s/checkpoints/%s.ckpt %s/checkpoints/%s.ckpt", fx.state_dir, UID,
                 fx.state_dir, other);
        ASSERT_EQ(system(path), 0);
        ASSERT_ERROR(checkpoint_load(fx.state_dir, other, &d), EBADMSG);

        ASSERT_OK(checkpoint_remove(fx.state_dir, UID));
        ASSERT_ERROR(checkpoint_load(fx.state_dir, UID, &d), ENOENT);
        ASSERT_ERROR(checkpoint_remove(fx.state_dir, UID), ENOENT);
        ASSERT_ERROR(checkpoint_load(fx.state_dir, "../etc", &d), EINVAL);
        fixture_done(&fx);
}

int main(void) {
        TEST(test_crc32c);
        TEST(test_round_trip);
        TEST(test_version_1);
        TEST(test_corruption);
        TEST(test_files);
        return 0;
}
