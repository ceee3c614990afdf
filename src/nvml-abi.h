/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The slice of NVML's C ABI (nvml.h, libnvidia-ml.so.1) that hami-dra uses, declared
 * here so the build needs neither the CUDA toolkit nor the driver. Values and layouts
 * are NVML's documented ones; they never change for a given symbol name (NVIDIA adds
 * _v2/_v3 symbols instead). gpu-nvml.c resolves the functions with dlsym() and the
 * fake library in tests/fakes/nvml/ implements them.
 */

#include <stdint.h>

typedef enum nvmlReturn_enum {
        NVML_SUCCESS = 0,
        NVML_ERROR_UNINITIALIZED = 1,
        NVML_ERROR_INVALID_ARGUMENT = 2,
        NVML_ERROR_NOT_SUPPORTED = 3,
        NVML_ERROR_NO_PERMISSION = 4,
        NVML_ERROR_ALREADY_INITIALIZED = 5,
        NVML_ERROR_NOT_FOUND = 6,
        NVML_ERROR_INSUFFICIENT_SIZE = 7,
        NVML_ERROR_INSUFFICIENT_POWER = 8,
        NVML_ERROR_DRIVER_NOT_LOADED = 9,
        NVML_ERROR_TIMEOUT = 10,
        NVML_ERROR_IRQ_ISSUE = 11,
        NVML_ERROR_LIBRARY_NOT_FOUND = 12,
        NVML_ERROR_FUNCTION_NOT_FOUND = 13,
        NVML_ERROR_CORRUPTED_INFOROM = 14,
        NVML_ERROR_GPU_IS_LOST = 15,
        NVML_ERROR_RESET_REQUIRED = 16,
        NVML_ERROR_OPERATING_SYSTEM = 17,
        NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18,
        NVML_ERROR_IN_USE = 19,
        NVML_ERROR_MEMORY = 20,
        NVML_ERROR_NO_DATA = 21,
        NVML_ERROR_UNKNOWN = 999,
} nvmlReturn_t;

typedef struct nvmlDevice_st *nvmlDevice_t;
typedef struct nvmlEventSet_st *nvmlEventSet_t;

typedef enum nvmlBrandType_enum {
        NVML_BRAND_UNKNOWN = 0,
        NVML_BRAND_QUADRO = 1,
        NVML_BRAND_TESLA = 2,
        NVML_BRAND_NVS = 3,
        NVML_BRAND_GRID = 4,
        NVML_BRAND_GEFORCE = 5,
        NVML_BRAND_TITAN = 6,
        NVML_BRAND_NVIDIA_VAPPS = 7,
        NVML_BRAND_NVIDIA_VPC = 8,
        NVML_BRAND_NVIDIA_VCS = 9,
        NVML_BRAND_NVIDIA_VWS = 10,
        NVML_BRAND_NVIDIA_CLOUD_GAMING = 11,
        NVML_BRAND_QUADRO_RTX = 12,
        NVML_BRAND_NVIDIA_RTX = 13,
        NVML_BRAND_NVIDIA = 14,
        NVML_BRAND_GEFORCE_RTX = 15,
        NVML_BRAND_TITAN_RTX = 16,
        NVML_BRAND_COUNT,
} nvmlBrandType_t;

/* nvml.h: typedef unsigned int nvmlDeviceArchitecture_t, with these values. */
typedef unsigned int nvmlDeviceArchitecture_t;
#define NVML_DEVICE_ARCH_KEPLER 2u
#define NVML_DEVICE_ARCH_MAXWELL 3u
#define NVML_DEVICE_ARCH_PASCAL 4u
#define NVML_DEVICE_ARCH_VOLTA 5u
#define NVML_DEVICE_ARCH_TURING 6u
#define NVML_DEVICE_ARCH_AMPERE 7u
#define NVML_DEVICE_ARCH_ADA 8u
#define NVML_DEVICE_ARCH_HOPPER 9u
#define NVML_DEVICE_ARCH_BLACKWELL 10u
#define NVML_DEVICE_ARCH_UNKNOWN 0xffffffffu

#define NVML_DEVICE_UUID_V2_BUFFER_SIZE 96
#define NVML_DEVICE_NAME_V2_BUFFER_SIZE 96
#define NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE 80
#define NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE 32
#define NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE 16

typedef struct nvmlPciInfo_st {
        char busIdLegacy[NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE];
        unsigned int domain;
        unsigned int bus;
        unsigned int device;
        unsigned int pciDeviceId;
        unsigned int pciSubSystemId;
        char busId[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE]; /* "00000000:65:00.0" */
} nvmlPciInfo_t;

typedef struct nvmlMemory_st {
        unsigned long long total;
        unsigned long long free;
        unsigned long long used;
} nvmlMemory_t;

#define nvmlEventTypeSingleBitEccError 0x0000000000000001ULL
#define nvmlEventTypeDoubleBitEccError 0x0000000000000002ULL
#define nvmlEventTypePState 0x0000000000000004ULL
#define nvmlEventTypeXidCriticalError 0x0000000000000008ULL
#define nvmlEventTypeClock 0x0000000000000010ULL
#define nvmlEventTypeNone 0x0000000000000000ULL

typedef struct nvmlEventData_st {
        nvmlDevice_t device;
        unsigned long long eventType;
        unsigned long long eventData;   /* the XID for nvmlEventTypeXidCriticalError, else 0 */
        unsigned int gpuInstanceId;     /* MIG only; 0xFFFFFFFF otherwise */
        unsigned int computeInstanceId;
} nvmlEventData_t;

/* Device-wide utilization over the driver's last sample period, percent. */
typedef struct nvmlUtilization_st {
        unsigned int gpu;
        unsigned int memory;
} nvmlUtilization_t;

/* Per-process accounting (usage-monitor.c; layouts as nvml.h, R535-R590). */
#ifndef NVML_ERROR_ARGUMENT_VERSION_MISMATCH
#define NVML_ERROR_ARGUMENT_VERSION_MISMATCH 25
#endif
#define NVML_VALUE_NOT_AVAILABLE_UINT 0xFFFFFFFFu /* gpuInstanceId etc. without MIG */

typedef struct nvmlProcessInfo_v1_st { /* nvmlDeviceGetComputeRunningProcesses */
        unsigned int pid;
        unsigned long long usedGpuMemory; /* bytes */
} nvmlProcessInfo_v1_t;

typedef struct nvmlProcessInfo_v2_st { /* _v2 and, as nvmlProcessInfo_t, _v3 */
        unsigned int pid;
        unsigned long long usedGpuMemory;
        unsigned int gpuInstanceId;     /* 0xFFFFFFFF without MIG */
        unsigned int computeInstanceId; /* 0xFFFFFFFF without MIG */
} nvmlProcessInfo_v2_t;
typedef nvmlProcessInfo_v2_t nvmlProcessInfo_t;

typedef struct nvmlProcessUtilizationSample_st {
        unsigned int pid;
        unsigned long long timeStamp; /* CPU timestamp, microseconds */
        unsigned int smUtil;
        unsigned int memUtil;
        unsigned int encUtil;
        unsigned int decUtil;
} nvmlProcessUtilizationSample_t;

typedef struct nvmlProcessUtilizationInfo_v1_st {
        unsigned long long timeStamp; /* CPU timestamp, microseconds */
        unsigned int pid;
        unsigned int smUtil;
        unsigned int memUtil;
        unsigned int encUtil;
        unsigned int decUtil;
        unsigned int jpgUtil;
        unsigned int ofaUtil;
} nvmlProcessUtilizationInfo_v1_t;

typedef struct nvmlProcessesUtilizationInfo_v1_st {
        unsigned int version;             /* nvmlProcessesUtilizationInfo_v1 */
        unsigned int processSamplesCount; /* in: array size; out: samples */
        unsigned long long lastSeenTimeStamp;
        nvmlProcessUtilizationInfo_v1_t *procUtilArray;
} nvmlProcessesUtilizationInfo_v1_t;
typedef nvmlProcessesUtilizationInfo_v1_t nvmlProcessesUtilizationInfo_t;
#define nvmlProcessesUtilizationInfo_v1 ((unsigned int) (sizeof(nvmlProcessesUtilizationInfo_v1_t) | (1u << 24)))

/*
 * Every function hami-dra resolves: name, return type, parameters. gpu-nvml.c turns
 * this into its symbol table; keep it the only list.
 *   X(required?, return type, name, (parameter list))
 * Optional functions may be missing from older drivers.
 */
#define NVML_FUNCTIONS(X) \
        X(true, nvmlReturn_t, nvmlInit_v2, (void)) \
        X(true, nvmlReturn_t, nvmlShutdown, (void)) \
        X(true, const char *, nvmlErrorString, (nvmlReturn_t result)) \
        X(true, nvmlReturn_t, nvmlSystemGetDriverVersion, (char *version, unsigned int length)) \
        X(false, nvmlReturn_t, nvmlSystemGetCudaDriverVersion_v2, (int *cudaDriverVersion)) \
        X(true, nvmlReturn_t, nvmlSystemGetCudaDriverVersion, (int *cudaDriverVersion)) \
        X(true, nvmlReturn_t, nvmlDeviceGetCount_v2, (unsigned int *deviceCount)) \
        X(true, nvmlReturn_t, nvmlDeviceGetHandleByIndex_v2, (unsigned int index, nvmlDevice_t *device)) \
        X(true, nvmlReturn_t, nvmlDeviceGetUUID, (nvmlDevice_t device, char *uuid, unsigned int length)) \
        X(true, nvmlReturn_t, nvmlDeviceGetName, (nvmlDevice_t device, char *name, unsigned int length)) \
        X(true, nvmlReturn_t, nvmlDeviceGetBrand, (nvmlDevice_t device, nvmlBrandType_t *type)) \
        X(false, nvmlReturn_t, nvmlDeviceGetArchitecture, (nvmlDevice_t device, nvmlDeviceArchitecture_t *arch)) \
        X(true, nvmlReturn_t, nvmlDeviceGetCudaComputeCapability, (nvmlDevice_t device, int *major, int *minor)) \
        X(true, nvmlReturn_t, nvmlDeviceGetMinorNumber, (nvmlDevice_t device, unsigned int *minorNumber)) \
        X(true, nvmlReturn_t, nvmlDeviceGetPciInfo_v3, (nvmlDevice_t device, nvmlPciInfo_t *pci)) \
        X(true, nvmlReturn_t, nvmlDeviceGetMemoryInfo, (nvmlDevice_t device, nvmlMemory_t *memory)) \
        X(true, nvmlReturn_t, nvmlEventSetCreate, (nvmlEventSet_t *set)) \
        X(true, nvmlReturn_t, nvmlEventSetFree, (nvmlEventSet_t set)) \
        X(true, nvmlReturn_t, nvmlDeviceGetSupportedEventTypes, (nvmlDevice_t device, unsigned long long *eventTypes)) \
        X(true, nvmlReturn_t, nvmlDeviceRegisterEvents, (nvmlDevice_t device, unsigned long long eventTypes, nvmlEventSet_t set)) \
        X(true, nvmlReturn_t, nvmlEventSetWait_v2, (nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeoutms))
