/* SPDX-License-Identifier: Apache-2.0 */

/* org.projecthami.Dra1.Manager at /org/projecthami/Dra1: getters, methods, the vtable. */

#include <errno.h>

#include "config.h"
#include "dbus/error.h"
#include "dbus/names.h"
#include "dbus/server-private.h"
#include "log.h"
#include "macro.h"

/* ---- getters ---- */

static int property_get_version(sd_bus *bus, const char *path, const char *interface,
                                const char *property, sd_bus_message *reply, void *userdata,
                                sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", PACKAGE_VERSION);
}

static int property_get_state(sd_bus *bus, const char *path, const char *interface,
                              const char *property, sd_bus_message *reply, void *userdata,
                              sd_bus_error *error) {
        BusServer *s = userdata;
        return sd_bus_message_append(reply, "s", bus_state_to_string(s->state));
}

static int property_get_n_devices(sd_bus *bus, const char *path, const char *interface,
                                  const char *property, sd_bus_message *reply, void *userdata,
                                  sd_bus_error *error) {
        BusServer *s = userdata;
        return sd_bus_message_append(reply, "u", (uint32_t) s->model.n_devices);
}

static int property_get_n_claims(sd_bus *bus, const char *path, const char *interface,
                                 const char *property, sd_bus_message *reply, void *userdata,
                                 sd_bus_error *error) {
        BusServer *s = userdata;
        return sd_bus_message_append(reply, "u", (uint32_t) s->model.n_claims);
}

/* sd_bus_property_get_bool() wants an int behind the pointer; our fields are bool. */
static int property_get_bool(sd_bus *bus, const char *path, const char *interface,
                             const char *property, sd_bus_message *reply, void *userdata,
                             sd_bus_error *error) {
        const bool *b = userdata;
        return sd_bus_message_append(reply, "b", (int) *b);
}

/* ---- methods ---- */

static int append_device(BusServer *s, sd_bus_message *reply, const BusDevice *d) {
        _cleanup_free_ char *path = device_object_path(d->name);
        BusDeviceUsage u;

        if (!path)
                return -ENOMEM;
        bus_model_device_usage(&s->model, d->name, &u);
        return sd_bus_message_append(reply, "(osssttuusbu)", path, d->name, d->uuid, d->model,
                                     d->memory_total, u.memory_allocated, d->cores,
                                     u.cores_allocated, bus_health_to_string(d->health),
                                     (int) d->schedulable, (uint32_t) u.n_claims);
}

static int method_list_devices(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        BusServer *s = userdata;
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(osssttuusbu)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < s->model.n_devices; i++) {
                r = append_device(s, reply, &s->model.devices[i]);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int append_claim(BusServer *s, sd_bus_message *reply, const BusClaim *c) {
        _cleanup_free_ char *path = claim_object_path(c->uid);
        int r;

        if (!path)
                return -ENOMEM;

        /* Most claims hold one GPU: one append instead of six halves ListClaims' cost. */
        if (c->n_devices == 1)
                return sd_bus_message_append(reply, "(osssa(stu))", path, c->uid, c->namespace_, c->name,
                                             1u, c->devices[0].device, c->devices[0].memory_limit,
                                             c->devices[0].cores_limit);

        r = sd_bus_message_open_container(reply, 'r', "osssa(stu)");
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "osss", path, c->uid, c->namespace_, c->name);
        if (r < 0)
                return r;
        r = claim_object_append_devices(reply, c);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

static int append_claim_usage(BusServer *s, sd_bus_message *reply, const BusClaim *c) {
        _cleanup_free_ char *path = claim_object_path(c->uid);
        const BusClaimDeviceUsage *u;
        size_t n = bus_server_list_usage_get(s, c, &u);
        int r;

        if (!path)
                return -ENOMEM;
        r = sd_bus_message_open_container(reply, 'r', "osssa" BUS_CLAIM_DEVICE_USAGE_SIGNATURE);
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "osss", path, c->uid, c->namespace_, c->name);
        if (r < 0)
                return r;
        r = claim_object_append_usage(reply, u, n);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

/* The reply of a List* method over every claim, one append() each, in UID order. */
static int reply_claim_list(sd_bus_message *m, BusServer *s, const char *element,
                            int (*append)(BusServer *s, sd_bus_message *reply, const BusClaim *c)) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', element);
        if (r < 0)
                return r;
        for (size_t i = 0; i < s->model.n_claims; i++) {
                r = append(s, reply, &s->model.claims[i]);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_list_claims(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return reply_claim_list(m, userdata, "(osssa(stu))", append_claim);
}

static int method_list_usage(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        int r;

        r = bus_server_list_usage_refresh(userdata);
        if (r < 0)
                return r;
        return reply_claim_list(m, userdata, "(osssa" BUS_CLAIM_DEVICE_USAGE_SIGNATURE ")", append_claim_usage);
}

/* Read one string argument and check it; InvalidArgument when malformed. */
static int read_uid_arg(sd_bus_message *m, const char **ret, sd_bus_error *error) {
        const char *uid;
        int r;

        *ret = NULL;    /* on every failure too: the callers' uid is never left unset */
        r = sd_bus_message_read(m, "s", &uid);
        if (r < 0)
                return r;
        if (bus_uid_validate(uid) < 0)
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                         "Invalid claim UID: must be 1-%u printable ASCII characters",
                                         BUS_UID_MAX);
        *ret = uid;
        return 0;
}

static int validate_device_name_arg(const char *name, sd_bus_error *error) {
        if (bus_device_name_validate(name) < 0)
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                         "Invalid device name: must be 1-%u characters of [A-Za-z0-9._-]",
                                         GPU_NAME_MAX - 1);
        return 0;
}

static int method_get_claim(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *path = NULL;
        BusServer *s = userdata;
        const char *uid;
        int r;

        r = read_uid_arg(m, &uid, error);
        if (r < 0)
                return r;
        if (!bus_model_find_claim(&s->model, uid))
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_CLAIM, "No prepared claim with UID %s", uid);

        path = claim_object_path(uid);
        if (!path)
                return -ENOMEM;
        return sd_bus_reply_method_return(m, "o", path);
}

static int method_get_device(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *path = NULL;
        BusServer *s = userdata;
        const char *name;
        int r;

        r = sd_bus_message_read(m, "s", &name);
        if (r < 0)
                return r;
        r = validate_device_name_arg(name, error);
        if (r < 0)
                return r;
        if (!bus_model_find_device(&s->model, name))
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_DEVICE, "No GPU named %s", name);

        path = device_object_path(name);
        if (!path)
                return -ENOMEM;
        return sd_bus_reply_method_return(m, "o", path);
}

static int method_rescan(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusServer *s = userdata;
        int r;

        r = bus_polkit_verify_async(&s->polkit, m, POLKIT_ACTION_RESCAN, error);
        if (r < 0)
                return r;
        if (r == 0)
                return 1; /* polkit is asked; this handler runs again with the answer */

        log_info("Rescan requested over D-Bus by %s", sd_bus_message_get_sender(m) ?: "?");
        r = s->ops && s->ops->rescan ? s->ops->rescan(s->userdata) : -EOPNOTSUPP;
        if (r < 0)
                return bus_error_from_errno(error, r, BUS_ERROR_FAILED, "Rescan");
        return sd_bus_reply_method_return(m, NULL);
}

static int method_reload(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusServer *s = userdata;
        int r;

        r = bus_polkit_verify_async(&s->polkit, m, POLKIT_ACTION_RELOAD, error);
        if (r < 0)
                return r;
        if (r == 0)
                return 1;

        log_info("Reload requested over D-Bus by %s", sd_bus_message_get_sender(m) ?: "?");
        r = s->ops && s->ops->reload ? s->ops->reload(s->userdata) : -EOPNOTSUPP;
        if (r < 0)
                return bus_error_from_errno(error, r, BUS_ERROR_FAILED, "Reload");
        return sd_bus_reply_method_return(m, NULL);
}

static int method_release_claim(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusServer *s = userdata;
        const char *uid;
        int r;

        /* A malformed call never reaches polkit. Existence is checked after it: it can
         * change while polkit thinks, and the parked call must come back to the check. */
        r = read_uid_arg(m, &uid, error);
        if (r < 0)
                return r;

        r = bus_polkit_verify_async(&s->polkit, m, POLKIT_ACTION_RELEASE_CLAIM, error);
        if (r < 0)
                return r;
        if (r == 0)
                return 1;

        if (!bus_model_find_claim(&s->model, uid))
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_CLAIM, "No prepared claim with UID %s", uid);

        log_notice("Release of claim %s requested over D-Bus by %s", uid,
                   sd_bus_message_get_sender(m) ?: "?");
        r = s->ops && s->ops->release_claim ? s->ops->release_claim(s->userdata, uid) : -EOPNOTSUPP;
        if (r < 0)
                return bus_error_from_errno(error, r, BUS_ERROR_NO_SUCH_CLAIM, "ReleaseClaim");
        return sd_bus_reply_method_return(m, NULL);
}

static int method_set_device_schedulable(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusServer *s = userdata;
        const char *name;
        int schedulable, r;

        r = sd_bus_message_read(m, "sb", &name, &schedulable);
        if (r < 0)
                return r;
        r = validate_device_name_arg(name, error);
        if (r < 0)
                return r;

        r = bus_polkit_verify_async(&s->polkit, m, POLKIT_ACTION_SET_DEVICE_SCHEDULABLE, error);
        if (r < 0)
                return r;
        if (r == 0)
                return 1;

        if (!bus_model_find_device(&s->model, name))
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_DEVICE, "No GPU named %s", name);

        log_notice("GPU %s made %s over D-Bus by %s", name, schedulable ? "schedulable" : "unschedulable",
                   sd_bus_message_get_sender(m) ?: "?");
        r = s->ops && s->ops->set_device_schedulable
                    ? s->ops->set_device_schedulable(s->userdata, name, schedulable)
                    : -EOPNOTSUPP;
        if (r < 0)
                return bus_error_from_errno(error, r, BUS_ERROR_NO_SUCH_DEVICE, "SetDeviceSchedulable");
        return sd_bus_reply_method_return(m, NULL);
}

/* ---- signals and batched changes ---- */

int manager_object_send_devices_changed(BusServer *s) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_signal(s->bus, &m, BUS_MANAGER_PATH, BUS_MANAGER_INTERFACE,
                                      "DevicesChanged");
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'a', "o");
        if (r < 0)
                return r;
        for (size_t i = 0; i < s->model.n_devices; i++) {
                _cleanup_free_ char *path = device_object_path(s->model.devices[i].name);
                if (!path)
                        return -ENOMEM;
                r = sd_bus_message_append(m, "o", path);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        return sd_bus_send(s->bus, m, NULL);
}

int manager_object_send_claim_signal(BusServer *s, const char *member, const BusClaim *c) {
        _cleanup_free_ char *path = claim_object_path(c->uid);

        if (!path)
                return -ENOMEM;
        return sd_bus_emit_signal(s->bus, BUS_MANAGER_PATH, BUS_MANAGER_INTERFACE, member, "osss",
                                  path, c->uid, c->namespace_, c->name);
}

int manager_object_emit_changes(BusServer *s, unsigned props) {
        static const BusPropertyBit table[] = {
                { MANAGER_PROP_STATE, "State" },
                { MANAGER_PROP_STATE_REASON, "StateReason" },
                { MANAGER_PROP_API_SERVER_REACHABLE, "ApiServerReachable" },
                { MANAGER_PROP_API_SERVER_CONSUMABLE_CAPACITY, "ApiServerConsumableCapacity" },
                { MANAGER_PROP_KUBELET_REGISTERED, "KubeletRegistered" },
                { MANAGER_PROP_SLICE_GENERATION, "SliceGeneration" },
                { MANAGER_PROP_N_DEVICES, "NDevices" },
                { MANAGER_PROP_N_CLAIMS, "NClaims" },
        };

        return bus_emit_properties_changed(s, BUS_MANAGER_PATH, BUS_MANAGER_INTERFACE, table, ELEMENTSOF(table),
                                           props);
}

const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),

        SD_BUS_PROPERTY("Version", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("DriverName", "s", NULL, offsetof(BusServer, driver_name),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("NodeName", "s", NULL, offsetof(BusServer, node_name),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("StateReason", "s", NULL, offsetof(BusServer, state_reason),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ApiServerReachable", "b", property_get_bool,
                        offsetof(BusServer, api_server_reachable), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ApiServerConsumableCapacity", "b", property_get_bool,
                        offsetof(BusServer, api_server_consumable_capacity),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("KubeletRegistered", "b", property_get_bool,
                        offsetof(BusServer, kubelet_registered), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("SliceGeneration", "t", NULL, offsetof(BusServer, slice_generation),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("NDevices", "u", property_get_n_devices, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("NClaims", "u", property_get_n_claims, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),

        SD_BUS_METHOD_WITH_ARGS("ListDevices", SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(osssttuusbu)", devices), method_list_devices,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListClaims", SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(osssa(stu))", claims), method_list_claims,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListUsage", SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(osssa" BUS_CLAIM_DEVICE_USAGE_SIGNATURE ")", usage),
                                method_list_usage, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetClaim", SD_BUS_ARGS("s", uid), SD_BUS_RESULT("o", claim),
                                method_get_claim, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetDevice", SD_BUS_ARGS("s", name), SD_BUS_RESULT("o", device),
                                method_get_device, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Rescan", NULL, NULL, method_rescan, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Reload", NULL, NULL, method_reload, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ReleaseClaim", SD_BUS_ARGS("s", uid), SD_BUS_NO_RESULT,
                                method_release_claim, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetDeviceSchedulable", SD_BUS_ARGS("s", name, "b", schedulable),
                                SD_BUS_NO_RESULT, method_set_device_schedulable,
                                SD_BUS_VTABLE_UNPRIVILEGED),

        SD_BUS_SIGNAL_WITH_ARGS("ClaimPrepared",
                                SD_BUS_ARGS("o", claim, "s", uid, "s", namespace, "s", name), 0),
        SD_BUS_SIGNAL_WITH_ARGS("ClaimUnprepared",
                                SD_BUS_ARGS("o", claim, "s", uid, "s", namespace, "s", name), 0),
        SD_BUS_SIGNAL_WITH_ARGS("DevicesChanged", SD_BUS_ARGS("ao", devices), 0),

        SD_BUS_VTABLE_END,
};
