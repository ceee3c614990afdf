/* SPDX-License-Identifier: Apache-2.0 */

/* hamictl claim UID: GetClaim, then the Claim object's properties. */

#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "dbus/names.h"
#include "hamictl.h"
#include "json-util.h"

/* "hami-gpu-0: memory 2.0G of 4.0G, SM 12.5% of 30%, 1 process" from one entry of --json's Usage. */
static void print_usage(struct json_object *u, const char *label) {
        struct json_object *flags = json_get(u, "flags");
        int64_t sm = json_get_int64(u, "smUsedPermille", -1), procs = json_get_int64(u, "processes", 0);
        char used[16], limit[16], smtext[16] = "-";

        if (sm >= 0)
                snprintf(smtext, sizeof smtext, "%.1f%%", (double) sm / 10.0);
        printf("%s %s: memory %s of %s, SM %s of %" PRId64 "%%, %" PRId64 " process%s", label,
               json_get_string(u, "device") ?: "", ctl_format_bytes(used, json_get_uint64(u, "memoryUsed", 0)),
               ctl_format_bytes(limit, json_get_uint64(u, "memoryLimit", 0)), smtext,
               json_get_int64(u, "smLimit", 0), procs, procs == 1 ? "" : "es");
        for (size_t i = 0; flags && i < json_object_array_length(flags); i++)
                printf("%s%s", i == 0 ? " (" : ", ", json_object_get_string(json_object_array_get_idx(flags, i)));
        printf("%s\n", flags && json_object_array_length(flags) > 0 ? ")" : "");
}

static void print_claim(struct json_object *p) {
        struct json_object *v;
        char b[16], when[64] = "";
        uint64_t usec = json_get_uint64(p, "PreparedTimestamp", 0);

        if (usec > 0) {
                time_t sec = (time_t) (usec / 1000000);
                struct tm tm;
                if (localtime_r(&sec, &tm))
                        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %Z", &tm);
        }

#define STR(key) (json_get_string(p, key) ?: "")
        printf("          UID: %s\n", STR("UID"));
        printf("        Claim: %s/%s\n", STR("Namespace"), STR("Name"));
        printf("     Prepared: %s\n", when);
        printf("Shared region: %s\n", STR("SharedRegion"));
#undef STR
        printf("  Memory used: %s\n", ctl_format_bytes(b, json_get_uint64(p, "MemoryUsed", 0)));
        v = json_get(p, "Devices");
        if (v)
                for (size_t i = 0; i < json_object_array_length(v); i++) {
                        struct json_object *d = json_object_array_get_idx(v, i);
                        const char *dev = json_get_string(d, "device") ?: "";
                        uint64_t mem = json_get_uint64(d, "memory", 0);
                        int64_t cores = json_get_int64(d, "cores", 0);
                        printf("%s %s: memory %s, cores %" PRId64 "%%\n", i == 0 ? "      Devices:" : "              ",
                               dev, ctl_format_bytes(b, mem), cores);
                }
        v = json_get(p, "Usage");
        if (v)
                for (size_t i = 0; i < json_object_array_length(v); i++)
                        print_usage(json_object_array_get_idx(v, i), i == 0 ? "        Usage:" : "              ");
}

int verb_claim(Ctl *c, int argc, char *argv[]) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL, *props = NULL;
        struct json_object *p = NULL;
        const char *path;
        int r;

        r = ctl_call(c, "GetClaim", &reply, "s", argv[0]);
        if (r != EXIT_OK)
                return r;
        if (sd_bus_message_read(reply, "o", &path) < 0) {
                fprintf(stderr, "Malformed reply from the daemon\n");
                return EXIT_FAILED;
        }

        r = ctl_get_all(c, path, BUS_CLAIM_INTERFACE, &props);
        if (r != EXIT_OK)
                return r;
        if (ctl_read_properties(props, &p) < 0) {
                fprintf(stderr, "Malformed reply from the daemon\n");
                return EXIT_FAILED;
        }
        json_object_object_add(p, "Path", json_object_new_string(path));

        if (c->json)
                ctl_print_json(p);
        else
                print_claim(p);
        json_object_put(p);
        return EXIT_OK;
}
