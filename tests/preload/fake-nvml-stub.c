/* SPDX-License-Identifier: Apache-2.0 */

/*
 * TEMPORARY: the minimal device enumeration of a fake NVML, until the fake NVML of
 * tests/fakes/nvml/ (GPU discovery) lands; then nvml-usage.c goes into that library and
 * this file goes away.
 */

#include "cuda-abi.h"
#include "fake-cuda-state.h"

#define _public_ __attribute__((visibility("default")))

struct nvmlDevice_st {
        unsigned index;
};

static struct nvmlDevice_st devices[FAKE_DEVICES_MAX];
static int inits;

_public_ NvmlReturn nvmlInit_v2(void) {
        if (!fake_state_get())
                return VG_NVML_ERROR_NOT_SUPPORTED;
        for (unsigned i = 0; i < FAKE_DEVICES_MAX; i++)
                devices[i].index = i;
        inits++;
        return VG_NVML_SUCCESS;
}

_public_ NvmlReturn nvmlShutdown(void) {
        if (inits == 0)
                return VG_NVML_ERROR_UNINITIALIZED;
        inits--;
        return VG_NVML_SUCCESS;
}

_public_ NvmlReturn nvmlDeviceGetCount_v2(unsigned int *count) {
        if (inits == 0)
                return VG_NVML_ERROR_UNINITIALIZED;
        if (!count)
                return VG_NVML_ERROR_INVALID_ARGUMENT;
        *count = fake_state_get()->n_devices;
        return VG_NVML_SUCCESS;
}

_public_ NvmlReturn nvmlDeviceGetHandleByIndex_v2(unsigned int index, NvmlDevice *device) {
        if (inits == 0)
                return VG_NVML_ERROR_UNINITIALIZED;
        if (!device || index >= fake_state_get()->n_devices)
                return VG_NVML_ERROR_INVALID_ARGUMENT;
        *device = &devices[index];
        return VG_NVML_SUCCESS;
}

_public_ NvmlReturn nvmlDeviceGetIndex(NvmlDevice device, unsigned int *index) {
        if (inits == 0)
                return VG_NVML_ERROR_UNINITIALIZED;
        if (!index || device < devices || device >= devices + FAKE_DEVICES_MAX)
                return VG_NVML_ERROR_INVALID_ARGUMENT;
        *index = device->index;
        return VG_NVML_SUCCESS;
}
