/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* libvgpu.so's internals, shared by its files. Nothing here is exported (see
 * libvgpu.sym): only the hooks are. */

#include <stdbool.h>
#include <stdint.h>

#include "../src/shared-region.h"
#include "hooks.h"

#define _hidden_ __attribute__((visibility("hidden")))

#define VGPU_UUID_MAX 96

enum {
        VGPU_LOG_ERROR = 1,
        VGPU_LOG_WARNING = 2,
        VGPU_LOG_INFO = 3,
        VGPU_LOG_DEBUG = 4,
};

typedef struct VgpuConfig {
        uint64_t memory_limit[SHARED_REGION_DEVICES_MAX]; /* by container device index; 0: none */
        /* Asked for in the environment but unparsable: SHARED_REGION_DEGRADED_* per device. */
        unsigned invalid[SHARED_REGION_DEVICES_MAX];
        unsigned sm_limit[SHARED_REGION_DEVICES_MAX];     /* percent; 0 or 100: none */
        bool sm_limit_any;
        /* CUDA ordinal (what the process sees) -> container device index. */
        int ordinal_map[SHARED_REGION_DEVICES_MAX];
        unsigned n_ordinals;
        /* CUDA_DEVICE_UUID_<i>: the GPU whose limits and region device are <i>. When any is
         * set, GPUs are found by UUID, not by their position in the process's view. */
        char uuid[SHARED_REGION_DEVICES_MAX][VGPU_UUID_MAX];
        bool by_uuid;
} VgpuConfig;

extern VgpuRealCuda vgpu_real _hidden_;
extern VgpuRealNvml vgpu_nvml _hidden_;
extern VgpuConfig vgpu_config _hidden_;
extern SharedRegion vgpu_region _hidden_;
extern int vgpu_log_level _hidden_;

/* Resolve the real driver, read the environment, attach the region: once per process.
 * Returns false if the real driver is missing (the hooks then fail cleanly). */
bool vgpu_init(void) _hidden_;
bool vgpu_nvml_init(void) _hidden_;

void vgpu_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3))) _hidden_;

/* A limit this process cannot enforce (SHARED_REGION_DEGRADED_*): said on stderr once
 * per process and kind, whatever the log level, and recorded in the region for the
 * daemon. Never fails and never stops the program. */
void vgpu_report_degraded(unsigned what, const char *fmt, ...) __attribute__((format(printf, 2, 3))) _hidden_;

/* Recursion guard: true when this thread is already inside a hook (the driver calling
 * its own entry points, or our own calls into it): pass straight through then. */
extern __thread unsigned vgpu_guard_depth __attribute__((tls_model("initial-exec"))) _hidden_;

static inline bool vgpu_guard_enter(void) {
        return vgpu_guard_depth++ == 0;
}

static inline void vgpu_guard_leave(void) {
        vgpu_guard_depth--;
}

/* The container device index of the current context's device, or -1. */
int vgpu_current_device(void) _hidden_;
int vgpu_device_of_ordinal(CuDevice ordinal) _hidden_;
/* The container device index whose CUDA_DEVICE_UUID_<i> is uuid (any case), or -1. */
int vgpu_device_of_uuid(const char *uuid) _hidden_;

/* cuGetProcAddress / dlsym: our hook standing in for a real symbol, or NULL. */
void *vgpu_hook_by_symbol(const char *symbol) _hidden_;
void *vgpu_hook_by_request(const char *name, int cuda_version, CuUint64 flags) _hidden_;

/* SM limiter: wait for a launch token on container device dev. */
void vgpu_sm_throttle(int dev) _hidden_;
void vgpu_sm_throttle_current(void) _hidden_;
