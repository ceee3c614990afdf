/* SPDX-License-Identifier: Apache-2.0 */

/* org.projecthami.Dra1.Claim at /org/projecthami/Dra1/claim/<uid>: lookup, getters, the vtable. */

#include <errno.h>

#include "dbus/error.h"
#include "dbus/server-private.h"
#include "macro.h"

char *claim_object_path(const char *uid) {
        char *p = NULL;

        if (sd_bus_path_encode(BUS_CLAIM_PREFIX, uid, &p) < 0)
                return NULL;
        return p;
}

const BusClaim *claim_from_path(BusServer *s, const char *path) {
        _cleanup_free_ char *uid = NULL;

        if (sd_bus_path_decode(path, BUS_CLAIM_PREFIX, &uid) <= 0)
                return NULL;
        return bus_model_find_claim(&s->model, uid);
}

int claim_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                      void **found, sd_bus_error *error) {
        BusServer *s = userdata;

        if (!claim_from_path(s, path))
                return 0;
        *found = s;
        return 1;
}

int claim_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes,
                          sd_bus_error *error) {
        BusServer *s = userdata;
        char **l;

        l = calloc(s->model.n_claims + 1, sizeof *l);
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < s->model.n_claims; i++) {
                l[i] = claim_object_path(s->model.claims[i].uid);
                if (!l[i]) {
                        strv_free(l);
                        return -ENOMEM;
                }
        }
        *nodes = l;
        return 1;
}

int claim_object_append_devices(sd_bus_message *reply, const BusClaim *c) {
        int r;

        r = sd_bus_message_open_container(reply, 'a', "(stu)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < c->n_devices; i++) {
                r = sd_bus_message_append(reply, "(stu)", c->devices[i].device,
                                          c->devices[i].memory_limit, c->devices[i].cores_limit);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

int claim_object_append_usage(sd_bus_message *reply, const BusClaimDeviceUsage *u, size_t n) {
        int r;

        r = sd_bus_message_open_container(reply, 'a', BUS_CLAIM_DEVICE_USAGE_SIGNATURE);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                r = sd_bus_message_append(reply, BUS_CLAIM_DEVICE_USAGE_SIGNATURE, u[i].device, u[i].memory_used,
                                          u[i].memory_limit, u[i].sm_used, u[i].sm_limit, u[i].processes,
                                          u[i].measured_processes, u[i].flags);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

/* ---- getters ---- */

static int claim_get(BusServer *s, const char *path, const BusClaim **ret, sd_bus_error *error) {
        const BusClaim *c = claim_from_path(s, path);

        if (!c)
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_CLAIM, "Claim %s is gone", path);
        *ret = c;
        return 0;
}

/* A getter returning expr, in which s, c and reply are the server, the claim and the reply. */
#define DEFINE_CLAIM_GETTER_WITH(fn, expr)                                                       \
        static int fn(sd_bus *bus, const char *path, const char *interface,                     \
                      const char *property, sd_bus_message *reply, void *userdata,              \
                      sd_bus_error *error) {                                                    \
                BusServer *s = userdata;                                                        \
                const BusClaim *c = NULL;                                                       \
                int r = claim_get(s, path, &c, error);                                          \
                if (r < 0)                                                                      \
                        return r;                                                               \
                return expr;                                                                    \
        }

#define DEFINE_CLAIM_GETTER(fn, sig, value) \
        DEFINE_CLAIM_GETTER_WITH(fn, sd_bus_message_append(reply, sig, value))

/* Live, like MemoryUsed: one read of the file per Get. */
static int append_usage(BusServer *s, sd_bus_message *reply, const BusClaim *c) {
        BusClaimDeviceUsage u[BUS_CLAIM_DEVICES_MAX];

        return claim_object_append_usage(reply, u, bus_server_claim_usage(s, c, u));
}

DEFINE_CLAIM_GETTER(property_get_uid, "s", c->uid);
DEFINE_CLAIM_GETTER(property_get_namespace, "s", c->namespace_);
DEFINE_CLAIM_GETTER(property_get_name, "s", c->name);
DEFINE_CLAIM_GETTER(property_get_shared_region, "s", c->shared_region ?: "");
DEFINE_CLAIM_GETTER(property_get_prepared_timestamp, "t", c->prepared_usec);
DEFINE_CLAIM_GETTER(property_get_memory_used, "t", bus_server_claim_memory_used(s, c));

DEFINE_CLAIM_GETTER_WITH(property_get_devices, claim_object_append_devices(reply, c));
DEFINE_CLAIM_GETTER_WITH(property_get_usage, append_usage(s, reply, c));

const sd_bus_vtable claim_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("UID", "s", property_get_uid, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Namespace", "s", property_get_namespace, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Name", "s", property_get_name, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Devices", "a(stu)", property_get_devices, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("SharedRegion", "s", property_get_shared_region, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("PreparedTimestamp", "t", property_get_prepared_timestamp, 0,
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("MemoryUsed", "t", property_get_memory_used, 0, 0),
        SD_BUS_PROPERTY("Usage", "a" BUS_CLAIM_DEVICE_USAGE_SIGNATURE, property_get_usage, 0, 0),
        SD_BUS_VTABLE_END,
};
