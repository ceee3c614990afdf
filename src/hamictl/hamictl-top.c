/* SPDX-License-Identifier: Apache-2.0 */

/*
 * hamictl top: live usage per claim and GPU (ListUsage, one call per refresh), like
 * systemd-cgtop: redrawn every --delay= on a terminal until q or ^C; one table with
 * --once; one JSON array per refresh with --json.
 */

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <systemd/sd-event.h>
#include <termios.h>
#include <unistd.h>

#include "dbus/names.h"
#include "hamictl.h"

typedef struct TopRow {
        char *uid, *namespace_, *name;
        CtlUsage u;                /* u.device: owned */
} TopRow;

typedef struct Top {
        Ctl *ctl;
        sd_event *event;
        TopRow *rows;
        size_t n_rows;
        unsigned iteration;
        bool tty;                  /* stdout is a terminal: redraw in place */
        bool keys;                 /* stdin is a terminal in raw mode: read keys */
        struct termios saved;
        int exit_code;
} Top;

#define BUS_USAGE_REGION_ERROR (BUS_USAGE_REGION_UNREADABLE | BUS_USAGE_REGION_INVALID)

int ctl_parse_order(const char *s, TopOrder *ret) {
        static const char *const names[_TOP_ORDER_MAX] = {
                [TOP_ORDER_MEMORY] = "memory",
                [TOP_ORDER_SM] = "sm",
                [TOP_ORDER_NAME] = "name",
        };

        for (size_t i = 0; i < _TOP_ORDER_MAX; i++)
                if (streq(s, names[i])) {
                        *ret = (TopOrder) i;
                        return 0;
                }
        return -EINVAL;
}

static void rows_free(Top *t) {
        for (size_t i = 0; i < t->n_rows; i++) {
                free(t->rows[i].uid);
                free(t->rows[i].namespace_);
                free(t->rows[i].name);
                free((char *) t->rows[i].u.device);
        }
        t->rows = mfree(t->rows);
        t->n_rows = 0;
}

static int row_add(Top *t, const char *uid, const char *ns, const char *name, const CtlUsage *u) {
        TopRow *a = reallocarray(t->rows, t->n_rows + 1, sizeof *a);

        if (!a)
                return -ENOMEM;
        t->rows = a;
        a = &a[t->n_rows];
        *a = (TopRow) {
                .uid = strdup(uid),
                .namespace_ = strdup(ns),
                .name = strdup(name),
                .u = *u,
        };
        a->u.device = strdup(u->device);
        t->n_rows++;    /* counted before the check, so rows_free() frees what was copied */
        if (!a->uid || !a->namespace_ || !a->name || !a->u.device)
                return -ENOMEM;
        return 0;
}

/* ListUsage's a(osssa(sttuuuuu)) into one row per claim and device. */
static int rows_read(Top *t, sd_bus_message *m) {
        const char *path, *uid, *ns, *name;
        int r;

        rows_free(t);
        r = sd_bus_message_enter_container(m, 'a', "(osssa" BUS_CLAIM_DEVICE_USAGE_SIGNATURE ")");
        while (r >= 0 && (r = sd_bus_message_enter_container(m, 'r', "osssa" BUS_CLAIM_DEVICE_USAGE_SIGNATURE)) > 0) {
                r = sd_bus_message_read(m, "osss", &path, &uid, &ns, &name);
                if (r >= 0)
                        r = sd_bus_message_enter_container(m, 'a', BUS_CLAIM_DEVICE_USAGE_SIGNATURE);
                while (r >= 0) {
                        CtlUsage u;

                        r = ctl_read_usage(m, &u);
                        if (r <= 0)
                                break;
                        r = row_add(t, uid, ns, name, &u);
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        return r;
}

/* ---- order ---- */

static int cmp_name(const TopRow *a, const TopRow *b) {
        int d = strcmp(a->namespace_, b->namespace_);

        if (d == 0)
                d = strcmp(a->name, b->name);
        if (d == 0)
                d = strcmp(a->u.device, b->u.device);
        if (d == 0)
                d = strcmp(a->uid, b->uid);
        return d;
}

/* SM used for sorting: never measured (or unreadable) below any measurement. */
static int64_t sm_key(const TopRow *r) {
        return r->u.sm_used == BUS_USAGE_SM_UNKNOWN ? -1 : (int64_t) r->u.sm_used;
}

static int cmp_rows(const void *x, const void *y, void *userdata) {
        const TopRow *a = x, *b = y;
        const TopOrder *order = userdata;

        switch (*order) {
        case TOP_ORDER_MEMORY:
                if (a->u.memory_used != b->u.memory_used)
                        return a->u.memory_used > b->u.memory_used ? -1 : 1;
                break;
        case TOP_ORDER_SM:
                if (sm_key(a) != sm_key(b))
                        return sm_key(a) > sm_key(b) ? -1 : 1;
                break;
        default:
                break;
        }
        return cmp_name(a, b);
}

static void rows_sort(Top *t) {
        if (t->n_rows > 0)
                qsort_r(t->rows, t->n_rows, sizeof *t->rows, cmp_rows, &t->ctl->top_order);
}

/* ---- output ---- */

static struct json_object *rows_json(const Top *t) {
        struct json_object *list = json_object_new_array();

        for (size_t i = 0; i < t->n_rows; i++) {
                const TopRow *r = &t->rows[i];
                struct json_object *o = json_object_new_object();

                json_object_object_add(o, "uid", json_object_new_string(r->uid));
                json_object_object_add(o, "namespace", json_object_new_string(r->namespace_));
                json_object_object_add(o, "name", json_object_new_string(r->name));
                json_object_array_add(list, ctl_usage_to_json(o, &r->u));
        }
        return list;
}

static int row_cells(Table *table, const TopRow *row) {
        const CtlUsage *r = &row->u;
        _cleanup_free_ char *note = ctl_usage_flags_text(r->flags);
        bool bad = r->flags & BUS_USAGE_REGION_ERROR;
        char used[16], limit[16];
        int k = 0;

        if (!note)
                return -ENOMEM;
        ctl_format_bytes(used, r->memory_used);
        ctl_format_bytes(limit, r->memory_limit);
        k |= table_addf(table, "%s/%s", row->namespace_, row->name);
        k |= table_add(table, r->device);
        k |= table_addf(table, "%s/%s", bad ? "-" : used, r->memory_limit > 0 ? limit : "-");
        if (bad || r->memory_limit == 0)
                k |= table_add(table, "-");
        else
                k |= table_addf(table, "%.0f%%", (double) r->memory_used * 100.0 / (double) r->memory_limit);
        if (bad || r->sm_used == BUS_USAGE_SM_UNKNOWN)
                k |= table_addf(table, "-/%" PRIu32 "%%", r->sm_limit);
        else
                k |= table_addf(table, "%.1f%%/%" PRIu32 "%%", (double) r->sm_used / 10.0, r->sm_limit);
        if (bad)
                k |= table_add(table, "-");
        else
                k |= table_addf(table, "%" PRIu32, r->processes);
        k |= table_add(table, note);
        return k < 0 ? -ENOMEM : 0;
}

/* How many rows fit under the title and the header on the terminal; all when not one. */
static size_t rows_fitting(const Top *t) {
        struct winsize w = {};

        if (!t->tty || ioctl(STDOUT_FILENO, TIOCGWINSZ, &w) < 0 || w.ws_row < 4)
                return t->n_rows;
        return MIN(t->n_rows, (size_t) w.ws_row - 3);
}

static int top_print(Top *t) {
        _cleanup_(table_freep) Table *table = NULL;
        size_t n = rows_fitting(t);

        if (t->ctl->json) {
                struct json_object *list = rows_json(t);

                if (t->ctl->top_once)
                        ctl_print_json(list);
                else
                        puts(json_object_to_json_string_ext(list, JSON_C_TO_STRING_PLAIN |
                                                                  JSON_C_TO_STRING_NOSLASHESCAPE));
                json_object_put(list);
                return fflush(stdout) == 0 ? 0 : -errno;
        }

        table = table_new("CLAIM", "DEVICE", "MEMORY", "MEM%", "SM", "PROCS", "NOTE", NULL);
        if (!table)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (row_cells(table, &t->rows[i]) < 0)
                        return -ENOMEM;

        if (t->tty && !t->ctl->top_once)
                /* Home, clear; then a title line as systemd-cgtop has none but top(1) does. */
                printf("\033[H\033[2J"
                       "hamictl top: %zu rows, every %.1f s%s%s\n",
                       t->n_rows, (double) t->ctl->top_delay_usec / 1e6,
                       n < t->n_rows ? " (terminal too small for all)" : "",
                       t->keys ? "; q quits, m s n sort by memory, SM, name" : "");
        else if (t->iteration > 0)
                putchar('\n');
        table_print(table, t->ctl->legend);
        return fflush(stdout) == 0 ? 0 : -errno;
}

/* ---- the loop ---- */

static int top_refresh(Top *t) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = ctl_call(t->ctl, "ListUsage", &reply, NULL);
        if (r != EXIT_OK)
                return r;
        r = rows_read(t, reply);
        if (r < 0) {
                fprintf(stderr, "Malformed reply from the daemon: %s\n", strerror(-r));
                return EXIT_FAILED;
        }
        rows_sort(t);
        r = top_print(t);
        if (r < 0) {
                fprintf(stderr, "Failed to write the table: %s\n", strerror(-r));
                return EXIT_FAILED;
        }
        t->iteration++;
        return EXIT_OK;
}

static void top_stop(Top *t, int exit_code) {
        t->exit_code = exit_code;
        (void) sd_event_exit(t->event, 0);
}

static int on_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        Top *t = userdata;
        int r;

        r = top_refresh(t);
        if (r != EXIT_OK || (t->ctl->top_iterations > 0 && t->iteration >= t->ctl->top_iterations)) {
                top_stop(t, r);
                return 0;
        }
        r = sd_event_source_set_time_relative(source, t->ctl->top_delay_usec);
        if (r >= 0)
                r = sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
        if (r < 0)
                top_stop(t, EXIT_FAILED);
        return 0;
}

static int on_key(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        Top *t = userdata;
        char buf[16];
        ssize_t n;

        n = read(fd, buf, sizeof buf);
        if (n <= 0) {
                /* The terminal went away: stop reading it, keep refreshing until a signal. */
                (void) sd_event_source_set_enabled(source, SD_EVENT_OFF);
                return 0;
        }
        for (ssize_t i = 0; i < n; i++)
                switch (buf[i]) {
                case 'q':
                case 'Q':
                        top_stop(t, EXIT_OK);
                        return 0;
                case 'm':
                case 's':
                case 'n':
                        t->ctl->top_order = buf[i] == 'm' ? TOP_ORDER_MEMORY :
                                            buf[i] == 's' ? TOP_ORDER_SM : TOP_ORDER_NAME;
                        rows_sort(t);
                        (void) top_print(t);
                        break;
                case ' ':
                        if (top_refresh(t) != EXIT_OK)
                                top_stop(t, EXIT_FAILED);
                        break;
                default:
                        break;
                }
        return 0;
}

/* Keys without Enter and without echo, while we run; restored by top_keys_restore(). */
static void top_keys_raw(Top *t) {
        struct termios raw;

        if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &t->saved) < 0)
                return;
        raw = t->saved;
        raw.c_lflag &= ~(tcflag_t) (ICANON | ECHO);
        raw.c_cc[VMIN] = 1;
        raw.c_cc[VTIME] = 0;
        t->keys = tcsetattr(STDIN_FILENO, TCSANOW, &raw) >= 0;
}

static void top_keys_restore(Top *t) {
        if (t->keys)
                (void) tcsetattr(STDIN_FILENO, TCSANOW, &t->saved);
        t->keys = false;
}

static int top_loop(Top *t) {
        int r;

        r = sd_event_default(&t->event);
        if (r >= 0)
                r = sd_event_add_time_relative(t->event, NULL, CLOCK_MONOTONIC, 0, 0, on_timer, t);
        if (r >= 0)
                r = sd_event_add_signal(t->event, NULL, SIGINT | SD_EVENT_SIGNAL_PROCMASK, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(t->event, NULL, SIGTERM | SD_EVENT_SIGNAL_PROCMASK, NULL, NULL);
        if (r >= 0 && t->tty) {
                top_keys_raw(t);
                if (t->keys)
                        r = sd_event_add_io(t->event, NULL, STDIN_FILENO, EPOLLIN, on_key, t);
        }
        if (r < 0) {
                top_keys_restore(t);
                t->event = sd_event_unref(t->event);
                fprintf(stderr, "Failed to set up the refresh loop: %s\n", strerror(-r));
                return EXIT_FAILED;
        }

        r = sd_event_loop(t->event);
        top_keys_restore(t);
        t->event = sd_event_unref(t->event);
        return r < 0 ? EXIT_FAILED : t->exit_code;
}

int verb_top(Ctl *c, int argc, char *argv[]) {
        Top t = { .ctl = c, .tty = isatty(STDOUT_FILENO) > 0 };
        int r;

        if (c->top_once)
                r = top_refresh(&t);
        else
                r = top_loop(&t);
        rows_free(&t);
        return r;
}
