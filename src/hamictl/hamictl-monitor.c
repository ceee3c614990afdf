/* SPDX-License-Identifier: Apache-2.0 */

/* hamictl monitor: follow ClaimPrepared, ClaimUnprepared, DevicesChanged and PropertiesChanged. */

#include <signal.h>
#include <stdio.h>
#include <systemd/sd-event.h>

#include "dbus/names.h"
#include "hamictl.h"

static void emit(Ctl *c, struct json_object *o, const char *human) {
        if (c->json)
                puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        else
                puts(human);
        fflush(stdout);
        json_object_put(o);
}

static int on_claim_signal(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Ctl *c = userdata;
        const char *member = sd_bus_message_get_member(m), *path, *uid, *ns, *name;
        _cleanup_free_ char *line = NULL;
        struct json_object *o;

        if (sd_bus_message_read(m, "osss", &path, &uid, &ns, &name) < 0)
                return 0;
        o = json_object_new_object();
        json_object_object_add(o, "signal", json_object_new_string(member));
        json_object_object_add(o, "path", json_object_new_string(path));
        json_object_object_add(o, "uid", json_object_new_string(uid));
        json_object_object_add(o, "namespace", json_object_new_string(ns));
        json_object_object_add(o, "name", json_object_new_string(name));
        if (asprintf(&line, "%-17s %s/%s uid=%s", member, ns, name, uid) < 0)
                line = NULL;
        emit(c, o, line ?: member);
        return 0;
}

static int on_devices_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Ctl *c = userdata;
        _cleanup_strv_free_ char **paths = NULL;
        struct json_object *o, *a;
        size_t n = 0;
        char line[64];

        if (sd_bus_message_read_strv(m, &paths) < 0)
                return 0;
        o = json_object_new_object();
        a = json_object_new_array();
        for (char **p = paths; *p; p++, n++)
                json_object_array_add(a, json_object_new_string(*p));
        json_object_object_add(o, "signal", json_object_new_string("DevicesChanged"));
        json_object_object_add(o, "devices", a);
        snprintf(line, sizeof line, "%-17s %zu GPUs", "DevicesChanged", n);
        emit(c, o, line);
        return 0;
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Ctl *c = userdata;
        _cleanup_free_ char *line = NULL;
        struct json_object *o, *changed = NULL;
        const char *interface;

        if (sd_bus_message_read(m, "s", &interface) < 0 || ctl_read_properties(m, &changed) < 0)
                return 0;
        o = json_object_new_object();
        json_object_object_add(o, "signal", json_object_new_string("PropertiesChanged"));
        json_object_object_add(o, "path", json_object_new_string(sd_bus_message_get_path(m)));
        json_object_object_add(o, "interface", json_object_new_string(interface));
        json_object_object_add(o, "changed", json_object_get(changed));
        if (asprintf(&line, "%-17s %s %s", "PropertiesChanged", sd_bus_message_get_path(m),
                     json_object_to_json_string_ext(changed, JSON_C_TO_STRING_PLAIN)) < 0)
                line = NULL;
        json_object_put(changed);
        emit(c, o, line ?: "PropertiesChanged");
        return 0;
}

int verb_monitor(Ctl *c, int argc, char *argv[]) {
        sd_event *event = NULL;
        int r;

        r = sd_event_default(&event);
        if (r >= 0)
                r = sd_bus_attach_event(c->bus, event, 0);
        if (r >= 0)
                r = sd_bus_match_signal(c->bus, NULL, BUS_SERVICE_NAME, BUS_MANAGER_PATH, BUS_MANAGER_INTERFACE,
                                        "ClaimPrepared", on_claim_signal, c);
        if (r >= 0)
                r = sd_bus_match_signal(c->bus, NULL, BUS_SERVICE_NAME, BUS_MANAGER_PATH, BUS_MANAGER_INTERFACE,
                                        "ClaimUnprepared", on_claim_signal, c);
        if (r >= 0)
                r = sd_bus_match_signal(c->bus, NULL, BUS_SERVICE_NAME, BUS_MANAGER_PATH, BUS_MANAGER_INTERFACE,
                                        "DevicesChanged", on_devices_changed, c);
        if (r >= 0)
                r = sd_bus_add_match(c->bus, NULL,
                                     "type='signal',sender='" BUS_SERVICE_NAME "',"
                                     "interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',"
                                     "path_namespace='" BUS_MANAGER_PATH "'",
                                     on_properties_changed, c);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT | SD_EVENT_SIGNAL_PROCMASK, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGTERM | SD_EVENT_SIGNAL_PROCMASK, NULL, NULL);
        if (r < 0) {
                fprintf(stderr, "Failed to subscribe to org.projecthami.Dra1's signals: %s\n", strerror(-r));
                sd_event_unref(event);
                return EXIT_FAILED;
        }

        fprintf(stderr, "Monitoring org.projecthami.Dra1, press ^C to stop.\n");
        r = sd_event_loop(event);
        sd_bus_detach_event(c->bus);
        sd_event_unref(event);
        return r < 0 ? EXIT_FAILED : EXIT_OK;
}
