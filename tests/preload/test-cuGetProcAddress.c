/* SPDX-License-Identifier: Apache-2.0 */
/* cuGetProcAddress(_v2): the variant follows (name, version, flags); the status is set;
 * what the driver does not have stays not found; pointers obtained this way count. */
#include "preload-test.h"

static const char *name_of(void *p) {
        Dl_info info;
        return p && dladdr(p, &info) && info.dli_sname ? info.dli_sname : "?";
}

static const char *lib_of(void *p) {
        Dl_info info;
        return p && dladdr(p, &info) && info.dli_fname ? (strstr(info.dli_fname, "libvgpu") ? "vgpu" : "driver") : "?";
}

int main(void) {
        CuProcStatus st = 99;
        const char *expect_lib;
        void *p = NULL;

        test_fresh_state();
        test_context(0);
        expect_lib = preloaded() ? "vgpu" : "driver";

        ASSERT_CU(cuGetProcAddress_v2("cuMemAlloc", &p, 3020, 0, &st));
        ASSERT_EQ(st, VG_CU_GET_PROC_ADDRESS_SUCCESS);
        ASSERT_STREQ(name_of(p), "cuMemAlloc_v2");
        ASSERT_STREQ(lib_of(p), expect_lib);

        ASSERT_CU(cuGetProcAddress_v2("cuLaunchKernel", &p, 7000, 2, &st));
        ASSERT_STREQ(name_of(p), "cuLaunchKernel_ptsz");
        ASSERT_STREQ(lib_of(p), expect_lib);
        ASSERT_CU(cuGetProcAddress_v2("cuLaunchKernel", &p, 12000, 0, &st));
        ASSERT_STREQ(name_of(p), "cuLaunchKernel");
        ASSERT_CU(cuGetProcAddress_v2("cuLaunchKernel", &p, 12000, 1, &st));
        ASSERT_STREQ(name_of(p), "cuLaunchKernel");
        ASSERT_CU(cuGetProcAddress_v2("cuMemAllocAsync", &p, 13000, 2, &st));
        ASSERT_STREQ(name_of(p), "cuMemAllocAsync_ptsz");
        /* Stream-less functions ignore the per-thread flag. */
        ASSERT_CU(cuGetProcAddress_v2("cuMemFree", &p, 3020, 2, &st));
        ASSERT_STREQ(name_of(p), "cuMemFree_v2");
        ASSERT_STREQ(lib_of(p), expect_lib);

        /* Too old a version: not found, with the status saying why. */
        p = (void *) 1;
        ASSERT_EQ(cuGetProcAddress_v2("cuMemAllocAsync", &p, 11000, 0, &st), VG_CUDA_ERROR_NOT_FOUND);
        ASSERT_EQ(st, VG_CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);
        ASSERT_TRUE(p == NULL);
        ASSERT_EQ(cuGetProcAddress_v2("cuNoSuchThing", &p, 13000, 0, &st), VG_CUDA_ERROR_NOT_FOUND);
        ASSERT_EQ(st, VG_CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
        ASSERT_EQ(cuGetProcAddress_v2("", &p, 0, 0, NULL), VG_CUDA_ERROR_NOT_FOUND);
        ASSERT_EQ(cuGetProcAddress_v2(NULL, &p, 13000, 0, &st), VG_CUDA_ERROR_INVALID_VALUE);
        ASSERT_EQ(cuGetProcAddress_v2("cuInit", NULL, 13000, 0, &st), VG_CUDA_ERROR_INVALID_VALUE);

        /* Not ours: the driver's own pointer. */
        ASSERT_CU(cuGetProcAddress_v2("cuCtxGetDevice", &p, 13000, 0, &st));
        ASSERT_STREQ(name_of(p), "cuCtxGetDevice_v2");
        ASSERT_STREQ(lib_of(p), "driver");

        /* cuGetProcAddress itself, both ABIs, and the old entry point. */
        ASSERT_CU(cuGetProcAddress_v2("cuGetProcAddress", &p, 12000, 0, &st));
        ASSERT_STREQ(name_of(p), "cuGetProcAddress_v2");
        ASSERT_STREQ(lib_of(p), expect_lib);
        ASSERT_CU(cuGetProcAddress("cuGetProcAddress", &p, 11030, 0));
        ASSERT_STREQ(name_of(p), "cuGetProcAddress");
        ASSERT_CU(cuGetProcAddress("cuMemAlloc", &p, 3020, 0));
        ASSERT_STREQ(lib_of(p), expect_lib);

        /* And what comes back counts. */
        CuResult (*alloc)(CuDevicePtr *, size_t) = NULL;
        CuDevicePtr d;
        ASSERT_CU(cuGetProcAddress_v2("cuMemAlloc", (void **) &alloc, 3020, 0, NULL));
        ASSERT_CU(alloc(&d, 64 * MiB));
        ASSERT_EQ(alloc(&d, 1), test_limit() == 64 * MiB ? VG_CUDA_ERROR_OUT_OF_MEMORY : VG_CUDA_SUCCESS);
        return 0;
}
