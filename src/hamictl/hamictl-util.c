/* SPDX-License-Identifier: Apache-2.0 */

/* What every hamictl verb shares: calling the daemon, errors and exit codes, tables, JSON. */

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbus/names.h"
#include "hamictl.h"

static bool has_prefix(const char *s, const char *prefix) {
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

int ctl_error(const char *what, const sd_bus_error *e, int r) {
        const char *name = e && e->name ? e->name : NULL;

        fprintf(stderr, "%s: %s\n", what, e && e->message ? e->message : strerror(r < 0 ? -r : EIO));

        if (!name)
                return EXIT_FAILED;
        if (streq(name, BUS_ERROR_NO_SUCH_CLAIM) || streq(name, BUS_ERROR_NO_SUCH_DEVICE))
                return EXIT_NOT_FOUND;
        if (streq(name, BUS_ERROR_INVALID_ARGUMENT))
                return EXIT_USAGE;
        if (streq(name, SD_BUS_ERROR_ACCESS_DENIED) ||
            streq(name, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED))
                return EXIT_DENIED;
        if (streq(name, SD_BUS_ERROR_SERVICE_UNKNOWN) || streq(name, SD_BUS_ERROR_NAME_HAS_NO_OWNER) ||
            has_prefix(name, "org.freedesktop.DBus.Error.Spawn.") || has_prefix(name, "org.freedesktop.systemd1."))
                return EXIT_NOT_RUNNING; /* no owner, or its activation failed */
        return EXIT_FAILED;
}

static bool is_timeout(const sd_bus_error *e, int r) {
        return r == -ETIMEDOUT || (e && e->name && (streq(e->name, SD_BUS_ERROR_NO_REPLY) ||
                                                    streq(e->name, SD_BUS_ERROR_TIMEOUT)));
}

int ctl_parse_timeout(const char *s, uint64_t *ret_usec) {
        char *end;
        double v;

        errno = 0;
        v = strtod(s, &end);
        if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v <= 0 || v > 3600)
                return -EINVAL;
        *ret_usec = (uint64_t) (v * 1e6);
        return *ret_usec > 0 ? 0 : -EINVAL;
}

int ctl_reach(Ctl *c) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(c->bus, &m, BUS_SERVICE_NAME, BUS_MANAGER_PATH,
                                           "org.freedesktop.DBus.Peer", "Ping");
        if (r < 0)
                return ctl_error("Ping", NULL, r);
        r = sd_bus_call(c->bus, m, c->timeout_usec, &error, NULL);
        if (r >= 0)
                return EXIT_OK;
        if (is_timeout(&error, r)) {
                /* Nobody answered: no owner and an activation that did not finish (the
                 * unit failed, or its start limit was hit), or a daemon that is stuck. */
                fprintf(stderr,
                        "hami-dra-plugin did not answer within %.1f s: it is not running and could not be "
                        "started, or it is stuck. See: systemctl status hami-dra-plugin\n",
                        (double) c->timeout_usec / 1e6);
                return EXIT_NOT_RUNNING;
        }
        r = ctl_error("hami-dra-plugin", &error, r);
        if (r == EXIT_NOT_RUNNING)
                fprintf(stderr, "hami-dra-plugin is not running. See: systemctl status hami-dra-plugin\n");
        return r;
}

/* A person may have to answer polkit's agent for these: give them the time. */
static uint64_t call_timeout(Ctl *c, const char *member) {
        static const char *const authorized[] = { "Rescan", "Reload", "ReleaseClaim", "SetDeviceSchedulable" };

        if (c->ask_password)
                for (size_t i = 0; i < ELEMENTSOF(authorized); i++)
                        if (streq(member, authorized[i]))
                                return c->timeout_usec > CTL_TIMEOUT_AUTHORIZE_USEC ? c->timeout_usec
                                                                                    : CTL_TIMEOUT_AUTHORIZE_USEC;
        return c->timeout_usec;
}

int ctl_call(Ctl *c, const char *member, sd_bus_message **ret_reply, const char *types, ...) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        va_list ap;
        int r;

        r = sd_bus_message_new_method_call(c->bus, &m, BUS_SERVICE_NAME, BUS_MANAGER_PATH,
                                           BUS_MANAGER_INTERFACE, member);
        if (r >= 0 && types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
        }
        if (r < 0)
                return ctl_error(member, NULL, r);

        r = sd_bus_call(c->bus, m, call_timeout(c, member), &error, &reply);
        if (r < 0 && is_timeout(&error, r)) {
                fprintf(stderr, "%s: hami-dra-plugin did not answer within %.1f s (--timeout=)\n", member,
                        (double) call_timeout(c, member) / 1e6);
                return EXIT_FAILED;
        }
        if (r < 0)
                return ctl_error(member, &error, r);
        if (ret_reply)
                *ret_reply = TAKE_PTR(reply);
        return EXIT_OK;
}

int ctl_get_all(Ctl *c, const char *path, const char *interface, sd_bus_message **ret_reply) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call_method(c->bus, BUS_SERVICE_NAME, path, "org.freedesktop.DBus.Properties",
                               "GetAll", &error, ret_reply, "s", interface);
        if (r < 0)
                return ctl_error(path, &error, r);
        return EXIT_OK;
}

static const struct {
        uint32_t flag;
        const char *word;
} usage_flags[] = {
        { BUS_USAGE_REGION_UNREADABLE, "region-unreadable" },
        { BUS_USAGE_REGION_INVALID, "region-invalid" },
        { BUS_USAGE_MEMORY_IMPLAUSIBLE, "memory-implausible" },
        { BUS_USAGE_DEGRADED_MEMORY_LIMIT, "memory-limit-degraded" },
        { BUS_USAGE_DEGRADED_SM_LIMIT, "sm-limit-degraded" },
};

int ctl_read_usage(sd_bus_message *m, CtlUsage *ret) {
        *ret = (CtlUsage) {};
        return sd_bus_message_read(m, BUS_CLAIM_DEVICE_USAGE_SIGNATURE, &ret->device, &ret->memory_used,
                                   &ret->memory_limit, &ret->sm_used, &ret->sm_limit, &ret->processes,
                                   &ret->measured_processes, &ret->flags);
}

struct json_object *ctl_usage_to_json(struct json_object *o, const CtlUsage *u) {
        struct json_object *flags = json_object_new_array();

        if (!o)
                o = json_object_new_object();
        json_object_object_add(o, "device", json_object_new_string(u->device));
        json_object_object_add(o, "memoryUsed", json_object_new_uint64(u->memory_used));
        json_object_object_add(o, "memoryLimit", json_object_new_uint64(u->memory_limit));
        json_object_object_add(o, "smUsedPermille",
                               u->sm_used == BUS_USAGE_SM_UNKNOWN ? NULL : json_object_new_int64(u->sm_used));
        json_object_object_add(o, "smLimit", json_object_new_int64(u->sm_limit));
        json_object_object_add(o, "processes", json_object_new_int64(u->processes));
        json_object_object_add(o, "measuredProcesses", json_object_new_int64(u->measured_processes));
        for (size_t k = 0; k < ELEMENTSOF(usage_flags); k++)
                if (u->flags & usage_flags[k].flag)
                        json_object_array_add(flags, json_object_new_string(usage_flags[k].word));
        json_object_object_add(o, "flags", flags);
        return o;
}

char *ctl_usage_flags_text(uint32_t flags) {
        char *s = strdup("");

        for (size_t i = 0; s && i < ELEMENTSOF(usage_flags); i++) {
                char *n = NULL;

                if (!(flags & usage_flags[i].flag))
                        continue;
                if (asprintf(&n, "%s%s%s", s, isempty(s) ? "" : ",", usage_flags[i].word) < 0)
                        n = NULL;
                free(s);
                s = n;
        }
        return s;
}

static int read_usage_array(sd_bus_message *m, struct json_object **ret) {
        CtlUsage u;
        int r;

        r = sd_bus_message_enter_container(m, 'a', BUS_CLAIM_DEVICE_USAGE_SIGNATURE);
        if (r < 0)
                return r;
        *ret = json_object_new_array();
        while ((r = ctl_read_usage(m, &u)) > 0)
                json_object_array_add(*ret, ctl_usage_to_json(NULL, &u));
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

static int read_variant(sd_bus_message *m, struct json_object **ret) {
        const char *contents;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r <= 0)
                return r < 0 ? r : -EBADMSG;

        switch (type) {
        case 'b': {
                int b;
                r = sd_bus_message_read_basic(m, type, &b);
                *ret = json_object_new_boolean(b);
                break;
        }
        case 'u': {
                uint32_t u;
                r = sd_bus_message_read_basic(m, type, &u);
                *ret = json_object_new_int64(u);
                break;
        }
        case 't': {
                uint64_t t;
                r = sd_bus_message_read_basic(m, type, &t);
                *ret = json_object_new_uint64(t);
                break;
        }
        case 's':
        case 'o': {
                const char *s;
                r = sd_bus_message_read_basic(m, type, &s);
                *ret = json_object_new_string(s);
                break;
        }
        case 'a':
                if (streq(contents, "s")) {
                        _cleanup_strv_free_ char **l = NULL;
                        r = sd_bus_message_read_strv(m, &l);
                        if (r < 0)
                                return r;
                        *ret = json_object_new_array();
                        for (char **i = l; *i; i++)
                                json_object_array_add(*ret, json_object_new_string(*i));
                        return 0;
                }
                if (streq(contents, "(stu)")) {
                        const char *dev;
                        uint64_t mem;
                        uint32_t cores;
                        r = sd_bus_message_enter_container(m, 'a', "(stu)");
                        if (r < 0)
                                return r;
                        *ret = json_object_new_array();
                        while ((r = sd_bus_message_read(m, "(stu)", &dev, &mem, &cores)) > 0) {
                                struct json_object *o = json_object_new_object();
                                json_object_object_add(o, "device", json_object_new_string(dev));
                                json_object_object_add(o, "memory", json_object_new_uint64(mem));
                                json_object_object_add(o, "cores", json_object_new_int64(cores));
                                json_object_array_add(*ret, o);
                        }
                        if (r < 0)
                                return r;
                        return sd_bus_message_exit_container(m);
                }
                if (streq(contents, BUS_CLAIM_DEVICE_USAGE_SIGNATURE))
                        return read_usage_array(m, ret);
                __attribute__((fallthrough));
        default:
                *ret = NULL;
                return sd_bus_message_skip(m, NULL);
        }
        return r;
}

int ctl_read_properties(sd_bus_message *m, struct json_object **ret) {
        struct json_object *o = json_object_new_object();
        const char *name, *contents;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                struct json_object *v = NULL;

                r = sd_bus_message_read(m, "s", &name);
                if (r >= 0)
                        r = sd_bus_message_peek_type(m, NULL, &contents);
                if (r >= 0)
                        r = sd_bus_message_enter_container(m, 'v', contents);
                if (r >= 0)
                        r = read_variant(m, &v);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r >= 0 && v)
                        json_object_object_add(o, name, v);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r < 0) {
                json_object_put(o);
                return r;
        }
        *ret = o;
        return 0;
}

void ctl_print_json(struct json_object *o) {
        int flags = isatty(STDOUT_FILENO) ? JSON_C_TO_STRING_PRETTY : JSON_C_TO_STRING_PLAIN;

        puts(json_object_to_json_string_ext(o, flags | JSON_C_TO_STRING_NOSLASHESCAPE));
}

int ctl_finish_list(Ctl *c, int r, struct json_object *list, const Table *t) {
        if (r < 0) {
                json_object_put(list);
                fprintf(stderr, "Malformed reply from the daemon: %s\n", strerror(-r));
                return EXIT_FAILED;
        }
        if (c->json)
                ctl_print_json(list);
        else if (t)
                table_print(t, c->legend);
        json_object_put(list);
        return EXIT_OK;
}

const char *ctl_format_bytes(char buf[static 16], uint64_t bytes) {
        static const char suffixes[] = "KMGTPE";
        double v = (double) bytes;
        size_t i = 0;

        if (bytes < 1024) {
                snprintf(buf, 16, "%" PRIu64 "B", bytes);
                return buf;
        }
        while (i < sizeof suffixes - 2 && v >= 1024.0 * 1024.0) {
                v /= 1024.0;
                i++;
        }
        snprintf(buf, 16, "%.1f%c", v / 1024.0, suffixes[i]);
        return buf;
}

/* ---- tables ---- */

Table *table_new(const char *first, ...) {
        Table *t = calloc(1, sizeof *t);
        va_list ap;

        if (!t)
                return NULL;
        va_start(ap, first);
        for (const char *h = first; h; h = va_arg(ap, const char *)) {
                if (table_add(t, h) < 0) {
                        va_end(ap);
                        return table_free(t);
                }
                t->n_columns++;
        }
        va_end(ap);
        return t;
}

int table_add(Table *t, const char *cell) {
        char **a = reallocarray(t->cells, t->n_cells + 1, sizeof *a);

        if (!a)
                return -ENOMEM;
        t->cells = a;
        a[t->n_cells] = strdup(cell ?: "");
        if (!a[t->n_cells])
                return -ENOMEM;
        t->n_cells++;
        return 0;
}

int table_addf(Table *t, const char *format, ...) {
        _cleanup_free_ char *s = NULL;
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(&s, format, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        return table_add(t, s);
}

void table_print(const Table *t, bool legend) {
        _cleanup_free_ size_t *widths = calloc(t->n_columns ?: 1, sizeof *widths);
        size_t n = t->n_columns;

        if (!widths || n == 0)
                return;

        for (size_t i = legend ? 0 : n; i < t->n_cells; i++) {
                size_t w = strlen(t->cells[i]);
                if (w > widths[i % t->n_columns])
                        widths[i % t->n_columns] = w;
        }
        for (size_t i = legend ? 0 : n; i < t->n_cells; i++) {
                size_t col = i % t->n_columns;
                bool last = col == t->n_columns - 1;
                printf("%-*s%s", last ? 0 : (int) widths[col], t->cells[i], last ? "\n" : " ");
        }
}

Table *table_free(Table *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_cells; i++)
                free(t->cells[i]);
        free(t->cells);
        return mfree(t);
}
