/* SPDX-License-Identifier: Apache-2.0 */

#include <errno.h>
#include <stdlib.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "gpu-nvml.h"
#include "gpu.h"
#include "macro.h"
#include "nvml-abi.h"
#include "tests.h"

static void assert_semver(const char *in, const char *expected) {
        char out[GPU_STRING_MAX] = "untouched";

        ASSERT_OK(version_to_semver(in, out, sizeof(out)));
        ASSERT_STREQ(out, expected);
}

static void assert_not_semver(const char *in) {
        char out[GPU_STRING_MAX] = "untouched";

        ASSERT_ERROR(version_to_semver(in, out, sizeof(out)), EINVAL);
        ASSERT_STREQ(out, "untouched");
}

static void test_version_to_semver(void) {
        assert_semver("535.104.05", "535.104.5");
        assert_semver("550.144.03", "550.144.3");
        assert_semver("570.86.15", "570.86.15");
        assert_semver("12.4", "12.4.0");
        assert_semver("12", "12.0.0");
        assert_semver("00.000.0", "0.0.0");
        assert_semver("007.08.09", "7.8.9");
        assert_semver("999999999.1.2", "999999999.1.2");

        assert_not_semver("");
        assert_not_semver(".");
        assert_not_semver("1.");
        assert_not_semver(".1");
        assert_not_semver("1..2");
        assert_not_semver("1.2.3.4");
        assert_not_semver("1.2.3-rc1");
        assert_not_semver("v1.2");
        assert_not_semver("1.2 ");
        assert_not_semver("-1.2");
        assert_not_semver("1234567890.1.1"); /* more digits than fit */
        ASSERT_ERROR(version_to_semver(NULL, (char[8]) {}, 8), EINVAL);

        char small[6] = "x";
        ASSERT_ERROR(version_to_semver("535.104.05", small, sizeof(small)), ENOBUFS);
        ASSERT_STREQ(small, "x");
        ASSERT_OK(version_to_semver("1.2.3", small, sizeof(small)));
        ASSERT_STREQ(small, "1.2.3");
}

static void test_cuda_and_cc_semver(void) {
        char out[32];

        ASSERT_OK(cuda_version_to_semver(12040, out, sizeof(out)));
        ASSERT_STREQ(out, "12.4.0");
        ASSERT_OK(cuda_version_to_semver(12080, out, sizeof(out)));
        ASSERT_STREQ(out, "12.8.0");
        ASSERT_OK(cuda_version_to_semver(11020, out, sizeof(out)));
        ASSERT_STREQ(out, "11.2.0");
        ASSERT_OK(cuda_version_to_semver(13000, out, sizeof(out)));
        ASSERT_STREQ(out, "13.0.0");
        ASSERT_ERROR(cuda_version_to_semver(0, out, sizeof(out)), EINVAL);
        ASSERT_ERROR(cuda_version_to_semver(-12040, out, sizeof(out)), EINVAL);

        ASSERT_OK(compute_capability_to_semver(8, 6, out, sizeof(out)));
        ASSERT_STREQ(out, "8.6.0");
        ASSERT_OK(compute_capability_to_semver(10, 0, out, sizeof(out)));
        ASSERT_STREQ(out, "10.0.0");
        ASSERT_ERROR(compute_capability_to_semver(-1, 0, out, sizeof(out)), EINVAL);
}

static void test_pci_bus_id_normalize(void) {
        char out[GPU_STRING_MAX];

        ASSERT_OK(pci_bus_id_normalize("00000000:65:00.0", out, sizeof(out)));
        ASSERT_STREQ(out, "0000:65:00.0");
        ASSERT_OK(pci_bus_id_normalize("00000000:AF:00.0", out, sizeof(out)));
        ASSERT_STREQ(out, "0000:af:00.0");
        ASSERT_OK(pci_bus_id_normalize("0000:3B:00.0", out, sizeof(out)));
        ASSERT_STREQ(out, "0000:3b:00.0");
        ASSERT_OK(pci_bus_id_normalize("00010000:01:00.0", out, sizeof(out)));
        ASSERT_STREQ(out, "00010000:01:00.0");
        ASSERT_ERROR(pci_bus_id_normalize("", out, sizeof(out)), EINVAL);
        ASSERT_ERROR(pci_bus_id_normalize("0000:65:00", out, sizeof(out)), EINVAL);
        ASSERT_ERROR(pci_bus_id_normalize("0000:65:00.0/../x", out, sizeof(out)), EINVAL);
        ASSERT_ERROR(pci_bus_id_normalize("0000:6g:00.0", out, sizeof(out)), EINVAL);
        ASSERT_ERROR(pci_bus_id_normalize("0000-65:00.0", out, sizeof(out)), EINVAL);
        ASSERT_ERROR(pci_bus_id_normalize("00000000:65:00.0", out, 12), ENOBUFS);
}

static Gpu make_gpu(unsigned minor, const char *bus) {
        Gpu g = { .minor = minor, .cores = GPU_CORES_TOTAL, .memory_total = 1ULL << 34 };

        ASSERT_OK(gpu_name_from_minor(minor, g.name, sizeof(g.name)));
        snprintf(g.uuid, sizeof(g.uuid), "GPU-%u", minor);
        snprintf(g.pcie_bus_id, sizeof(g.pcie_bus_id), "%s", bus);
        return g;
}

static void test_sort_by_bus_then_minor(void) {
        Gpu gpus[] = {
                make_gpu(0, "0000:af:00.0"),
                make_gpu(1, "0000:0a:00.0"),
                make_gpu(2, "0000:09:00.0"),
                make_gpu(7, "0000:3b:00.0"),
                make_gpu(3, "0000:3b:00.0"), /* same bus: minor decides */
                make_gpu(4, "0001:00:00.0"),
        };
        GpuList l = { .gpus = gpus, .n_gpus = ELEMENTSOF(gpus) };

        gpu_list_sort(&l);
        ASSERT_STREQ(gpus[0].name, "hami-gpu-2");
        ASSERT_STREQ(gpus[1].name, "hami-gpu-1");
        ASSERT_STREQ(gpus[2].name, "hami-gpu-3");
        ASSERT_STREQ(gpus[3].name, "hami-gpu-7");
        ASSERT_STREQ(gpus[4].name, "hami-gpu-0");
        ASSERT_STREQ(gpus[5].name, "hami-gpu-4");

        /* Any input order gives the same result. */
        Gpu reversed[ELEMENTSOF(gpus)];
        for (size_t i = 0; i < ELEMENTSOF(gpus); i++)
                reversed[i] = gpus[ELEMENTSOF(gpus) - 1 - i];
        GpuList r = { .gpus = reversed, .n_gpus = ELEMENTSOF(reversed) };
        gpu_list_sort(&r);
        ASSERT_TRUE(gpu_list_equal(&l, &r));

        gpu_list_sort(&(GpuList) {}); /* empty: nothing to do, no crash */
}

static void test_copy_equal_find(void) {
        Gpu gpus[] = { make_gpu(0, "0000:18:00.0"), make_gpu(1, "0000:1b:00.0") };
        GpuProblem problems[] = { { .index = 2, .what = "nvmlDeviceGetUUID: GPU is lost" } };
        GpuList a = { .gpus = gpus, .n_gpus = 2, .problems = problems, .n_problems = 1 };
        GpuList b = {};

        ASSERT_OK(gpu_list_copy(&a, &b));
        ASSERT_TRUE(b.gpus != a.gpus);
        ASSERT_EQ(b.n_gpus, 2);
        ASSERT_EQ(b.n_problems, 1);
        ASSERT_STREQ(b.problems[0].what, "nvmlDeviceGetUUID: GPU is lost");
        ASSERT_TRUE(gpu_list_equal(&a, &b));

        /* Health is not identity. */
        b.gpus[1].health = GPU_HEALTH_UNHEALTHY;
        snprintf(b.gpus[1].health_reason, sizeof(b.gpus[1].health_reason), "XID 79");
        ASSERT_TRUE(gpu_list_equal(&a, &b));

        /* Bytes after a string's end are not part of it. */
        b.gpus[0].uuid[sizeof(b.gpus[0].uuid) - 1] = 'x';
        ASSERT_TRUE(gpu_list_equal(&a, &b));

        b.gpus[0].memory_total--;
        ASSERT_FALSE(gpu_list_equal(&a, &b));
        b.gpus[0].memory_total++;
        snprintf(b.gpus[0].driver_version, sizeof(b.gpus[0].driver_version), "570.86.15");
        ASSERT_FALSE(gpu_list_equal(&a, &b));
        b.gpus[0].driver_version[0] = '\0';
        ASSERT_TRUE(gpu_list_equal(&a, &b));
        b.n_gpus = 1;
        ASSERT_FALSE(gpu_list_equal(&a, &b));
        b.n_gpus = 2;

        ASSERT_TRUE(gpu_list_find(&b, "hami-gpu-1") == &b.gpus[1]);
        ASSERT_NULL(gpu_list_find(&b, "hami-gpu-2"));
        ASSERT_NULL(gpu_list_find(&b, NULL));

        gpu_list_done(&b);
        ASSERT_NULL(b.gpus);
        ASSERT_EQ(b.n_gpus, 0);

        GpuList empty = {}, copy = {};
        ASSERT_OK(gpu_list_copy(&empty, &copy));
        ASSERT_TRUE(gpu_list_equal(&empty, &copy));
        gpu_list_done(&copy);
        gpu_list_done(NULL);
}

static void test_health_strings(void) {
        ASSERT_STREQ(gpu_health_to_string(GPU_HEALTH_HEALTHY), "healthy");
        ASSERT_STREQ(gpu_health_to_string(GPU_HEALTH_UNHEALTHY), "unhealthy");
        ASSERT_STREQ(gpu_health_to_string(GPU_HEALTH_UNKNOWN), "unknown");
        ASSERT_STREQ(gpu_health_to_string((GpuHealth) 42), "unknown");
}

static void test_nvml_tables(void) {
        ASSERT_STREQ(nvml_brand_to_string(NVML_BRAND_NVIDIA), "Nvidia");
        ASSERT_STREQ(nvml_brand_to_string(NVML_BRAND_TESLA), "Tesla");
        ASSERT_STREQ(nvml_brand_to_string(NVML_BRAND_GEFORCE_RTX), "GeForceRTX");
        ASSERT_STREQ(nvml_brand_to_string(NVML_BRAND_UNKNOWN), "Unknown");
        ASSERT_NULL(nvml_brand_to_string(NVML_BRAND_COUNT));
        ASSERT_STREQ(nvml_architecture_to_string(NVML_DEVICE_ARCH_KEPLER), "Kepler");
        ASSERT_STREQ(nvml_architecture_to_string(NVML_DEVICE_ARCH_AMPERE), "Ampere");
        ASSERT_STREQ(nvml_architecture_to_string(NVML_DEVICE_ARCH_ADA), "Ada Lovelace");
        ASSERT_STREQ(nvml_architecture_to_string(NVML_DEVICE_ARCH_BLACKWELL), "Blackwell");
        ASSERT_NULL(nvml_architecture_to_string(11));
        ASSERT_NULL(nvml_architecture_to_string(0));

        static const unsigned long long skipped[] = { 13, 31, 43, 45, 68, 109 };
        for (size_t i = 0; i < ELEMENTSOF(skipped); i++)
                ASSERT_TRUE(nvml_xid_is_application_error(skipped[i]));
        ASSERT_FALSE(nvml_xid_is_application_error(48));
        ASSERT_FALSE(nvml_xid_is_application_error(79));
        ASSERT_STREQ(nvml_xid_describe(79), "GPU has fallen off the bus");
        ASSERT_STREQ(nvml_xid_describe(12345), "critical error");

        ASSERT_EQ(nvml_return_to_errno(NVML_SUCCESS), 0);
        ASSERT_EQ(nvml_return_to_errno(NVML_ERROR_GPU_IS_LOST), -ENODEV);
        ASSERT_EQ(nvml_return_to_errno(NVML_ERROR_DRIVER_NOT_LOADED), -ENXIO);
        ASSERT_EQ(nvml_return_to_errno(12345), -EIO);

        /* The ABI layouts nvml.h documents. */
        ASSERT_EQ(sizeof(nvmlPciInfo_t), 16 + 5 * 4 + 32);
        ASSERT_EQ(offsetof(nvmlPciInfo_t, busId), 36);
        ASSERT_EQ(sizeof(nvmlMemory_t), 24);
        ASSERT_EQ(offsetof(nvmlEventData_t, eventData), 16);
        ASSERT_EQ(sizeof(nvmlEventData_t), 32);
}

int main(void) {
        TEST(test_version_to_semver);
        TEST(test_cuda_and_cc_semver);
        TEST(test_pci_bus_id_normalize);
        TEST(test_sort_by_bus_then_minor);
        TEST(test_copy_equal_find);
        TEST(test_health_strings);
        TEST(test_nvml_tables);
        return 0;
}
