/* SPDX-License-Identifier: Apache-2.0 */

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <strings.h>
#include <time.h>

#include "dbus/error.h"
#include "dbus/server-private.h"
#include "log.h"
#include "macro.h"
#include "time-util.h"

int bus_server_new(sd_event *event, const BusModelOps *ops, void *userdata, BusServer **ret) {
        BusServer *s;

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;

        s->event = sd_event_ref(event);
        s->ops = ops;
        s->userdata = userdata;
        s->usage_reader = bus_usage_read_shared_region;
        s->usage_cache_usec = DEVICE_MEMORY_USED_CACHE_USEC;
        s->state = BUS_STATE_STARTING;
        s->driver_name = strdup("");
        s->node_name = strdup("");
        s->state_reason = strdup("");
        if (!s->driver_name || !s->node_name || !s->state_reason) {
                bus_server_free(s);
                return -ENOMEM;
        }

        *ret = s;
        return 0;
}

BusServer *bus_server_free(BusServer *s) {
        if (!s)
                return NULL;

        bus_polkit_registry_done(&s->polkit);
        sd_event_source_disable_unref(s->emit_source);
        if (s->bus) {
                sd_bus_detach_event(s->bus);
                sd_bus_flush_close_unref(s->bus);
        }
        sd_event_unref(s->event);
        bus_model_done(&s->model);
        free(s->device_dirty);
        free(s->used_cache);
        free(s->list_usage.entries);
        free(s->list_usage.offsets);
        free(s->driver_name);
        free(s->node_name);
        free(s->state_reason);
        return mfree(s);
}

void bus_server_set_usage_reader(BusServer *s, BusUsageReader reader) {
        s->usage_reader = reader ?: bus_usage_read_shared_region;
}

void bus_server_set_usage_cache(BusServer *s, uint64_t usec) {
        s->usage_cache_usec = usec;
        s->n_used_cache = 0;
        s->list_usage.timestamp = 0;
}

sd_bus *bus_server_get_bus(BusServer *s) {
        return s->bus;
}

const BusModel *bus_server_get_model(BusServer *s) {
        return &s->model;
}

static int bus_server_add_objects(BusServer *s) {
        int r;

        r = sd_bus_add_object_vtable(s->bus, NULL, BUS_MANAGER_PATH, BUS_MANAGER_INTERFACE,
                                     manager_vtable, s);
        if (r < 0)
                return log_error_errno(r, "Failed to add the manager object: %m");

        r = sd_bus_add_fallback_vtable(s->bus, NULL, BUS_DEVICE_PREFIX, BUS_DEVICE_INTERFACE,
                                       device_vtable, device_object_find, s);
        if (r < 0)
                return log_error_errno(r, "Failed to add the device objects: %m");
        r = sd_bus_add_node_enumerator(s->bus, NULL, BUS_DEVICE_PREFIX, device_node_enumerator, s);
        if (r < 0)
                return log_error_errno(r, "Failed to add the device enumerator: %m");

        r = sd_bus_add_fallback_vtable(s->bus, NULL, BUS_CLAIM_PREFIX, BUS_CLAIM_INTERFACE,
                                       claim_vtable, claim_object_find, s);
        if (r < 0)
                return log_error_errno(r, "Failed to add the claim objects: %m");
        r = sd_bus_add_node_enumerator(s->bus, NULL, BUS_CLAIM_PREFIX, claim_node_enumerator, s);
        if (r < 0)
                return log_error_errno(r, "Failed to add the claim enumerator: %m");

        return 0;
}

int bus_server_attach(BusServer *s, sd_bus *bus) {
        int r;

        if (s->bus)
                return -EBUSY;
        s->bus = sd_bus_ref(bus);

        r = sd_bus_error_add_map(bus_error_map);
        if (r < 0)
                return r;
        return bus_server_add_objects(s);
}

static int on_request_name(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const sd_bus_error *e = sd_bus_message_get_error(m);
        uint32_t answer = 0;

        if (e) {
                /* The kubelet does not need us on the bus: serve it without D-Bus. */
                log_warning("Could not own %s, D-Bus service disabled: %s", BUS_SERVICE_NAME,
                            e->message ?: e->name);
                return 0;
        }
        if (sd_bus_message_read(m, "u", &answer) < 0 || answer != 1 /* PRIMARY_OWNER */)
                log_warning("Could not own %s (answer %u), D-Bus service disabled", BUS_SERVICE_NAME, answer);
        else
                log_debug("Owning %s", BUS_SERVICE_NAME);
        return 0;
}

int bus_server_connect(BusServer *s) {
        _cleanup_(sd_bus_unrefp) sd_bus *bus = NULL; /* s->bus holds its own reference */
        int r;

        r = sd_bus_open_system_with_description(&bus, "hami-dra-plugin");
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the system bus: %m");

        r = sd_bus_attach_event(bus, s->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the bus to the event loop: %m");

        r = bus_server_attach(s, bus);
        if (r < 0)
                return r;

        /* After the objects exist, so no caller ever sees the name without them. */
        r = sd_bus_request_name_async(bus, NULL, BUS_SERVICE_NAME, 0, on_request_name, s);
        if (r < 0)
                return log_error_errno(r, "Failed to request %s: %m", BUS_SERVICE_NAME);

        return 0;
}

/* ---- batched PropertiesChanged ---- */

int bus_emit_properties_changed(BusServer *s, const char *path, const char *interface,
                                const BusPropertyBit *table, size_t n, unsigned props) {
        char *names[sizeof(unsigned) * CHAR_BIT + 1];   /* one bit each */
        size_t k = 0;

        if (n >= ELEMENTSOF(names))
                return -E2BIG;
        for (size_t i = 0; i < n; i++)
                if (props & table[i].bit)
                        names[k++] = (char *) table[i].name;
        names[k] = NULL;
        if (k == 0)
                return 0;
        return sd_bus_emit_properties_changed_strv(s->bus, path, interface, names);
}

static int on_emit(sd_event_source *source, void *userdata) {
        BusServer *s = userdata;
        unsigned manager = s->manager_dirty;
        bool devices_changed = s->devices_changed;
        DeviceDirty *dirty = TAKE_PTR(s->device_dirty);
        size_t n_dirty = s->n_device_dirty;

        s->manager_dirty = 0;
        s->n_device_dirty = 0;
        s->devices_changed = false;

        if (!s->bus) {
                free(dirty);
                return 0;
        }

        if (manager != 0)
                (void) manager_object_emit_changes(s, manager);
        for (size_t i = 0; i < n_dirty; i++)
                (void) device_object_emit_changes(s, dirty[i].name, dirty[i].props);
        if (devices_changed)
                (void) manager_object_send_devices_changed(s);

        free(dirty);
        return 0;
}

static void bus_server_schedule_emit(BusServer *s) {
        int r;

        if (!s->event)
                return;
        if (!s->emit_source) {
                r = sd_event_add_defer(s->event, &s->emit_source, on_emit, s);
                if (r < 0) {
                        log_warning_errno(r, "Failed to schedule PropertiesChanged, dropping it: %m");
                        return;
                }
                (void) sd_event_source_set_description(s->emit_source, "bus-properties-changed");
        }
        (void) sd_event_source_set_enabled(s->emit_source, SD_EVENT_ONESHOT);
}

void bus_server_manager_dirty(BusServer *s, unsigned props) {
        if (props == 0)
                return;
        s->manager_dirty |= props;
        bus_server_schedule_emit(s);
}

void bus_server_device_dirty(BusServer *s, const char *name, unsigned props) {
        DeviceDirty *a;

        if (props == 0)
                return;
        for (size_t i = 0; i < s->n_device_dirty; i++)
                if (streq(s->device_dirty[i].name, name)) {
                        s->device_dirty[i].props |= props;
                        bus_server_schedule_emit(s);
                        return;
                }

        /* Devices are bounded by BUS_DEVICES_MAX; claims may name gone ones: bound those too. */
        if (s->n_device_dirty >= BUS_DEVICES_MAX * 2)
                return;
        a = reallocarray(s->device_dirty, s->n_device_dirty + 1, sizeof *a);
        if (!a)
                return (void) log_oom();
        s->device_dirty = a;
        a[s->n_device_dirty] = (DeviceDirty) { .props = props };
        snprintf(a[s->n_device_dirty].name, sizeof a->name, "%s", name);
        s->n_device_dirty++;
        bus_server_schedule_emit(s);
}

/* ---- notification entry points ---- */

static int set_string(char **field, const char *value, bool *changed) {
        char *c;

        if (streq(*field, value ?: ""))
                return 0;
        c = strdup(value ?: "");
        if (!c)
                return -ENOMEM;
        free(*field);
        *field = c;
        *changed = true;
        return 0;
}

int bus_server_set_properties(BusServer *s, const BusManagerProps *p) {
        unsigned dirty = 0;
        bool changed = false, ignored = false;
        int r;

        if ((unsigned) p->state >= _BUS_STATE_MAX)
                return -EINVAL;

        /* DriverName and NodeName are constant for the object's life: no signal. */
        r = set_string(&s->driver_name, p->driver_name, &ignored);
        if (r >= 0)
                r = set_string(&s->node_name, p->node_name, &ignored);
        if (r >= 0)
                r = set_string(&s->state_reason, p->state_reason, &changed);
        if (r < 0)
                return r;
        if (changed)
                dirty |= MANAGER_PROP_STATE_REASON;

#define UPDATE(field, bit)                      \
        if (s->field != p->field) {             \
                s->field = p->field;            \
                dirty |= bit;                   \
        }
        UPDATE(state, MANAGER_PROP_STATE);
        UPDATE(api_server_reachable, MANAGER_PROP_API_SERVER_REACHABLE);
        UPDATE(api_server_consumable_capacity, MANAGER_PROP_API_SERVER_CONSUMABLE_CAPACITY);
        UPDATE(kubelet_registered, MANAGER_PROP_KUBELET_REGISTERED);
        UPDATE(slice_generation, MANAGER_PROP_SLICE_GENERATION);
#undef UPDATE

        bus_server_manager_dirty(s, dirty);
        return 0;
}

static unsigned device_diff(const BusDevice *old, const BusDevice *new) {
        unsigned props = 0;

        if (old->health != new->health)
                props |= DEVICE_PROP_HEALTH;
        if (!streq(old->health_reason, new->health_reason))
                props |= DEVICE_PROP_HEALTH_REASON;
        if (old->schedulable != new->schedulable)
                props |= DEVICE_PROP_SCHEDULABLE;
        return props;
}

/* Same set of objects with the same constant properties? */
static bool device_identity_equal(const BusDevice *a, const BusDevice *b) {
        return streq(a->name, b->name) && streq(a->uuid, b->uuid) && streq(a->model, b->model) &&
               a->memory_total == b->memory_total && a->cores == b->cores;
}

static void devices_mark_changes(BusServer *s, const BusDevice *prev, size_t n_prev) {
        const BusModel *m = &s->model;
        bool same_set = n_prev == m->n_devices;

        for (size_t i = 0; same_set && i < m->n_devices; i++)
                same_set = device_identity_equal(&prev[i], &m->devices[i]);

        for (size_t i = 0; i < m->n_devices; i++)
                for (size_t j = 0; j < n_prev; j++)
                        if (streq(prev[j].name, m->devices[i].name)) {
                                bus_server_device_dirty(s, m->devices[i].name,
                                                        device_diff(&prev[j], &m->devices[i]));
                                break;
                        }

        if (!same_set) {
                s->devices_changed = true;
                s->n_used_cache = 0;
                s->list_usage.timestamp = 0;
                bus_server_manager_dirty(s, MANAGER_PROP_N_DEVICES);
        }
}

int bus_server_set_devices(BusServer *s, const BusDevice *devices, size_t n) {
        /* Keep the old list for the diff; put it back if the new one is refused. */
        _cleanup_free_ BusDevice *prev = TAKE_PTR(s->model.devices);
        size_t n_prev = s->model.n_devices;
        int r;

        s->model.n_devices = 0;
        r = bus_model_set_devices(&s->model, devices, n);
        if (r < 0) {
                s->model.devices = TAKE_PTR(prev);
                s->model.n_devices = n_prev;
                return r;
        }

        devices_mark_changes(s, prev, n_prev);
        return 0;
}

static void claim_mark_devices(BusServer *s, const BusClaim *c) {
        for (size_t i = 0; i < c->n_devices; i++)
                if (bus_model_find_device(&s->model, c->devices[i].device))
                        bus_server_device_dirty(s, c->devices[i].device, DEVICE_PROPS_ALLOCATION);
}

int bus_server_claim_prepared(BusServer *s, const BusClaim *c) {
        const BusClaim *stored;
        int r;

        r = bus_model_add_claim(&s->model, c);
        if (r < 0)
                return r;
        stored = bus_model_find_claim(&s->model, c->uid);
        s->list_usage.timestamp = 0;

        claim_mark_devices(s, stored);
        bus_server_manager_dirty(s, MANAGER_PROP_N_CLAIMS);
        if (s->bus)
                (void) manager_object_send_claim_signal(s, "ClaimPrepared", stored);
        return 0;
}

int bus_server_claim_unprepared(BusServer *s, const char *uid) {
        _cleanup_(bus_claim_done) BusClaim c = {};
        int r;

        r = bus_model_remove_claim(&s->model, uid, &c);
        if (r < 0)
                return r;
        s->list_usage.timestamp = 0;

        claim_mark_devices(s, &c);
        bus_server_manager_dirty(s, MANAGER_PROP_N_CLAIMS);
        if (s->bus)
                (void) manager_object_send_claim_signal(s, "ClaimUnprepared", &c);
        return 0;
}

/* ---- live usage ---- */

static uint64_t add_saturating(uint64_t a, uint64_t b) {
        return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Whether a claim device is this GPU: by UUID where both know it, else by name. */
static bool claim_device_is(const BusClaimDevice *cd, const BusDevice *d) {
        if (cd->uuid[0] && d->uuid[0])
                return strcasecmp(cd->uuid, d->uuid) == 0;
        return streq(cd->device, d->name);
}

static const BusDevice *claim_device_gpu(BusServer *s, const BusClaimDevice *cd) {
        for (size_t i = 0; i < s->model.n_devices; i++)
                if (claim_device_is(cd, &s->model.devices[i]))
                        return &s->model.devices[i];
        return NULL;
}

/*
 * The most a claim can have in use on one GPU: its limit, and never more than the GPU
 * has. 0 when neither is known (nothing can be believed).
 */
static uint64_t usage_bound(BusServer *s, const BusClaimDevice *cd) {
        const BusDevice *gpu = claim_device_gpu(s, cd);
        uint64_t bound = gpu && gpu->memory_total > 0 ? gpu->memory_total : UINT64_MAX;

        if (cd->memory_limit > 0)
                bound = MIN(bound, cd->memory_limit);
        return bound == UINT64_MAX ? 0 : bound;
}

static void usage_implausible(BusServer *s, const BusClaim *c, const BusClaimDevice *cd, uint64_t value,
                              uint64_t bound) {
        /* Written inside the container: say it once, count every time. */
        if (s->n_implausible_usage++ == 0)
                log_warning("Ignoring implausible usage in the shared region of claim %s: %" PRIu64 " bytes on %s, "
                            "which allows at most %" PRIu64 " (further cases are only counted)",
                            c->uid, value, cd->device, bound);
        else
                log_debug("Ignoring implausible usage of claim %s on %s: %" PRIu64 " bytes", c->uid, cd->device, value);
}

static uint32_t usage_degraded_flags(uint32_t degraded) {
        return (degraded & SHARED_REGION_DEGRADED_MEMORY_LIMIT ? BUS_USAGE_DEGRADED_MEMORY_LIMIT : 0) |
               (degraded & SHARED_REGION_DEGRADED_SM_LIMIT ? BUS_USAGE_DEGRADED_SM_LIMIT : 0);
}

/* One device of a region read, into the claim device's entry; its reserved bytes, or 0. */
static uint64_t usage_fill_device(BusServer *s, const BusClaim *c, const BusClaimDevice *cd,
                                  const SharedRegionUsage *u, BusClaimDeviceUsage *e) {
        const BusDevice *gpu = claim_device_gpu(s, cd);
        uint32_t i = cd->region_index;
        uint64_t bound, total;

        /* The record names a device the file does not have: the file is not what we made. */
        if (i >= u->n_devices || i >= SHARED_REGION_DEVICES_MAX) {
                e->flags |= BUS_USAGE_REGION_INVALID;
                return 0;
        }
        e->processes = u->n_active;
        e->flags |= usage_degraded_flags(u->degraded);
        if (u->measured_seq[i] != 0) {
                e->sm_used = MIN(u->measured_sm[i], 1000u);
                e->measured_processes = u->measured_procs[i];
        }

        bound = usage_bound(s, cd);
        if (u->used[i] > bound) {
                usage_implausible(s, c, cd, u->used[i], bound);
                e->flags |= BUS_USAGE_MEMORY_IMPLAUSIBLE;
                return 0;
        }
        /* What the driver holds beyond the reservations may pass the limit a little, never the GPU. */
        total = add_saturating(u->used[i], u->footprint_extra[i]);
        if (gpu && gpu->memory_total > 0 && total > gpu->memory_total) {
                usage_implausible(s, c, cd, total, gpu->memory_total);
                e->flags |= BUS_USAGE_MEMORY_IMPLAUSIBLE;
                return u->used[i];
        }
        e->memory_used = total;
        return u->used[i];
}

/*
 * One read of the claim's region, for each of the claim's devices k, from the region
 * device the daemon's record names for it (not from its position): used[k], what its
 * processes reserved (MemoryUsed), and the whole entry of Claim.Usage in ret[k] (may be
 * NULL). Where the file is unreadable or invalid everything is 0 and flagged; an
 * implausible value is 0 and flagged. Returns how many devices were filled.
 */
static size_t claim_read_usage(BusServer *s, const BusClaim *c, uint64_t used[static BUS_CLAIM_DEVICES_MAX],
                               BusClaimDeviceUsage *ret) {
        BusClaimDeviceUsage scratch[BUS_CLAIM_DEVICES_MAX];
        size_t n = MIN(c->n_devices, (size_t) BUS_CLAIM_DEVICES_MAX);
        SharedRegionUsage u = {};
        uint32_t error = 0;
        int r;

        if (!ret)
                ret = scratch;
        memset(used, 0, sizeof(uint64_t) * BUS_CLAIM_DEVICES_MAX);
        if (c->shared_region && n > 0) {
                r = s->usage_reader(c->shared_region, &u);
                if (r < 0) {
                        log_debug_errno(r, "Ignoring the usage of claim %s: %m", c->uid);
                        error = IN_SET(r, -EBADMSG, -EPROTONOSUPPORT) ? BUS_USAGE_REGION_INVALID
                                                                      : BUS_USAGE_REGION_UNREADABLE;
                }
        }
        for (size_t k = 0; k < n; k++) {
                const BusClaimDevice *cd = &c->devices[k];

                ret[k] = (BusClaimDeviceUsage) {
                        .device = cd->device,
                        .memory_limit = cd->memory_limit,
                        .sm_used = BUS_USAGE_SM_UNKNOWN,
                        .sm_limit = cd->cores_limit,
                        .flags = error,
                };
                if (c->shared_region && error == 0)
                        used[k] = usage_fill_device(s, c, cd, &u, &ret[k]);
        }
        return n;
}

size_t bus_server_claim_usage(BusServer *s, const BusClaim *c, BusClaimDeviceUsage ret[static BUS_CLAIM_DEVICES_MAX]) {
        uint64_t used[BUS_CLAIM_DEVICES_MAX];

        return claim_read_usage(s, c, used, ret);
}

int bus_server_list_usage_refresh(BusServer *s) {
        UsageCache *cache = &s->list_usage;
        uint64_t now = now_usec(), used[BUS_CLAIM_DEVICES_MAX];
        size_t n = 0;
        void *p;

        if (cache->timestamp != 0 && now - cache->timestamp < s->usage_cache_usec)
                return 0;

        for (size_t i = 0; i < s->model.n_claims; i++)
                n += MIN(s->model.claims[i].n_devices, (size_t) BUS_CLAIM_DEVICES_MAX);
        p = reallocarray(cache->entries, n ?: 1, sizeof *cache->entries);
        if (!p)
                return -ENOMEM;
        cache->entries = p;
        p = reallocarray(cache->offsets, s->model.n_claims + 1, sizeof *cache->offsets);
        if (!p)
                return -ENOMEM;
        cache->offsets = p;

        cache->offsets[0] = 0;
        for (size_t i = 0; i < s->model.n_claims; i++)
                cache->offsets[i + 1] = cache->offsets[i] +
                                        claim_read_usage(s, &s->model.claims[i], used,
                                                         &cache->entries[cache->offsets[i]]);
        cache->timestamp = now;
        return 0;
}

size_t bus_server_list_usage_get(BusServer *s, const BusClaim *c, const BusClaimDeviceUsage **ret) {
        const UsageCache *cache = &s->list_usage;
        size_t i = (size_t) (c - s->model.claims);

        /* Only after a refresh, for a claim of the model (the cache is dropped when it changes). */
        if (cache->timestamp == 0 || c < s->model.claims || i >= s->model.n_claims) {
                *ret = NULL;
                return 0;
        }
        *ret = &cache->entries[cache->offsets[i]];
        return cache->offsets[i + 1] - cache->offsets[i];
}

uint64_t bus_server_claim_memory_used(BusServer *s, const BusClaim *c) {
        uint64_t used[BUS_CLAIM_DEVICES_MAX], sum = 0;

        claim_read_usage(s, c, used, NULL);
        for (size_t i = 0; i < c->n_devices && i < BUS_CLAIM_DEVICES_MAX; i++)
                sum = add_saturating(sum, used[i]);
        return sum;
}

static bool claim_uses_device(const BusClaim *c, const BusDevice *d) {
        for (size_t i = 0; i < c->n_devices; i++)
                if (claim_device_is(&c->devices[i], d))
                        return true;
        return false;
}

static DeviceUsedCache *used_cache_slot(BusServer *s, const char *name) {
        DeviceUsedCache *a;

        for (size_t i = 0; i < s->n_used_cache; i++)
                if (streq(s->used_cache[i].name, name))
                        return &s->used_cache[i];
        if (s->n_used_cache >= BUS_DEVICES_MAX)
                return NULL;
        a = reallocarray(s->used_cache, s->n_used_cache + 1, sizeof *a);
        if (!a)
                return NULL;
        s->used_cache = a;
        a = &a[s->n_used_cache++];
        *a = (DeviceUsedCache) {};
        snprintf(a->name, sizeof a->name, "%s", name);
        return a;
}

uint64_t bus_server_device_memory_used(BusServer *s, const BusDevice *d) {
        DeviceUsedCache *cache = used_cache_slot(s, d->name);
        uint64_t now = now_usec(), sum = 0;

        if (cache && cache->timestamp != 0 && now - cache->timestamp < s->usage_cache_usec)
                return cache->bytes;

        for (size_t i = 0; i < s->model.n_claims; i++) {
                const BusClaim *c = &s->model.claims[i];
                uint64_t used[BUS_CLAIM_DEVICES_MAX];

                if (!claim_uses_device(c, d))
                        continue;
                claim_read_usage(s, c, used, NULL);
                for (size_t j = 0; j < c->n_devices && j < BUS_CLAIM_DEVICES_MAX; j++)
                        if (claim_device_is(&c->devices[j], d))
                                sum = add_saturating(sum, used[j]);
        }

        if (cache) {
                cache->bytes = sum;
                cache->timestamp = now;
        }
        return sum;
}
