/* SPDX-License-Identifier: Apache-2.0 */

/*
 * A strict fake libnvidia-ml.so.1: init/shutdown, error strings, system and device
 * queries. It rejects what the real library rejects: calls before nvmlInit
 * (UNINITIALIZED), handles it never gave out and NULL pointers (INVALID_ARGUMENT),
 * buffers too small for the answer (INSUFFICIENT_SIZE).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake-nvml.h"

#define EXPORT __attribute__((visibility("default")))

FakeNvml fake_nvml;
pthread_mutex_t fake_nvml_lock = PTHREAD_MUTEX_INITIALIZER;

nvmlDevice_t fake_gpu_handle(unsigned i) {
        return (nvmlDevice_t) (void *) &fake_nvml.gpus[i];
}

int fake_gpu_index(nvmlDevice_t device) {
        for (unsigned i = 0; i < fake_nvml.n_gpus; i++)
                if (device == fake_gpu_handle(i))
                        return (int) i;
        return -1;
}

const char *fake_gpu_extra(const FakeGpu *g, const char *key) {
        const FakeExtra *extras = g ? g->extras : fake_nvml.extras;
        unsigned n = g ? g->n_extras : fake_nvml.n_extras;

        for (unsigned i = 0; i < n; i++)
                if (strcmp(extras[i].key, key) == 0)
                        return extras[i].value;
        return NULL;
}

static nvmlReturn_t injected(const FakeError *errors, unsigned n, const char *function) {
        for (unsigned i = 0; i < n; i++)
                if (strcmp(errors[i].function, function) == 0)
                        return errors[i].ret;
        return NVML_SUCCESS;
}

nvmlReturn_t fake_nvml_enter(const char *function, nvmlDevice_t device, bool needs_device, FakeGpu **ret_gpu) {
        FakeGpu *g = NULL;
        nvmlReturn_t r;
        int i;

        pthread_mutex_lock(&fake_nvml_lock);
        if (fake_nvml.init_count == 0) {
                r = NVML_ERROR_UNINITIALIZED;
                goto fail;
        }
        if (needs_device) {
                i = fake_gpu_index(device);
                if (i < 0) {
                        r = NVML_ERROR_INVALID_ARGUMENT;
                        goto fail;
                }
                g = &fake_nvml.gpus[i];
                r = injected(g->errors, g->n_errors, function);
        } else
                r = injected(fake_nvml.errors, fake_nvml.n_errors, function);
        if (r != NVML_SUCCESS)
                goto fail;
        if (ret_gpu)
                *ret_gpu = g;
        return NVML_SUCCESS;
fail:
        pthread_mutex_unlock(&fake_nvml_lock);
        return r;
}

void fake_nvml_leave(void) {
        pthread_mutex_unlock(&fake_nvml_lock);
}

static nvmlReturn_t copy_out(char *buf, unsigned length, const char *value) {
        if (strlen(value) + 1 > length)
                return NVML_ERROR_INSUFFICIENT_SIZE;
        memcpy(buf, value, strlen(value) + 1);
        return NVML_SUCCESS;
}

EXPORT const char *nvmlErrorString(nvmlReturn_t result) {
        switch ((int) result) {
        case NVML_SUCCESS: return "Success";
        case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
        case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
        case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
        case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
        case NVML_ERROR_ALREADY_INITIALIZED: return "Already Initialized";
        case NVML_ERROR_NOT_FOUND: return "Not Found";
        case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
        case NVML_ERROR_INSUFFICIENT_POWER: return "Insufficient External Power";
        case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
        case NVML_ERROR_TIMEOUT: return "Timeout";
        case NVML_ERROR_IRQ_ISSUE: return "Interrupt Request Issue";
        case NVML_ERROR_LIBRARY_NOT_FOUND: return "NVML Shared Library Not Found";
        case NVML_ERROR_FUNCTION_NOT_FOUND: return "Function Not Found";
        case NVML_ERROR_CORRUPTED_INFOROM: return "Corrupted infoROM";
        case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
        case NVML_ERROR_RESET_REQUIRED: return "GPU requires restart";
        case NVML_ERROR_OPERATING_SYSTEM: return "The operating system has blocked the request.";
        case NVML_ERROR_LIB_RM_VERSION_MISMATCH: return "RM has detected an NVML/RM version mismatch.";
        case NVML_ERROR_IN_USE: return "In use by another client";
        case NVML_ERROR_MEMORY: return "Insufficient Memory";
        case NVML_ERROR_NO_DATA: return "No data";
        default: return "Unknown Error";
        }
}

EXPORT nvmlReturn_t nvmlInit_v2(void) {
        nvmlReturn_t r = NVML_SUCCESS;

        pthread_mutex_lock(&fake_nvml_lock);
        if (fake_nvml.init_count == 0) {
                FakeNvml f;

                r = fake_nvml_config_load(&f);
                if (r == NVML_SUCCESS)
                        r = f.init_error;
                if (r == NVML_SUCCESS)
                        fake_nvml = f;
        }
        if (r == NVML_SUCCESS)
                fake_nvml.init_count++;
        pthread_mutex_unlock(&fake_nvml_lock);
        return r;
}

EXPORT nvmlReturn_t nvmlShutdown(void) {
        nvmlReturn_t r = NVML_SUCCESS;
        bool last = false;

        pthread_mutex_lock(&fake_nvml_lock);
        if (fake_nvml.init_count == 0)
                r = NVML_ERROR_UNINITIALIZED;
        else
                last = --fake_nvml.init_count == 0;
        pthread_mutex_unlock(&fake_nvml_lock);
        if (last)
                fake_nvml_events_reset();
        return r;
}

EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
        nvmlReturn_t r;

        if ((r = fake_nvml_enter(__func__, NULL, false, NULL)) != NVML_SUCCESS)
                return r;
        r = version ? copy_out(version, length, fake_nvml.driver_version) : NVML_ERROR_INVALID_ARGUMENT;
        fake_nvml_leave();
        return r;
}

static nvmlReturn_t cuda_driver_version(const char *function, int *v) {
        nvmlReturn_t r;

        if ((r = fake_nvml_enter(function, NULL, false, NULL)) != NVML_SUCCESS)
                return r;
        if (v)
                *v = fake_nvml.cuda_driver_version;
        else
                r = NVML_ERROR_INVALID_ARGUMENT;
        fake_nvml_leave();
        return r;
}

EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *v) {
        return cuda_driver_version(__func__, v);
}

EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *v) {
        return cuda_driver_version(__func__, v);
}

EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
        nvmlReturn_t r;

        if ((r = fake_nvml_enter(__func__, NULL, false, NULL)) != NVML_SUCCESS)
                return r;
        if (count)
                *count = fake_nvml.n_gpus;
        else
                r = NVML_ERROR_INVALID_ARGUMENT;
        fake_nvml_leave();
        return r;
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
        nvmlReturn_t r;

        if ((r = fake_nvml_enter(__func__, NULL, false, NULL)) != NVML_SUCCESS)
                return r;
        if (!device || index >= fake_nvml.n_gpus)
                r = NVML_ERROR_INVALID_ARGUMENT;
        else {
                const FakeGpu *g = &fake_nvml.gpus[index];

                r = injected(g->errors, g->n_errors, __func__);
                if (r == NVML_SUCCESS)
                        *device = fake_gpu_handle(index);
        }
        fake_nvml_leave();
        return r;
}

/* The shape of most device queries: checks, then one assignment. */
#define DEVICE_QUERY(device, ptr_ok, body)                                                       \
        do {                                                                                     \
                FakeGpu *g;                                                                      \
                nvmlReturn_t r = fake_nvml_enter(__func__, device, true, &g);                    \
                if (r != NVML_SUCCESS)                                                           \
                        return r;                                                                \
                if (!(ptr_ok))                                                                   \
                        r = NVML_ERROR_INVALID_ARGUMENT;                                         \
                else                                                                             \
                        body;                                                                    \
                fake_nvml_leave();                                                               \
                return r;                                                                        \
        } while (0)

EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
        DEVICE_QUERY(device, uuid, r = copy_out(uuid, length, g->uuid));
}

EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
        DEVICE_QUERY(device, name, r = copy_out(name, length, g->name));
}

EXPORT nvmlReturn_t nvmlDeviceGetBrand(nvmlDevice_t device, nvmlBrandType_t *type) {
        DEVICE_QUERY(device, type, *type = (nvmlBrandType_t) g->brand);
}

EXPORT nvmlReturn_t nvmlDeviceGetArchitecture(nvmlDevice_t device, nvmlDeviceArchitecture_t *arch) {
        DEVICE_QUERY(device, arch, *arch = g->arch);
}

EXPORT nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t device, int *major, int *minor) {
        DEVICE_QUERY(device, major && minor, (*major = g->cc_major, *minor = g->cc_minor));
}

EXPORT nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t device, unsigned int *minor) {
        DEVICE_QUERY(device, minor, *minor = g->minor);
}

static void fill_pci(const FakeGpu *g, nvmlPciInfo_t *pci) {
        unsigned domain = 0, bus = 0, dev = 0, fn = 0;
        const char *id = fake_gpu_extra(g, "pci-device-id");

        (void) sscanf(g->bus_id, "%x:%x:%x.%x", &domain, &bus, &dev, &fn);
        *pci = (nvmlPciInfo_t) {
                .domain = domain,
                .bus = bus,
                .device = dev,
                .pciDeviceId = id ? (unsigned) strtoul(id, NULL, 0) : 0x223610deu,
                .pciSubSystemId = 0x152f10deu,
        };
        snprintf(pci->busIdLegacy, sizeof(pci->busIdLegacy), "%04X:%02X:%02X.%X", domain & 0xffffu, bus, dev, fn);
        snprintf(pci->busId, sizeof(pci->busId), "%.31s", g->bus_id);
}

EXPORT nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci) {
        DEVICE_QUERY(device, pci, fill_pci(g, pci));
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
        DEVICE_QUERY(device, memory,
                     *memory = ((nvmlMemory_t) {
                             .total = g->memory_total,
                             .used = fake_nvml_memory_used(g),
                             .free = g->memory_total - fake_nvml_memory_used(g),
                     }));
}
