/* SPDX-License-Identifier: Apache-2.0 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "claim.h"
#include "driver-watch.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "manager-dbus.h"
#include "manager-reconcile.h"
#include "manager.h"
#include "time-util.h"

/* Requests of one pass in flight at once: the API client's budget (KUBE_REQUESTS_MAX) is
 * shared with the kubelet's claim reads and the slice publisher. */
#define RECONCILE_REQUESTS_MAX 8
/* A claim reserved for more pods than this is taken as in use without asking about each. */
#define RECONCILE_PODS_MAX 32
/* Answers in a row that say the API server is not answering (no answer, 429, 5xx) after
 * which a pass stops asking: the rest of its claims wait for the next pass, rather than
 * 30 s timeouts, 8 at a time, keep a pass over thousands of claims going for hours. */
#define RECONCILE_FAILING_MAX 16
/* "Unused" must be seen on this many consecutive passes. */
#define RECONCILE_STRIKES 2
#define RECONCILE_JSON_DEPTH_MAX 64

typedef enum Verdict {
        VERDICT_KEEP,       /* in use, or no longer ours to judge */
        VERDICT_UNPROVEN,   /* the answer proves nothing */
        VERDICT_GONE,       /* deleted, or re-created under another UID */
        VERDICT_UNUSED,     /* deallocated, or reserved for no live pod of this node */
} Verdict;


typedef struct Check {
        Reconciler *reconciler;
        char uid[CLAIM_UID_MAX + 1];
        char *namespace_, *name;
        uint64_t last_call_usec;     /* the kubelet's last prepare of it */
        unsigned strikes;            /* consecutive "unused" verdicts, this pass included */
        uint64_t asked_usec;         /* when the evidence was asked for */
        KubeRequest *req;            /* the claim's or a pod's GET in flight */
        json_object *reserved;       /* the claim's status.reservedFor (a reference) */
        size_t pod;                  /* the reservedFor entry being asked about */
        bool pod_unproven;           /* some pod's answer proved nothing */
} Check;

typedef struct Strike {
        char uid[CLAIM_UID_MAX + 1];
        unsigned strikes;
} Strike;

struct Reconciler {
        sd_event *event;
        sd_event_source *timer;
        Preparer *preparer;
        char *node_name;
        ReconcilerKubeFunc kube;
        ReconcilerForgottenFunc forgotten;
        void *userdata;
        uint64_t interval_usec;

        /* The pass running: one Check per claim prepared when it began. */
        Check *checks;
        size_t n_checks, next, n_in_flight, n_done;
        unsigned n_failing;          /* answers in a row from an API server that does not answer */
        uint64_t pass_start_usec;
        KubeClient *client;          /* the one the pass asks */

        /* What the last pass found "unused", sorted by UID. */
        Strike *strikes;
        size_t n_strikes;

        ReconcilerStats stats;
};

static void check_start(Reconciler *r, Check *c);

/* ---------------------------------------------------------------- verdicts */

/* A 200 about pod name of the claim's namespace: is it alive on this node? */
static Verdict pod_verdict(Reconciler *r, const char *name, const char *uid, const KubeResponse *resp) {
        const char *node;

        if (resp->error < 0)
                return VERDICT_UNPROVEN;
        if (resp->status == 404)
                return kube_status_proves_not_found(resp->body, resp->body_size, "", "pods", name) ?
                               VERDICT_GONE : VERDICT_UNPROVEN;
        if (resp->status != 200 || !resp->json || !streq_ptr(json_get_string(resp->json, "metadata.name"), name))
                return VERDICT_UNPROVEN;
        if (!isempty(uid) && !streq_ptr(json_get_string(resp->json, "metadata.uid"), uid))
                return VERDICT_GONE;     /* a new pod of the same name */
        node = json_get_string(resp->json, "spec.nodeName");
        if (!isempty(node) && !streq(node, r->node_name))
                return VERDICT_UNUSED;   /* bound to another node: not ours to serve */
        return VERDICT_KEEP;
}

/* The claim itself (HTTP 200 or 404). For VERDICT_KEEP with pods to ask about, c->reserved is set. */
static Verdict claim_verdict(Check *c, const KubeResponse *resp, const char **ret_why) {
        json_object *alloc, *reserved;
        const char *uid;
        size_t n;

        *ret_why = NULL;
        if (resp->error < 0)
                return VERDICT_UNPROVEN;
        if (resp->status == 404) {
                if (!kube_status_proves_not_found(resp->body, resp->body_size, "resource.k8s.io", "resourceclaims",
                                                  c->name)) {
                        *ret_why = "HTTP 404 without the API server's NotFound status for this claim";
                        return VERDICT_UNPROVEN;
                }
                *ret_why = "the claim was deleted";
                return VERDICT_GONE;
        }
        if (resp->status != 200 || !resp->json || !json_object_is_type(resp->json, json_type_object))
                return VERDICT_UNPROVEN;
        uid = json_get_string(resp->json, "metadata.uid");
        if (!claim_uid_is_valid(uid) || !streq_ptr(json_get_string(resp->json, "metadata.name"), c->name) ||
            !streq_ptr(json_get_string(resp->json, "metadata.namespace"), c->namespace_)) {
                *ret_why = "the answer (HTTP 200) is not this claim";
                return VERDICT_UNPROVEN;
        }
        if (!streq(uid, c->uid)) {
                *ret_why = "the claim was re-created with another UID";
                return VERDICT_GONE;
        }
        alloc = json_get(resp->json, "status.allocation");
        if (!alloc || json_object_is_type(alloc, json_type_null)) {
                *ret_why = "the claim is no longer allocated";
                return VERDICT_UNUSED;
        }
        reserved = json_get(resp->json, "status.reservedFor");
        if (reserved && !json_object_is_type(reserved, json_type_null) &&
            !json_object_is_type(reserved, json_type_array))
                return VERDICT_UNPROVEN;
        n = reserved && json_object_is_type(reserved, json_type_array) ? json_object_array_length(reserved) : 0;
        if (n == 0) {
                *ret_why = "the claim is reserved for no pod";
                return VERDICT_UNUSED;
        }
        if (n > RECONCILE_PODS_MAX)
                return VERDICT_KEEP;
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(reserved, i);
                const char *group = json_get_string(e, "apiGroup");

                /* A consumer that is not a pod (another controller's object): in use. */
                if (!streq_ptr(json_get_string(e, "resource"), "pods") || !isempty(group) ||
                    isempty(json_get_string(e, "name")))
                        return VERDICT_KEEP;
        }
        c->reserved = json_object_get(reserved);
        return VERDICT_KEEP;
}

/* ---------------------------------------------------------------- one claim */

static void check_finish(Reconciler *r, Check *c, Verdict v, const char *why) {
        char error[PREPARE_ERROR_MAX] = "", reason[512];
        int k;

        json_object_put(c->reserved);
        c->reserved = NULL;
        c->req = NULL;
        r->n_done++;
        switch (v) {
        case VERDICT_KEEP:
                c->strikes = 0;
                return;
        case VERDICT_UNPROVEN:
                r->stats.claims_unproven++;
                log_debug("Reconciliation: claim %s/%s (%s) kept, nothing proven%s%s", c->namespace_, c->name, c->uid,
                          why ? ": " : "", why ?: "");
                c->strikes = 0;
                return;
        case VERDICT_UNUSED:
                c->strikes++;
                if (c->strikes < RECONCILE_STRIKES) {
                        r->stats.claims_suspect++;
                        log_info("Reconciliation: claim %s/%s (%s) looks unused (%s); cleaned up if the next check "
                                 "says so too", c->namespace_, c->name, c->uid, why);
                        return;
                }
                break;
        case VERDICT_GONE:
                break;
        }
        /* Never a claim the kubelet prepared less than one interval ago. */
        if (r->interval_usec > 0 && c->asked_usec - MIN(c->asked_usec, c->last_call_usec) < r->interval_usec) {
                r->stats.cleanups_deferred++;
                log_debug("Reconciliation: claim %s (%s) was prepared less than one interval ago, not yet", c->uid, why);
                return;
        }
        (void) snprintf(reason, sizeof(reason), "reconciliation: %s", why);
        k = preparer_try_forget(r->preparer, c->uid, reason, c->asked_usec, error, sizeof(error));
        if (k == -ENOENT)
                return;   /* unprepared meanwhile: nothing left */
        if (k == -ESTALE)
                c->strikes = 0;   /* the kubelet prepared it since: whatever was seen, it is in use */
        if (k < 0) {
                r->stats.cleanups_deferred++;
                if (k == -EBUSY || k == -ESTALE)
                        log_debug("Reconciliation: claim %s is in a kubelet call or was prepared since, not now",
                                  c->uid);
                else
                        log_warning("Reconciliation: claim %s/%s (%s) is stale (%s) but cannot be cleaned up yet: %s",
                                    c->namespace_, c->name, c->uid, why, error[0] ? error : strerror(-k));
                return;
        }
        c->strikes = 0;
        r->stats.claims_cleaned++;
        if (r->forgotten)
                r->forgotten(r->userdata, c->uid);
}

static void pass_pump(Reconciler *r);

static void on_pod(KubeClient *client, const KubeResponse *resp, void *userdata);

/* Count the answers of an API server that is not answering; any other answer resets it. */
static void note_answer(Reconciler *r, const KubeResponse *resp) {
        if (resp->error < 0 || resp->status == 429 || resp->status >= 500)
                r->n_failing++;
        else
                r->n_failing = 0;
}

/* Ask about the next reserved pod; the verdict when there is none left. */
static void check_next_pod(Reconciler *r, Check *c) {
        size_t n = json_object_array_length(c->reserved);
        char ns[256], name[768], path[1200];
        int k;

        while (c->pod < n) {
                json_object *e = json_object_array_get_idx(c->reserved, c->pod);

                if (kube_escape(c->namespace_, ns, sizeof(ns)) < 0 ||
                    kube_escape(json_get_string(e, "name"), name, sizeof(name)) < 0) {
                        c->pod_unproven = true;
                        c->pod++;
                        continue;
                }
                (void) snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", ns, name);
                k = kube_client_request(r->client, "GET", path, NULL, 1, on_pod, c, &c->req);
                if (k >= 0)
                        return;
                c->pod_unproven = true;   /* the client is busy: nothing proven */
                c->pod = n;
        }
        r->n_in_flight--;
        if (c->pod_unproven)
                check_finish(r, c, VERDICT_UNPROVEN, "a reserved pod could not be asked about");
        else
                check_finish(r, c, VERDICT_UNUSED, "every pod it is reserved for is gone or on another node");
}

static void on_pod(KubeClient *client, const KubeResponse *resp, void *userdata) {
        Check *c = userdata;
        Reconciler *r = c->reconciler;
        json_object *e = json_object_array_get_idx(c->reserved, c->pod);

        c->req = NULL;
        note_answer(r, resp);
        switch (pod_verdict(r, json_get_string(e, "name"), json_get_string(e, "uid"), resp)) {
        case VERDICT_KEEP:
                r->n_in_flight--;
                check_finish(r, c, VERDICT_KEEP, NULL);
                pass_pump(r);
                return;
        case VERDICT_UNPROVEN:
                c->pod_unproven = true;
                break;
        case VERDICT_GONE:
        case VERDICT_UNUSED:
                break;
        }
        c->pod++;
        check_next_pod(r, c);
        pass_pump(r);
}

static void on_claim(KubeClient *client, const KubeResponse *resp, void *userdata) {
        Check *c = userdata;
        Reconciler *r = c->reconciler;
        const char *why;
        Verdict v;

        c->req = NULL;
        note_answer(r, resp);
        v = claim_verdict(c, resp, &why);
        if (v == VERDICT_KEEP && c->reserved) {
                check_next_pod(r, c);   /* still in flight */
                pass_pump(r);
                return;
        }
        if (v == VERDICT_UNPROVEN && !why)
                why = resp->message;
        r->n_in_flight--;
        check_finish(r, c, v, why);
        pass_pump(r);
}

static void check_start(Reconciler *r, Check *c) {
        char ns[256], name[768], path[1200];
        int k;

        r->stats.claims_checked++;
        c->asked_usec = now_usec();
        if (kube_escape(c->namespace_, ns, sizeof(ns)) < 0 || kube_escape(c->name, name, sizeof(name)) < 0) {
                check_finish(r, c, VERDICT_UNPROVEN, "its name cannot be asked about");
                return;
        }
        (void) snprintf(path, sizeof(path), "/apis/resource.k8s.io/v1/namespaces/%s/resourceclaims/%s", ns, name);
        k = kube_client_request(r->client, "GET", path, NULL, 1, on_claim, c, &c->req);
        if (k < 0) {
                check_finish(r, c, VERDICT_UNPROVEN, "the API client is busy");
                return;
        }
        r->n_in_flight++;
}

/* ---------------------------------------------------------------- passes */

static int strike_compare(const void *a, const void *b) {
        return strcmp(((const Strike *) a)->uid, ((const Strike *) b)->uid);
}

static unsigned strikes_of(Reconciler *r, const char *uid) {
        Strike key = {}, *s;

        (void) snprintf(key.uid, sizeof(key.uid), "%s", uid);
        s = r->n_strikes > 0 ? bsearch(&key, r->strikes, r->n_strikes, sizeof(Strike), strike_compare) : NULL;
        return s ? s->strikes : 0;
}

static void checks_free(Reconciler *r) {
        for (size_t i = 0; i < r->n_checks; i++) {
                Check *c = &r->checks[i];
                if (c->req)
                        kube_request_cancel(c->req);
                json_object_put(c->reserved);
                free(c->namespace_);
                free(c->name);
        }
        r->checks = mfree(r->checks);
        r->n_checks = r->next = r->n_in_flight = r->n_done = 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata);

static int reconciler_arm(Reconciler *r, uint64_t usec) {
        int k;

        if (r->interval_usec == 0)
                return r->timer ? sd_event_source_set_enabled(r->timer, SD_EVENT_OFF) : 0;
        if (!r->timer) {
                k = sd_event_add_time_relative(r->event, &r->timer, CLOCK_MONOTONIC, usec, 0, on_timer, r);
                if (k < 0)
                        return k;
                (void) sd_event_source_set_description(r->timer, "reconcile");
                return 0;
        }
        k = sd_event_source_set_time_relative(r->timer, usec);
        if (k >= 0)
                k = sd_event_source_set_enabled(r->timer, SD_EVENT_ONESHOT);
        return k;
}

/* Keep what this pass found "unused" for the next one, and schedule it. */
static void pass_end(Reconciler *r) {
        size_t n = 0;
        uint64_t took = now_usec() - r->pass_start_usec;

        free(r->strikes);
        r->strikes = NULL;
        r->n_strikes = 0;
        for (size_t i = 0; i < r->n_checks; i++)
                n += r->checks[i].strikes > 0;
        if (n > 0 && (r->strikes = calloc(n, sizeof(Strike)))) {
                for (size_t i = 0; i < r->n_checks; i++)
                        if (r->checks[i].strikes > 0) {
                                memcpy(r->strikes[r->n_strikes].uid, r->checks[i].uid, sizeof(r->checks[i].uid));
                                r->strikes[r->n_strikes++].strikes = r->checks[i].strikes;
                        }
                qsort(r->strikes, r->n_strikes, sizeof(Strike), strike_compare);
        }
        log_debug("Reconciliation pass over %zu claim(s) done in %" PRIu64 " ms", r->n_checks, took / USEC_PER_MSEC);
        checks_free(r);
        r->client = NULL;
        r->stats.passes++;
        r->stats.last_pass_usec = took;
        /* The next one an interval after this one began, and never at once. */
        (void) reconciler_arm(r, took < r->interval_usec ? r->interval_usec - took : USEC_PER_SEC);
}

static void pass_pump(Reconciler *r) {
        if (r->n_failing >= RECONCILE_FAILING_MAX && r->next < r->n_checks) {
                log_info("Reconciliation: the API server is not answering; the other %zu claim(s) are kept and "
                         "checked next time", r->n_checks - r->next);
                while (r->next < r->n_checks)
                        check_finish(r, &r->checks[r->next++], VERDICT_UNPROVEN, "the API server is not answering");
        }
        while (r->next < r->n_checks && r->n_in_flight < RECONCILE_REQUESTS_MAX)
                check_start(r, &r->checks[r->next++]);
        if (r->checks && r->n_done == r->n_checks)
                pass_end(r);
}

typedef struct Collect {
        Reconciler *reconciler;
        size_t size;
        int error;
} Collect;

static void collect_claim(void *userdata, const PreparedClaim *pc) {
        Collect *col = userdata;
        Reconciler *r = col->reconciler;
        Check *c;

        if (col->error < 0 || r->n_checks >= col->size)
                return;
        c = &r->checks[r->n_checks];
        *c = (Check) { .reconciler = r, .last_call_usec = pc->last_call_usec };
        if (snprintf(c->uid, sizeof(c->uid), "%s", pc->uid) >= (int) sizeof(c->uid))
                return;
        c->namespace_ = strdup(pc->namespace_ ?: "");
        c->name = strdup(pc->name ?: "");
        if (!c->namespace_ || !c->name) {
                free(c->namespace_);
                free(c->name);
                col->error = -ENOMEM;
                return;
        }
        c->strikes = strikes_of(r, c->uid);
        r->n_checks++;
}

int reconciler_run_now(Reconciler *r) {
        Collect col = { .reconciler = r };

        if (r->checks)
                return 0;   /* one pass at a time */
        r->pass_start_usec = now_usec();
        r->n_failing = 0;
        r->client = r->kube ? r->kube(r->userdata) : NULL;
        col.size = preparer_n_prepared(r->preparer);
        if (!r->client || col.size == 0) {
                /* Nothing to ask, or nobody to ask: an outage or no credentials never clean. */
                r->client = NULL;
                r->stats.passes++;
                return reconciler_arm(r, r->interval_usec);
        }
        r->checks = calloc(col.size, sizeof(Check));
        if (!r->checks)
                return log_oom();
        (void) preparer_foreach(r->preparer, collect_claim, &col);
        if (col.error < 0 || r->n_checks == 0) {
                checks_free(r);
                r->stats.passes++;
                (void) reconciler_arm(r, r->interval_usec);
                return col.error;
        }
        pass_pump(r);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Reconciler *r = userdata;

        if (reconciler_run_now(r) < 0)
                (void) reconciler_arm(r, r->interval_usec);
        return 0;
}

/* ---------------------------------------------------------------- life */

int reconciler_new(sd_event *e, Preparer *p, const char *node_name, ReconcilerKubeFunc kube,
                   ReconcilerForgottenFunc forgotten, void *userdata, Reconciler **ret) {
        Reconciler *r;

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->event = sd_event_ref(e);
        r->preparer = p;
        r->kube = kube;
        r->forgotten = forgotten;
        r->userdata = userdata;
        r->node_name = strdup(node_name ?: "");
        if (!r->node_name) {
                reconciler_free(r);
                return -ENOMEM;
        }
        *ret = r;
        return 0;
}

Reconciler *reconciler_free(Reconciler *r) {
        if (!r)
                return NULL;
        checks_free(r);
        free(r->strikes);
        sd_event_source_disable_unref(r->timer);
        sd_event_unref(r->event);
        free(r->node_name);
        free(r);
        return NULL;
}

int reconciler_set_interval(Reconciler *r, uint64_t usec) {
        bool changed = usec != r->interval_usec;

        r->interval_usec = usec;
        if (r->checks || (!changed && r->timer))
                return 0;   /* the running pass arms the next one */
        return reconciler_arm(r, usec);
}

bool reconciler_running(Reconciler *r) {
        return r->checks;
}

const ReconcilerStats *reconciler_stats(Reconciler *r) {
        return &r->stats;
}

/* ---------------------------------------------------------------- the manager's side */

/* No new pass while the daemon stops: it finishes the kubelet's calls, nothing else. */
static KubeClient *manager_reconcile_kube(void *userdata) {
        Manager *m = userdata;
        return m->state == MANAGER_STOPPING ? NULL : m->kube;
}

static void manager_reconcile_forgotten(void *userdata, const char *uid) {
        Manager *m = userdata;

        if (m->bus)
                (void) bus_server_claim_unprepared(m->bus, uid);
}

int manager_setup_reconcile(Manager *m) {
        int r;

        if (!m->preparer)
                return 0;
        r = driver_watch_new(m->event, m->preparer, &m->driver_watch);
        if (r < 0)
                log_warning_errno(r, "Cannot watch the driver's files; Rescan still looks for changes: %m");
        r = reconciler_new(m->event, m->preparer, m->config.node_name, manager_reconcile_kube,
                           manager_reconcile_forgotten, m, &m->reconciler);
        if (r < 0)
                return log_error_errno(r, "Failed to set up reconciliation: %m");
        manager_reload_reconcile(m);
        return 0;
}

void manager_reload_reconcile(Manager *m) {
        uint64_t usec = (uint64_t) m->config.reconcile_interval_sec * USEC_PER_SEC;

        if (!m->reconciler)
                return;
        if (reconciler_set_interval(m->reconciler, usec) < 0)
                log_warning("Cannot schedule reconciliation: prepared claims are checked only at start");
        else if (usec == 0)
                log_info("Reconciliation is off (ReconcileIntervalSec=0): prepared claims are checked only at start");
        else
                log_debug("Checking prepared claims against the API server every %u s",
                          m->config.reconcile_interval_sec);
}

void manager_free_reconcile(Manager *m) {
        m->reconciler = reconciler_free(m->reconciler);
        m->driver_watch = driver_watch_free(m->driver_watch);
}

void manager_rescan_driver(Manager *m) {
        if (m->driver_watch)
                (void) driver_watch_check(m->driver_watch, false);
}
