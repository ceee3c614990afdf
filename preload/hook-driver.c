/* SPDX-License-Identifier: Apache-2.0 */

/* cuInit, cuGetProcAddress(_v2) and the launch hooks. */

#include "vgpu.h"

#define _public_ __attribute__((visibility("default")))

_public_ CuResult cuInit(unsigned int flags) {
        if (!vgpu_init() || !vgpu_real.cuInit)
                return VG_CUDA_ERROR_NOT_INITIALIZED;
        return vgpu_real.cuInit(flags);
}

/* The driver decides whether the symbol exists at that version (and sets the status);
 * where it does and the (name, version, flags) triple is one of ours, the answer is our
 * hook for exactly that variant. */
static void substitute(CuResult r, const char *symbol, void **pfn, int cuda_version, CuUint64 flags) {
        void *hook;

        if (r != VG_CUDA_SUCCESS || !pfn || !*pfn)
                return;
        hook = vgpu_hook_by_request(symbol, cuda_version, flags);
        if (hook)
                *pfn = hook;
}

_public_ CuResult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, CuUint64 flags,
                                      CuProcStatus *symbolStatus) {
        CuResult r;

        if (!vgpu_init() || !vgpu_real.cuGetProcAddress_v2)
                return VG_CUDA_ERROR_NOT_FOUND;
        r = vgpu_real.cuGetProcAddress_v2(symbol, pfn, cudaVersion, flags, symbolStatus);
        substitute(r, symbol, pfn, cudaVersion, flags);
        return r;
}

_public_ CuResult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, CuUint64 flags) {
        CuResult r;

        if (!vgpu_init() || !vgpu_real.cuGetProcAddress)
                return VG_CUDA_ERROR_NOT_FOUND;
        r = vgpu_real.cuGetProcAddress(symbol, pfn, cudaVersion, flags);
        substitute(r, symbol, pfn, cudaVersion, flags);
        return r;
}

/* Launches: the fast path (no SM limit anywhere) is one flag test. */
#define LAUNCH_HOOK(sym, params, ...)                                                            \
        _public_ CuResult sym params {                                                           \
                if (!vgpu_init() || !vgpu_real.sym)                                              \
                        return VG_CUDA_ERROR_NOT_INITIALIZED;                                    \
                if (vgpu_config.sm_limit_any)                                                    \
                        vgpu_sm_throttle_current();                                              \
                return vgpu_real.sym(__VA_ARGS__);                                               \
        }

#define LAUNCH_ARGS f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes, hStream
LAUNCH_HOOK(cuLaunchKernel, VGPU_LAUNCH_PARAMS, LAUNCH_ARGS, kernelParams, extra)
LAUNCH_HOOK(cuLaunchKernel_ptsz, VGPU_LAUNCH_PARAMS, LAUNCH_ARGS, kernelParams, extra)
LAUNCH_HOOK(cuLaunchCooperativeKernel, VGPU_COOP_PARAMS, LAUNCH_ARGS, kernelParams)
LAUNCH_HOOK(cuLaunchCooperativeKernel_ptsz, VGPU_COOP_PARAMS, LAUNCH_ARGS, kernelParams)
LAUNCH_HOOK(cuLaunchKernelEx, (const CuLaunchConfig *config, CuFunction f, void **kernelParams, void **extra),
            config, f, kernelParams, extra)
LAUNCH_HOOK(cuLaunchKernelEx_ptsz, (const CuLaunchConfig *config, CuFunction f, void **kernelParams, void **extra),
            config, f, kernelParams, extra)
LAUNCH_HOOK(cuGraphLaunch, (CuGraphExec hGraphExec, CuStream hStream), hGraphExec, hStream)
LAUNCH_HOOK(cuGraphLaunch_ptsz, (CuGraphExec hGraphExec, CuStream hStream), hGraphExec, hStream)
