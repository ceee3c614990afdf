/* SPDX-License-Identifier: Apache-2.0 */

#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/eventfd.h>

#include "claim.h"
#include "dra-service.h"
#include "json-util.h"
#include "kube-client.h"
#include "list.h"
#include "log.h"
#include "macro.h"
#include "time-util.h"

#define FETCH_BODY_MAX (3u * 1024 * 1024)
/* Claim reads in flight at once; more wait in the backlog (the API client has its own
 * limit, shared with the slice publisher, and answers -EBUSY beyond it). */
#define FETCHES_MAX 32
#define FETCH_RETRY_USEC (50 * 1000)
/* A recovered claim whose fate the API server's answer does not prove is asked about
 * again, after 30 s, then twice as long each time, at most every 10 min. */
#define VERIFY_RETRY_USEC_DEFAULT (30 * USEC_PER_SEC)
#define VERIFY_RETRY_USEC_MAX (10 * 60 * USEC_PER_SEC)
#define VERIFY_JSON_DEPTH_MAX 64

typedef struct Pending Pending;

typedef struct DraService DraService;

typedef struct Job {
        struct Job *next;
        DraService *service;
        struct Job *fetch_prev, *fetch_next;  /* while the fetcher has it */
        bool verify;              /* a start-up verification, not a kubelet call */
        struct Job *park_prev, *park_next; /* a verification waiting to ask again */
        sd_event_source *verify_retry;
        uint64_t verify_delay;    /* the wait before the next ask; 0: not asked yet */
        Pending *pending;         /* the DraRequest this claim belongs to; NULL for verification */
        size_t index;             /* claim index in the request */
        bool prepare;
        uint64_t started_usec;    /* CLOCK_MONOTONIC, for the duration histograms */
        char *namespace_, *name, *uid;
        char *json;               /* fetched claim, or NULL */
        size_t json_len;
        /* Results, filled by the worker. */
        int result;
        PreparedClaim prepared;
        char error[PREPARE_ERROR_MAX];
} Job;

struct Pending {
        DraRequest *request;
        size_t n_left;            /* claims not answered yet */
};

struct DraService {
        sd_event *event;
        sd_event_source *wakeup;  /* eventfd: workers -> event loop */
        int wakeup_fd;
        Preparer *preparer;
        ClaimFetchFunc fetch;
        void *fetch_userdata;

        pthread_mutex_t lock;
        pthread_cond_t work;
        Job *queue, *queue_tail; /* to the workers */
        Job *done;               /* back to the loop */
        bool stopping;
        pthread_t *workers;
        unsigned n_workers;

        size_t n_verifying;
        Job *fetching;            /* jobs the fetcher still holds */
        size_t n_fetching;
        Job *backlog, *backlog_tail; /* jobs waiting for a fetch slot */
        sd_event_source *retry;   /* backlog retry when the API client was busy */
        Job *parked;              /* verifications waiting to ask again */
        size_t n_parked;
        uint64_t verify_retry_usec;
        DraServiceObserver observer;
        void *observer_userdata;
        DraServiceStats stats;    /* event thread only */
};

static void fetching_remove(DraService *s, Job *j);
static void fetch_failed(DraService *s, Job *j, int r);

static void job_free(Job *j) {
        if (!j)
                return;
        free(j->namespace_);
        free(j->name);
        free(j->uid);
        free(j->json);
        sd_event_source_disable_unref(j->verify_retry);
        prepared_claim_done(&j->prepared);
        free(j);
}

static Job *job_new(Pending *pending, size_t index, bool prepare, const char *ns, const char *name,
                    const char *uid) {
        Job *j = calloc(1, sizeof(*j));

        if (!j)
                return NULL;
        j->pending = pending;
        j->index = index;
        j->prepare = prepare;
        j->started_usec = now_usec();
        j->namespace_ = strdup(ns ?: "");
        j->name = strdup(name ?: "");
        j->uid = strdup(uid ?: "");
        if (!j->namespace_ || !j->name || !j->uid) {
                job_free(j);
                return NULL;
        }
        return j;
}

/* ---------------------------------------------------------------- answers (event thread) */

static void pending_answered(Pending *pd) {
        if (--pd->n_left > 0)
                return;
        dra_request_complete(pd->request);
        free(pd);
}

static char **strv_one(const char *s) {
        char **v = calloc(2, sizeof(char *));

        if (!v)
                return NULL;
        v[0] = strdup(s);
        if (!v[0]) {
                free(v);
                return NULL;
        }
        return v;
}

static int answer_devices(DraRequest *r, size_t i, const PreparedClaim *c) {
        DraDevice *devices;

        if (c->n_devices == 0)
                return dra_request_set_done(r, i);
        devices = calloc(c->n_devices, sizeof(DraDevice));
        if (!devices)
                return -ENOMEM;
        for (size_t k = 0; k < c->n_devices; k++) {
                const PreparedClaimDevice *d = &c->devices[k];
                devices[k] = (DraDevice) {
                        .request_names = strv_one(d->request),
                        .pool_name = strdup(d->pool),
                        .device_name = strdup(d->device),
                        .cdi_device_ids = strv_one(d->cdi_device_id),
                        .share_id = d->share_id ? strdup(d->share_id) : NULL,
                };
                if (!devices[k].request_names || !devices[k].pool_name || !devices[k].device_name ||
                    !devices[k].cdi_device_ids || (d->share_id && !devices[k].share_id)) {
                        for (size_t x = 0; x <= k; x++)
                                dra_device_done(&devices[x]);
                        free(devices);
                        return -ENOMEM;
                }
        }
        return dra_request_set_devices(r, i, devices, c->n_devices);
}

static void job_notify(DraService *s, Job *j) {
        if (!s->observer || j->result < 0)
                return;
        if (j->prepare && j->prepared.n_devices > 0)
                s->observer(s->observer_userdata, j->uid, &j->prepared);
        else if (!j->prepare)
                s->observer(s->observer_userdata, j->uid, NULL);
}

/* A kubelet's claim answered: its result and how long it took, fetch included. */
static void job_count(DraService *s, const Job *j) {
        uint64_t *results = j->prepare ? s->stats.prepare : s->stats.unprepare;

        results[j->result < 0 ? 1 : 0]++;
        histogram_observe(j->prepare ? &s->stats.prepare_duration : &s->stats.unprepare_duration,
                          now_usec() - j->started_usec);
}

static void job_answer(DraService *s, Job *j) {
        job_notify(s, j);
        if (!j->pending) {
                /* A verification that ended in forgetting the claim. */
                s->n_verifying--;
                return;
        }
        DraRequest *r = j->pending->request;
        int k;

        job_count(s, j);
        if (j->result < 0)
                k = dra_request_set_error(r, j->index, "%s", j->error[0] ? j->error : strerror(-j->result));
        else if (j->prepare)
                k = answer_devices(r, j->index, &j->prepared);
        else
                k = dra_request_set_done(r, j->index);
        if (k < 0)
                (void) dra_request_set_error(r, j->index, "internal error: %s", strerror(-k));
        pending_answered(j->pending);
}

static int on_wakeup(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        DraService *s = userdata;
        eventfd_t v;
        Job *list;

        /* Only resets the counter: the done list is what counts, and an empty eventfd
         * (EAGAIN, from dra_service_free()) has nothing to reset. */
        (void) eventfd_read(s->wakeup_fd, &v);
        pthread_mutex_lock(&s->lock);
        list = s->done;
        s->done = NULL;
        pthread_mutex_unlock(&s->lock);

        /* The list is newest first; answer in any order, the kubelet keys by UID. */
        while (list) {
                Job *next = list->next;
                job_answer(s, list);
                job_free(list);
                list = next;
        }
        return 0;
}

/* ---------------------------------------------------------------- workers */

static void job_run(DraService *s, Job *j) {
        PrepareClaimRef ref = { .namespace_ = j->namespace_, .name = j->name, .uid = j->uid };

        if (!j->pending)
                j->result = preparer_forget(s->preparer, j->uid, j->error[0] ? j->error : NULL);
        else if (j->prepare)
                j->result = preparer_prepare(s->preparer, &ref, j->json, j->json_len, &j->prepared, j->error,
                                             sizeof(j->error));
        else
                j->result = preparer_unprepare(s->preparer, j->uid, j->error, sizeof(j->error));
}

static void *worker(void *userdata) {
        DraService *s = userdata;

        pthread_mutex_lock(&s->lock);
        for (;;) {
                Job *j;

                while (!s->queue && !s->stopping)
                        pthread_cond_wait(&s->work, &s->lock);
                if (!s->queue)
                        break;
                j = QUEUE_POP(s->queue, s->queue_tail);
                pthread_mutex_unlock(&s->lock);

                job_run(s, j);

                pthread_mutex_lock(&s->lock);
                j->next = s->done;
                s->done = j;
                /* Fails only where the counter would overflow: a wakeup is pending then. */
                (void) eventfd_write(s->wakeup_fd, 1);
        }
        pthread_mutex_unlock(&s->lock);
        return NULL;
}

static void job_submit(DraService *s, Job *j) {
        pthread_mutex_lock(&s->lock);
        QUEUE_PUSH(s->queue, s->queue_tail, j);
        pthread_cond_signal(&s->work);
        pthread_mutex_unlock(&s->lock);
}

/* ---------------------------------------------------------------- service */

int dra_service_new(sd_event *e, Preparer *p, ClaimFetchFunc fetch, void *fetch_userdata, unsigned n_workers,
                    DraService **ret) {
        DraService *s;
        int r;

        if (n_workers == 0)
                n_workers = DRA_SERVICE_WORKERS_DEFAULT;
        if (n_workers > DRA_SERVICE_WORKERS_MAX || !fetch)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->event = sd_event_ref(e);
        s->preparer = p;
        s->fetch = fetch;
        s->fetch_userdata = fetch_userdata;
        s->verify_retry_usec = VERIFY_RETRY_USEC_DEFAULT;
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->work, NULL);
        s->wakeup_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->wakeup_fd < 0) {
                r = negative_errno();
                goto fail;
        }
        r = sd_event_add_io(e, &s->wakeup, s->wakeup_fd, EPOLLIN, on_wakeup, s);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(s->wakeup, "prepare-done");
        s->workers = calloc(n_workers, sizeof(pthread_t));
        if (!s->workers) {
                r = -ENOMEM;
                goto fail;
        }
        for (unsigned i = 0; i < n_workers; i++) {
                r = -pthread_create(&s->workers[i], NULL, worker, s);
                if (r < 0)
                        goto fail;
                s->n_workers++;
        }
        *ret = s;
        return 0;
fail:
        dra_service_free(s);
        return r;
}

DraService *dra_service_free(DraService *s) {
        if (!s)
                return NULL;
        pthread_mutex_lock(&s->lock);
        s->stopping = true;
        pthread_cond_broadcast(&s->work);
        pthread_mutex_unlock(&s->lock);
        for (unsigned i = 0; i < s->n_workers; i++)
                pthread_join(s->workers[i], NULL);
        free(s->workers);

        /* Everything finished by now: answer it. Queued jobs cannot remain (workers drain the queue). */
        if (s->wakeup_fd >= 0)
                on_wakeup(NULL, s->wakeup_fd, 0, s);
        /*
         * Claims still being read: answer them now. The fetcher must not call back after
         * this (free the API client, which cancels its requests, before the service).
         */
        s->retry = sd_event_source_disable_unref(s->retry);
        while (s->parked) {
                Job *j = s->parked;
                LIST_REMOVE_FIELDS(park_next, park_prev, s->parked, j);
                s->n_parked--;
                s->n_verifying--;
                job_free(j);
        }
        for (Job *j; (j = QUEUE_POP(s->backlog, s->backlog_tail));)
                fetch_failed(s, j, -ESHUTDOWN);
        while (s->fetching) {
                Job *j = s->fetching;
                fetching_remove(s, j);
                j->result = -ESHUTDOWN;
                snprintf(j->error, sizeof(j->error), "hami-dra-plugin is shutting down");
                job_answer(s, j);
                job_free(j);
        }
        sd_event_source_disable_unref(s->wakeup);
        safe_close(s->wakeup_fd);
        sd_event_unref(s->event);
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->work);
        free(s);
        return NULL;
}

/* ---------------------------------------------------------------- fetch */

static void fetching_add(DraService *s, Job *j) {
        j->service = s;
        s->n_fetching++;
        LIST_PREPEND_FIELDS(fetch_next, fetch_prev, s->fetching, j);
}

static void fetching_remove(DraService *s, Job *j) {
        s->n_fetching--;
        LIST_REMOVE_FIELDS(fetch_next, fetch_prev, s->fetching, j);
}

static void on_fetched(void *ctx, int error, long http_status, const char *json, size_t len, const char *message);
static void on_verified(void *ctx, int error, long http_status, const char *json, size_t len, const char *message);
static void start_fetch(DraService *s, Job *j);

static void backlog_push(DraService *s, Job *j, bool front) {
        if (front)
                QUEUE_PUSH_FRONT(s->backlog, s->backlog_tail, j);
        else
                QUEUE_PUSH(s->backlog, s->backlog_tail, j);
}

static int on_retry(sd_event_source *source, uint64_t usec, void *userdata);

/* Start what waits, as far as there are slots; if the client is busy with others, retry soon. */
static void backlog_pump(DraService *s) {
        while (s->backlog && s->n_fetching < FETCHES_MAX) {
                Job *j = QUEUE_POP(s->backlog, s->backlog_tail);

                start_fetch(s, j);
                if (s->backlog == j)
                        break;  /* the client said busy and j went back: wait */
        }
        if (s->backlog && s->n_fetching == 0 && !s->retry)
                (void) sd_event_add_time_relative(s->event, &s->retry, CLOCK_MONOTONIC, FETCH_RETRY_USEC, 0,
                                                  on_retry, s);
}

static int on_retry(sd_event_source *source, uint64_t usec, void *userdata) {
        DraService *s = userdata;

        s->retry = sd_event_source_disable_unref(s->retry);
        backlog_pump(s);
        return 0;
}

static void fetch_failed(DraService *s, Job *j, int r) {
        if (j->verify) {
                s->n_verifying--;
                job_free(j);
                return;
        }
        j->result = r;
        snprintf(j->error, sizeof(j->error), "cannot read claim %s/%s: %s", j->namespace_, j->name, strerror(-r));
        job_answer(s, j);
        job_free(j);
}

static void start_fetch(DraService *s, Job *j) {
        int r;

        if (s->n_fetching >= FETCHES_MAX) {
                backlog_push(s, j, false);
                return;
        }
        fetching_add(s, j);
        r = s->fetch(s->fetch_userdata, j->namespace_, j->name, j->verify ? on_verified : on_fetched, j);
        if (r >= 0)
                return;
        fetching_remove(s, j);
        if (r == -EBUSY) {
                backlog_push(s, j, true);
                if (s->n_fetching == 0 && !s->retry)
                        (void) sd_event_add_time_relative(s->event, &s->retry, CLOCK_MONOTONIC, FETCH_RETRY_USEC, 0,
                                                          on_retry, s);
                return;
        }
        fetch_failed(s, j, r);
}

static void on_fetched(void *ctx, int error, long http_status, const char *json, size_t len, const char *message) {
        Job *j = ctx;
        DraService *s = j->service;

        fetching_remove(s, j);
        backlog_pump(s);
        if (error < 0 || http_status != 200 || !json) {
                j->result = http_status == 404 ? -ENOENT : error < 0 ? error : -EIO;
                if (http_status == 404)
                        snprintf(j->error, sizeof(j->error), "claim %s/%s not found", j->namespace_, j->name);
                else
                        snprintf(j->error, sizeof(j->error), "cannot read claim %s/%s from the API server: %s",
                                 j->namespace_, j->name, message ?: "no answer");
                log_struct(LOG_WARNING, LOG_MESSAGE_ID(HAMI_MESSAGE_CLAIM_REJECTED),
                           LOG_MESSAGE("Rejected claim %s/%s (%s): %s", j->namespace_, j->name, j->uid, j->error),
                           LOG_FIELD("CLAIM_UID=%s", j->uid), LOG_FIELD("CLAIM_NAMESPACE=%s", j->namespace_),
                           LOG_FIELD("CLAIM_NAME=%s", j->name), NULL);
                job_answer(s, j);
                job_free(j);
                return;
        }
        if (len > FETCH_BODY_MAX) {
                j->result = -E2BIG;
                snprintf(j->error, sizeof(j->error), "claim %s/%s is larger than %u bytes", j->namespace_, j->name,
                         FETCH_BODY_MAX);
                job_answer(s, j);
                job_free(j);
                return;
        }
        j->json = malloc(len + 1);
        if (!j->json) {
                j->result = -ENOMEM;
                job_answer(s, j);
                job_free(j);
                return;
        }
        memcpy(j->json, json, len);
        j->json[len] = '\0';
        j->json_len = len;
        job_submit(s, j);
}

static void start_prepare(DraService *s, Job *j) {
        /* A prepared claim is answered from its record: no API round trip, works offline. */
        if (preparer_is_prepared(s->preparer, j->uid)) {
                job_submit(s, j);
                return;
        }
        start_fetch(s, j);
}

/* Unprepare never syncs to disk: do it right here unless a worker holds the claim. */
static void start_unprepare(DraService *s, Job *j) {
        j->result = preparer_try_unprepare(s->preparer, j->uid, j->error, sizeof(j->error));
        if (j->result == -EBUSY) {
                j->error[0] = '\0';
                job_submit(s, j);
                return;
        }
        job_answer(s, j);
        job_free(j);
}

static void handle(DraService *s, DraRequest *r, bool prepare) {
        size_t n = dra_request_n_claims(r);
        Pending *pd;

        if (n == 0) {
                dra_request_complete(r);
                return;
        }
        pd = calloc(1, sizeof(*pd));
        if (!pd) {
                dra_request_complete(r);   /* every claim: "not handled" */
                return;
        }
        pd->request = r;
        pd->n_left = n + 1;  /* +1 holds the request open while we are still starting jobs */
        for (size_t i = 0; i < n; i++) {
                const DraClaimRef *ref = dra_request_claim(r, i);
                Job *j = job_new(pd, i, prepare, ref->namespace_, ref->name, ref->uid);

                if (!j) {
                        (void) dra_request_set_error(r, i, "out of memory");
                        pending_answered(pd);
                        continue;
                }
                if (prepare)
                        start_prepare(s, j);
                else
                        start_unprepare(s, j);
        }
        pending_answered(pd);
}

void dra_service_prepare(DraService *s, DraRequest *r) {
        handle(s, r, true);
}

void dra_service_unprepare(DraService *s, DraRequest *r) {
        handle(s, r, false);
}

/* ---------------------------------------------------------------- verification */

typedef enum Verdict {
        VERDICT_KEEP,      /* the claim is there, with our UID, allocated */
        VERDICT_FORGET,    /* proof that it is gone for us */
        VERDICT_UNKNOWN,   /* no proof either way: keep it, ask again later */
} Verdict;

/* An answer of HTTP 200: only this very claim (same namespace and name) tells anything. */
static Verdict verdict_from_claim(const Job *j, const char *json, size_t len, const char **ret_why) {
        _cleanup_json_ json_object *root = NULL;
        json_object *alloc;
        const char *uid;

        while (len > 0 && isspace((unsigned char) json[len - 1]))
                len--;
        if (len > FETCH_BODY_MAX || json_parse_bounded(json, len, VERIFY_JSON_DEPTH_MAX, &root) < 0 ||
            !json_object_is_type(root, json_type_object)) {
                *ret_why = "the answer (HTTP 200) is not JSON";
                return VERDICT_UNKNOWN;
        }
        uid = json_get_string(root, "metadata.uid");
        if (!claim_uid_is_valid(uid) || !streq_ptr(json_get_string(root, "metadata.name"), j->name) ||
            !streq_ptr(json_get_string(root, "metadata.namespace"), j->namespace_)) {
                *ret_why = "the answer (HTTP 200) is not this claim";
                return VERDICT_UNKNOWN;
        }
        if (!streq(uid, j->uid)) {
                *ret_why = "the claim was re-created with another UID while the driver was down";
                return VERDICT_FORGET;
        }
        alloc = json_get(root, "status.allocation");
        if (!alloc || json_object_is_type(alloc, json_type_null)) {
                *ret_why = "the claim was deallocated while the driver was down";
                return VERDICT_FORGET;
        }
        return VERDICT_KEEP;
}

/*
 * What an answer about a recovered claim proves. A 404 alone proves nothing: a proxy,
 * an API group not served ("the server could not find the requested resource") or a
 * misrouted request answer 404 too. Only the API server's NotFound Status naming this
 * claim does.
 */
static Verdict verdict(const Job *j, int error, long http_status, const char *json, size_t len,
                       const char **ret_why) {
        if (error < 0 || !json) {
                *ret_why = NULL;  /* the fetcher's message says why */
                return VERDICT_UNKNOWN;
        }
        if (http_status == 404) {
                if (kube_status_proves_not_found(json, len, "resource.k8s.io", "resourceclaims", j->name)) {
                        *ret_why = "the claim was deleted while the driver was down";
                        return VERDICT_FORGET;
                }
                *ret_why = "HTTP 404 without the API server's NotFound status for this claim";
                return VERDICT_UNKNOWN;
        }
        if (http_status == 200)
                return verdict_from_claim(j, json, len, ret_why);
        *ret_why = NULL;
        return VERDICT_UNKNOWN;
}

static int on_verify_retry(sd_event_source *source, uint64_t usec, void *userdata) {
        Job *j = userdata;
        DraService *s = j->service;

        j->verify_retry = sd_event_source_disable_unref(j->verify_retry);
        LIST_REMOVE_FIELDS(park_next, park_prev, s->parked, j);
        s->n_parked--;
        if (!preparer_is_prepared(s->preparer, j->uid)) {
                /* Unprepared meanwhile (the kubelet, an administrator): nothing left to verify. */
                s->n_verifying--;
                job_free(j);
                return 0;
        }
        start_fetch(s, j);
        return 0;
}

/* Keep the claim and ask again later; said once per claim, then at debug level. */
static void verify_park(DraService *s, Job *j, const char *why) {
        bool first = j->verify_delay == 0;
        int r;

        j->verify_delay = first ? s->verify_retry_usec : MIN(j->verify_delay * 2, VERIFY_RETRY_USEC_MAX);
        if (first)
                log_warning("Could not verify recovered claim %s/%s (%s), keeping it and asking again "
                            "(first in %" PRIu64 " s, then less often): %s",
                            j->namespace_, j->name, j->uid, j->verify_delay / USEC_PER_SEC, why);
        else
                log_debug("Still could not verify recovered claim %s/%s (%s), asking again in %" PRIu64 " s: %s",
                          j->namespace_, j->name, j->uid, j->verify_delay / USEC_PER_SEC, why);
        r = sd_event_add_time_relative(s->event, &j->verify_retry, CLOCK_MONOTONIC, j->verify_delay, 0,
                                       on_verify_retry, j);
        if (r < 0) {
                log_warning_errno(r, "Cannot schedule verifying claim %s/%s again, keeping it: %m", j->namespace_,
                                  j->name);
                s->n_verifying--;
                job_free(j);
                return;
        }
        (void) sd_event_source_set_description(j->verify_retry, "verify-claim");
        j->service = s;
        LIST_PREPEND_FIELDS(park_next, park_prev, s->parked, j);
        s->n_parked++;
}

static void on_verified(void *ctx, int error, long http_status, const char *json, size_t len, const char *message) {
        Job *j = ctx;
        DraService *s = j->service;
        const char *why = NULL;
        char buf[256];

        fetching_remove(s, j);
        backlog_pump(s);
        switch (verdict(j, error, http_status, json, len, &why)) {
        case VERDICT_KEEP:
                if (j->verify_delay > 0)
                        log_info("Verified recovered claim %s/%s (%s) at last: it is still there.", j->namespace_,
                                 j->name, j->uid);
                s->n_verifying--;
                job_free(j);
                return;
        case VERDICT_UNKNOWN:
                if (!why) {
                        snprintf(buf, sizeof(buf), "%s", message ?: error < 0 ? strerror(-error) : "no answer");
                        why = buf;
                }
                verify_park(s, j, why);
                return;
        case VERDICT_FORGET:
                break;
        }
        snprintf(j->error, sizeof(j->error), "%s", why);
        job_submit(s, j);  /* forgotten on a worker; answered (n_verifying--) back here */
}

int dra_service_verify(DraService *s, PrepareClaimRef *claims, size_t n) {
        for (size_t i = 0; i < n; i++) {
                Job *j = job_new(NULL, i, false, claims[i].namespace_, claims[i].name, claims[i].uid);

                if (!j)
                        break;
                s->n_verifying++;
                j->verify = true;
                start_fetch(s, j);
        }
        preparer_claims_free(claims, n);
        return 0;
}

size_t dra_service_n_verifying(DraService *s) {
        return s->n_verifying;
}

size_t dra_service_n_verify_waiting(DraService *s) {
        return s->n_parked;
}

void dra_service_set_verify_retry(DraService *s, uint64_t usec) {
        s->verify_retry_usec = usec > 0 ? usec : VERIFY_RETRY_USEC_DEFAULT;
}

void dra_service_get_stats(const DraService *s, DraServiceStats *ret) {
        *ret = s->stats;
}

void dra_service_set_observer(DraService *s, DraServiceObserver observer, void *userdata) {
        s->observer = observer;
        s->observer_userdata = userdata;
}

int dra_service_release(DraService *s, const char *uid) {
        int r;

        if (!preparer_is_prepared(s->preparer, uid))
                return -ENOENT;
        r = preparer_forget(s->preparer, uid, "released by an administrator");
        if (r >= 0 && s->observer)
                s->observer(s->observer_userdata, uid, NULL);
        return r;
}
