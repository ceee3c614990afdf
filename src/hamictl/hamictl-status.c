/* SPDX-License-Identifier: Apache-2.0 */

/* hamictl status: the Manager's properties. */

#include <inttypes.h>
#include <stdio.h>

#include "dbus/names.h"
#include "hamictl.h"
#include "json-util.h"

static const char *jstr(struct json_object *o, const char *key) {
        return json_get_string(o, key) ?: "";
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
        /* Unreached, nothing is known of its features; the State line says why (no
         * credentials, the API server down, ...). */
        if (json_get_bool(p, "ApiServerReachable", false))
                printf("      API server: reachable, consumable capacity %s\n",
                       json_get_bool(p, "ApiServerConsumableCapacity", false) ? "supported" : "not supported");
        else
                printf("      API server: not reached%s\n", isempty(reason) ? "" : " (see State)");
        printf("         Kubelet: %s\n", json_get_bool(p, "KubeletRegistered", false) ? "registered" : "not registered");
        printf("Slice generation: %" PRIu64 "\n", json_get_uint64(p, "SliceGeneration", 0));
        printf("         Devices: %" PRIu64 "\n", json_get_uint64(p, "NDevices", 0));
        printf("          Claims: %" PRIu64 "\n", json_get_uint64(p, "NClaims", 0));
        json_object_put(p);
        return EXIT_OK;
}
