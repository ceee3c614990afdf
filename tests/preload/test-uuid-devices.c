/* SPDX-License-Identifier: Apache-2.0 */
/* The preload run names the fake devices the other way round: CUDA_DEVICE_UUID_0 is fake
 * device 1 (GPU-...0001, limit 16 MiB) and CUDA_DEVICE_UUID_1 fake device 0 (GPU-...0000,
 * CUDA_DEVICE_MEMORY_LIMIT_1=32m): each process device gets the limits of the index its
 * UUID names, in CUDA and in NVML, not of its position. This is how a container that gets
 * only some of a claim's requests finds its GPUs, whatever ordinals it sees them under
 * (issue 14 item 4). */
#include "preload-test.h"

NvmlReturn nvmlInit_v2(void);
NvmlReturn nvmlDeviceGetHandleByIndex_v2(unsigned int index, NvmlDevice *device);

int main(void) {
        CuDevicePtr p;
        NvmlDevice d1;
        NvmlMemory m;

        test_fresh_state();
        test_context(1);
        ASSERT_CU(cuMemAlloc_v2(&p, 16 * MiB));
        ASSERT_EQ(cuMemAlloc_v2(&p, 1), preloaded() ? VG_CUDA_ERROR_OUT_OF_MEMORY : VG_CUDA_SUCCESS);

        ASSERT_EQ(nvmlInit_v2(), VG_NVML_SUCCESS);
        ASSERT_EQ(nvmlDeviceGetHandleByIndex_v2(1, &d1), VG_NVML_SUCCESS);
        ASSERT_EQ(nvmlDeviceGetMemoryInfo(d1, &m), VG_NVML_SUCCESS);
        ASSERT_EQ_U(m.total, preloaded() ? 16 * MiB : 16ULL << 30);

        test_context(0);
        ASSERT_CU(cuMemAlloc_v2(&p, 32 * MiB));
        ASSERT_EQ(cuMemAlloc_v2(&p, 1), preloaded() ? VG_CUDA_ERROR_OUT_OF_MEMORY : VG_CUDA_SUCCESS);
        return 0;
}
