/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The slice of the CUDA driver API and NVML ABI that libvgpu.so uses, declared here so
 * nothing from CUDA is needed to build it. Names are our own (Cu*, Nvml*, VG_*) so that
 * tests/preload/test-cuda-abi.c can include both this file and NVIDIA's cuda.h and
 * check every type, constant and prototype against it (where cuda.h exists).
 * Opaque handles keep NVIDIA's struct tags, which makes them the same types.
 */

#include <stddef.h>
#include <stdint.h>

typedef unsigned int CuResult; /* enum cudaError_enum: all values are non-negative */
typedef int CuDevice;
typedef unsigned long long CuDevicePtr;
typedef unsigned long long CuMemHandle; /* CUmemGenericAllocationHandle */
typedef uint64_t CuUint64;
typedef struct CUctx_st *CuContext;
typedef struct CUmod_st *CuModule;
typedef struct CUfunc_st *CuFunction;
typedef struct CUarray_st *CuArray;
typedef struct CUmipmappedArray_st *CuMipmappedArray;
typedef struct CUstream_st *CuStream;
typedef struct CUgraph_st *CuGraph;
typedef struct CUgraphExec_st *CuGraphExec;
typedef struct CUmemPoolHandle_st *CuMemoryPool;
typedef unsigned int CuProcStatus; /* CUdriverProcAddressQueryResult */
typedef unsigned int CuArrayFormat;

enum {
        VG_CUDA_SUCCESS = 0,
        VG_CUDA_ERROR_INVALID_VALUE = 1,
        VG_CUDA_ERROR_OUT_OF_MEMORY = 2,
        VG_CUDA_ERROR_NOT_INITIALIZED = 3,
        VG_CUDA_ERROR_INVALID_DEVICE = 101,
        VG_CUDA_ERROR_INVALID_CONTEXT = 201,
        VG_CUDA_ERROR_INVALID_HANDLE = 400,
        VG_CUDA_ERROR_NOT_FOUND = 500,
        VG_CUDA_ERROR_NOT_SUPPORTED = 801,
        VG_CUDA_ERROR_UNKNOWN = 999,
};

enum {
        VG_CU_GET_PROC_ADDRESS_DEFAULT = 0,
        VG_CU_GET_PROC_ADDRESS_LEGACY_STREAM = 1,
        VG_CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM = 2,
};

enum {
        VG_CU_GET_PROC_ADDRESS_SUCCESS = 0,
        VG_CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND = 1,
        VG_CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT = 2,
};

enum {
        VG_CU_AD_FORMAT_UNSIGNED_INT8 = 0x01,
        VG_CU_AD_FORMAT_UNSIGNED_INT16 = 0x02,
        VG_CU_AD_FORMAT_UNSIGNED_INT32 = 0x03,
        VG_CU_AD_FORMAT_SIGNED_INT8 = 0x08,
        VG_CU_AD_FORMAT_SIGNED_INT16 = 0x09,
        VG_CU_AD_FORMAT_SIGNED_INT32 = 0x0a,
        VG_CU_AD_FORMAT_HALF = 0x10,
        VG_CU_AD_FORMAT_FLOAT = 0x20,
};

enum {
        VG_CU_MEM_LOCATION_TYPE_DEVICE = 1,
        VG_CU_MEM_ALLOCATION_TYPE_PINNED = 1,
        VG_CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16,
};

/*
 * Structures keep NVIDIA's tags (so that, next to cuda.h, they are the same types); their
 * fields are spelled once, in macros, so test-cuda-abi.c can compare our layout with
 * cuda.h's field by field.
 */
#define VGPU_ARRAY_DESCRIPTOR_FIELDS                                                             \
        size_t Width;                                                                            \
        size_t Height;                                                                           \
        CuArrayFormat Format;                                                                    \
        unsigned int NumChannels;
#define VGPU_ARRAY3D_DESCRIPTOR_FIELDS                                                           \
        size_t Width;                                                                            \
        size_t Height;                                                                           \
        size_t Depth;                                                                            \
        CuArrayFormat Format;                                                                    \
        unsigned int NumChannels;                                                                \
        unsigned int Flags;
#define VGPU_MEM_LOCATION_FIELDS                                                                 \
        unsigned int type; /* CUmemLocationType */                                               \
        int id;
#define VGPU_MEM_ALLOCATION_PROP_FIELDS                                                          \
        unsigned int type;                                                                       \
        unsigned int requestedHandleTypes;                                                       \
        struct CUmemLocation_st location;                                                        \
        void *win32HandleMetaData;                                                               \
        struct {                                                                                 \
                unsigned char compressionType;                                                   \
                unsigned char gpuDirectRDMACapable;                                              \
                unsigned short usage;                                                            \
                unsigned char reserved[4];                                                       \
        } allocFlags;
#define VGPU_LAUNCH_CONFIG_FIELDS                                                                \
        unsigned int gridDimX, gridDimY, gridDimZ;                                               \
        unsigned int blockDimX, blockDimY, blockDimZ;                                            \
        unsigned int sharedMemBytes;                                                             \
        CuStream hStream;                                                                        \
        void *attrs; /* CUlaunchAttribute *, left opaque */                                      \
        unsigned int numAttrs;
#define VGPU_UUID_FIELDS char bytes[16];

#ifndef __cuda_cuda_h__
struct CUDA_ARRAY_DESCRIPTOR_st { VGPU_ARRAY_DESCRIPTOR_FIELDS };
struct CUDA_ARRAY3D_DESCRIPTOR_st { VGPU_ARRAY3D_DESCRIPTOR_FIELDS };
struct CUmemLocation_st { VGPU_MEM_LOCATION_FIELDS };
struct CUmemAllocationProp_st { VGPU_MEM_ALLOCATION_PROP_FIELDS };
struct CUlaunchConfig_st { VGPU_LAUNCH_CONFIG_FIELDS };
struct CUuuid_st { VGPU_UUID_FIELDS };
#endif

typedef struct CUDA_ARRAY_DESCRIPTOR_st CuArrayDescriptor;     /* CUDA_ARRAY_DESCRIPTOR_v2 */
typedef struct CUDA_ARRAY3D_DESCRIPTOR_st CuArray3DDescriptor; /* CUDA_ARRAY3D_DESCRIPTOR_v2 */
typedef struct CUmemLocation_st CuMemLocation;
typedef struct CUmemAllocationProp_st CuMemAllocationProp;     /* CUmemAllocationProp_v1 */
typedef struct CUlaunchConfig_st CuLaunchConfig;
typedef struct CUuuid_st CuUuid;

/* NVML */
typedef unsigned int NvmlReturn; /* nvmlReturn_t */
typedef struct nvmlDevice_st *NvmlDevice;

enum {
        VG_NVML_SUCCESS = 0,
        VG_NVML_ERROR_UNINITIALIZED = 1,
        VG_NVML_ERROR_INVALID_ARGUMENT = 2,
        VG_NVML_ERROR_NOT_SUPPORTED = 3,
        VG_NVML_ERROR_FUNCTION_NOT_FOUND = 13,
        VG_NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
};

typedef struct NvmlMemory { /* nvmlMemory_t */
        unsigned long long total;
        unsigned long long free;
        unsigned long long used;
} NvmlMemory;

typedef struct NvmlMemoryV2 { /* nvmlMemory_v2_t */
        unsigned int version;
        unsigned long long total;
        unsigned long long reserved;
        unsigned long long free;
        unsigned long long used;
} NvmlMemoryV2;

#define VG_NVML_MEMORY_V2 ((unsigned int) (sizeof(NvmlMemoryV2) | (2u << 24)))

typedef struct NvmlUtilization { /* nvmlUtilization_t */
        unsigned int gpu;
        unsigned int memory;
} NvmlUtilization;
