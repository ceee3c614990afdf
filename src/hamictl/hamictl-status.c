/* SPDX-License-Identifier: Apache-2.0 */

/* hamictl status: the Manager's properties. */

#include <inttypes.h>
#include <stdio.h>

#include "dbus/names.h"
#include "hamictl.h"

static const char *jstr(struct json_object *o, const char *key) {
        struct json_object *v;
        return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static bool jbool(struct json_object *o, const char *key) {
        struct json_object *v;
        return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

static uint64_t ju64(struct json_object *o, const char *key) {
        struct json_object *v;
        return json_object_object_get_ex(o, key, &v) ? json_object_get_uint64(v) : 0;
}

int verb_status(Ctl *c, int argc, char *argv[]) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        struct json_object *p = NULL;
        const char *reason;
        int r;

        r = ctl_get_all(c, BUS_MANAGER_PATH, BUS_MANAGER_INTERFACE, &reply);
        if (r != EXIT_OK)
                return r;
        if (ctl_read_properties(reply, &p) < 0) {
                fprintf(stderr, "Malformed reply from the daemon\n");
                return EXIT_FAILED;
        }

        if (c->json) {
                ctl_print_json(p);
                json_object_put(p);
                return EXIT_OK;
        }

        reason = jstr(p, "StateReason");
        printf("         Version: %s\n", jstr(p, "Version"));
        printf("          Driver: %s\n", jstr(p, "DriverName"));
        printf("            Node: %s\n", jstr(p, "NodeName"));
        printf("           State: %s%s%s%s\n", jstr(p, "State"), isempty(reason) ? "" : " (",
               reason, isempty(reason) ? "" : ")");
        printf("      API server: %s, consumable capacity %s\n",
               jbool(p, "ApiServerReachable") ? "reachable" : "unreachable",
               jbool(p, "ApiServerConsumableCapacity") ? "supported" : "not supported");
        printf("         Kubelet: %s\n", jbool(p, "KubeletRegistered") ? "registered" : "not registered");
        printf("Slice generation: %" PRIu64 "\n", ju64(p, "SliceGeneration"));
        printf("         Devices: %" PRIu64 "\n", ju64(p, "NDevices"));
        printf("          Claims: %" PRIu64 "\n", ju64(p, "NClaims"));
        json_object_put(p);
        return EXIT_OK;
}
