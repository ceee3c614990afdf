/* SPDX-License-Identifier: Apache-2.0 */

/* org.projecthami.Dra1.Device at /org/projecthami/Dra1/gpu/<name>: lookup, getters, the vtable. */

#include <errno.h>

#include "dbus/error.h"
#include "dbus/server-private.h"
#include "macro.h"

char *device_object_path(const char *name) {
        char *p = NULL;

        if (sd_bus_path_encode(BUS_DEVICE_PREFIX, name, &p) < 0)
                return NULL;
        return p;
}

const BusDevice *device_from_path(BusServer *s, const char *path) {
        _cleanup_free_ char *name = NULL;

        if (sd_bus_path_decode(path, BUS_DEVICE_PREFIX, &name) <= 0)
                return NULL;
        return bus_model_find_device(&s->model, name);
}

int device_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                       void **found, sd_bus_error *error) {
        BusServer *s = userdata;

        if (!device_from_path(s, path))
                return 0;
        /* The getters look the device up from the path again: userdata stays the server. */
        *found = s;
        return 1;
}

int device_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes,
                           sd_bus_error *error) {
        BusServer *s = userdata;
        char **l;

        l = calloc(s->model.n_devices + 1, sizeof *l);
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < s->model.n_devices; i++) {
                l[i] = device_object_path(s->model.devices[i].name);
                if (!l[i]) {
                        strv_free(l);
                        return -ENOMEM;
                }
        }
        *nodes = l;
        return 1;
}

/* ---- getters ---- */

static int device_get(BusServer *s, const char *path, const BusDevice **ret, sd_bus_error *error) {
        const BusDevice *d = device_from_path(s, path);

        if (!d)
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_DEVICE, "GPU %s is gone", path);
        *ret = d;
        return 0;
}

#define DEFINE_DEVICE_GETTER(fn, sig, expr)                                                      \
        static int fn(sd_bus *bus, const char *path, const char *interface,                     \
                      const char *property, sd_bus_message *reply, void *userdata,              \
                      sd_bus_error *error) {                                                    \
                BusServer *s = userdata;                                                        \
                const BusDevice *d = NULL;                                                      \
                int r = device_get(s, path, &d, error);                                         \
                if (r < 0)                                                                      \
                        return r;                                                               \
                return sd_bus_message_append(reply, sig, expr);                                 \
        }

DEFINE_DEVICE_GETTER(property_get_name, "s", d->name);
DEFINE_DEVICE_GETTER(property_get_uuid, "s", d->uuid);
DEFINE_DEVICE_GETTER(property_get_model, "s", d->model);
DEFINE_DEVICE_GETTER(property_get_memory_total, "t", d->memory_total);
DEFINE_DEVICE_GETTER(property_get_cores, "u", d->cores);
DEFINE_DEVICE_GETTER(property_get_health, "s", bus_health_to_string(d->health));
DEFINE_DEVICE_GETTER(property_get_health_reason, "s", d->health_reason);
DEFINE_DEVICE_GETTER(property_get_schedulable, "b", (int) d->schedulable);
DEFINE_DEVICE_GETTER(property_get_memory_used, "t", bus_server_device_memory_used(s, d));

/* What the claims hold on the device: one walk over the model per property read. */
static BusDeviceUsage device_usage(BusServer *s, const BusDevice *d) {
        BusDeviceUsage u;

        bus_model_device_usage(&s->model, d->name, &u);
        return u;
}

DEFINE_DEVICE_GETTER(property_get_memory_allocated, "t", device_usage(s, d).memory_allocated);
DEFINE_DEVICE_GETTER(property_get_cores_allocated, "u", device_usage(s, d).cores_allocated);

static int property_get_claims(sd_bus *bus, const char *path, const char *interface,
                               const char *property, sd_bus_message *reply, void *userdata,
                               sd_bus_error *error) {
        BusServer *s = userdata;
        const BusDevice *d = NULL;
        const char **uids = NULL;
        int r;

        r = device_get(s, path, &d, error);
        if (r < 0)
                return r;
        r = bus_model_device_claims(&s->model, d->name, &uids);
        if (r < 0)
                return r;
        r = sd_bus_message_append_strv(reply, (char **) uids);
        free(uids);
        return r;
}

/* ---- batched changes ---- */

int device_object_emit_changes(BusServer *s, const char *name, unsigned props) {
        static const BusPropertyBit table[] = {
                { DEVICE_PROP_MEMORY_ALLOCATED, "MemoryAllocated" },
                { DEVICE_PROP_CORES_ALLOCATED, "CoresAllocated" },
                { DEVICE_PROP_CLAIMS, "Claims" },
                { DEVICE_PROP_HEALTH, "Health" },
                { DEVICE_PROP_HEALTH_REASON, "HealthReason" },
                { DEVICE_PROP_SCHEDULABLE, "Schedulable" },
        };
        _cleanup_free_ char *path = NULL;

        /* Gone since it was marked: DevicesChanged tells about that. */
        if (!bus_model_find_device(&s->model, name))
                return 0;

        path = device_object_path(name);
        if (!path)
                return -ENOMEM;
        return bus_emit_properties_changed(s, path, BUS_DEVICE_INTERFACE, table, ELEMENTSOF(table), props);
}

const sd_bus_vtable device_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", property_get_name, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("UUID", "s", property_get_uuid, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Model", "s", property_get_model, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("MemoryTotal", "t", property_get_memory_total, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Cores", "u", property_get_cores, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("MemoryAllocated", "t", property_get_memory_allocated, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("CoresAllocated", "u", property_get_cores_allocated, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MemoryUsed", "t", property_get_memory_used, 0, 0),
        SD_BUS_PROPERTY("Claims", "as", property_get_claims, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Health", "s", property_get_health, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("HealthReason", "s", property_get_health_reason, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Schedulable", "b", property_get_schedulable, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END,
};
