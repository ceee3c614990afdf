/* SPDX-License-Identifier: Apache-2.0 */

/* The fake's description file (format in fake-nvml.h). Test data, but still checked. */

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake-nvml.h"

static const struct {
        const char *name;
        int value;
} return_names[] = {
        { "SUCCESS", NVML_SUCCESS },
        { "UNINITIALIZED", NVML_ERROR_UNINITIALIZED },
        { "INVALID_ARGUMENT", NVML_ERROR_INVALID_ARGUMENT },
        { "NOT_SUPPORTED", NVML_ERROR_NOT_SUPPORTED },
        { "NO_PERMISSION", NVML_ERROR_NO_PERMISSION },
        { "ALREADY_INITIALIZED", NVML_ERROR_ALREADY_INITIALIZED },
        { "NOT_FOUND", NVML_ERROR_NOT_FOUND },
        { "INSUFFICIENT_SIZE", NVML_ERROR_INSUFFICIENT_SIZE },
        { "INSUFFICIENT_POWER", NVML_ERROR_INSUFFICIENT_POWER },
        { "DRIVER_NOT_LOADED", NVML_ERROR_DRIVER_NOT_LOADED },
        { "TIMEOUT", NVML_ERROR_TIMEOUT },
        { "IRQ_ISSUE", NVML_ERROR_IRQ_ISSUE },
        { "LIBRARY_NOT_FOUND", NVML_ERROR_LIBRARY_NOT_FOUND },
        { "FUNCTION_NOT_FOUND", NVML_ERROR_FUNCTION_NOT_FOUND },
        { "CORRUPTED_INFOROM", NVML_ERROR_CORRUPTED_INFOROM },
        { "GPU_IS_LOST", NVML_ERROR_GPU_IS_LOST },
        { "RESET_REQUIRED", NVML_ERROR_RESET_REQUIRED },
        { "OPERATING_SYSTEM", NVML_ERROR_OPERATING_SYSTEM },
        { "LIB_RM_VERSION_MISMATCH", NVML_ERROR_LIB_RM_VERSION_MISMATCH },
        { "IN_USE", NVML_ERROR_IN_USE },
        { "MEMORY", NVML_ERROR_MEMORY },
        { "NO_DATA", NVML_ERROR_NO_DATA },
        { "UNKNOWN", NVML_ERROR_UNKNOWN },
};

typedef struct NamedValue {
        const char *name;
        unsigned value;
} NamedValue;

static const NamedValue brand_names[] = {
        { "UNKNOWN", NVML_BRAND_UNKNOWN },   { "QUADRO", NVML_BRAND_QUADRO },
        { "TESLA", NVML_BRAND_TESLA },       { "NVS", NVML_BRAND_NVS },
        { "GRID", NVML_BRAND_GRID },         { "GEFORCE", NVML_BRAND_GEFORCE },
        { "TITAN", NVML_BRAND_TITAN },       { "NVIDIA_VAPPS", NVML_BRAND_NVIDIA_VAPPS },
        { "NVIDIA_VPC", NVML_BRAND_NVIDIA_VPC }, { "NVIDIA_VCS", NVML_BRAND_NVIDIA_VCS },
        { "NVIDIA_VWS", NVML_BRAND_NVIDIA_VWS }, { "NVIDIA_CLOUD_GAMING", NVML_BRAND_NVIDIA_CLOUD_GAMING },
        { "QUADRO_RTX", NVML_BRAND_QUADRO_RTX }, { "NVIDIA_RTX", NVML_BRAND_NVIDIA_RTX },
        { "NVIDIA", NVML_BRAND_NVIDIA },     { "GEFORCE_RTX", NVML_BRAND_GEFORCE_RTX },
        { "TITAN_RTX", NVML_BRAND_TITAN_RTX },
};

static const NamedValue arch_names[] = {
        { "KEPLER", NVML_DEVICE_ARCH_KEPLER },   { "MAXWELL", NVML_DEVICE_ARCH_MAXWELL },
        { "PASCAL", NVML_DEVICE_ARCH_PASCAL },   { "VOLTA", NVML_DEVICE_ARCH_VOLTA },
        { "TURING", NVML_DEVICE_ARCH_TURING },   { "AMPERE", NVML_DEVICE_ARCH_AMPERE },
        { "ADA", NVML_DEVICE_ARCH_ADA },         { "HOPPER", NVML_DEVICE_ARCH_HOPPER },
        { "BLACKWELL", NVML_DEVICE_ARCH_BLACKWELL }, { "UNKNOWN", NVML_DEVICE_ARCH_UNKNOWN },
};

int fake_nvml_return_from_string(const char *s) {
        char *end;
        long v;

        if (strncmp(s, "NVML_ERROR_", 11) == 0)
                s += 11;
        for (size_t i = 0; i < sizeof(return_names) / sizeof(return_names[0]); i++)
                if (strcmp(s, return_names[i].name) == 0)
                        return return_names[i].value;
        errno = 0;
        v = strtol(s, &end, 10);
        if (errno != 0 || end == s || *end != '\0' || v < 0 || v > 999)
                return -1;
        return (int) v;
}

static bool parse_named(const char *s, const NamedValue *t, size_t n, unsigned *ret) {
        unsigned long long v;
        char *end;

        for (size_t i = 0; i < n; i++)
                if (strcmp(s, t[i].name) == 0) {
                        *ret = t[i].value;
                        return true;
                }
        errno = 0;
        v = strtoull(s, &end, 0);
        if (errno != 0 || end == s || *end != '\0' || v > 0xffffffffULL)
                return false;
        *ret = (unsigned) v;
        return true;
}

static bool parse_ull(const char *s, unsigned long long *ret) {
        char *end;

        errno = 0;
        *ret = strtoull(s, &end, 0);
        return errno == 0 && end != s && *end == '\0';
}

static bool copy_string(char *dst, const char *src) {
        if (strlen(src) >= FAKE_NVML_STRING_MAX)
                return false;
        strcpy(dst, src);
        return true;
}

static bool add_error(FakeError *errors, unsigned *n, const char *value) {
        char function[64], ret[64];
        int r;

        if (*n >= FAKE_NVML_ERRORS_MAX || sscanf(value, "%63s %63s", function, ret) != 2)
                return false;
        r = fake_nvml_return_from_string(ret);
        if (r < 0)
                return false;
        snprintf(errors[*n].function, sizeof(errors[*n].function), "%s", function);
        errors[*n].ret = (nvmlReturn_t) r;
        (*n)++;
        return true;
}

static bool add_extra(FakeExtra *extras, unsigned *n, const char *key, const char *value) {
        if (*n >= FAKE_NVML_EXTRAS_MAX || strlen(key) >= sizeof(extras[0].key) ||
            strlen(value) >= sizeof(extras[0].value))
                return false;
        strcpy(extras[*n].key, key);
        strcpy(extras[*n].value, value);
        (*n)++;
        return true;
}

static bool parse_system_key(FakeNvml *f, const char *key, const char *value) {
        unsigned long long v;
        int r;

        if (strcmp(key, "driver-version") == 0)
                return copy_string(f->driver_version, value);
        if (strcmp(key, "cuda-driver-version") == 0) {
                if (!parse_ull(value, &v) || v > 1000000)
                        return false;
                f->cuda_driver_version = (int) v;
                return true;
        }
        if (strcmp(key, "init-error") == 0) {
                r = fake_nvml_return_from_string(value);
                f->init_error = (nvmlReturn_t) r;
                return r >= 0;
        }
        if (strcmp(key, "error") == 0)
                return add_error(f->errors, &f->n_errors, value);
        return add_extra(f->extras, &f->n_extras, key, value);
}

static bool parse_gpu_key(FakeGpu *g, const char *key, const char *value) {
        unsigned long long v;

        if (strcmp(key, "uuid") == 0)
                return copy_string(g->uuid, value);
        if (strcmp(key, "name") == 0)
                return copy_string(g->name, value);
        if (strcmp(key, "busid") == 0)
                return copy_string(g->bus_id, value);
        if (strcmp(key, "brand") == 0)
                return parse_named(value, brand_names, sizeof(brand_names) / sizeof(brand_names[0]), &g->brand);
        if (strcmp(key, "arch") == 0)
                return parse_named(value, arch_names, sizeof(arch_names) / sizeof(arch_names[0]), &g->arch);
        if (strcmp(key, "cc") == 0)
                return sscanf(value, "%d.%d", &g->cc_major, &g->cc_minor) == 2;
        if (strcmp(key, "minor") == 0) {
                if (!parse_ull(value, &v) || v > 0xffffffffULL)
                        return false;
                g->minor = (unsigned) v;
                return true;
        }
        if (strcmp(key, "memory") == 0)
                return parse_ull(value, &g->memory_total);
        if (strcmp(key, "memory-used") == 0)
                return parse_ull(value, &g->memory_used);
        if (strcmp(key, "events") == 0)
                return parse_ull(value, &g->supported_events);
        if (strcmp(key, "error") == 0)
                return add_error(g->errors, &g->n_errors, value);
        return add_extra(g->extras, &g->n_extras, key, value);
}

static void gpu_defaults(FakeGpu *g, unsigned index) {
        *g = (FakeGpu) {
                .brand = NVML_BRAND_NVIDIA,
                .arch = NVML_DEVICE_ARCH_AMPERE,
                .cc_major = 8,
                .cc_minor = 6,
                .minor = index,
                .memory_total = 23028ULL << 20,
                .supported_events = nvmlEventTypeXidCriticalError | nvmlEventTypeDoubleBitEccError |
                                    nvmlEventTypeSingleBitEccError,
        };
        snprintf(g->uuid, sizeof(g->uuid), "GPU-00000000-0000-0000-0000-%012x", index);
        snprintf(g->name, sizeof(g->name), "NVIDIA A10");
        snprintf(g->bus_id, sizeof(g->bus_id), "00000000:%02X:00.0", 0x10 + index);
}

static char *strip(char *s) {
        char *e;

        while (isspace((unsigned char) *s))
                s++;
        e = s + strlen(s);
        while (e > s && isspace((unsigned char) e[-1]))
                *--e = '\0';
        return s;
}

static bool parse_line(FakeNvml *f, char *line) {
        char *key, *value;

        line = strip(line);
        if (*line == '\0' || *line == '#')
                return true;
        key = line;
        value = line + strcspn(line, " \t");
        if (*value != '\0')
                *value++ = '\0';
        value = strip(value);

        if (strcmp(key, "gpu") == 0) {
                if (f->n_gpus >= FAKE_NVML_GPUS_MAX || *value != '\0')
                        return false;
                gpu_defaults(&f->gpus[f->n_gpus], f->n_gpus);
                f->n_gpus++;
                return true;
        }
        if (f->n_gpus == 0)
                return parse_system_key(f, key, value);
        return parse_gpu_key(&f->gpus[f->n_gpus - 1], key, value);
}

nvmlReturn_t fake_nvml_config_load(FakeNvml *ret) {
        const char *path = getenv("FAKE_NVML_CONFIG");
        char line[512];
        unsigned lineno = 0;
        FakeNvml *f;
        FILE *file;

        f = calloc(1, sizeof(FakeNvml));
        if (!f)
                return NVML_ERROR_MEMORY;
        snprintf(f->driver_version, sizeof(f->driver_version), "550.144.03");
        f->cuda_driver_version = 12040;

        if (!path) {
                fprintf(stderr, "fake-nvml: FAKE_NVML_CONFIG is not set: no GPUs.\n");
                goto done;
        }
        file = fopen(path, "re");
        if (!file) {
                fprintf(stderr, "fake-nvml: %s: %s\n", path, strerror(errno));
                free(f);
                return NVML_ERROR_UNKNOWN;
        }
        while (fgets(line, sizeof(line), file)) {
                lineno++;
                if (!parse_line(f, line)) {
                        fprintf(stderr, "fake-nvml: %s:%u: cannot parse this line\n", path, lineno);
                        fclose(file);
                        free(f);
                        return NVML_ERROR_UNKNOWN;
                }
        }
        fclose(file);
done:
        *ret = *f;
        free(f);
        return NVML_SUCCESS;
}
