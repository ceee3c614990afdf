/* SPDX-License-Identifier: Apache-2.0 */
/* nvmlDeviceGetMemoryInfo(_v2): the limit and the container's usage, as CUDA sees it. */
#include "preload-test.h"

NvmlReturn nvmlInit_v2(void);
NvmlReturn nvmlDeviceGetHandleByIndex_v2(unsigned int index, NvmlDevice *device);

int main(void) {
        NvmlMemoryV2 m2 = { .version = VG_NVML_MEMORY_V2 };
        NvmlMemory m;
        NvmlDevice d0, d1;
        CuDevicePtr p;
        uint64_t limit;

        test_fresh_state();
        test_context(0);
        limit = test_limit();
        ASSERT_EQ(nvmlInit_v2(), VG_NVML_SUCCESS);
        ASSERT_EQ(nvmlDeviceGetHandleByIndex_v2(0, &d0), VG_NVML_SUCCESS);
        ASSERT_EQ(nvmlDeviceGetHandleByIndex_v2(1, &d1), VG_NVML_SUCCESS);
        ASSERT_EQ(nvmlDeviceGetMemoryInfo(d0, NULL), VG_NVML_ERROR_INVALID_ARGUMENT);
        ASSERT_EQ(nvmlDeviceGetMemoryInfo(NULL, &m), VG_NVML_ERROR_INVALID_ARGUMENT);

        ASSERT_CU(cuMemAlloc_v2(&p, 24 * MiB));
        ASSERT_EQ(nvmlDeviceGetMemoryInfo(d0, &m), VG_NVML_SUCCESS);
        ASSERT_EQ_U(m.total, limit ? limit : 16ULL << 30);
        ASSERT_EQ_U(m.used, 24 * MiB);
        ASSERT_EQ_U(m.free, m.total - m.used);
        ASSERT_EQ(nvmlDeviceGetMemoryInfo_v2(d0, &m2), VG_NVML_SUCCESS);
        ASSERT_EQ_U(m2.total, m.total);
        ASSERT_EQ_U(m2.used, 24 * MiB);
        m2.version = 1;
        ASSERT_EQ(nvmlDeviceGetMemoryInfo_v2(d0, &m2), VG_NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
        ASSERT_EQ(nvmlDeviceGetMemoryInfo(d1, &m), VG_NVML_SUCCESS);
        ASSERT_EQ_U(m.total, limit ? 32 * MiB : 16ULL << 30);
        ASSERT_EQ_U(m.used, 0);
        return 0;
}
