/* SPDX-License-Identifier: Apache-2.0 */
/* With CUDA_VISIBLE_DEVICES=1, the process's device 0 is the container's device 1: its
 * limit is CUDA_DEVICE_MEMORY_LIMIT_1 (32 MiB in the preload run). The fake driver does
 * not renumber, so ordinal 0 here still reaches fake device 0; only the limit moves. */
#include "preload-test.h"

int main(void) {
        size_t total;
        CuDevicePtr p;

        test_fresh_state();
        test_context(0);
        ASSERT_CU(cuDeviceTotalMem_v2(&total, 0));
        ASSERT_EQ_U(total, preloaded() ? 32 * MiB : 16ULL << 30);
        ASSERT_CU(cuMemAlloc_v2(&p, 32 * MiB));
        ASSERT_EQ(cuMemAlloc_v2(&p, 1), preloaded() ? VG_CUDA_ERROR_OUT_OF_MEMORY : VG_CUDA_SUCCESS);
        return 0;
}
