/* SPDX-License-Identifier: Apache-2.0 */

/* hamictl claims: ListClaims. */

#include <inttypes.h>
#include <stdio.h>

#include "hamictl.h"

/* "hami-gpu-0:4.0G/30%,hami-gpu-1:..." and the JSON list of the same. */
static int read_devices(sd_bus_message *m, char **ret_text, struct json_object **ret_json) {
        struct json_object *list = json_object_new_array();
        _cleanup_free_ char *text = strdup("");
        const char *dev;
        uint64_t mem;
        uint32_t cores;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "(stu)");
        while (r >= 0 && text && (r = sd_bus_message_read(m, "(stu)", &dev, &mem, &cores)) > 0) {
                struct json_object *o = json_object_new_object();
                char b[16], *n = NULL;

                json_object_object_add(o, "device", json_object_new_string(dev));
                json_object_object_add(o, "memory", json_object_new_uint64(mem));
                json_object_object_add(o, "cores", json_object_new_int64(cores));
                json_object_array_add(list, o);

                if (asprintf(&n, "%s%s%s:%s/%" PRIu32 "%%", text, isempty(text) ? "" : ",", dev,
                             ctl_format_bytes(b, mem), cores) < 0)
                        n = NULL;
                free(text);
                text = n;
        }
        if (r >= 0 && !text)
                r = -ENOMEM;
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r < 0) {
                json_object_put(list);
                return r;
        }
        *ret_text = TAKE_PTR(text);
        *ret_json = list;
        return 0;
}

int verb_claims(Ctl *c, int argc, char *argv[]) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        struct json_object *list = json_object_new_array();
        const char *path, *uid, *ns, *name;
        int r;

        r = ctl_call(c, "ListClaims", &reply, NULL);
        if (r != EXIT_OK) {
                json_object_put(list);
                return r;
        }

        t = table_new("UID", "NAMESPACE", "NAME", "DEVICES", NULL);
        r = sd_bus_message_enter_container(reply, 'a', "(osssa(stu))");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'r', "osssa(stu)")) > 0) {
                _cleanup_free_ char *text = NULL;
                struct json_object *devices = NULL, *o;

                r = sd_bus_message_read(reply, "osss", &path, &uid, &ns, &name);
                if (r >= 0)
                        r = read_devices(reply, &text, &devices);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        break;

                o = json_object_new_object();
                json_object_object_add(o, "path", json_object_new_string(path));
                json_object_object_add(o, "uid", json_object_new_string(uid));
                json_object_object_add(o, "namespace", json_object_new_string(ns));
                json_object_object_add(o, "name", json_object_new_string(name));
                json_object_object_add(o, "devices", devices);
                json_object_array_add(list, o);

                if (t) {
                        (void) table_add(t, uid);
                        (void) table_add(t, ns);
                        (void) table_add(t, name);
                        (void) table_add(t, text);
                }
        }
        return ctl_finish_list(c, r, list, t);
}
