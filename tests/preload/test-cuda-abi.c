/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libvgpu declares the slice of the CUDA driver API it uses itself (preload/cuda-abi.h,
 * preload/hooks.h). Where NVIDIA's cuda.h exists, check every declaration against it:
 * the prototype of every hooked and called entry point, the constants, the layout of
 * the structures. Compiled twice: legacy stream, and per-thread (the _ptsz variants).
 * Everything is checked at compile time; the program only reports.
 */
#include <stddef.h>
#include <stdio.h>

#include <cuda.h>

/* cuda.h renames these to the variant the including program wants; we declare every
 * variant under its own exported name. */
#undef cuGetProcAddress
#undef cuLaunchKernel
#undef cuLaunchKernelEx
#undef cuLaunchCooperativeKernel
#undef cuGraphLaunch
#undef cuMemAllocAsync
#undef cuMemAllocFromPoolAsync
#undef cuMemFreeAsync

#include "hooks.h"

#define SAME(a, b) __builtin_types_compatible_p(a, b)
#define EQ(a, b) ((long) (a) == (long) (b))

/* Every hook and every real entry point has the prototype cuda.h gives its symbol. */
#ifdef CHECK_PTDS
#define CHECK_HOOK(sym, name, ver, stream, params)                                               \
        _Static_assert(VGPU_STREAM_##stream != VGPU_STREAM_PTDS || SAME(typeof(&sym), sym##_fn), #sym);
#else
#define CHECK_HOOK(sym, name, ver, stream, params)                                               \
        _Static_assert(VGPU_STREAM_##stream == VGPU_STREAM_PTDS || SAME(typeof(&sym), sym##_fn), #sym);
#endif
VGPU_CUDA_HOOKS(CHECK_HOOK)

#define CHECK_REAL(sym, params) _Static_assert(SAME(typeof(&sym), sym##_fn), #sym);
VGPU_CUDA_REAL(CHECK_REAL)

_Static_assert(SAME(CUresult, CuResult), "CUresult");
_Static_assert(SAME(CUdevice, CuDevice), "CUdevice");
_Static_assert(SAME(CUdeviceptr, CuDevicePtr), "CUdeviceptr");
_Static_assert(SAME(CUmemGenericAllocationHandle, CuMemHandle), "CUmemGenericAllocationHandle");
_Static_assert(SAME(cuuint64_t, CuUint64), "cuuint64_t");
_Static_assert(SAME(CUcontext, CuContext) && SAME(CUstream, CuStream) && SAME(CUfunction, CuFunction) &&
               SAME(CUarray, CuArray) && SAME(CUmipmappedArray, CuMipmappedArray) && SAME(CUgraphExec, CuGraphExec) &&
               SAME(CUmemoryPool, CuMemoryPool) && SAME(CUmodule, CuModule) && SAME(CUgraph, CuGraph),
               "handles");
_Static_assert(SAME(CUdriverProcAddressQueryResult, CuProcStatus), "CUdriverProcAddressQueryResult");
_Static_assert(SAME(CUarray_format, CuArrayFormat), "CUarray_format");

_Static_assert(EQ(VG_CUDA_SUCCESS, CUDA_SUCCESS), "CUDA_SUCCESS");
_Static_assert(EQ(VG_CUDA_ERROR_INVALID_VALUE, CUDA_ERROR_INVALID_VALUE), "CUDA_ERROR_INVALID_VALUE");
_Static_assert(EQ(VG_CUDA_ERROR_OUT_OF_MEMORY, CUDA_ERROR_OUT_OF_MEMORY), "CUDA_ERROR_OUT_OF_MEMORY");
_Static_assert(EQ(VG_CUDA_ERROR_NOT_INITIALIZED, CUDA_ERROR_NOT_INITIALIZED), "CUDA_ERROR_NOT_INITIALIZED");
_Static_assert(EQ(VG_CUDA_ERROR_INVALID_DEVICE, CUDA_ERROR_INVALID_DEVICE), "CUDA_ERROR_INVALID_DEVICE");
_Static_assert(EQ(VG_CUDA_ERROR_INVALID_CONTEXT, CUDA_ERROR_INVALID_CONTEXT), "CUDA_ERROR_INVALID_CONTEXT");
_Static_assert(EQ(VG_CUDA_ERROR_INVALID_HANDLE, CUDA_ERROR_INVALID_HANDLE), "CUDA_ERROR_INVALID_HANDLE");
_Static_assert(EQ(VG_CUDA_ERROR_NOT_FOUND, CUDA_ERROR_NOT_FOUND), "CUDA_ERROR_NOT_FOUND");
_Static_assert(EQ(VG_CUDA_ERROR_NOT_SUPPORTED, CUDA_ERROR_NOT_SUPPORTED), "CUDA_ERROR_NOT_SUPPORTED");
_Static_assert(EQ(VG_CUDA_ERROR_UNKNOWN, CUDA_ERROR_UNKNOWN), "CUDA_ERROR_UNKNOWN");
_Static_assert(EQ(VG_CU_GET_PROC_ADDRESS_DEFAULT, CU_GET_PROC_ADDRESS_DEFAULT), "CU_GET_PROC_ADDRESS_DEFAULT");
_Static_assert(EQ(VG_CU_GET_PROC_ADDRESS_LEGACY_STREAM, CU_GET_PROC_ADDRESS_LEGACY_STREAM), "CU_GET_PROC_ADDRESS_LEGACY_STREAM");
_Static_assert(EQ(VG_CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM), "CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM");
_Static_assert(EQ(VG_CU_GET_PROC_ADDRESS_SUCCESS, CU_GET_PROC_ADDRESS_SUCCESS), "CU_GET_PROC_ADDRESS_SUCCESS");
_Static_assert(EQ(VG_CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND), "CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND");
_Static_assert(EQ(VG_CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT, CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT), "CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT");
_Static_assert(EQ(VG_CU_AD_FORMAT_UNSIGNED_INT8, CU_AD_FORMAT_UNSIGNED_INT8) &&
               EQ(VG_CU_AD_FORMAT_UNSIGNED_INT16, CU_AD_FORMAT_UNSIGNED_INT16) &&
               EQ(VG_CU_AD_FORMAT_UNSIGNED_INT32, CU_AD_FORMAT_UNSIGNED_INT32) &&
               EQ(VG_CU_AD_FORMAT_SIGNED_INT8, CU_AD_FORMAT_SIGNED_INT8) &&
               EQ(VG_CU_AD_FORMAT_SIGNED_INT16, CU_AD_FORMAT_SIGNED_INT16) &&
               EQ(VG_CU_AD_FORMAT_SIGNED_INT32, CU_AD_FORMAT_SIGNED_INT32) && EQ(VG_CU_AD_FORMAT_HALF, CU_AD_FORMAT_HALF) &&
               EQ(VG_CU_AD_FORMAT_FLOAT, CU_AD_FORMAT_FLOAT), "CUarray_format");
_Static_assert(EQ(VG_CU_MEM_LOCATION_TYPE_DEVICE, CU_MEM_LOCATION_TYPE_DEVICE), "CU_MEM_LOCATION_TYPE_DEVICE");
_Static_assert(EQ(VG_CU_MEM_ALLOCATION_TYPE_PINNED, CU_MEM_ALLOCATION_TYPE_PINNED), "CU_MEM_ALLOCATION_TYPE_PINNED");
_Static_assert(EQ(VG_CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT), "CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT");

/* Our field lists, laid out on their own, against NVIDIA's structures. */
struct OurArrayDescriptor { VGPU_ARRAY_DESCRIPTOR_FIELDS };
struct OurArray3DDescriptor { VGPU_ARRAY3D_DESCRIPTOR_FIELDS };
struct OurMemLocation { VGPU_MEM_LOCATION_FIELDS };
struct OurMemAllocationProp { VGPU_MEM_ALLOCATION_PROP_FIELDS };
struct OurLaunchConfig { VGPU_LAUNCH_CONFIG_FIELDS };
struct OurUuid { VGPU_UUID_FIELDS };

#define SAME_FIELD(ours, theirs, f)                                                              \
        _Static_assert(offsetof(struct ours, f) == offsetof(theirs, f) &&                        \
                       sizeof(((struct ours *) 0)->f) == sizeof(((theirs *) 0)->f), #theirs "." #f);
#define SAME_SIZE(ours, theirs) _Static_assert(sizeof(struct ours) == sizeof(theirs), #theirs);

SAME_SIZE(OurArrayDescriptor, CUDA_ARRAY_DESCRIPTOR_v2)
SAME_FIELD(OurArrayDescriptor, CUDA_ARRAY_DESCRIPTOR_v2, Width)
SAME_FIELD(OurArrayDescriptor, CUDA_ARRAY_DESCRIPTOR_v2, Height)
SAME_FIELD(OurArrayDescriptor, CUDA_ARRAY_DESCRIPTOR_v2, Format)
SAME_FIELD(OurArrayDescriptor, CUDA_ARRAY_DESCRIPTOR_v2, NumChannels)
SAME_SIZE(OurArray3DDescriptor, CUDA_ARRAY3D_DESCRIPTOR_v2)
SAME_FIELD(OurArray3DDescriptor, CUDA_ARRAY3D_DESCRIPTOR_v2, Width)
SAME_FIELD(OurArray3DDescriptor, CUDA_ARRAY3D_DESCRIPTOR_v2, Height)
SAME_FIELD(OurArray3DDescriptor, CUDA_ARRAY3D_DESCRIPTOR_v2, Depth)
SAME_FIELD(OurArray3DDescriptor, CUDA_ARRAY3D_DESCRIPTOR_v2, Format)
SAME_FIELD(OurArray3DDescriptor, CUDA_ARRAY3D_DESCRIPTOR_v2, NumChannels)
SAME_FIELD(OurArray3DDescriptor, CUDA_ARRAY3D_DESCRIPTOR_v2, Flags)
SAME_SIZE(OurMemLocation, CUmemLocation)
SAME_FIELD(OurMemLocation, CUmemLocation, type)
SAME_FIELD(OurMemLocation, CUmemLocation, id)
SAME_SIZE(OurMemAllocationProp, CUmemAllocationProp_v1)
SAME_FIELD(OurMemAllocationProp, CUmemAllocationProp_v1, type)
SAME_FIELD(OurMemAllocationProp, CUmemAllocationProp_v1, requestedHandleTypes)
SAME_FIELD(OurMemAllocationProp, CUmemAllocationProp_v1, location)
SAME_FIELD(OurMemAllocationProp, CUmemAllocationProp_v1, win32HandleMetaData)
SAME_FIELD(OurMemAllocationProp, CUmemAllocationProp_v1, allocFlags)
SAME_SIZE(OurLaunchConfig, CUlaunchConfig)
SAME_FIELD(OurLaunchConfig, CUlaunchConfig, gridDimX)
SAME_FIELD(OurLaunchConfig, CUlaunchConfig, blockDimZ)
SAME_FIELD(OurLaunchConfig, CUlaunchConfig, sharedMemBytes)
SAME_FIELD(OurLaunchConfig, CUlaunchConfig, hStream)
SAME_FIELD(OurLaunchConfig, CUlaunchConfig, attrs)
SAME_FIELD(OurLaunchConfig, CUlaunchConfig, numAttrs)
SAME_SIZE(OurUuid, CUuuid)
/* The enum-typed fields we read as unsigned int really are. */
_Static_assert(sizeof(CUarray_format) == sizeof(unsigned int) && sizeof(CUmemLocationType) == sizeof(unsigned int),
               "enum sizes");

int main(void) {
        printf("libvgpu's CUDA declarations match cuda.h %d\n", CUDA_VERSION);
        return 0;
}
