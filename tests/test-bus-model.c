/* SPDX-License-Identifier: Apache-2.0 */

/* The pure core behind the D-Bus objects: validation, the claim store, derived allocations. */

#include <errno.h>

#include "dbus/model.h"
#include "macro.h"
#include "manager-dbus-claim.h"
#include "tests.h"

static BusClaim claim(const char *uid, BusClaimDevice *devices, size_t n) {
        return (BusClaim) {
                .uid = (char *) uid,
                .namespace_ = (char *) "default",
                .name = (char *) "claim-a",
                .devices = devices,
                .n_devices = n,
        };
}

static void test_uid_validate(void) {
        char long_uid[BUS_UID_MAX + 2];

        ASSERT_OK(bus_uid_validate("0b7c1a52-9f4e-4c61-8d3a-1f2e3d4c5b6a"));
        ASSERT_OK(bus_uid_validate("a"));
        ASSERT_ERROR(bus_uid_validate(NULL), EINVAL);
        ASSERT_ERROR(bus_uid_validate(""), EINVAL);
        ASSERT_ERROR(bus_uid_validate("with space"), EINVAL);
        ASSERT_ERROR(bus_uid_validate("tab\t"), EINVAL);
        ASSERT_ERROR(bus_uid_validate("\xc3\xbc"), EINVAL);

        memset(long_uid, 'x', sizeof long_uid - 1);
        long_uid[BUS_UID_MAX] = 0;
        ASSERT_OK(bus_uid_validate(long_uid));
        long_uid[BUS_UID_MAX] = 'x';
        long_uid[BUS_UID_MAX + 1] = 0;
        ASSERT_ERROR(bus_uid_validate(long_uid), EINVAL);
}

static void test_device_name_validate(void) {
        ASSERT_OK(bus_device_name_validate("hami-gpu-0"));
        ASSERT_OK(bus_device_name_validate("GPU_1.a"));
        ASSERT_ERROR(bus_device_name_validate(""), EINVAL);
        ASSERT_ERROR(bus_device_name_validate("a/b"), EINVAL);
        ASSERT_ERROR(bus_device_name_validate(".. /x"), EINVAL);
        ASSERT_ERROR(bus_device_name_validate("0123456789012345678901234567890123456789012345678901234567890123"),
                     EINVAL); /* 64: one past GPU_NAME_MAX - 1 */
}

static void test_claim_validate(void) {
        BusClaimDevice d = { .device = "hami-gpu-0", .memory_limit = 1, .cores_limit = 1 };
        BusClaim c = claim("u1", &d, 1);

        ASSERT_OK(bus_claim_validate(&c));
        c.namespace_ = (char *) "Upper";
        ASSERT_ERROR(bus_claim_validate(&c), EINVAL);
        c.namespace_ = (char *) "a.b"; /* a label has no dots */
        ASSERT_ERROR(bus_claim_validate(&c), EINVAL);
        c.namespace_ = (char *) "default";
        c.name = (char *) "a.b-c";
        ASSERT_OK(bus_claim_validate(&c));
        c.name = NULL;
        ASSERT_ERROR(bus_claim_validate(&c), EINVAL);
        c.name = (char *) "x";
        c.n_devices = BUS_CLAIM_DEVICES_MAX + 1;
        ASSERT_ERROR(bus_claim_validate(&c), EINVAL);
        c.n_devices = 1;
        snprintf(d.device, sizeof d.device, "bad name");
        ASSERT_ERROR(bus_claim_validate(&c), EINVAL);
}

static void test_store_sorted_and_usage(void) {
        _cleanup_(bus_model_done) BusModel m = {};
        BusClaimDevice d0 = { .device = "hami-gpu-0", .memory_limit = 4ull << 30, .cores_limit = 30 };
        BusClaimDevice d01[] = {
                { .device = "hami-gpu-0", .memory_limit = 2ull << 30, .cores_limit = 20 },
                { .device = "hami-gpu-1", .memory_limit = 8ull << 30, .cores_limit = 50 },
        };
        BusClaim a = claim("b-uid", &d0, 1), b = claim("a-uid", d01, 2), c = claim("c-uid", NULL, 0);
        BusDeviceUsage u;
        const char **uids = NULL;
        BusClaim removed;

        ASSERT_OK(bus_model_add_claim(&m, &a));
        ASSERT_OK(bus_model_add_claim(&m, &b));
        ASSERT_OK(bus_model_add_claim(&m, &c));
        ASSERT_ERROR(bus_model_add_claim(&m, &a), EEXIST);
        ASSERT_EQ(m.n_claims, 3);
        ASSERT_STREQ(m.claims[0].uid, "a-uid");
        ASSERT_STREQ(m.claims[1].uid, "b-uid");
        ASSERT_STREQ(m.claims[2].uid, "c-uid");
        ASSERT_TRUE(m.claims[0].devices != d01); /* a copy */

        bus_model_device_usage(&m, "hami-gpu-0", &u);
        ASSERT_EQ_U(u.memory_allocated, 6ull << 30);
        ASSERT_EQ(u.cores_allocated, 50);
        ASSERT_EQ(u.n_claims, 2);
        bus_model_device_usage(&m, "hami-gpu-9", &u);
        ASSERT_EQ(u.n_claims, 0);
        ASSERT_EQ_U(u.memory_allocated, 0);

        ASSERT_OK(bus_model_device_claims(&m, "hami-gpu-0", &uids));
        ASSERT_STREQ(uids[0], "a-uid");
        ASSERT_STREQ(uids[1], "b-uid");
        ASSERT_NULL(uids[2]);
        free(uids);

        ASSERT_NOT_NULL(bus_model_find_claim(&m, "c-uid"));
        ASSERT_NULL(bus_model_find_claim(&m, "d-uid"));
        ASSERT_NULL(bus_model_find_claim(&m, NULL));
        ASSERT_OK(bus_model_remove_claim(&m, "b-uid", &removed));
        ASSERT_STREQ(removed.name, "claim-a");
        bus_claim_done(&removed);
        ASSERT_ERROR(bus_model_remove_claim(&m, "b-uid", NULL), ENOENT);
        ASSERT_OK(bus_model_remove_claim(&m, "a-uid", NULL));
        ASSERT_EQ(m.n_claims, 1);
        ASSERT_STREQ(m.claims[0].uid, "c-uid");
}

static void test_usage_saturates(void) {
        _cleanup_(bus_model_done) BusModel m = {};
        BusClaimDevice big = { .device = "g", .memory_limit = UINT64_MAX - 1, .cores_limit = UINT32_MAX };
        BusClaim a = claim("a", &big, 1), b = claim("b", &big, 1);
        BusDeviceUsage u;

        ASSERT_OK(bus_model_add_claim(&m, &a));
        ASSERT_OK(bus_model_add_claim(&m, &b));
        bus_model_device_usage(&m, "g", &u);
        ASSERT_EQ_U(u.memory_allocated, UINT64_MAX);
        ASSERT_EQ_U(u.cores_allocated, UINT32_MAX);
}

static void test_two_shares_of_one_gpu(void) {
        _cleanup_(bus_model_done) BusModel m = {};
        BusClaimDevice two[] = {
                { .device = "hami-gpu-0", .memory_limit = 1ull << 30, .cores_limit = 10 },
                { .device = "hami-gpu-0", .memory_limit = 3ull << 30, .cores_limit = 20 },
        };
        BusClaim c = claim("u", two, 2);
        BusDeviceUsage u;

        ASSERT_OK(bus_model_add_claim(&m, &c));
        bus_model_device_usage(&m, "hami-gpu-0", &u);
        ASSERT_EQ_U(u.memory_allocated, 4ull << 30);
        ASSERT_EQ(u.cores_allocated, 30);
        ASSERT_EQ(u.n_claims, 1);
}

static void test_claims_limit(void) {
        _cleanup_(bus_model_done) BusModel m = {};
        char uid[32];

        for (unsigned i = 0; i < BUS_CLAIMS_MAX; i++) {
                BusClaim c;
                snprintf(uid, sizeof uid, "uid-%08u", i);
                c = claim(uid, NULL, 0);
                ASSERT_OK(bus_model_add_claim(&m, &c));
        }
        BusClaim extra = claim("one-too-many", NULL, 0);
        ASSERT_ERROR(bus_model_add_claim(&m, &extra), E2BIG);
        ASSERT_NOT_NULL(bus_model_find_claim(&m, "uid-00012345"));
}

static void test_devices(void) {
        _cleanup_(bus_model_done) BusModel m = {};
        BusDevice d[2] = {};
        Gpu g = { .name = "hami-gpu-0", .uuid = "GPU-1", .product_name = "NVIDIA A10",
                  .memory_total = 1000, .cores = 100, .health = GPU_HEALTH_HEALTHY };

        bus_device_from_gpu(&d[0], &g);
        ASSERT_STREQ(d[0].model, "NVIDIA A10");
        ASSERT_TRUE(d[0].schedulable);
        d[1] = d[0];
        ASSERT_ERROR(bus_model_set_devices(&m, d, 2), EINVAL); /* duplicate name */
        snprintf(d[1].name, sizeof d[1].name, "hami-gpu-1");
        memset(d[1].uuid, 'x', sizeof d[1].uuid); /* unterminated: must come out terminated */
        ASSERT_OK(bus_model_set_devices(&m, d, 2));
        ASSERT_EQ(strlen(m.devices[1].uuid), sizeof d[1].uuid - 1);
        ASSERT_NOT_NULL(bus_model_find_device(&m, "hami-gpu-1"));
        ASSERT_NULL(bus_model_find_device(&m, "hami-gpu-2"));
        snprintf(d[1].name, sizeof d[1].name, "bad/name");
        ASSERT_ERROR(bus_model_set_devices(&m, d, 2), EINVAL);
        ASSERT_EQ(m.n_devices, 2); /* unchanged on error */
        ASSERT_ERROR(bus_model_set_devices(&m, d, BUS_DEVICES_MAX + 1), E2BIG);
        ASSERT_OK(bus_model_set_devices(&m, NULL, 0));
        ASSERT_EQ(m.n_devices, 0);
}

static void test_strings(void) {
        ASSERT_STREQ(bus_state_to_string(BUS_STATE_DEGRADED), "degraded");
        ASSERT_STREQ(bus_state_to_string((BusState) 42), "unknown");
        ASSERT_STREQ(bus_health_to_string(GPU_HEALTH_UNHEALTHY), "unhealthy");
}

/* What the bus reads usage by: each GPU's region device and UUID from the record. */
static void test_claim_from_prepared_keeps_region_index(void) {
        PreparedClaimDevice d[] = {
                { .device = (char *) "hami-gpu-1", .gpu_uuid = (char *) "GPU-1", .memory_mib = 8192, .cores = 10,
                  .cuda_index = 1 },
                { .device = (char *) "hami-gpu-0", .gpu_uuid = (char *) "GPU-0", .memory_mib = 4096, .cores = 20,
                  .cuda_index = 0 },
        };
        PreparedClaim c = { .uid = (char *) "u1", .namespace_ = (char *) "default", .name = (char *) "c",
                            .devices = d, .n_devices = 2 };
        _cleanup_(bus_claim_done) BusClaim b = {};

        ASSERT_OK(manager_dbus_claim_from_prepared(&c, "/var/lib/hami-dra", &b));
        ASSERT_EQ(b.n_devices, 2);
        ASSERT_STREQ(b.devices[0].device, "hami-gpu-1");
        ASSERT_EQ(b.devices[0].region_index, 1);
        ASSERT_STREQ(b.devices[0].uuid, "GPU-1");
        ASSERT_EQ(b.devices[1].region_index, 0);
        ASSERT_STREQ(b.devices[1].uuid, "GPU-0");
        ASSERT_OK(bus_claim_validate(&b));
        b.devices[1].region_index = BUS_CLAIM_DEVICES_MAX;
        ASSERT_ERROR(bus_claim_validate(&b), EINVAL);
}

int main(void) {
        TEST(test_uid_validate);
        TEST(test_device_name_validate);
        TEST(test_claim_validate);
        TEST(test_store_sorted_and_usage);
        TEST(test_usage_saturates);
        TEST(test_claim_from_prepared_keeps_region_index);
        TEST(test_two_shares_of_one_gpu);
        TEST(test_claims_limit);
        TEST(test_devices);
        TEST(test_strings);
        return 0;
}
