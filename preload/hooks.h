/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The one table of symbols. Everything else is generated from it: the prototypes of
 * the hooks, the table of real entry points resolved from the driver, the
 * cuGetProcAddress map (name, version, stream variant) and the dlsym map. The version
 * script exports cu* and nvml* (and dlsym), which are exactly the hooks below.
 *
 * VGPU_CUDA_HOOKS(X): X(symbol, name, version, stream, params, args)
 *   symbol   the driver's exported symbol we define (and resolve the real one of)
 *   name     what cuGetProcAddress is asked for
 *   version  the cudaVersion at which that symbol is the answer
 *   stream   NONE (no stream semantics), LEGACY or PTDS (the _ptsz/_ptds variant)
 * VGPU_CUDA_REAL(X): the driver entry points we call but do not intercept.
 * VGPU_NVML_HOOKS / VGPU_NVML_REAL: the same for NVML (all return NvmlReturn).
 */

#include "cuda-abi.h"

#define VGPU_LAUNCH_PARAMS                                                                       \
        (CuFunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,     \
         unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,                \
         unsigned int sharedMemBytes, CuStream hStream, void **kernelParams, void **extra)
#define VGPU_COOP_PARAMS                                                                         \
        (CuFunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,     \
         unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,                \
         unsigned int sharedMemBytes, CuStream hStream, void **kernelParams)

#define VGPU_CUDA_HOOKS(X)                                                                       \
        X(cuInit, "cuInit", 2000, NONE, (unsigned int flags))                                    \
        X(cuCtxCreate_v2, "cuCtxCreate", 3020, NONE,                                             \
          (CuContext *pctx, unsigned int flags, CuDevice dev))                                   \
        X(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", 7000, NONE,                      \
          (CuContext *pctx, CuDevice dev))                                                       \
        X(cuGetProcAddress, "cuGetProcAddress", 11030, NONE,                                     \
          (const char *symbol, void **pfn, int cudaVersion, CuUint64 flags))                     \
        X(cuGetProcAddress_v2, "cuGetProcAddress", 12000, NONE,                                  \
          (const char *symbol, void **pfn, int cudaVersion, CuUint64 flags,                      \
           CuProcStatus *symbolStatus))                                                          \
        X(cuMemAlloc_v2, "cuMemAlloc", 3020, NONE, (CuDevicePtr *dptr, size_t bytesize))         \
        X(cuMemAllocPitch_v2, "cuMemAllocPitch", 3020, NONE,                                     \
          (CuDevicePtr *dptr, size_t *pPitch, size_t WidthInBytes, size_t Height,                \
           unsigned int ElementSizeBytes))                                                       \
        X(cuMemAllocManaged, "cuMemAllocManaged", 6000, NONE,                                    \
          (CuDevicePtr *dptr, size_t bytesize, unsigned int flags))                              \
        X(cuMemFree_v2, "cuMemFree", 3020, NONE, (CuDevicePtr dptr))                             \
        X(cuMemAllocAsync, "cuMemAllocAsync", 11020, LEGACY,                                     \
          (CuDevicePtr *dptr, size_t bytesize, CuStream hStream))                                \
        X(cuMemAllocAsync_ptsz, "cuMemAllocAsync", 11020, PTDS,                                  \
          (CuDevicePtr *dptr, size_t bytesize, CuStream hStream))                                \
        X(cuMemAllocFromPoolAsync, "cuMemAllocFromPoolAsync", 11020, LEGACY,                     \
          (CuDevicePtr *dptr, size_t bytesize, CuMemoryPool pool, CuStream hStream))             \
        X(cuMemAllocFromPoolAsync_ptsz, "cuMemAllocFromPoolAsync", 11020, PTDS,                  \
          (CuDevicePtr *dptr, size_t bytesize, CuMemoryPool pool, CuStream hStream))             \
        X(cuMemFreeAsync, "cuMemFreeAsync", 11020, LEGACY, (CuDevicePtr dptr, CuStream hStream)) \
        X(cuMemFreeAsync_ptsz, "cuMemFreeAsync", 11020, PTDS,                                    \
          (CuDevicePtr dptr, CuStream hStream))                                                  \
        X(cuMemCreate, "cuMemCreate", 10020, NONE,                                               \
          (CuMemHandle *handle, size_t size, const CuMemAllocationProp *prop,                    \
           unsigned long long flags))                                                            \
        X(cuMemRelease, "cuMemRelease", 10020, NONE, (CuMemHandle handle))                       \
        X(cuArrayCreate_v2, "cuArrayCreate", 3020, NONE,                                         \
          (CuArray *pHandle, const CuArrayDescriptor *pAllocateArray))                           \
        X(cuArray3DCreate_v2, "cuArray3DCreate", 3020, NONE,                                     \
          (CuArray *pHandle, const CuArray3DDescriptor *pAllocateArray))                         \
        X(cuArrayDestroy, "cuArrayDestroy", 2000, NONE, (CuArray hArray))                        \
        X(cuMipmappedArrayCreate, "cuMipmappedArrayCreate", 5000, NONE,                          \
          (CuMipmappedArray *pHandle, const CuArray3DDescriptor *pMipmappedArrayDesc,            \
           unsigned int numMipmapLevels))                                                        \
        X(cuMipmappedArrayDestroy, "cuMipmappedArrayDestroy", 5000, NONE,                        \
          (CuMipmappedArray hMipmappedArray))                                                    \
        X(cuMemGetInfo_v2, "cuMemGetInfo", 3020, NONE, (size_t *free, size_t *total))            \
        X(cuDeviceTotalMem_v2, "cuDeviceTotalMem", 3020, NONE, (size_t *bytes, CuDevice dev))    \
        X(cuLaunchKernel, "cuLaunchKernel", 4000, LEGACY, VGPU_LAUNCH_PARAMS)                    \
        X(cuLaunchKernel_ptsz, "cuLaunchKernel", 7000, PTDS, VGPU_LAUNCH_PARAMS)                 \
        X(cuLaunchKernelEx, "cuLaunchKernelEx", 11060, LEGACY,                                   \
          (const CuLaunchConfig *config, CuFunction f, void **kernelParams, void **extra))       \
        X(cuLaunchKernelEx_ptsz, "cuLaunchKernelEx", 11060, PTDS,                                \
          (const CuLaunchConfig *config, CuFunction f, void **kernelParams, void **extra))       \
        X(cuLaunchCooperativeKernel, "cuLaunchCooperativeKernel", 9000, LEGACY, VGPU_COOP_PARAMS) \
        X(cuLaunchCooperativeKernel_ptsz, "cuLaunchCooperativeKernel", 9000, PTDS,               \
          VGPU_COOP_PARAMS)                                                                      \
        X(cuGraphLaunch, "cuGraphLaunch", 10000, LEGACY, (CuGraphExec hGraphExec, CuStream hStream)) \
        X(cuGraphLaunch_ptsz, "cuGraphLaunch", 10000, PTDS,                                      \
          (CuGraphExec hGraphExec, CuStream hStream))

#define VGPU_CUDA_REAL(X)                                                                        \
        X(cuCtxGetDevice, (CuDevice *device))                                                    \
        X(cuDeviceGetCount, (int *count))

#define VGPU_NVML_HOOKS(X)                                                                       \
        X(nvmlDeviceGetMemoryInfo, (NvmlDevice device, NvmlMemory *memory))                      \
        X(nvmlDeviceGetMemoryInfo_v2, (NvmlDevice device, NvmlMemoryV2 *memory))

#define VGPU_NVML_REAL(X)                                                                        \
        X(nvmlInit_v2, (void))                                                                   \
        X(nvmlDeviceGetHandleByIndex_v2, (unsigned int index, NvmlDevice *device))               \
        X(nvmlDeviceGetIndex, (NvmlDevice device, unsigned int *index))                          \
        X(nvmlDeviceGetHandleByUUID, (const char *uuid, NvmlDevice *device))                     \
        X(nvmlDeviceGetUUID, (NvmlDevice device, char *uuid, unsigned int length))               \
        X(nvmlDeviceGetUtilizationRates, (NvmlDevice device, NvmlUtilization *utilization))

/* Prototypes of the hooks (exported) and types of the real entry points. */
#define VGPU_DECLARE_CUDA_HOOK(sym, name, ver, stream, params)                                   \
        typedef CuResult(*sym##_fn) params;                                                      \
        CuResult sym params;
VGPU_CUDA_HOOKS(VGPU_DECLARE_CUDA_HOOK)
#undef VGPU_DECLARE_CUDA_HOOK

#define VGPU_DECLARE_CUDA_REAL(sym, params) typedef CuResult(*sym##_fn) params;
VGPU_CUDA_REAL(VGPU_DECLARE_CUDA_REAL)
#undef VGPU_DECLARE_CUDA_REAL

#define VGPU_DECLARE_NVML_HOOK(sym, params)                                                      \
        typedef NvmlReturn(*sym##_fn) params;                                                    \
        NvmlReturn sym params;
VGPU_NVML_HOOKS(VGPU_DECLARE_NVML_HOOK)
#undef VGPU_DECLARE_NVML_HOOK

#define VGPU_DECLARE_NVML_REAL(sym, params) typedef NvmlReturn(*sym##_fn) params;
VGPU_NVML_REAL(VGPU_DECLARE_NVML_REAL)
#undef VGPU_DECLARE_NVML_REAL

typedef struct VgpuRealCuda {
#define VGPU_FIELD(sym, ...) sym##_fn sym;
        VGPU_CUDA_HOOKS(VGPU_FIELD)
        VGPU_CUDA_REAL(VGPU_FIELD)
#undef VGPU_FIELD
} VgpuRealCuda;

typedef struct VgpuRealNvml {
#define VGPU_FIELD(sym, ...) sym##_fn sym;
        VGPU_NVML_HOOKS(VGPU_FIELD)
        VGPU_NVML_REAL(VGPU_FIELD)
#undef VGPU_FIELD
} VgpuRealNvml;

typedef enum VgpuStream {
        VGPU_STREAM_NONE,
        VGPU_STREAM_LEGACY,
        VGPU_STREAM_PTDS,
} VgpuStream;
