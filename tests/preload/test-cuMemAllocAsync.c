/* SPDX-License-Identifier: Apache-2.0 */
/* cuMemAllocAsync, cuMemAllocFromPoolAsync, cuMemFreeAsync, legacy and _ptsz. */
#include "preload-test.h"

int main(void) {
        uint64_t limit;
        CuDevicePtr p, q, r;
        CuMemoryPool pool;

        test_fresh_state();
        test_context(0);
        limit = test_limit();
        ASSERT_CU(cuDeviceGetDefaultMemPool(&pool, 0));

        ASSERT_CU(cuMemAllocAsync(&p, 30 * MiB, NULL));
        ASSERT_CU(cuMemAllocFromPoolAsync_ptsz(&q, 30 * MiB, pool, NULL));
        ASSERT_EQ(cuMemAllocAsync_ptsz(&r, 8 * MiB, NULL), limit == 64 * MiB ? VG_CUDA_ERROR_OUT_OF_MEMORY : VG_CUDA_SUCCESS);
        ASSERT_EQ(cuMemAllocFromPoolAsync(&r, 8 * MiB, pool, NULL),
                  limit == 64 * MiB ? VG_CUDA_ERROR_OUT_OF_MEMORY : VG_CUDA_SUCCESS);
        ASSERT_EQ(cuMemAllocFromPoolAsync(&r, 1, (CuMemoryPool) &limit, NULL), VG_CUDA_ERROR_INVALID_VALUE);
        ASSERT_CU(cuMemFreeAsync(p, NULL));
        ASSERT_CU(cuMemFreeAsync_ptsz(q, NULL));
        ASSERT_EQ(cuMemFreeAsync(q, NULL), VG_CUDA_ERROR_INVALID_VALUE);
        ASSERT_CU(cuMemAllocAsync(&p, 60 * MiB, NULL));
        return 0;
}
