/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * hamictl: the command-line face of org.projecthami.Dra1 (boltctl's layout: this
 * header and hamictl.c are the frame, each subcommand is one hamictl-<verb>.c).
 */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "macro.h"

/* Exit codes (hamictl(1), EXIT STATUS). */
enum {
        EXIT_OK = 0,
        EXIT_FAILED = 1,
        EXIT_USAGE = 2,
        EXIT_NOT_RUNNING = 3,  /* nobody owns org.projecthami.Dra1 and it cannot be started */
        EXIT_NOT_FOUND = 4,    /* no such claim or device */
        EXIT_DENIED = 5,       /* polkit or the bus policy said no */
};

/* How long the daemon has to answer (--timeout=): also how long an activation may take. */
#define CTL_TIMEOUT_DEFAULT_USEC (2ULL * 1000 * 1000)
/* A method polkit checks, while an agent may ask a person for a password. */
#define CTL_TIMEOUT_AUTHORIZE_USEC (120ULL * 1000 * 1000)

/* hamictl top --order= */
typedef enum TopOrder {
        TOP_ORDER_MEMORY,
        TOP_ORDER_SM,
        TOP_ORDER_NAME,
        _TOP_ORDER_MAX,
} TopOrder;

#define CTL_TOP_DELAY_DEFAULT_USEC (1000ULL * 1000)

typedef struct Ctl {
        sd_bus *bus;
        bool json;
        bool legend;
        bool ask_password;
        uint64_t timeout_usec;
        /* hamictl top */
        bool top_once;
        uint64_t top_delay_usec;
        TopOrder top_order;
        unsigned top_iterations;   /* 0: until interrupted */
} Ctl;

typedef int (*VerbFunc)(Ctl *c, int argc, char *argv[]);

typedef struct Verb {
        const char *name;
        int min_args, max_args;    /* after the verb */
        VerbFunc run;
        const char *usage;
} Verb;

int verb_status(Ctl *c, int argc, char *argv[]);
int verb_devices(Ctl *c, int argc, char *argv[]);
int verb_claims(Ctl *c, int argc, char *argv[]);
int verb_claim(Ctl *c, int argc, char *argv[]);
int verb_release(Ctl *c, int argc, char *argv[]);
int verb_reload(Ctl *c, int argc, char *argv[]);
int verb_rescan(Ctl *c, int argc, char *argv[]);
int verb_schedulable(Ctl *c, int argc, char *argv[]);
int verb_monitor(Ctl *c, int argc, char *argv[]);
int verb_top(Ctl *c, int argc, char *argv[]);

/* Parse --order= of top: "memory", "sm" or "name". */
int ctl_parse_order(const char *s, TopOrder *ret);

/* Call a Manager method; on failure print why and return the exit code (> 0). */
int ctl_call(Ctl *c, const char *member, sd_bus_message **ret_reply, const char *types, ...);
/* GetAll of one object into ret_reply; same error convention. */
int ctl_get_all(Ctl *c, const char *path, const char *interface, sd_bus_message **ret_reply);
/* Print a D-Bus error and map it to an exit code. */
int ctl_error(const char *what, const sd_bus_error *e, int r);
/* Whether the daemon answers (a Peer.Ping, which starts it if it can be started) within
 * the timeout: EXIT_OK, or EXIT_NOT_RUNNING with what to look at. */
int ctl_reach(Ctl *c);
/* Parse --timeout=: seconds (fractions allowed), more than 0 and at most an hour. */
int ctl_parse_timeout(const char *s, uint64_t *ret_usec);

/* One entry of Claim.Usage and ListUsage (org.projecthami.Dra1(5)). */
typedef struct CtlUsage {
        const char *device;
        uint64_t memory_used, memory_limit;
        uint32_t sm_used;          /* permille; BUS_USAGE_SM_UNKNOWN before a measurement */
        uint32_t sm_limit, processes, measured_processes, flags;
} CtlUsage;

/* Read one (sttuuuuu) of an array: 1, 0 at its end, or a negative errno. */
int ctl_read_usage(sd_bus_message *m, CtlUsage *ret);
/* Its fields as hamictl --json shows them (top's rows, claim's Usage), added to o (a new
 * object when NULL), which is returned. */
struct json_object *ctl_usage_to_json(struct json_object *o, const CtlUsage *u);
/* Its flags as words, comma separated ("" for none); NULL on OOM. */
char *ctl_usage_flags_text(uint32_t flags);

/* Read one a{sv} GetAll reply into a JSON object (b, u, t, s, o, as, a(stu) and
 * a(sttuuuuu) values). */
int ctl_read_properties(sd_bus_message *m, struct json_object **ret);

/* Print a JSON value on stdout (pretty when stdout is a terminal). */
void ctl_print_json(struct json_object *o);

/* "22.0G" style sizes for humans. */
const char *ctl_format_bytes(char buf[static 16], uint64_t bytes);

/* A plain text table: header row, then rows of cells; columns padded to fit. */
typedef struct Table {
        size_t n_columns;
        size_t n_cells;
        char **cells;              /* row-major, header first */
} Table;

Table *table_new(const char *first, ...) _sentinel_;  /* the header names */
int table_add(Table *t, const char *cell);
int table_addf(Table *t, const char *format, ...) _printf_(2, 3);
void table_print(const Table *t, bool legend);
Table *table_free(Table *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(Table *, table_free);

/* The end of a listing verb: r < 0 (the reply was malformed) reports it; otherwise the
 * list as JSON with --json, else the table. Takes list. Returns the exit code. */
int ctl_finish_list(Ctl *c, int r, struct json_object *list, const Table *t);
