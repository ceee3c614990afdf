/* SPDX-License-Identifier: Apache-2.0 */

#include <ctype.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu.h"
#include "macro.h"

#define VERSION_COMPONENTS_MAX 3
#define VERSION_COMPONENT_DIGITS_MAX 9 /* fits an int: no overflow to worry about */

static int snprintf_ok(char *out, size_t size, const char *format, ...) _printf_(3, 4);
static int snprintf_ok(char *out, size_t size, const char *format, ...) {
        char buf[128];
        va_list ap;
        int n;

        va_start(ap, format);
        n = vsnprintf(buf, sizeof(buf), format, ap);
        va_end(ap);
        if (n < 0 || (size_t) n >= sizeof(buf))
                return -EINVAL;
        if ((size_t) n >= size)
                return -ENOBUFS;
        memcpy(out, buf, (size_t) n + 1);
        return 0;
}

int version_to_semver(const char *in, char *out, size_t size) {
        unsigned long parts[VERSION_COMPONENTS_MAX] = {};
        size_t n = 0;
        const char *p = in;

        if (isempty(in) || !out)
                return -EINVAL;

        for (;;) {
                size_t digits = 0;
                unsigned long v = 0;

                if (n >= VERSION_COMPONENTS_MAX)
                        return -EINVAL;
                while (*p >= '0' && *p <= '9') {
                        if (++digits > VERSION_COMPONENT_DIGITS_MAX)
                                return -EINVAL;
                        v = v * 10 + (unsigned long) (*p - '0'); /* leading zeros vanish here */
                        p++;
                }
                if (digits == 0)
                        return -EINVAL;
                parts[n++] = v;
                if (*p == '\0')
                        break;
                if (*p != '.')
                        return -EINVAL;
                p++;
        }

        return snprintf_ok(out, size, "%lu.%lu.%lu", parts[0], parts[1], parts[2]);
}

int cuda_version_to_semver(int version, char *out, size_t size) {
        if (version <= 0 || !out)
                return -EINVAL;
        return snprintf_ok(out, size, "%d.%d.0", version / 1000, (version % 1000) / 10);
}

int compute_capability_to_semver(int major, int minor, char *out, size_t size) {
        if (major < 0 || minor < 0 || !out)
                return -EINVAL;
        return snprintf_ok(out, size, "%d.%d.0", major, minor);
}

static bool hex_run(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!isxdigit((unsigned char) s[i]))
                        return false;
        return true;
}

int pci_bus_id_normalize(const char *in, char *out, size_t size) {
        char buf[GPU_STRING_MAX];
        size_t len, domain_len;

        if (!in || !out)
                return -EINVAL;
        len = strlen(in);
        /* domain:bus:device.function = D..D:BB:DD.F with a 4 or 8 digit domain */
        if (len == 12)
                domain_len = 4;
        else if (len == 16)
                domain_len = 8;
        else
                return -EINVAL;
        if (!hex_run(in, domain_len) || in[domain_len] != ':' ||
            !hex_run(in + domain_len + 1, 2) || in[domain_len + 3] != ':' ||
            !hex_run(in + domain_len + 4, 2) || in[domain_len + 6] != '.' ||
            !hex_run(in + domain_len + 7, 1))
                return -EINVAL;

        /* NVML prints 8 domain digits; sysfs and everyone else 4 when the top ones are zero. */
        if (domain_len == 8 && strncmp(in, "0000", 4) == 0)
                in += 4, len -= 4;
        if (len >= size)
                return -ENOBUFS;
        for (size_t i = 0; i <= len; i++)
                buf[i] = (char) tolower((unsigned char) in[i]);
        memcpy(out, buf, len + 1);
        return 0;
}

int gpu_name_from_minor(unsigned minor, char *out, size_t size) {
        return snprintf_ok(out, size, "hami-gpu-%u", minor);
}

const char *gpu_health_to_string(GpuHealth h) {
        switch (h) {
        case GPU_HEALTH_HEALTHY:
                return "healthy";
        case GPU_HEALTH_UNHEALTHY:
                return "unhealthy";
        case GPU_HEALTH_UNKNOWN:
        default:
                return "unknown";
        }
}

void gpu_list_done(GpuList *l) {
        if (!l)
                return;
        free(l->gpus);
        free(l->problems);
        *l = (GpuList) {};
}

int gpu_list_copy(const GpuList *src, GpuList *ret) {
        _cleanup_free_ Gpu *gpus = NULL;
        _cleanup_free_ GpuProblem *problems = NULL;

        if (!src || !ret)
                return -EINVAL;
        if (src->n_gpus > 0) {
                gpus = calloc(src->n_gpus, sizeof(Gpu));
                if (!gpus)
                        return -ENOMEM;
                memcpy(gpus, src->gpus, src->n_gpus * sizeof(Gpu));
        }
        if (src->n_problems > 0) {
                problems = calloc(src->n_problems, sizeof(GpuProblem));
                if (!problems)
                        return -ENOMEM;
                memcpy(problems, src->problems, src->n_problems * sizeof(GpuProblem));
        }

        *ret = (GpuList) {
                .gpus = TAKE_PTR(gpus),
                .n_gpus = src->n_gpus,
                .problems = TAKE_PTR(problems),
                .n_problems = src->n_problems,
        };
        return 0;
}

static bool gpu_attributes_equal(const Gpu *a, const Gpu *b) {
        /* Field by field: bytes after a string's NUL are not part of it. */
        return streq(a->name, b->name) &&
                streq(a->uuid, b->uuid) &&
                streq(a->product_name, b->product_name) &&
                streq(a->brand, b->brand) &&
                streq(a->architecture, b->architecture) &&
                streq(a->cuda_compute_capability, b->cuda_compute_capability) &&
                streq(a->driver_version, b->driver_version) &&
                streq(a->cuda_driver_version, b->cuda_driver_version) &&
                a->minor == b->minor &&
                streq(a->pcie_bus_id, b->pcie_bus_id) &&
                streq(a->pcie_root, b->pcie_root) &&
                a->memory_total == b->memory_total &&
                a->cores == b->cores;
}

bool gpu_list_equal(const GpuList *a, const GpuList *b) {
        if (!a || !b)
                return a == b;
        if (a->n_gpus != b->n_gpus)
                return false;
        for (size_t i = 0; i < a->n_gpus; i++)
                if (!gpu_attributes_equal(&a->gpus[i], &b->gpus[i]))
                        return false;
        return true;
}

const Gpu *gpu_list_find(const GpuList *l, const char *name) {
        if (!l || !name)
                return NULL;
        for (size_t i = 0; i < l->n_gpus; i++)
                if (streq(l->gpus[i].name, name))
                        return &l->gpus[i];
        return NULL;
}

typedef struct PciAddress {
        uint64_t domain;
        unsigned bus, device, function;
} PciAddress;

static bool pci_address_parse(const char *s, PciAddress *ret) {
        PciAddress a;
        int consumed = 0;

        if (sscanf(s, "%" SCNx64 ":%x:%x.%x%n", &a.domain, &a.bus, &a.device, &a.function, &consumed) != 4 ||
            s[consumed] != '\0')
                return false;
        *ret = a;
        return true;
}

static int cmp_u64(uint64_t a, uint64_t b) {
        return a < b ? -1 : a > b ? 1 : 0;
}

static int gpu_compare(const void *x, const void *y) {
        const Gpu *a = x, *b = y;
        PciAddress pa, pb;
        int r;

        /* Numerically when both parse, so "0000:09:00.0" < "0000:0a:00.0" < "0001:00:00.0". */
        if (pci_address_parse(a->pcie_bus_id, &pa) && pci_address_parse(b->pcie_bus_id, &pb)) {
                if ((r = cmp_u64(pa.domain, pb.domain)) != 0 ||
                    (r = cmp_u64(pa.bus, pb.bus)) != 0 ||
                    (r = cmp_u64(pa.device, pb.device)) != 0 ||
                    (r = cmp_u64(pa.function, pb.function)) != 0)
                        return r;
        } else if ((r = strcmp(a->pcie_bus_id, b->pcie_bus_id)) != 0)
                return r;

        if ((r = cmp_u64(a->minor, b->minor)) != 0)
                return r;
        /* A total order, so the result never depends on the input order. */
        if ((r = strcmp(a->name, b->name)) != 0)
                return r;
        return strcmp(a->uuid, b->uuid);
}

void gpu_list_sort(GpuList *l) {
        if (!l || l->n_gpus < 2)
                return;
        qsort(l->gpus, l->n_gpus, sizeof(Gpu), gpu_compare);
}
