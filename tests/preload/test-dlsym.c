/* SPDX-License-Identifier: Apache-2.0 */
/* dlsym on a libcuda handle returns the hook (which counts); other symbols, RTLD_NEXT
 * and other libraries are untouched. The program does not link libcuda: it opens it
 * like the CUDA runtime does. */
#include <gnu/lib-names.h>

#include "preload-test.h"

int main(void) {
        CuResult (*init)(unsigned), (*get)(CuDevice *, int), (*create)(CuContext *, unsigned, CuDevice);
        CuResult (*alloc)(CuDevicePtr *, size_t);
        void *h, *libc, *p;
        Dl_info info;
        CuContext ctx;
        CuDevice dev;
        CuDevicePtr d;
        bool pre;

        test_fresh_state();
        h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
        ASSERT_TRUE(h);
        pre = dlsym(RTLD_DEFAULT, "cuMemAlloc_v2") != NULL; /* only the preload defines it globally */

        alloc = (CuResult (*)(CuDevicePtr *, size_t)) dlsym(h, "cuMemAlloc_v2");
        ASSERT_TRUE(alloc && dladdr((void *) alloc, &info));
        ASSERT_EQ(strstr(info.dli_fname, "libvgpu") != NULL, pre);
        /* Not intercepted: the driver's own. */
        p = dlsym(h, "cuModuleLoadData");
        ASSERT_TRUE(p && dladdr(p, &info));
        ASSERT_TRUE(strstr(info.dli_fname, "libcuda") != NULL);
        ASSERT_TRUE(dlsym(h, "cuNoSuchSymbol") == NULL);

        /* RTLD_NEXT from here still means "after this program". */
        p = dlsym(RTLD_NEXT, "getpid");
        ASSERT_TRUE(p && dladdr(p, &info));
        ASSERT_TRUE(strstr(info.dli_fname, "libc") != NULL);
        libc = dlopen(LIBC_SO, RTLD_NOW | RTLD_NOLOAD);
        ASSERT_TRUE(libc && dlsym(libc, "getpid") == p);

        init = (CuResult (*)(unsigned)) dlsym(h, "cuInit");
        get = (CuResult (*)(CuDevice *, int)) dlsym(h, "cuDeviceGet");
        create = (CuResult (*)(CuContext *, unsigned, CuDevice)) dlsym(h, "cuCtxCreate_v2");
        ASSERT_CU(init(0));
        ASSERT_CU(get(&dev, 0));
        ASSERT_CU(create(&ctx, 0, dev));
        ASSERT_CU(alloc(&d, 64 * MiB));
        ASSERT_EQ(alloc(&d, 1), pre ? VG_CUDA_ERROR_OUT_OF_MEMORY : VG_CUDA_SUCCESS);
        return 0;
}
