/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The fake NVML's usage queries: memory and utilization of the fake GPUs, read from the
 * state the fake libcuda.so.1 keeps (tests/fakes/cuda/fake-cuda-state.h). Compiled into
 * the fake libnvidia-ml.so.1; the device handle is mapped to its index with the fake's
 * own nvmlDeviceGetIndex().
 *
 * FAKE_NVML_UTIL_WINDOW_MS (250): the sample period utilization is averaged over.
 */

#include <stdlib.h>

#include "cuda-abi.h"
#include "fake-cuda-state.h"

#define _public_ __attribute__((visibility("default")))

NvmlReturn nvmlDeviceGetIndex(NvmlDevice device, unsigned int *index);

static FakeDevice *device_of(NvmlDevice device) {
        FakeState *s = fake_state_get();
        unsigned idx;

        if (!s || nvmlDeviceGetIndex(device, &idx) != VG_NVML_SUCCESS || idx >= s->n_devices)
                return NULL;
        return &s->devices[idx];
}

_public_ NvmlReturn nvmlDeviceGetMemoryInfo(NvmlDevice device, NvmlMemory *memory) {
        FakeDevice *d = device_of(device);
        uint64_t used;

        if (!d || !memory)
                return VG_NVML_ERROR_INVALID_ARGUMENT;
        used = __atomic_load_n(&d->used_memory, __ATOMIC_RELAXED);
        *memory = (NvmlMemory) { .total = d->total_memory, .used = used, .free = d->total_memory - used };
        return VG_NVML_SUCCESS;
}

_public_ NvmlReturn nvmlDeviceGetMemoryInfo_v2(NvmlDevice device, NvmlMemoryV2 *memory) {
        FakeDevice *d = device_of(device);
        uint64_t used;

        if (!d || !memory)
                return VG_NVML_ERROR_INVALID_ARGUMENT;
        if (memory->version != VG_NVML_MEMORY_V2)
                return VG_NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
        used = __atomic_load_n(&d->used_memory, __ATOMIC_RELAXED);
        memory->total = d->total_memory;
        memory->reserved = 0;
        memory->used = used;
        memory->free = d->total_memory - used;
        return VG_NVML_SUCCESS;
}

_public_ NvmlReturn nvmlDeviceGetUtilizationRates(NvmlDevice device, NvmlUtilization *u) {
        FakeDevice *d = device_of(device);
        const char *w = getenv("FAKE_NVML_UTIL_WINDOW_MS");
        uint64_t window_ms = w && *w ? strtoull(w, NULL, 10) : 250;

        if (!d || !u)
                return VG_NVML_ERROR_INVALID_ARGUMENT;
        u->gpu = fake_state_utilization(d, window_ms * 1000000ULL);
        u->memory = 0;
        return VG_NVML_SUCCESS;
}
