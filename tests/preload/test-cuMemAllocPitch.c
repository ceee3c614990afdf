/* SPDX-License-Identifier: Apache-2.0 */
/* cuMemAllocPitch_v2: the padded size (pitch * height) is what counts. */
#include "preload-test.h"

int main(void) {
        uint64_t limit;
        CuDevicePtr p, q;
        size_t pitch;

        test_fresh_state();
        test_context(0);
        limit = test_limit();

        ASSERT_EQ(cuMemAllocPitch_v2(&p, &pitch, 100, 10, 3), VG_CUDA_ERROR_INVALID_VALUE);
        ASSERT_EQ(cuMemAllocPitch_v2(&p, NULL, 100, 10, 4), VG_CUDA_ERROR_INVALID_VALUE);
        /* 1000 bytes wide pads to 1024: 1024 * 32768 rows = 32 MiB, not 31.25. */
        ASSERT_CU(cuMemAllocPitch_v2(&p, &pitch, 1000, 32768, 4));
        ASSERT_EQ(pitch, 1024);
        ASSERT_CU(cuMemAllocPitch_v2(&q, &pitch, 1000, 32768, 4));
        ASSERT_EQ(cuMemAlloc_v2(&q, 1), limit == 64 * MiB ? VG_CUDA_ERROR_OUT_OF_MEMORY : VG_CUDA_SUCCESS);
        ASSERT_CU(cuMemFree_v2(p));
        ASSERT_CU(cuMemAlloc_v2(&q, 32 * MiB));
        return 0;
}
