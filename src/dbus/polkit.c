/* SPDX-License-Identifier: Apache-2.0 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "dbus/error.h"
#include "dbus/polkit.h"
#include "list.h"
#include "log.h"
#include "macro.h"
#include "time-util.h"

#define POLKIT_CHECK_AUTHORIZATION_ALLOW_USER_INTERACTION 1u
#define UID_INVALID ((uid_t) -1)
/* An interactive check waits for a human typing a password; a plain one must be quick. */
#define POLKIT_TIMEOUT_USEC (25 * 1000000ULL)
#define POLKIT_TIMEOUT_INTERACTIVE_USEC (300 * 1000000ULL)
/* An answered query waits for its call to come round again, which takes one loop
 * iteration. Should a handler not ask again (a bug), the answer is dropped after this. */
#define POLKIT_ANSWER_KEEP_USEC (60 * 1000000ULL)

struct BusPolkitQuery {
        BusPolkitQuery *next, *prev;
        BusPolkitRegistry *registry;
        sd_bus_message *request;   /* the parked method call */
        sd_bus_slot *slot;         /* the outstanding CheckAuthorization */
        sd_bus_track *caller;      /* while polkit thinks: tells us when the caller goes away */
        uid_t uid;                 /* the caller's effective uid, or UID_INVALID */
        char *action;
        bool done;
        uint64_t done_usec;        /* CLOCK_MONOTONIC */
        int result;                /* once done: 1 authorized, or negative with error set */
        sd_bus_error error;
};

static BusPolkitQuery *query_free(BusPolkitQuery *q) {
        if (!q)
                return NULL;
        if (q->registry) {
                LIST_REMOVE(q->registry->queries, q);
                q->registry->n_queries--;
        }
        sd_bus_slot_unref(q->slot);
        sd_bus_track_unref(q->caller);
        sd_bus_message_unref(q->request);
        sd_bus_error_free(&q->error);
        free(q->action);
        return mfree(q);
}

void bus_polkit_registry_done(BusPolkitRegistry *reg) {
        while (reg->queries)
                query_free(reg->queries);
}

static void registry_drop_stale(BusPolkitRegistry *reg) {
        uint64_t now = now_usec();

        for (BusPolkitQuery *q = reg->queries, *next; q; q = next) {
                next = q->next;
                if (q->done && now - q->done_usec > POLKIT_ANSWER_KEEP_USEC)
                        query_free(q);
        }
}

static BusPolkitQuery *registry_find(BusPolkitRegistry *reg, sd_bus_message *call, const char *action) {
        for (BusPolkitQuery *q = reg->queries; q; q = q->next)
                if (q->request == call && streq(q->action, action))
                        return q;
        return NULL;
}

/* The caller's effective uid, or UID_INVALID when unknown. */
static uid_t sender_euid(sd_bus_message *call) {
        sd_bus_creds *creds = NULL;
        uid_t uid;
        int r;

        r = sd_bus_query_sender_creds(call, SD_BUS_CREDS_EUID | SD_BUS_CREDS_AUGMENT, &creds);
        if (r < 0)
                return UID_INVALID;
        r = sd_bus_creds_get_euid(creds, &uid);
        sd_bus_creds_unref(creds);
        return r >= 0 ? uid : UID_INVALID;
}

/* Checks polkit has not answered yet for this uid (all unknown uids count as one). */
static size_t registry_count_waiting(const BusPolkitRegistry *reg, uid_t uid) {
        size_t n = 0;

        for (BusPolkitQuery *q = reg->queries; q; q = q->next)
                if (!q->done && q->uid == uid)
                        n++;
        return n;
}

/* The caller left while polkit thought: nobody is waiting for the answer. */
static int on_caller_gone(sd_bus_track *track, void *userdata) {
        BusPolkitQuery *q = userdata;

        log_debug("Caller %s went away while polkit was asked about %s; dropping the check.",
                  sd_bus_message_get_sender(q->request) ?: "(unknown)", q->action);
        query_free(q); /* unrefs the track: sd-bus holds its own reference while calling us */
        return 0;
}

/* Watch the caller's unique name; without a watch the check only lasts until polkit answers. */
static void query_track_caller(BusPolkitQuery *q, sd_bus *bus, const char *sender) {
        int r;

        r = sd_bus_track_new(bus, &q->caller, on_caller_gone, q);
        if (r >= 0)
                r = sd_bus_track_add_name(q->caller, sender);
        if (r < 0) {
                log_debug_errno(r, "Cannot watch %s while polkit is asked (%m); keeping the check until it answers.",
                                sender);
                q->caller = sd_bus_track_unref(q->caller);
        }
}

static void query_set_answer(BusPolkitQuery *q, sd_bus_message *reply) {
        const sd_bus_error *e;
        int authorized = 0, challenge = 0, r;

        e = sd_bus_message_get_error(reply);
        if (e) {
                log_warning("polkit check for %s failed: %s", q->action, e->message ?: e->name);
                q->result = sd_bus_error_setf(&q->error, SD_BUS_ERROR_ACCESS_DENIED,
                                              "Could not ask polkit about %s: %s", q->action,
                                              e->message ?: e->name);
                return;
        }

        r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
        if (r >= 0)
                r = sd_bus_message_read(reply, "bb", &authorized, &challenge);
        if (r < 0) {
                q->result = sd_bus_error_setf(&q->error, SD_BUS_ERROR_ACCESS_DENIED,
                                              "Malformed answer from polkit about %s", q->action);
                return;
        }

        if (authorized)
                q->result = 1;
        else if (challenge)
                q->result = sd_bus_error_setf(&q->error, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED,
                                              "Interactive authentication required for %s", q->action);
        else
                q->result = sd_bus_error_setf(&q->error, SD_BUS_ERROR_ACCESS_DENIED,
                                              "Not authorized by polkit: %s", q->action);
}

static int on_check_authorization_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        BusPolkitQuery *q = userdata;
        sd_bus *bus = sd_bus_message_get_bus(q->request);
        int r;

        q->slot = sd_bus_slot_unref(q->slot);
        q->caller = sd_bus_track_unref(q->caller); /* answered: consumed on the next loop iteration */
        query_set_answer(q, reply);
        q->done = true;
        q->done_usec = now_usec();

        /* Run the original call again: its handler now finds the answer. */
        r = sd_bus_message_rewind(q->request, true);
        if (r >= 0)
                r = sd_bus_enqueue_for_read(bus, q->request);
        if (r < 0) {
                log_error_errno(r, "Failed to requeue a call after polkit answered: %m");
                (void) sd_bus_reply_method_errorf(q->request, SD_BUS_ERROR_FAILED,
                                                  "Failed to process the authorized call");
                query_free(q);
        }
        return 0;
}

static int polkit_ask(BusPolkitRegistry *reg, sd_bus_message *call, uid_t uid, const char *action,
                      sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *req = NULL;
        sd_bus *bus = sd_bus_message_get_bus(call);
        const char *sender = sd_bus_message_get_sender(call);
        bool interactive = sd_bus_message_get_allow_interactive_authorization(call) > 0;
        BusPolkitQuery *q;
        int r;

        if (!sender)
                return sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED, "Caller has no bus name");
        if (registry_count_waiting(reg, uid) >= BUS_POLKIT_QUERIES_PER_USER_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_LIMITS_EXCEEDED,
                                         "Too many authorization checks of this user waiting for polkit (%u)",
                                         BUS_POLKIT_QUERIES_PER_USER_MAX);
        if (reg->n_queries >= BUS_POLKIT_QUERIES_MAX)
                return sd_bus_error_set(error, BUS_ERROR_BUSY, "Too many authorization checks in flight");

        r = sd_bus_message_new_method_call(bus, &req, "org.freedesktop.PolicyKit1",
                                           "/org/freedesktop/PolicyKit1/Authority",
                                           "org.freedesktop.PolicyKit1.Authority",
                                           "CheckAuthorization");
        if (r >= 0)
                r = sd_bus_message_append(req, "(sa{sv})s", "system-bus-name", 1, "name", "s",
                                          sender, action);
        if (r >= 0)
                r = sd_bus_message_append(req, "a{ss}us", 0,
                                          interactive ? POLKIT_CHECK_AUTHORIZATION_ALLOW_USER_INTERACTION : 0u,
                                          "");
        if (r < 0)
                return r;

        q = calloc(1, sizeof *q);
        if (!q)
                return -ENOMEM;
        q->action = strdup(action);
        if (!q->action) {
                free(q);
                return -ENOMEM;
        }
        q->request = sd_bus_message_ref(call);
        q->uid = uid;

        r = sd_bus_call_async(bus, &q->slot, req, on_check_authorization_reply, q,
                              interactive ? POLKIT_TIMEOUT_INTERACTIVE_USEC : POLKIT_TIMEOUT_USEC);
        if (r < 0) {
                query_free(q);
                return r;
        }

        q->registry = reg;
        LIST_PREPEND(reg->queries, q);
        reg->n_queries++;
        query_track_caller(q, bus, sender);
        return 0;
}

int bus_polkit_verify_async(BusPolkitRegistry *reg, sd_bus_message *call, const char *action,
                            sd_bus_error *error) {
        BusPolkitQuery *q;
        int r;

        registry_drop_stale(reg);
        q = registry_find(reg, call, action);
        if (q) {
                if (!q->done)
                        return sd_bus_error_set(error, BUS_ERROR_BUSY, "Authorization check in progress");
                r = q->result;
                if (r < 0)
                        sd_bus_error_move(error, &q->error);
                query_free(q);
                return r;
        }

        uid_t uid = sender_euid(call);
        if (uid == 0)
                return 1;

        return polkit_ask(reg, call, uid, action, error);
}
