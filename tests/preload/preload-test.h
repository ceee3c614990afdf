/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Helpers for the preload tests. Each program runs twice (tests/preload/meson.build):
 * plain against the fake driver, and with LD_PRELOAD=libvgpu.so and the limits in
 * its environment; preloaded() tells which, and the assertions follow.
 */

#include <dlfcn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cuda-abi.h"
#include "tests.h"

CuResult cuInit(unsigned int flags);
CuResult cuDeviceGet(CuDevice *dev, int ordinal);
CuResult cuDeviceGetCount(int *count);
CuResult cuCtxCreate_v2(CuContext *pctx, unsigned int flags, CuDevice dev);
CuResult cuCtxDestroy_v2(CuContext ctx);
CuResult cuCtxSetCurrent(CuContext ctx);
CuResult cuCtxSynchronize(void);
CuResult cuDevicePrimaryCtxRetain(CuContext *pctx, CuDevice dev);
CuResult cuModuleLoadData(CuModule *module, const void *image);
CuResult cuModuleGetFunction(CuFunction *f, CuModule m, const char *name);
CuResult cuDeviceGetDefaultMemPool(CuMemoryPool *pool, CuDevice dev);
CuResult cuGraphCreate(CuGraph *g, unsigned int flags);
CuResult cuGraphInstantiateWithFlags(CuGraphExec *e, CuGraph g, unsigned long long flags);
CuResult cuGetExportTable(const void **table, const CuUuid *id);

#include "hooks.h"

#define MiB (1ULL << 20)

#define ASSERT_CU(expr) ASSERT_EQ((expr), VG_CUDA_SUCCESS)

static inline bool preloaded(void) {
        Dl_info info;
        void *p = dlsym(RTLD_DEFAULT, "cuMemAlloc_v2");
        return p && dladdr(p, &info) && info.dli_fname && strstr(info.dli_fname, "libvgpu");
}

/* The limit the preload enforces on device 0 in this run (0: none / not preloaded). */
static inline uint64_t test_limit(void) {
        const char *v = getenv("CUDA_DEVICE_MEMORY_LIMIT");
        return preloaded() && v ? strtoull(v, NULL, 10) * MiB : 0;
}

/* Fresh state files for this run (the parent process only). */
static inline void test_fresh_state(void) {
        const char *s = getenv("FAKE_CUDA_STATE"), *r = getenv("CUDA_DEVICE_MEMORY_SHARED_CACHE");
        if (s)
                unlink(s);
        if (r)
                unlink(r);
}

static inline CuContext test_context(int ordinal) {
        CuContext ctx;
        CuDevice dev;

        ASSERT_CU(cuInit(0));
        ASSERT_CU(cuDeviceGet(&dev, ordinal));
        ASSERT_CU(cuCtxCreate_v2(&ctx, 0, dev));
        return ctx;
}

static inline CuFunction test_kernel(void) {
        static const char image[] = "fake cubin";
        CuModule m;
        CuFunction f;

        ASSERT_CU(cuModuleLoadData(&m, image));
        ASSERT_CU(cuModuleGetFunction(&f, m, "kernel"));
        return f;
}

/* Free memory as the process is told. */
static inline uint64_t test_free(void) {
        size_t f = 0, t = 0;
        ASSERT_CU(cuMemGetInfo_v2(&f, &t));
        return f;
}
