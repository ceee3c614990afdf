/* SPDX-License-Identifier: Apache-2.0 */
/* cuMemAlloc_v2 / cuMemFree_v2: counted, limited, freed exactly once. */
#include "preload-test.h"

int main(void) {
        uint64_t limit;
        CuDevicePtr p[8], q;

        test_fresh_state();
        test_context(0);
        limit = test_limit();

        ASSERT_EQ(cuMemAlloc_v2(NULL, 4096), VG_CUDA_ERROR_INVALID_VALUE);
        ASSERT_EQ(cuMemAlloc_v2(&q, 0), VG_CUDA_ERROR_INVALID_VALUE);
        ASSERT_EQ(cuMemFree_v2(0xdead000), VG_CUDA_ERROR_INVALID_VALUE);
        for (int i = 0; i < 8; i++)
                ASSERT_CU(cuMemAlloc_v2(&p[i], 8 * MiB));
        /* 64 MiB in use: with a 64 MiB limit nothing more fits; the fake has 16 GiB. */
        ASSERT_EQ(cuMemAlloc_v2(&q, 1), limit == 64 * MiB ? VG_CUDA_ERROR_OUT_OF_MEMORY : VG_CUDA_SUCCESS);
        if (limit == 0)
                ASSERT_CU(cuMemFree_v2(q));
        ASSERT_CU(cuMemFree_v2(p[3]));
        ASSERT_EQ(cuMemFree_v2(p[3]), VG_CUDA_ERROR_INVALID_VALUE); /* double free: rejected, not counted */
        ASSERT_CU(cuMemAlloc_v2(&q, 8 * MiB));
        ASSERT_EQ(cuMemAlloc_v2(&q, 1), limit ? VG_CUDA_ERROR_OUT_OF_MEMORY : VG_CUDA_SUCCESS);
        /* A huge request never wraps around. */
        ASSERT_EQ(cuMemAlloc_v2(&q, SIZE_MAX), VG_CUDA_ERROR_OUT_OF_MEMORY);
        return 0;
}
