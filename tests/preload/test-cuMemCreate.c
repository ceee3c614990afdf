/* SPDX-License-Identifier: Apache-2.0 */
/* cuMemCreate / cuMemRelease: the device comes from the allocation's location. */
#include "preload-test.h"

int main(void) {
        CuMemAllocationProp prop = { .type = VG_CU_MEM_ALLOCATION_TYPE_PINNED,
                                     .location = { .type = VG_CU_MEM_LOCATION_TYPE_DEVICE, .id = 0 } };
        CuMemHandle h, k;
        uint64_t limit;

        test_fresh_state();
        test_context(0);
        limit = test_limit();

        ASSERT_EQ(cuMemCreate(&h, 3 * MiB, &prop, 0), VG_CUDA_ERROR_INVALID_VALUE); /* granularity */
        ASSERT_EQ(cuMemCreate(&h, 2 * MiB, NULL, 0), VG_CUDA_ERROR_INVALID_VALUE);
        ASSERT_CU(cuMemCreate(&h, 64 * MiB, &prop, 0));
        ASSERT_EQ(cuMemCreate(&k, 2 * MiB, &prop, 0), limit == 64 * MiB ? VG_CUDA_ERROR_OUT_OF_MEMORY : VG_CUDA_SUCCESS);
        /* Device 1 has its own limit (CUDA_DEVICE_MEMORY_LIMIT_1 in the preload run). */
        prop.location.id = 1;
        ASSERT_CU(cuMemCreate(&k, 2 * MiB, &prop, 0));
        ASSERT_CU(cuMemRelease(k));
        ASSERT_CU(cuMemRelease(h));
        ASSERT_EQ(cuMemRelease(h), VG_CUDA_ERROR_INVALID_HANDLE);
        prop.location.id = 0;
        ASSERT_CU(cuMemCreate(&h, 64 * MiB, &prop, 0));
        return 0;
}
