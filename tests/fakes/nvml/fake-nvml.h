/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Internals of the fake libnvidia-ml.so.1 shared by its source files:
 *   fake-nvml-config.c  the description file (FAKE_NVML_CONFIG) -> FakeNvml
 *   fake-nvml.c         init/shutdown, error strings, system and device queries
 *   fake-nvml-events.c  event sets, events injected through FAKE_NVML_EVENTS
 *   fake-nvml-usage.c   memory and utilization of the fake CUDA driver's devices
 *   fake-nvml-processes.c  their processes: running processes, per-process utilization
 * Add new NVML functions in a new file: take the lock and validate with
 * fake_nvml_enter(), read per-GPU values from FakeGpu (keys the config parser does
 * not know land in FakeGpu.extras, see fake_gpu_extra()), then fake_nvml_leave().
 *
 * The description file, one "key value" per line, '#' comments:
 *
 *   driver-version 535.104.05       system-wide keys first
 *   cuda-driver-version 12040
 *   init-error DRIVER_NOT_LOADED    nvmlInit_v2 fails with this
 *   error nvmlDeviceGetCount_v2 UNKNOWN     a system-level function fails
 *
 *   gpu                             starts a GPU; NVML index = order in the file
 *   uuid GPU-8d1c...
 *   name NVIDIA A10                 (the rest of the line)
 *   brand NVIDIA                    NVML_BRAND_* suffix or a number
 *   arch AMPERE                     NVML_DEVICE_ARCH_* suffix or a number
 *   cc 8.6
 *   minor 0
 *   busid 00000000:65:00.0          as NVML prints it
 *   memory 24146608128              bytes
 *   events 0xb                      supported event types (default XID|DBE|SBE)
 *   error nvmlDeviceGetUUID GPU_IS_LOST     this function fails on this GPU
 *   anything-else value             kept in extras for other source files
 *
 * FAKE_NVML_EVENTS names a file the event set consumes (reads, then deletes) when it
 * appears; one event per line: "<index> xid <n>", "<index> dbe", "<index> sbe", or
 * "wait-error <NVML_ERROR suffix>" (the next wait fails with it).
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "nvml-abi.h"

#define FAKE_NVML_GPUS_MAX 64
#define FAKE_NVML_ERRORS_MAX 16
#define FAKE_NVML_EXTRAS_MAX 16
#define FAKE_NVML_STRING_MAX 128

typedef struct FakeError {
        char function[64];
        nvmlReturn_t ret;
} FakeError;

typedef struct FakeExtra {
        char key[64];
        char value[FAKE_NVML_STRING_MAX];
} FakeExtra;

typedef struct FakeGpu {
        char uuid[FAKE_NVML_STRING_MAX];
        char name[FAKE_NVML_STRING_MAX];
        unsigned brand;
        unsigned arch;
        int cc_major, cc_minor;
        unsigned minor;
        char bus_id[FAKE_NVML_STRING_MAX];
        unsigned long long memory_total;
        unsigned long long memory_used;
        unsigned long long supported_events;
        FakeError errors[FAKE_NVML_ERRORS_MAX];
        unsigned n_errors;
        FakeExtra extras[FAKE_NVML_EXTRAS_MAX];
        unsigned n_extras;
} FakeGpu;

typedef struct FakeNvml {
        unsigned init_count;
        char driver_version[FAKE_NVML_STRING_MAX];
        int cuda_driver_version;
        nvmlReturn_t init_error;
        FakeError errors[FAKE_NVML_ERRORS_MAX];   /* system-level functions */
        unsigned n_errors;
        FakeExtra extras[FAKE_NVML_EXTRAS_MAX];
        unsigned n_extras;
        FakeGpu gpus[FAKE_NVML_GPUS_MAX];
        unsigned n_gpus;
} FakeNvml;

extern FakeNvml fake_nvml;
extern pthread_mutex_t fake_nvml_lock;

/* Parse the file named by FAKE_NVML_CONFIG into *ret; complains on stderr. */
nvmlReturn_t fake_nvml_config_load(FakeNvml *ret);
/* "GPU_IS_LOST" or "NVML_ERROR_GPU_IS_LOST" or "15" -> 15; -1 when unknown. */
int fake_nvml_return_from_string(const char *s);

/*
 * The checks every real NVML function makes: take the lock, fail with UNINITIALIZED
 * before nvmlInit, INVALID_ARGUMENT for a handle we never gave out (device may be
 * NULL for system functions: then *ret_gpu is NULL), then any error the description
 * injects for `function`. On NVML_SUCCESS the lock is held: call fake_nvml_leave().
 */
nvmlReturn_t fake_nvml_enter(const char *function, nvmlDevice_t device, bool needs_device, FakeGpu **ret_gpu);
void fake_nvml_leave(void);

/* For nvmlDeviceGetHandleByIndex: the handle of GPU i. */
nvmlDevice_t fake_gpu_handle(unsigned i);
/* The index of a handle, or -1. Lock held. */
int fake_gpu_index(nvmlDevice_t device);

/* The value of an extra key of a GPU (or the system when g is NULL), NULL if absent. */
const char *fake_gpu_extra(const FakeGpu *g, const char *key);

/* The exported NVML functions, checked against the ABI list hami-dra uses. */
#define FAKE_NVML_DECLARE(required, ret, name, params) ret name params;
NVML_FUNCTIONS(FAKE_NVML_DECLARE)
#undef FAKE_NVML_DECLARE

/* fake-nvml-usage.c: memory in use on GPU g, from the fake CUDA driver's state when
 * FAKE_CUDA_STATE is set, from the description otherwise. Lock held. */
unsigned long long fake_nvml_memory_used(const FakeGpu *g);
/* The fake CUDA driver's device behind GPU g (fake-cuda-state.h), NULL without
 * FAKE_CUDA_STATE. */
struct FakeDevice;
struct FakeDevice *fake_nvml_cuda_device(const FakeGpu *g);

/* Called by nvmlShutdown when the last user leaves. */
void fake_nvml_events_reset(void);
