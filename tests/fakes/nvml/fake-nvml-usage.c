/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The fake NVML's usage queries, for the preload tests: memory in use and utilization
 * of the fake GPUs as the fake libcuda.so.1 leaves them in its shared state
 * (tests/fakes/cuda/fake-cuda-state.h, the file named by FAKE_CUDA_STATE). NVML GPU i is
 * the fake driver's device i. Without FAKE_CUDA_STATE, memory comes from the description
 * file and utilization is 0.
 *
 * FAKE_NVML_UTIL_WINDOW_MS (250): the sample period utilization is averaged over.
 */

#include <stdlib.h>
#include <string.h>

#include "fake-cuda-state.h"
#include "fake-nvml.h"

#define EXPORT __attribute__((visibility("default")))

typedef struct nvmlMemory_v2_st {
        unsigned int version;
        unsigned long long total;
        unsigned long long reserved;
        unsigned long long free;
        unsigned long long used;
} nvmlMemory_v2_t;
#define NVML_MEMORY_V2 ((unsigned int) (sizeof(nvmlMemory_v2_t) | (2u << 24)))
#define NVML_ERROR_ARGUMENT_VERSION_MISMATCH 25

nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index);
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory);
nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization);

static FakeDevice *cuda_device(int index) {
        FakeState *s;

        if (!getenv("FAKE_CUDA_STATE"))
                return NULL;
        s = fake_state_get();
        return s && index >= 0 && (unsigned) index < s->n_devices ? &s->devices[index] : NULL;
}

struct FakeDevice *fake_nvml_cuda_device(const FakeGpu *g) {
        return cuda_device((int) (g - fake_nvml.gpus));
}

/* Lock held: what GPU g has in use (used by nvmlDeviceGetMemoryInfo too), contexts
 * included; dead processes' memory freed first, as the driver frees it at their exit. */
unsigned long long fake_nvml_memory_used(const FakeGpu *g) {
        FakeDevice *d = fake_nvml_cuda_device(g);
        unsigned long long used;

        if (d)
                fake_state_reclaim(d);
        used = d ? __atomic_load_n(&d->used_memory, __ATOMIC_RELAXED) : g->memory_used;
        return used < g->memory_total ? used : g->memory_total;
}

EXPORT nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index) {
        FakeGpu *g;
        nvmlReturn_t r = fake_nvml_enter(__func__, device, true, &g);

        if (r != NVML_SUCCESS)
                return r;
        if (!index)
                r = NVML_ERROR_INVALID_ARGUMENT;
        else
                *index = (unsigned) (g - fake_nvml.gpus);
        fake_nvml_leave();
        return r;
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
        FakeGpu *g;
        nvmlReturn_t r = fake_nvml_enter(__func__, device, true, &g);

        if (r != NVML_SUCCESS)
                return r;
        if (!memory)
                r = NVML_ERROR_INVALID_ARGUMENT;
        else if (memory->version != NVML_MEMORY_V2)
                r = NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
        else {
                unsigned long long used = fake_nvml_memory_used(g);
                memory->total = g->memory_total;
                memory->reserved = 0;
                memory->used = used;
                memory->free = g->memory_total - used;
        }
        fake_nvml_leave();
        return r;
}

EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *u) {
        const char *w = getenv("FAKE_NVML_UTIL_WINDOW_MS");
        uint64_t window_ms = w && *w ? strtoull(w, NULL, 10) : 250;
        FakeDevice *d;
        FakeGpu *g;
        nvmlReturn_t r = fake_nvml_enter(__func__, device, true, &g);

        if (r != NVML_SUCCESS)
                return r;
        if (!u)
                r = NVML_ERROR_INVALID_ARGUMENT;
        else {
                d = fake_nvml_cuda_device(g);
                u->gpu = d ? fake_state_utilization(d, window_ms * 1000000ULL) : 0;
                u->memory = 0;
        }
        fake_nvml_leave();
        return r;
}

nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device);

EXPORT nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device) {
        nvmlReturn_t r = fake_nvml_enter(__func__, NULL, false, NULL);

        if (r != NVML_SUCCESS)
                return r;
        r = NVML_ERROR_NOT_FOUND;
        if (!uuid || !device)
                r = NVML_ERROR_INVALID_ARGUMENT;
        else
                for (unsigned i = 0; i < fake_nvml.n_gpus; i++)
                        if (strcmp(fake_nvml.gpus[i].uuid, uuid) == 0) {
                                *device = fake_gpu_handle(i);
                                r = NVML_SUCCESS;
                                break;
                        }
        fake_nvml_leave();
        return r;
}
