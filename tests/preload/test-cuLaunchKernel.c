/* SPDX-License-Identifier: Apache-2.0 */
/* cuLaunchKernel, cuLaunchKernelEx, cuLaunchCooperativeKernel, cuGraphLaunch (and _ptsz):
 * every launch path reaches the driver, and bad launches are still rejected. */
#include "preload-test.h"

int main(void) {
        CuLaunchConfig cfg = { 1, 1, 1, 32, 1, 1, 0, NULL, NULL, 0 };
        CuFunction f;
        CuGraph g;
        CuGraphExec e;

        test_fresh_state();
        test_context(0);
        f = test_kernel();
        ASSERT_CU(cuGraphCreate(&g, 0));
        ASSERT_CU(cuGraphInstantiateWithFlags(&e, g, 0));

        for (int i = 0; i < 5; i++) {
                ASSERT_CU(cuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL));
                ASSERT_CU(cuLaunchKernel_ptsz(f, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL));
                ASSERT_CU(cuLaunchKernelEx(&cfg, f, NULL, NULL));
                ASSERT_CU(cuLaunchKernelEx_ptsz(&cfg, f, NULL, NULL));
                ASSERT_CU(cuLaunchCooperativeKernel(f, 1, 1, 1, 32, 1, 1, 0, NULL, NULL));
                ASSERT_CU(cuLaunchCooperativeKernel_ptsz(f, 1, 1, 1, 32, 1, 1, 0, NULL, NULL));
                ASSERT_CU(cuGraphLaunch(e, NULL));
                ASSERT_CU(cuGraphLaunch_ptsz(e, NULL));
        }
        ASSERT_EQ(cuLaunchKernel(f, 0, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL), VG_CUDA_ERROR_INVALID_VALUE);
        ASSERT_EQ(cuLaunchKernel(NULL, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL), VG_CUDA_ERROR_INVALID_VALUE);
        ASSERT_EQ(cuLaunchKernelEx(NULL, f, NULL, NULL), VG_CUDA_ERROR_INVALID_VALUE);
        ASSERT_EQ(cuGraphLaunch((CuGraphExec) g, NULL), VG_CUDA_ERROR_INVALID_VALUE);
        ASSERT_CU(cuCtxSynchronize());
        return 0;
}
