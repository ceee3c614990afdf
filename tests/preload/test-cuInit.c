/* SPDX-License-Identifier: Apache-2.0 */
/* cuInit: passes flags through (the driver rejects non-zero), and nothing else works
 * before it; cuGetExportTable is passed through untouched. */
#include "preload-test.h"

int main(void) {
        const void *table = NULL, *table2 = NULL;
        CuUuid id = {};
        CuDevicePtr p;
        int n;

        test_fresh_state();
        ASSERT_EQ(cuMemAlloc_v2(&p, 16), VG_CUDA_ERROR_NOT_INITIALIZED);
        ASSERT_EQ(cuInit(1), VG_CUDA_ERROR_INVALID_VALUE);
        ASSERT_CU(cuInit(0));
        ASSERT_CU(cuDeviceGetCount(&n));
        ASSERT_EQ(n, 2);
        ASSERT_EQ(cuMemAlloc_v2(&p, 16), VG_CUDA_ERROR_INVALID_CONTEXT);
        ASSERT_CU(cuGetExportTable(&table, &id));
        ASSERT_TRUE(table != NULL);
        ASSERT_EQ(dlsym(RTLD_DEFAULT, "cuGetExportTable") == dlsym(dlopen("libcuda.so.1", RTLD_NOLOAD | RTLD_NOW),
                                                                     "cuGetExportTable"), 1);
        CuResult (*get)(const void **, const CuUuid *) = NULL;
        ASSERT_CU(cuGetProcAddress_v2("cuGetExportTable", (void **) &get, 3000, 0, NULL));
        ASSERT_CU(get(&table2, &id));
        ASSERT_TRUE(table2 == table);
        return 0;
}
