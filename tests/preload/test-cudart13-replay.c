/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Replay the 440 cuGetProcAddress_v2 requests CUDA 13.0's runtime makes at start-up
 * (tests/data/cudart13/getproc-requests.txt) the way it makes them: dlopen
 * libcuda.so.1, dlsym only cuGetProcAddress_v2, then everything through it. Every
 * answer must be the variant the driver itself gives (same symbol, same status), taken
 * from libvgpu exactly when libvgpu intercepts that symbol. Then allocate through the
 * pointers obtained: counted and limited.
 */
#include <stdio.h>

#include "preload-test.h"

typedef CuResult (*GetProc)(const char *, void **, int, CuUint64, CuProcStatus *);

static const char *symbol_of(void *p, bool *ret_ours) {
        Dl_info info;

        ASSERT_TRUE(p && dladdr(p, &info) && info.dli_sname);
        *ret_ours = strstr(info.dli_fname, "libvgpu") != NULL;
        return info.dli_sname;
}

typedef struct Resolved {
        CuResult (*init)(unsigned);
        CuResult (*device_get)(CuDevice *, int);
        CuResult (*ctx_create)(CuContext *, unsigned, CuDevice);
        CuResult (*alloc)(CuDevicePtr *, size_t);
        CuResult (*alloc_async_ptsz)(CuDevicePtr *, size_t, CuStream);
        CuResult (*free_)(CuDevicePtr);
        CuResult (*get_info)(size_t *, size_t *);
} Resolved;

static void keep(Resolved *r, const char *name, unsigned long long flags, void *p) {
        if (strcmp(name, "cuInit") == 0)
                r->init = p;
        else if (strcmp(name, "cuDeviceGet") == 0)
                r->device_get = p;
        else if (strcmp(name, "cuCtxCreate") == 0)
                r->ctx_create = p;
        else if (strcmp(name, "cuMemAlloc") == 0)
                r->alloc = p;
        else if (strcmp(name, "cuMemAllocAsync") == 0 && flags == 2)
                r->alloc_async_ptsz = p;
        else if (strcmp(name, "cuMemFree") == 0)
                r->free_ = p;
        else if (strcmp(name, "cuMemGetInfo") == 0)
                r->get_info = p;
}

int main(void) {
        const char *data = getenv("HAMI_DRA_TEST_DATA");
        unsigned n = 0, found = 0, intercepted = 0;
        char path[4096], line[256];
        GetProc getproc, driver;
        Resolved rs = {};
        bool pre;
        FILE *f;
        void *h;

        test_fresh_state();
        ASSERT_TRUE(data);
        snprintf(path, sizeof(path), "%s/cudart13/getproc-requests.txt", data);
        f = fopen(path, "re");
        ASSERT_TRUE(f);

        h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
        ASSERT_TRUE(h);
        getproc = (GetProc) dlsym(h, "cuGetProcAddress_v2");
        driver = (GetProc) dlsym(h, "fakecuda_get_proc_address");
        ASSERT_TRUE(getproc && driver);
        pre = dlsym(RTLD_DEFAULT, "cuGetProcAddress_v2") != NULL;

        while (fgets(line, sizeof(line), f)) {
                char name[200] = "";
                unsigned long long flags;
                CuProcStatus st = 77, st_driver = 77;
                void *p = (void *) 1, *q = NULL, *dp = NULL;
                CuResult r, r2, r_driver;
                bool ours, drivers;
                int version;

                if (line[0] == ' ')
                        ASSERT_EQ(sscanf(line, " %d %llu", &version, &flags), 2);
                else
                        ASSERT_EQ(sscanf(line, "%199s %d %llu", name, &version, &flags), 3);
                n++;
                r = getproc(name, &p, version, flags, NULL); /* the runtime passes NULL */
                r2 = getproc(name, &q, version, flags, &st);
                r_driver = driver(name, &dp, version, flags, &st_driver);
                ASSERT_EQ(r, r2);
                ASSERT_EQ(r, r_driver);
                ASSERT_EQ(st, st_driver);
                ASSERT_TRUE(p == q);
                if (r != VG_CUDA_SUCCESS) {
                        ASSERT_TRUE(p == NULL);
                        continue;
                }
                found++;
                ASSERT_EQ(st, VG_CU_GET_PROC_ADDRESS_SUCCESS);
                ASSERT_STREQ(symbol_of(p, &ours), symbol_of(dp, &drivers));
                ASSERT_FALSE(drivers);
                /* This program does not link libcuda: only libvgpu defines cu* globally. */
                ASSERT_EQ(ours, dlsym(RTLD_DEFAULT, symbol_of(dp, &drivers)) != NULL);
                if (ours)
                        intercepted++;
                keep(&rs, name, flags, p);
        }
        fclose(f);
        ASSERT_EQ(n, 440);
        fprintf(stderr, "%u requests, %u resolved, %u to libvgpu\n", n, found, intercepted);
        if (pre)
                ASSERT_TRUE(intercepted >= 20);

        /* Then use them as the runtime would. */
        CuDevice dev;
        CuContext ctx;
        CuDevicePtr a, b;
        size_t fr, tot;
        ASSERT_TRUE(rs.init && rs.device_get && rs.ctx_create && rs.alloc && rs.alloc_async_ptsz && rs.free_ &&
                    rs.get_info);
        ASSERT_CU(rs.init(0));
        ASSERT_CU(rs.device_get(&dev, 0));
        ASSERT_CU(rs.ctx_create(&ctx, 0, dev));
        ASSERT_CU(rs.alloc(&a, 40 * MiB));
        ASSERT_CU(rs.alloc_async_ptsz(&b, 24 * MiB, NULL));
        ASSERT_EQ(rs.alloc(&b, 1), pre ? VG_CUDA_ERROR_OUT_OF_MEMORY : VG_CUDA_SUCCESS);
        ASSERT_CU(rs.get_info(&fr, &tot));
        ASSERT_EQ_U(tot, pre ? 64 * MiB : 16ULL << 30);
        ASSERT_CU(rs.free_(a));
        ASSERT_CU(rs.get_info(&fr, &tot));
        ASSERT_EQ_U(fr, pre ? 40 * MiB : tot - 24 * MiB - 1);
        return 0;
}
