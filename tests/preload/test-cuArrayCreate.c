/* SPDX-License-Identifier: Apache-2.0 */
/* cuArrayCreate_v2, cuArray3DCreate_v2, cuMipmappedArrayCreate and their destroys. */
#include "preload-test.h"

int main(void) {
        CuArrayDescriptor d2 = { .Width = 4096, .Height = 4096, .Format = VG_CU_AD_FORMAT_FLOAT, .NumChannels = 1 };
        CuArray3DDescriptor d3 = { .Width = 1024, .Height = 1024, .Depth = 16, .Format = VG_CU_AD_FORMAT_UNSIGNED_INT8,
                                   .NumChannels = 2 };
        CuArray3DDescriptor dm = { .Width = 4096, .Height = 2048, .Format = VG_CU_AD_FORMAT_HALF, .NumChannels = 1 };
        CuArray a, b, c;
        CuMipmappedArray m;
        uint64_t limit;

        test_fresh_state();
        test_context(0);
        limit = test_limit();

        /* The driver rejects it (3 channels), and the reservation is rolled back. */
        CuArrayDescriptor bad = { .Width = 1024, .Height = 1024, .Format = VG_CU_AD_FORMAT_FLOAT, .NumChannels = 3 };
        ASSERT_EQ(cuArrayCreate_v2(&a, &bad), VG_CUDA_ERROR_INVALID_VALUE);
        ASSERT_CU(cuArrayCreate_v2(&a, &d2));     /* 64 MiB */
        ASSERT_EQ(cuArray3DCreate_v2(&b, &d3), limit == 64 * MiB ? VG_CUDA_ERROR_OUT_OF_MEMORY : VG_CUDA_SUCCESS);
        if (!limit)
                ASSERT_CU(cuArrayDestroy(b));
        ASSERT_CU(cuArrayDestroy(a));
        ASSERT_EQ(cuArrayDestroy(a), VG_CUDA_ERROR_INVALID_HANDLE);
        ASSERT_CU(cuArray3DCreate_v2(&b, &d3));   /* 32 MiB */
        /* 16 MiB + 4 + 1 + ... levels: fits in the 32 left, a second one does not. */
        ASSERT_CU(cuMipmappedArrayCreate(&m, &dm, 3));
        ASSERT_EQ(cuArray3DCreate_v2(&c, &d3), limit == 64 * MiB ? VG_CUDA_ERROR_OUT_OF_MEMORY : VG_CUDA_SUCCESS);
        ASSERT_CU(cuMipmappedArrayDestroy(m));
        ASSERT_CU(cuArrayDestroy(b));
        return 0;
}
