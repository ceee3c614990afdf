/* SPDX-License-Identifier: Apache-2.0 */

/* hamictl devices: ListDevices, plus each GPU's live MemoryUsed. */

#include <inttypes.h>
#include <stdio.h>

#include "dbus/names.h"
#include "hamictl.h"

static uint64_t device_memory_used(Ctl *c, const char *path) {
        uint64_t used = 0;

        /* Best effort: a GPU that went away meanwhile shows 0. */
        (void) sd_bus_get_property_trivial(c->bus, BUS_SERVICE_NAME, path, BUS_DEVICE_INTERFACE,
                                           "MemoryUsed", NULL, 't', &used);
        return used;
}

int verb_devices(Ctl *c, int argc, char *argv[]) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        struct json_object *list = json_object_new_array();
        const char *path, *name, *uuid, *model, *health;
        uint64_t mem_total, mem_alloc;
        uint32_t cores, cores_alloc, n_claims;
        int schedulable, r;

        r = ctl_call(c, "ListDevices", &reply, NULL);
        if (r != EXIT_OK) {
                json_object_put(list);
                return r;
        }

        t = table_new("NAME", "MODEL", "MEMORY", "ALLOCATED", "USED", "CORES", "HEALTH", "SCHEDULABLE",
                      "CLAIMS", "UUID", NULL);
        r = sd_bus_message_enter_container(reply, 'a', "(osssttuusbu)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(osssttuusbu)", &path, &name, &uuid, &model,
                                                  &mem_total, &mem_alloc, &cores, &cores_alloc,
                                                  &health, &schedulable, &n_claims)) > 0) {
                uint64_t used = device_memory_used(c, path);
                struct json_object *o = json_object_new_object();
                char b1[16], b2[16], b3[16];

                json_object_object_add(o, "path", json_object_new_string(path));
                json_object_object_add(o, "name", json_object_new_string(name));
                json_object_object_add(o, "uuid", json_object_new_string(uuid));
                json_object_object_add(o, "model", json_object_new_string(model));
                json_object_object_add(o, "memoryTotal", json_object_new_uint64(mem_total));
                json_object_object_add(o, "memoryAllocated", json_object_new_uint64(mem_alloc));
                json_object_object_add(o, "memoryUsed", json_object_new_uint64(used));
                json_object_object_add(o, "cores", json_object_new_int64(cores));
                json_object_object_add(o, "coresAllocated", json_object_new_int64(cores_alloc));
                json_object_object_add(o, "health", json_object_new_string(health));
                json_object_object_add(o, "schedulable", json_object_new_boolean(schedulable));
                json_object_object_add(o, "claims", json_object_new_int64(n_claims));
                json_object_array_add(list, o);

                if (t) {
                        (void) table_add(t, name);
                        (void) table_add(t, model);
                        (void) table_add(t, ctl_format_bytes(b1, mem_total));
                        (void) table_add(t, ctl_format_bytes(b2, mem_alloc));
                        (void) table_add(t, ctl_format_bytes(b3, used));
                        (void) table_addf(t, "%" PRIu32 "/%" PRIu32, cores_alloc, cores);
                        (void) table_add(t, health);
                        (void) table_add(t, schedulable ? "yes" : "no");
                        (void) table_addf(t, "%" PRIu32, n_claims);
                        (void) table_add(t, uuid);
                }
        }
        return ctl_finish_list(c, r, list, t);
}
