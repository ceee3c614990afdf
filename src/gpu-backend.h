/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * GPU discovery and health, behind one table. gpu-nvml.c (libnvidia-ml.so.1,
 * dlopen'ed) and gpu-mock.c implement it; tests reach NVML through the fake
 * libnvidia-ml.so.1 in tests/fakes/ by putting it first on the library path.
 */

#include <systemd/sd-event.h>

#include "conf.h"
#include "gpu.h"

typedef struct GpuBackend GpuBackend;

/* Called on the sd-event thread whenever a GPU's health changes. */
typedef void (*GpuHealthCallback)(GpuBackend *b, const char *gpu_name, GpuHealth health,
                                  const char *reason, void *userdata);

typedef struct GpuBackendOps {
        const char *name; /* "nvml", "mock" */
        int (*open)(const Config *c, void **ret_state);
        /* Fill a fresh list, sorted; GPUs that fail go to ->problems. */
        int (*enumerate)(void *state, GpuList *ret);
        /* Start delivering health events into the loop (thread + eventfd, inotify, ...). */
        int (*watch_health)(void *state, sd_event *e, GpuBackend *b);
        void (*close)(void *state);
} GpuBackendOps;

extern const GpuBackendOps gpu_backend_nvml;
extern const GpuBackendOps gpu_backend_mock;

struct GpuBackend {
        const GpuBackendOps *ops;
        void *state;
        GpuHealthCallback health_cb;
        void *health_userdata;
};

int gpu_backend_open(const Config *c, GpuBackend **ret);
int gpu_backend_enumerate(GpuBackend *b, GpuList *ret);
int gpu_backend_watch_health(GpuBackend *b, sd_event *e, GpuHealthCallback cb, void *userdata);
GpuBackend *gpu_backend_free(GpuBackend *b);
/* For backends: hand an event to the owner. */
void gpu_backend_report_health(GpuBackend *b, const char *gpu_name, GpuHealth health, const char *reason);

static inline void gpu_backend_freep(GpuBackend **b) {
        if (*b)
                gpu_backend_free(*b);
}
