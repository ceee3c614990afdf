/* SPDX-License-Identifier: Apache-2.0 */

#include <errno.h>
#include <stdio.h>

#include "dbus/model.h"
#include "macro.h"
#include "sorted-search.h"

static const char *const bus_state_table[_BUS_STATE_MAX] = {
        [BUS_STATE_STARTING] = "starting",
        [BUS_STATE_READY] = "ready",
        [BUS_STATE_DEGRADED] = "degraded",
        [BUS_STATE_STOPPING] = "stopping",
};

const char *bus_state_to_string(BusState s) {
        if ((unsigned) s >= _BUS_STATE_MAX)
                return "unknown";
        return bus_state_table[s];
}

const char *bus_health_to_string(GpuHealth h) {
        switch (h) {
        case GPU_HEALTH_HEALTHY:
                return "healthy";
        case GPU_HEALTH_UNHEALTHY:
                return "unhealthy";
        default:
                return "unknown";
        }
}

static void *memdup_array(const void *p, size_t n, size_t size) {
        void *q = reallocarray(NULL, n, size);
        if (q)
                memcpy(q, p, n * size);
        return q;
}

static void strcpy_trunc(char *dst, size_t size, const char *src) {
        snprintf(dst, size, "%s", src ?: "");
}

void bus_device_from_gpu(BusDevice *d, const Gpu *g) {
        *d = (BusDevice) {
                .memory_total = g->memory_total,
                .cores = g->cores,
                .health = g->health,
                .schedulable = true,
        };
        strcpy_trunc(d->name, sizeof d->name, g->name);
        strcpy_trunc(d->uuid, sizeof d->uuid, g->uuid);
        strcpy_trunc(d->model, sizeof d->model, g->product_name);
        strcpy_trunc(d->health_reason, sizeof d->health_reason, g->health_reason);
}

void bus_claim_done(BusClaim *c) {
        if (!c)
                return;
        free(c->uid);
        free(c->namespace_);
        free(c->name);
        free(c->shared_region);
        free(c->devices);
        *c = (BusClaim) {};
}

int bus_claim_copy(const BusClaim *src, BusClaim *ret) {
        _cleanup_(bus_claim_done) BusClaim c = {
                .prepared_usec = src->prepared_usec,
                .n_devices = src->n_devices,
        };

        if (strdup_or_null(src->uid, &c.uid) < 0 ||
            strdup_or_null(src->namespace_, &c.namespace_) < 0 ||
            strdup_or_null(src->name, &c.name) < 0 ||
            strdup_or_null(src->shared_region, &c.shared_region) < 0)
                return -ENOMEM;

        if (src->n_devices > 0) {
                c.devices = memdup_array(src->devices, src->n_devices, sizeof *src->devices);
                if (!c.devices)
                        return -ENOMEM;
        }

        *ret = c;
        c = (BusClaim) {};
        return 0;
}

static bool char_is_printable_ascii(char c) {
        return c > 0x20 && c < 0x7f;
}

int bus_uid_validate(const char *uid) {
        size_t n;

        if (isempty(uid))
                return -EINVAL;
        n = strnlen(uid, BUS_UID_MAX + 1);
        if (n > BUS_UID_MAX)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!char_is_printable_ascii(uid[i]))
                        return -EINVAL;
        return 0;
}

static bool char_in_set(char c, const char *extra) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c && strchr(extra, c));
}

static int dns_name_validate(const char *s, size_t max, const char *extra) {
        size_t n;

        if (isempty(s))
                return -EINVAL;
        n = strnlen(s, max + 1);
        if (n > max)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!char_in_set(s[i], extra))
                        return -EINVAL;
        return 0;
}

int bus_device_name_validate(const char *name) {
        size_t n;

        if (isempty(name))
                return -EINVAL;
        n = strnlen(name, GPU_NAME_MAX);
        if (n >= GPU_NAME_MAX)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                char c = name[i];
                if (!((c >= 'A' && c <= 'Z') || char_in_set(c, "._-")))
                        return -EINVAL;
        }
        return 0;
}

int bus_claim_validate(const BusClaim *c) {
        if (bus_uid_validate(c->uid) < 0 ||
            dns_name_validate(c->namespace_, BUS_NAMESPACE_MAX, "-") < 0 ||
            dns_name_validate(c->name, BUS_OBJECT_NAME_MAX, "-.") < 0)
                return -EINVAL;
        if (c->shared_region && strnlen(c->shared_region, BUS_PATH_MAX) >= BUS_PATH_MAX)
                return -EINVAL;
        if (c->n_devices > BUS_CLAIM_DEVICES_MAX || (c->n_devices > 0 && !c->devices))
                return -EINVAL;
        for (size_t i = 0; i < c->n_devices; i++)
                if (bus_device_name_validate(c->devices[i].device) < 0 ||
                    c->devices[i].region_index >= BUS_CLAIM_DEVICES_MAX ||
                    strnlen(c->devices[i].uuid, sizeof(c->devices[i].uuid)) >= sizeof(c->devices[i].uuid))
                        return -EINVAL;
        return 0;
}

void bus_model_done(BusModel *m) {
        for (size_t i = 0; i < m->n_claims; i++)
                bus_claim_done(&m->claims[i]);
        free(m->claims);
        free(m->devices);
        *m = (BusModel) {};
}

const BusDevice *bus_model_find_device(const BusModel *m, const char *name) {
        if (!name)
                return NULL;
        for (size_t i = 0; i < m->n_devices; i++)
                if (streq(m->devices[i].name, name))
                        return &m->devices[i];
        return NULL;
}

/* Index of uid, or of where it would go (*ret_found false). */
static size_t claims_search(const BusModel *m, const char *uid, bool *ret_found) {
        return SORTED_SEARCH_STR(m->claims, m->n_claims, uid, uid, ret_found);
}

const BusClaim *bus_model_find_claim(const BusModel *m, const char *uid) {
        bool found;
        size_t i;

        if (!uid)
                return NULL;
        i = claims_search(m, uid, &found);
        return found ? &m->claims[i] : NULL;
}

int bus_model_set_devices(BusModel *m, const BusDevice *devices, size_t n) {
        BusDevice *copy = NULL;

        if (n > BUS_DEVICES_MAX)
                return -E2BIG;
        for (size_t i = 0; i < n; i++) {
                if (bus_device_name_validate(devices[i].name) < 0)
                        return -EINVAL;
                for (size_t j = 0; j < i; j++)
                        if (streq(devices[i].name, devices[j].name))
                                return -EINVAL;
        }

        if (n > 0) {
                copy = memdup_array(devices, n, sizeof *devices);
                if (!copy)
                        return -ENOMEM;
                /* Strings handed to D-Bus must be terminated whatever the caller filled in. */
                for (size_t i = 0; i < n; i++) {
                        copy[i].uuid[sizeof copy[i].uuid - 1] = 0;
                        copy[i].model[sizeof copy[i].model - 1] = 0;
                        copy[i].health_reason[sizeof copy[i].health_reason - 1] = 0;
                }
        }

        free(m->devices);
        m->devices = copy;
        m->n_devices = n;
        return 0;
}

int bus_model_add_claim(BusModel *m, const BusClaim *c) {
        BusClaim copy;
        bool found;
        size_t i;
        int r;

        r = bus_claim_validate(c);
        if (r < 0)
                return r;

        i = claims_search(m, c->uid, &found);
        if (found)
                return -EEXIST;
        if (m->n_claims >= BUS_CLAIMS_MAX)
                return -E2BIG;

        r = bus_claim_copy(c, &copy);
        if (r < 0)
                return r;

        if (m->n_claims >= m->n_claims_allocated) {
                /* Grow geometrically: thousands of claims must not mean thousands of copies. */
                size_t n = MIN(MAX(m->n_claims_allocated * 2, (size_t) 16), (size_t) BUS_CLAIMS_MAX);
                BusClaim *grown = reallocarray(m->claims, n, sizeof *grown);
                if (!grown) {
                        bus_claim_done(&copy);
                        return -ENOMEM;
                }
                m->claims = grown;
                m->n_claims_allocated = n;
        }
        BusClaim *a = m->claims;
        memmove(a + i + 1, a + i, (m->n_claims - i) * sizeof *a);
        a[i] = copy;
        m->n_claims++;
        return 0;
}

int bus_model_remove_claim(BusModel *m, const char *uid, BusClaim *ret) {
        bool found;
        size_t i;

        if (!uid)
                return -ENOENT;
        i = claims_search(m, uid, &found);
        if (!found)
                return -ENOENT;

        if (ret)
                *ret = m->claims[i];
        else
                bus_claim_done(&m->claims[i]);

        memmove(m->claims + i, m->claims + i + 1, (m->n_claims - i - 1) * sizeof *m->claims);
        m->n_claims--;
        return 0;
}

static const BusClaimDevice *claim_find_device(const BusClaim *c, const char *device) {
        for (size_t i = 0; i < c->n_devices; i++)
                if (streq(c->devices[i].device, device))
                        return &c->devices[i];
        return NULL;
}

static uint64_t add_u64_saturating(uint64_t a, uint64_t b) {
        return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint32_t add_u32_saturating(uint32_t a, uint32_t b) {
        return a > UINT32_MAX - b ? UINT32_MAX : a + b;
}

void bus_model_device_usage(const BusModel *m, const char *device, BusDeviceUsage *ret) {
        BusDeviceUsage u = {};

        for (size_t i = 0; i < m->n_claims; i++) {
                const BusClaim *c = &m->claims[i];
                bool uses = false;

                /* One claim may hold several shares of the same GPU (one per request):
                 * each counts. Saturate: limits come from claims we did not write. */
                for (size_t j = 0; j < c->n_devices; j++) {
                        if (!streq(c->devices[j].device, device))
                                continue;
                        u.memory_allocated = add_u64_saturating(u.memory_allocated, c->devices[j].memory_limit);
                        u.cores_allocated = add_u32_saturating(u.cores_allocated, c->devices[j].cores_limit);
                        uses = true;
                }
                if (uses)
                        u.n_claims++;
        }
        *ret = u;
}

int bus_model_device_claims(const BusModel *m, const char *device, const char ***ret) {
        BusDeviceUsage u;
        const char **l;
        size_t k = 0;

        bus_model_device_usage(m, device, &u);
        l = calloc(u.n_claims + 1, sizeof *l);
        if (!l)
                return -ENOMEM;
        /* Claims are kept sorted by uid, so the list comes out sorted. */
        for (size_t i = 0; i < m->n_claims; i++)
                if (claim_find_device(&m->claims[i], device))
                        l[k++] = m->claims[i].uid;
        *ret = l;
        return 0;
}
