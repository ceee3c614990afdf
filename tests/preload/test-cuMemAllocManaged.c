/* SPDX-License-Identifier: Apache-2.0 */
/* cuMemAllocManaged: counted against the device's limit like device memory. */
#include "preload-test.h"

int main(void) {
        uint64_t limit;
        CuDevicePtr p, q;

        test_fresh_state();
        test_context(0);
        limit = test_limit();

        ASSERT_EQ(cuMemAllocManaged(&p, 4096, 0), VG_CUDA_ERROR_INVALID_VALUE);
        ASSERT_CU(cuMemAllocManaged(&p, 60 * MiB, 1));
        ASSERT_EQ(cuMemAllocManaged(&q, 8 * MiB, 1), limit == 64 * MiB ? VG_CUDA_ERROR_OUT_OF_MEMORY : VG_CUDA_SUCCESS);
        ASSERT_CU(cuMemFree_v2(p));
        ASSERT_CU(cuMemAllocManaged(&p, 60 * MiB, 1));
        return 0;
}
