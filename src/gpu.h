/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * What the daemon knows about one physical GPU. Filled by a GpuBackend (gpu-nvml.c,
 * gpu-mock.c), read by everything else (slices, CDI, D-Bus). Plain data: no pointers
 * into backend state, so a GpuList can be copied, compared and freed on its own.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define GPU_NAME_MAX 64
#define GPU_STRING_MAX 96      /* ResourceSlice string/version attributes hold at most 64 */
#define GPU_HEALTH_REASON_MAX 256
#define GPU_CORES_TOTAL 100u   /* the "cores" capacity: percent of the GPU's SMs */

typedef enum GpuHealth {
        GPU_HEALTH_UNKNOWN = 0,
        GPU_HEALTH_HEALTHY = 1,
        GPU_HEALTH_UNHEALTHY = 2,
} GpuHealth;

typedef struct Gpu {
        char name[GPU_NAME_MAX];                     /* "hami-gpu-<minor>" */
        char uuid[GPU_STRING_MAX];                   /* "GPU-8d1c..." */
        char product_name[GPU_STRING_MAX];           /* "NVIDIA A10" */
        /* Strings below may be "" when the driver cannot tell: publish nothing then. */
        char brand[GPU_STRING_MAX];                  /* "Nvidia", "Tesla", ... */
        char architecture[GPU_STRING_MAX];           /* "Ampere", "Hopper", ... */
        char cuda_compute_capability[GPU_STRING_MAX];/* semver: "8.6.0" */
        char driver_version[GPU_STRING_MAX];         /* semver: "570.86.15" */
        char cuda_driver_version[GPU_STRING_MAX];    /* semver: "12.8.0" */
        unsigned minor;                              /* /dev/nvidia<minor> */
        char pcie_bus_id[GPU_STRING_MAX];            /* "0000:65:00.0", lower case */
        char pcie_root[GPU_STRING_MAX];              /* "pci0000:64", or "" when unknown */
        uint64_t memory_total;                       /* bytes, as the driver reports it */
        unsigned cores;                              /* GPU_CORES_TOTAL */

        GpuHealth health;
        char health_reason[GPU_HEALTH_REASON_MAX];                   /* why unhealthy, e.g. "XID 79: GPU has fallen off the bus" */
        time_t health_changed;                       /* CLOCK_REALTIME seconds */
} Gpu;

/* A GPU the backend saw but could not describe: reported, never silently dropped. */
typedef struct GpuProblem {
        unsigned index;                              /* NVML index */
        char what[256];                              /* "nvmlDeviceGetUUID: GPU is lost" */
} GpuProblem;

typedef struct GpuList {
        Gpu *gpus;                 /* ordered by pcie_bus_id: the order CUDA uses */
        size_t n_gpus;
        GpuProblem *problems;
        size_t n_problems;
} GpuList;

/* The name the daemon gives a GPU: "hami-gpu-<minor>". */
int gpu_name_from_minor(unsigned minor, char *out, size_t size);

void gpu_list_done(GpuList *l);
int gpu_list_copy(const GpuList *src, GpuList *ret);
/* Same GPUs in the same order with the same attributes; health and problems are not compared. */
bool gpu_list_equal(const GpuList *a, const GpuList *b);
const Gpu *gpu_list_find(const GpuList *l, const char *name);
void gpu_list_sort(GpuList *l);                            /* by pcie_bus_id, then minor */

const char *gpu_health_to_string(GpuHealth h);

/*
 * Versions as semver 2.0.0 (what a ResourceSlice "version" attribute demands):
 * "535.104.05" -> "535.104.5"; "12.4" -> "12.4.0". -EINVAL when not 1 to 3 dotted
 * decimal numbers, -ENOBUFS when out is too small. out is written only on success.
 */
int version_to_semver(const char *in, char *out, size_t size);
/* CUDA's integer encoding 1000*major + 10*minor: 12040 -> "12.4.0". */
int cuda_version_to_semver(int version, char *out, size_t size);
/* Compute capability 8,6 -> "8.6.0". */
int compute_capability_to_semver(int major, int minor, char *out, size_t size);

/*
 * "00000000:65:00.0" (NVML's form) or "0000:65:00.0", any case -> "0000:65:00.0",
 * lower case, 4-digit domain when it fits (the sysfs form). -EINVAL when malformed.
 */
int pci_bus_id_normalize(const char *in, char *out, size_t size);
