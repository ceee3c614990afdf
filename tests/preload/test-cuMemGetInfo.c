/* SPDX-License-Identifier: Apache-2.0 */
/* cuMemGetInfo_v2 and cuDeviceTotalMem_v2 report the limit and the container's usage. */
#include "preload-test.h"

int main(void) {
        size_t f, t, total;
        CuDevicePtr p;
        uint64_t limit;

        test_fresh_state();
        ASSERT_EQ(cuMemGetInfo_v2(&f, &t), VG_CUDA_ERROR_NOT_INITIALIZED);
        test_context(0);
        limit = test_limit();

        ASSERT_EQ(cuMemGetInfo_v2(NULL, &t), VG_CUDA_ERROR_INVALID_VALUE);
        ASSERT_EQ(cuMemGetInfo_v2(&f, NULL), VG_CUDA_ERROR_INVALID_VALUE);
        ASSERT_EQ(cuDeviceTotalMem_v2(NULL, 0), VG_CUDA_ERROR_INVALID_VALUE);
        ASSERT_EQ(cuDeviceTotalMem_v2(&total, 9), VG_CUDA_ERROR_INVALID_DEVICE);
        ASSERT_CU(cuDeviceTotalMem_v2(&total, 0));
        ASSERT_EQ_U(total, limit ? limit : 16ULL << 30);
        ASSERT_CU(cuMemGetInfo_v2(&f, &t));
        ASSERT_EQ_U(t, total);
        ASSERT_EQ_U(f, total);
        ASSERT_CU(cuMemAlloc_v2(&p, 40 * MiB));
        ASSERT_CU(cuMemGetInfo_v2(&f, &t));
        ASSERT_EQ_U(f, total - 40 * MiB);
        if (limit) {
                /* All of it in use reads as 0 free, never as a wrapped-around number. */
                ASSERT_CU(cuMemAlloc_v2(&p, 24 * MiB));
                ASSERT_CU(cuMemGetInfo_v2(&f, &t));
                ASSERT_EQ_U(f, 0);
        }
        /* Device 1: its own limit. */
        ASSERT_CU(cuDeviceTotalMem_v2(&total, 1));
        ASSERT_EQ_U(total, limit ? 32 * MiB : 16ULL << 30);
        return 0;
}
