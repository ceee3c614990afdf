/* SPDX-License-Identifier: Apache-2.0 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "resourceslice.h"
#include "slice-publisher.h"
#include "time-util.h"

#define SLICES_PATH "/apis/resource.k8s.io/v1/resourceslices"
#define SYNC_ROUNDS_MAX 8          /* syncs with writes in a row before we call it a loop */
#define CONFLICTS_MAX 5            /* 409s in a row re-read at once; then with backoff */
#define CACHE_SLICES_MAX 4096      /* slices of our node+driver we keep in memory */
#define MAINTENANCE_MAX 1024

typedef enum Phase {
        PHASE_IDLE,
        PHASE_NODE,       /* GET node in flight */
        PHASE_LIST,       /* LIST in flight */
        PHASE_READY,      /* listed and watching */
} Phase;

typedef enum OpType {
        OP_DELETE,
        OP_UPDATE,
        OP_CREATE,
} OpType;

typedef struct Op {
        OpType type;
        char *name;
        json_object *body;      /* what we send */
} Op;

struct SlicePublisher {
        sd_event *event;
        KubeClient *client;
        char *driver, *node, *node_uid;
        char *selector;           /* escaped fieldSelector value */
        SlicePublisherOptions opts;

        GpuList gpus;
        bool have_devices;
        char **maintenance;       /* NULL-terminated */
        size_t n_maintenance;

        Phase phase;
        json_object *cache;       /* name -> stored slice */
        char *resource_version;   /* of the list / last watch event */
        KubeRequest *req;         /* node, list or write in flight */
        KubeRequest *watch;

        Op *ops;
        size_t n_ops, op_next;
        bool syncing;
        bool sync_again;
        unsigned rounds_with_writes;
        unsigned conflicts;       /* 409s in a row */

        sd_event_source *sync_timer;
        sd_event_source *retry_timer;
        KubeBackoff backoff;

        SliceDropped dropped;
        SlicePublisherStatus status;
        char *last_error;
        char *consumable_reason;
        SlicePublisherStatusHandler status_handler;
        void *status_userdata;
        SlicePublisherStatus reported;
        char *reported_error;
        bool reported_once;
};

static void publisher_schedule_sync(SlicePublisher *p, uint64_t delay);
static void publisher_begin(SlicePublisher *p);
static void publisher_watch(SlicePublisher *p);

/* ---- status ---- */

static void publisher_notify(SlicePublisher *p) {
        SlicePublisherStatus s;

        slice_publisher_get_status(p, &s);
        if (p->reported_once && p->reported.api_reachable == s.api_reachable && p->reported.synced == s.synced &&
            p->reported.consumable_capacity == s.consumable_capacity && p->reported.device_taints == s.device_taints &&
            p->reported.generation == s.generation && p->reported.n_slices == s.n_slices &&
            p->reported.n_devices == s.n_devices && streq_ptr(p->reported_error, s.last_error))
                return;
        p->reported = s;
        p->reported_once = true;
        free(p->reported_error);
        p->reported_error = s.last_error ? strdup(s.last_error) : NULL;
        if (p->status_handler)
                p->status_handler(p, &s, p->status_userdata);
}

static void publisher_set_error(SlicePublisher *p, const char *msg) {
        free(p->last_error);
        p->last_error = msg ? strdup(msg) : NULL;
}

static void publisher_note_response(SlicePublisher *p, const KubeResponse *r) {
        p->status.api_reachable = r->status > 0 && r->status < 500;
}

void slice_publisher_get_status(SlicePublisher *p, SlicePublisherStatus *ret) {
        *ret = p->status;
        ret->last_error = p->last_error;
        ret->consumable_reason = p->status.consumable_capacity == 0 ? p->consumable_reason : NULL;
}

int slice_publisher_status_format(const SlicePublisherStatus *s, char *buf, size_t size) {
        int n;

        if (s->consumable_capacity == 0)
                n = snprintf(buf, size, "GPU sharing unavailable: the API server dropped allowMultipleAllocations/requestPolicy; %s",
                             SLICE_CONSUMABLE_FIX);
        else if (s->synced)
                n = snprintf(buf, size, "Published %u GPU%s in %u ResourceSlice%s (generation %" PRId64 ")",
                             s->n_devices, s->n_devices == 1 ? "" : "s", s->n_slices, s->n_slices == 1 ? "" : "s",
                             s->generation);
        else if (!s->api_reachable)
                n = snprintf(buf, size, "API server unreachable, retrying%s%s", s->last_error ? ": " : "",
                             s->last_error ?: "");
        else
                n = snprintf(buf, size, "Publishing ResourceSlices%s%s", s->last_error ? ": " : "", s->last_error ?: "");
        return n < 0 ? -EINVAL : 0;
}

/* ---- failure and retry ---- */

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        SlicePublisher *p = userdata;

        p->retry_timer = sd_event_source_disable_unref(p->retry_timer);
        publisher_begin(p);
        return 0;
}

/* Something failed: log why, drop what we know, start over after a backoff. */
static void publisher_fail(SlicePublisher *p, const KubeResponse *r, const char *what) {
        char msg[2048];
        uint64_t d;

        snprintf(msg, sizeof(msg), "%s: %s", what, r && r->message && r->message[0] ? r->message : "failed");
        publisher_set_error(p, msg);
        if (r)
                publisher_note_response(p, r);
        p->status.synced = false;
        kube_request_cancel(p->watch);
        p->watch = NULL;
        p->phase = PHASE_IDLE;
        p->syncing = false;

        d = kube_backoff_next(&p->backoff, r ? r->retry_after_usec : 0);
        log_warning("%s; retrying in %" PRIu64 " ms.", msg, d / USEC_PER_MSEC);
        sd_event_source_disable_unref(p->retry_timer);
        p->retry_timer = NULL;
        if (sd_event_add_time_relative(p->event, &p->retry_timer, CLOCK_MONOTONIC, d, USEC_PER_MSEC, on_retry, p) < 0)
                log_error("Failed to schedule the retry; the ResourceSlices are no longer kept in sync.");
        publisher_notify(p);
}

/* ---- cache ---- */

static bool slice_is_ours(SlicePublisher *p, json_object *s) {
        return streq_ptr(json_get_string(s, "spec.driver"), p->driver) &&
               streq_ptr(json_get_string(s, "spec.nodeName"), p->node);
}

static void cache_put(SlicePublisher *p, json_object *s) {
        const char *name = json_get_string(s, "metadata.name");

        if (!name || !slice_is_ours(p, s))
                return;
        if (json_object_object_length(p->cache) >= CACHE_SLICES_MAX && !json_get(p->cache, name)) {
                log_warning("More than %u ResourceSlices of our node and driver, ignoring %s.", CACHE_SLICES_MAX, name);
                return;
        }
        json_object_object_add(p->cache, name, json_object_get(s));
}

static void cache_note_consumable(SlicePublisher *p) {
        /* A stored slice with allowMultipleAllocations proves the gate is on, without a write. */
        json_object_object_foreach(p->cache, name, s) {
                json_object *devices = json_get(s, "spec.devices");
                (void) name;
                if (json_object_is_type(devices, json_type_array) && json_object_array_length(devices) > 0 &&
                    json_get(json_object_array_get_idx(devices, 0), "allowMultipleAllocations"))
                        p->status.consumable_capacity = 1;
        }
}

static void set_resource_version(SlicePublisher *p, const char *rv) {
        char *c;

        if (isempty(rv) || strlen(rv) > 64)
                return;
        c = strdup(rv);
        if (!c)
                return;
        free(p->resource_version);
        p->resource_version = c;
}

/* ---- the sync plan ---- */

static void ops_clear(SlicePublisher *p) {
        for (size_t i = 0; i < p->n_ops; i++) {
                free(p->ops[i].name);
                json_object_put(p->ops[i].body);
        }
        p->ops = mfree(p->ops);
        p->n_ops = p->op_next = 0;
}

static int ops_add(SlicePublisher *p, OpType type, const char *name, json_object *body) {
        Op *n = realloc(p->ops, (p->n_ops + 1) * sizeof(Op));

        if (!n) {
                json_object_put(body);
                return -ENOMEM;
        }
        p->ops = n;
        p->ops[p->n_ops] = (Op) { .type = type, .name = name ? strdup(name) : NULL, .body = body };
        if (name && !p->ops[p->n_ops].name) {
                json_object_put(body);
                return -ENOMEM;
        }
        p->n_ops++;
        return 0;
}

static int delete_options(json_object *stored, json_object **ret) {
        json_object *o = json_object_new_object(), *pre = json_object_new_object();
        const char *uid = json_get_string(stored, "metadata.uid"), *rv = json_get_string(stored, "metadata.resourceVersion");

        if (!o || !pre) {
                json_object_put(o);
                json_object_put(pre);
                return -ENOMEM;
        }
        json_object_object_add(o, "apiVersion", json_object_new_string("v1"));
        json_object_object_add(o, "kind", json_object_new_string("DeleteOptions"));
        if (uid)
                json_object_object_add(pre, "uid", json_object_new_string(uid));
        if (rv)
                json_object_object_add(pre, "resourceVersion", json_object_new_string(rv));
        json_object_object_add(o, "preconditions", pre);
        *ret = o;
        return 0;
}

static void set_generation(json_object *slice, int64_t g) {
        json_object *pool = json_get(slice, "spec.pool");
        json_object_object_add(pool, "generation", json_object_new_int64(g));
}

/* Decide what to write, as the Go publisher k8s.io/dynamic-resource-allocation/resourceslice does. */
static int publisher_plan(SlicePublisher *p) {
        _cleanup_(json_object_putp) json_object *desired = NULL;
        SlicePoolParams params = {
                .driver = p->driver, .node = p->node, .node_uid = p->node_uid, .maintenance = p->maintenance,
        };
        json_object **matched = NULL;
        bool *changed = NULL;
        size_t n, n_missing = 0, n_changed = 0;
        int64_t gen = 0, new_gen;
        int r;

        ops_clear(p);
        r = resourceslice_pool_build(&p->gpus, &params, &desired);
        if (r < 0)
                return r;
        n = json_object_array_length(desired);
        matched = calloc(n, sizeof(json_object *));
        changed = calloc(n, sizeof(bool));
        if (!matched || !changed) {
                r = -ENOMEM;
                goto finish;
        }

        json_object_object_foreach(p->cache, name0, s0) {
                (void) name0;
                if (streq_ptr(json_get_string(s0, "spec.pool.name"), p->node))
                        gen = MAX(gen, slice_pool_generation(s0));
        }

        /* Obsolete slices: other pool, older generation, bad name, index out of range, duplicate. */
        json_object_object_foreach(p->cache, name, s) {
                unsigned idx;
                bool obsolete = !streq_ptr(json_get_string(s, "spec.pool.name"), p->node) ||
                                slice_pool_generation(s) < gen || resourceslice_name_index(name, &idx) < 0 ||
                                idx >= n || matched[idx];
                if (!obsolete) {
                        matched[idx] = s;
                        continue;
                }
                json_object *opts = NULL;
                r = delete_options(s, &opts);
                if (r < 0)
                        goto finish;
                r = ops_add(p, OP_DELETE, name, opts);
                if (r < 0)
                        goto finish;
        }

        for (size_t i = 0; i < n; i++) {
                json_object *d = json_object_array_get_idx(desired, i);
                set_generation(d, gen);
                if (!matched[i])
                        n_missing++;
                else if (!resourceslice_spec_equal(json_get(d, "spec"), json_get(matched[i], "spec"), p->dropped)) {
                        changed[i] = true;
                        n_changed++;
                }
        }
        new_gen = n_missing == 0 && n_changed <= 1 ? gen : gen + 1;

        for (size_t i = 0; i < n; i++) {
                json_object *d = json_object_array_get_idx(desired, i), *body = NULL;
                set_generation(d, new_gen);
                if (matched[i] && (changed[i] || new_gen != gen)) {
                        r = resourceslice_merge_for_update(matched[i], d, &body);
                        if (r < 0)
                                goto finish;
                        r = ops_add(p, OP_UPDATE, json_get_string(matched[i], "metadata.name"), body);
                } else if (!matched[i])
                        r = ops_add(p, OP_CREATE, NULL, json_object_get(d));
                if (r < 0)
                        goto finish;
        }
        p->status.n_slices = (unsigned) n;
        p->status.n_devices = 0;
        for (size_t i = 0; i < n; i++) {
                json_object *dv = json_get(json_object_array_get_idx(desired, i), "spec.devices");
                p->status.n_devices += dv ? (unsigned) json_object_array_length(dv) : 0;
        }
        p->status.generation = new_gen;
        if (p->n_ops > 0)
                log_debug("Pool %s: %zu writes planned (%zu missing, %zu changed, generation %" PRId64 " -> %" PRId64 ").",
                          p->node, p->n_ops, n_missing, n_changed, gen, new_gen);
        r = 0;
finish:
        free(matched);
        free(changed);
        return r;
}

/* ---- executing the plan ---- */

static void publisher_run_next(SlicePublisher *p);

static bool slice_has_taints(json_object *slice) {
        json_object *devices = json_get(slice, "spec.devices");

        for (size_t i = 0; json_object_is_type(devices, json_type_array) && i < json_object_array_length(devices); i++)
                if (json_get(json_object_array_get_idx(devices, i), "taints"))
                        return true;
        return false;
}

static void publisher_check_dropped(SlicePublisher *p, json_object *sent, json_object *stored) {
        SliceDropped d = resourceslice_dropped_fields(json_get(sent, "spec"), json_get(stored, "spec"));

        if (d & SLICE_DROPPED_CONSUMABLE) {
                if (!p->consumable_reason)
                        p->consumable_reason = strdup(
                                "the API server dropped allowMultipleAllocations and requestPolicy: "
                                "the DRAConsumableCapacity feature gate is off; " SLICE_CONSUMABLE_FIX);
                if (p->status.consumable_capacity != 0)
                        log_struct(LOG_ERR,
                                   LOG_MESSAGE("The API server dropped allowMultipleAllocations and requestPolicy from ResourceSlice %s: "
                                               "the DRAConsumableCapacity feature gate is off, GPUs can only be allocated whole. Fix: %s.",
                                               json_get_string(stored, "metadata.name") ?: "?", SLICE_CONSUMABLE_FIX),
                                   LOG_FIELD("HAMI_FEATURE_GATE=DRAConsumableCapacity"), NULL);
                p->status.consumable_capacity = 0;
        } else if (json_object_is_type(json_get(sent, "spec.devices"), json_type_array) &&
                   json_object_array_length(json_get(sent, "spec.devices")) > 0)
                p->status.consumable_capacity = 1;

        if (d & SLICE_DROPPED_TAINTS) {
                if (p->status.device_taints != 0)
                        log_warning("The API server dropped device taints: the DRADeviceTaints feature gate is off "
                                    "(beta and on by default from 1.36); unhealthy GPUs stay schedulable.");
                p->status.device_taints = 0;
        } else if (slice_has_taints(sent))
                p->status.device_taints = 1;
        p->dropped |= d;
}

/* For the metrics: writes by operation (create, update, delete) and result. */
static void publisher_count_write(SlicePublisher *p, const Op *op, bool ok) {
        unsigned i = op->type == OP_CREATE ? 0 : op->type == OP_UPDATE ? 1 : 2;

        p->status.writes[i][ok ? 0 : 1]++;
}

static void on_write_done(KubeClient *c, const KubeResponse *r, void *userdata) {
        SlicePublisher *p = userdata;
        Op *op = &p->ops[p->op_next];
        char what[512];

        p->req = NULL;
        publisher_note_response(p, r);
        /* A delete answered 404 is done (below, on the API server's word). */
        publisher_count_write(p, op, r->error == 0 && ((r->status >= 200 && r->status < 300) ||
                                                       (op->type == OP_DELETE && r->status == 404)));
        snprintf(what, sizeof(what), "%s ResourceSlice %s",
                 op->type == OP_DELETE ? "Deleting" : op->type == OP_UPDATE ? "Updating" : "Creating",
                 op->name ?: json_get_string(op->body, "metadata.generateName") ?: "?");

        if (r->error == 0 && r->status == 409) {
                /* Someone changed it under us: re-read everything and sync again. */
                if (++p->conflicts > CONFLICTS_MAX) {
                        p->conflicts = 0;
                        publisher_fail(p, r, "Conflicts (HTTP 409) keep coming, backing off");
                        return;
                }
                log_info("%s: conflict (HTTP 409), re-reading the pool.", what);
                p->syncing = false;
                p->phase = PHASE_IDLE;
                kube_request_cancel(p->watch);
                p->watch = NULL;
                publisher_begin(p);
                return;
        }
        /* Gone already counts as deleted, but only on the API server's word: a 404 from a
         * proxy would leave the slice published while we think it is gone. */
        if (op->type == OP_DELETE && r->error == 0 &&
            ((r->status >= 200 && r->status < 300) ||
             (r->status == 404 && kube_status_proves_not_found(r->body, r->body_size, "resource.k8s.io",
                                                               "resourceslices", op->name)))) {
                json_object_object_del(p->cache, op->name);
                p->op_next++;
                publisher_run_next(p);
                return;
        }
        if (r->error != 0 || r->status < 200 || r->status >= 300 || !r->json) {
                publisher_fail(p, r, what);
                return;
        }
        cache_put(p, r->json);
        set_resource_version(p, json_get_string(r->json, "metadata.resourceVersion"));
        publisher_check_dropped(p, op->body, r->json);
        if (op->type == OP_CREATE)
                log_info("Created ResourceSlice %s.", json_get_string(r->json, "metadata.name") ?: "?");
        else
                log_info("Updated ResourceSlice %s.", op->name);
        p->op_next++;
        publisher_run_next(p);
}

static void publisher_run_next(SlicePublisher *p) {
        char path[1024];
        const char *method;
        Op *op;
        int r;

        if (p->op_next >= p->n_ops) {
                bool wrote = p->n_ops > 0;
                ops_clear(p);
                p->syncing = false;
                if (wrote) {
                        /* Check once more: the result must now equal what we want. */
                        p->rounds_with_writes++;
                        publisher_schedule_sync(p, 0);
                        return;
                }
                p->rounds_with_writes = 0;
                p->conflicts = 0;
                kube_backoff_reset(&p->backoff);
                p->status.synced = true;
                publisher_set_error(p, NULL);
                publisher_notify(p);
                if (p->sync_again) {
                        p->sync_again = false;
                        publisher_schedule_sync(p, 0);
                }
                return;
        }

        op = &p->ops[p->op_next];
        if (op->type == OP_CREATE) {
                method = "POST";
                snprintf(path, sizeof(path), "%s", SLICES_PATH);
        } else {
                char name[512];
                if (kube_escape(op->name, name, sizeof(name)) < 0) {
                        p->op_next++;
                        publisher_run_next(p);
                        return;
                }
                method = op->type == OP_DELETE ? "DELETE" : "PUT";
                snprintf(path, sizeof(path), "%s/%s", SLICES_PATH, name);
        }
        p->status.n_writes++;
        r = kube_client_request(p->client, method, path, op->body, 1, on_write_done, p, &p->req);
        if (r < 0) {
                KubeResponse resp = { .error = r, .message = "could not start the request" };

                publisher_count_write(p, op, false);
                publisher_fail(p, &resp, method);
        }
}

static void publisher_sync(SlicePublisher *p) {
        int r;

        if (p->phase != PHASE_READY || !p->have_devices || !p->node_uid)
                return;
        if (p->syncing) {
                p->sync_again = true;
                return;
        }
        if (p->rounds_with_writes >= SYNC_ROUNDS_MAX) {
                KubeResponse resp = { .status = 200, .message = "the stored slices never match what we write (a server-side mutation we do not understand?)" };
                p->rounds_with_writes = 0;
                publisher_fail(p, &resp, "Sync does not converge");
                return;
        }
        r = publisher_plan(p);
        if (r < 0) {
                KubeResponse resp = { .status = 200, .error = r, .message = strerror(-r) };
                publisher_fail(p, &resp, "Building the ResourceSlices");
                return;
        }
        p->syncing = true;
        p->status.synced = p->n_ops == 0 ? p->status.synced : false;
        publisher_run_next(p);
}

static int on_sync_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        SlicePublisher *p = userdata;

        p->sync_timer = sd_event_source_disable_unref(p->sync_timer);
        publisher_sync(p);
        return 0;
}

static void publisher_schedule_sync(SlicePublisher *p, uint64_t delay) {
        if (p->sync_timer)
                return;
        if (sd_event_add_time_relative(p->event, &p->sync_timer, CLOCK_MONOTONIC, delay, USEC_PER_MSEC,
                                       on_sync_timer, p) < 0)
                log_error("Failed to schedule a ResourceSlice sync.");
}

/* ---- watch ---- */

/*
 * Start over: GET the node again (it may have been deleted and re-created with a new
 * UID, which is why the garbage collector removed our slices), LIST, WATCH, sync.
 * Safe from inside a watch event: the cancelled watch is freed when its callback returns.
 */
static void publisher_restart(SlicePublisher *p) {
        kube_request_cancel(p->watch);
        p->watch = NULL;
        kube_request_cancel(p->req);
        p->req = NULL;
        ops_clear(p);
        p->syncing = false;
        p->phase = PHASE_IDLE;
        p->node_uid = mfree(p->node_uid);
        p->status.synced = false;
        publisher_begin(p);
}

static void on_watch_event(KubeClient *c, const char *type, json_object *obj, void *userdata) {
        SlicePublisher *p = userdata;
        const char *name = json_get_string(obj, "metadata.name");

        if (streq(type, "ERROR")) {
                json_object *code = json_get(obj, "code");
                log_info("Watch of ResourceSlices ended with an error event (code %d), re-listing.",
                         code ? json_object_get_int(code) : 0);
                free(p->resource_version);
                p->resource_version = NULL;
                return;   /* the stream ends; on_watch_done re-lists */
        }
        set_resource_version(p, json_get_string(obj, "metadata.resourceVersion"));
        if (streq(type, "BOOKMARK") || !name || !slice_is_ours(p, obj))
                return;
        if (streq(type, "DELETED")) {
                log_info("ResourceSlice %s was deleted, re-publishing.", name);
                json_object_object_del(p->cache, name);
                publisher_restart(p);
                return;
        }
        if (streq(type, "ADDED") || streq(type, "MODIFIED")) {
                cache_put(p, obj);
                publisher_schedule_sync(p, p->opts.debounce_usec);
        }
}

static void on_watch_done(KubeClient *c, const KubeResponse *r, void *userdata) {
        SlicePublisher *p = userdata;

        p->watch = NULL;
        if (r->error == 0 && r->status == 200 && p->resource_version) {
                log_debug("Watch of ResourceSlices ended, resuming at %s.", p->resource_version);
                publisher_watch(p);
                return;
        }
        if (r->error == 0 && r->status == 200) {
                /* 410 Gone came as an event: list again right away. */
                if (p->req) {
                        kube_request_cancel(p->req);
                        p->req = NULL;
                }
                ops_clear(p);
                p->syncing = false;
                p->phase = PHASE_IDLE;
                publisher_begin(p);
                return;
        }
        if (p->req) {
                kube_request_cancel(p->req);
                p->req = NULL;
        }
        ops_clear(p);
        publisher_fail(p, r, "Watching ResourceSlices");
}

static void publisher_watch(SlicePublisher *p) {
        char path[2048];
        int r;

        snprintf(path, sizeof(path), "%s?fieldSelector=%s&watch=true&allowWatchBookmarks=true&timeoutSeconds=%u&resourceVersion=%s",
                 SLICES_PATH, p->selector, p->opts.watch_timeout_sec, p->resource_version ?: "0");
        r = kube_client_watch(p->client, path, on_watch_event, on_watch_done, p, &p->watch);
        if (r < 0) {
                KubeResponse resp = { .error = r, .message = "could not start the watch" };
                publisher_fail(p, &resp, "Watching ResourceSlices");
        }
}

/* ---- node and list ---- */

static void on_list_done(KubeClient *c, const KubeResponse *r, void *userdata) {
        SlicePublisher *p = userdata;
        json_object *items;

        p->req = NULL;
        publisher_note_response(p, r);
        if (r->error != 0 || r->status != 200 || !r->json ||
            !json_object_is_type(items = json_get(r->json, "items"), json_type_array)) {
                publisher_fail(p, r, "Listing ResourceSlices");
                return;
        }
        json_object_put(p->cache);
        p->cache = json_object_new_object();
        if (!p->cache) {
                publisher_fail(p, NULL, "Out of memory");
                return;
        }
        for (size_t i = 0; i < json_object_array_length(items); i++)
                cache_put(p, json_object_array_get_idx(items, i));
        set_resource_version(p, json_get_string(r->json, "metadata.resourceVersion"));
        cache_note_consumable(p);

        p->phase = PHASE_READY;
        publisher_watch(p);
        publisher_sync(p);
        publisher_notify(p);
}

static void publisher_list(SlicePublisher *p) {
        char path[1024];
        int r;

        p->phase = PHASE_LIST;
        snprintf(path, sizeof(path), "%s?fieldSelector=%s", SLICES_PATH, p->selector);
        r = kube_client_request(p->client, "GET", path, NULL, 1, on_list_done, p, &p->req);
        if (r < 0) {
                KubeResponse resp = { .error = r, .message = "could not start the request" };
                publisher_fail(p, &resp, "Listing ResourceSlices");
        }
}

/* A 403 on our own Node: with a node's credential (the kubelet's kubelet.conf) the node
 * authorizer lets system:node:<name> read only its own Node, so the likely cause is a
 * NodeName= that is not the credential's node. The API server's message names the user:
 * `User "system:node:node-a" cannot get resource "nodes" ...`. */
static void node_forbidden_hint(const char *node, const char *message, char *buf, size_t size) {
        static const char prefix[] = "User \"system:node:";
        const char *u = message ? strstr(message, prefix) : NULL;
        size_t n = 0;

        if (u) {
                u += strlen(prefix);
                n = strcspn(u, "\"");
                if (u[n] != '"' || n == 0 || n > 253)
                        u = NULL;
        }
        if (u && (strlen(node) != n || strncmp(u, node, n) != 0))
                (void) snprintf(buf, size,
                                "HTTP 403: the credential is node %.*s's, but NodeName= is %s; a node may read only "
                                "its own Node: set [Plugin] NodeName=%.*s (or --node-name=) if this is %.*s, or use "
                                "this node's own kubelet.conf",
                                (int) n, u, node, (int) n, u, (int) n, u);
        else
                (void) snprintf(buf, size,
                                "HTTP 403: the credential may not read Node %s (%s); check that NodeName= is this "
                                "node's name as the kubelet registered it, and the credential's permissions "
                                "(deploy/rbac.yaml)",
                                node, message && *message ? message : "no message");
}

static void on_node_done(KubeClient *c, const KubeResponse *r, void *userdata) {
        SlicePublisher *p = userdata;
        const char *uid;

        p->req = NULL;
        publisher_note_response(p, r);
        if (r->error == 0 && r->status == 404) {
                KubeResponse resp = *r;
                resp.message = "the Node object does not exist (yet); the kubelet registers it";
                publisher_fail(p, &resp, "Looking up our Node");
                return;
        }
        if (r->error == 0 && r->status == 403) {
                char hint[1024];
                KubeResponse resp = *r;
                node_forbidden_hint(p->node, r->message, hint, sizeof(hint));
                resp.message = hint;
                publisher_fail(p, &resp, "Looking up our Node");
                return;
        }
        uid = r->json ? json_get_string(r->json, "metadata.uid") : NULL;
        if (r->error != 0 || r->status != 200 || isempty(uid) || strlen(uid) > 128) {
                publisher_fail(p, r, "Looking up our Node");
                return;
        }
        free(p->node_uid);
        p->node_uid = strdup(uid);
        if (!p->node_uid) {
                publisher_fail(p, NULL, "Out of memory");
                return;
        }
        log_debug("Node %s has UID %s.", p->node, p->node_uid);
        publisher_list(p);
}

static void publisher_begin(SlicePublisher *p) {
        char path[1024], node[512];
        int r;

        if (p->req || p->phase == PHASE_NODE || p->phase == PHASE_LIST)
                return;
        if (p->node_uid) {
                publisher_list(p);
                return;
        }
        p->phase = PHASE_NODE;
        if (kube_escape(p->node, node, sizeof(node)) < 0)
                return;
        snprintf(path, sizeof(path), "/api/v1/nodes/%s", node);
        r = kube_client_request(p->client, "GET", path, NULL, 1, on_node_done, p, &p->req);
        if (r < 0) {
                KubeResponse resp = { .error = r, .message = "could not start the request" };
                publisher_fail(p, &resp, "Looking up our Node");
        }
}

/* ---- public API ---- */

int slice_publisher_new(sd_event *event, KubeClient *client, const char *driver, const char *node,
                        const SlicePublisherOptions *opts, SlicePublisher **ret) {
        _cleanup_(slice_publisher_freep) SlicePublisher *p = NULL;
        char d[256], n[768];

        if (isempty(driver) || isempty(node) || strlen(driver) > 63 || strlen(node) > 253)
                return -EINVAL;
        if (kube_escape(driver, d, sizeof(d)) < 0 || kube_escape(node, n, sizeof(n)) < 0)
                return -EINVAL;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->event = sd_event_ref(event);
        p->client = client;
        p->driver = strdup(driver);
        p->node = strdup(node);
        p->cache = json_object_new_object();
        /* Both selectors, always: the node authorizer refuses a list without spec.nodeName. */
        if (!p->driver || !p->node || !p->cache ||
            asprintf(&p->selector, "spec.nodeName%%3D%s%%2Cspec.driver%%3D%s", n, d) < 0)
                return -ENOMEM;
        p->opts = opts ? *opts : (SlicePublisherOptions) {};
        if (p->opts.backoff_base_usec == 0)
                p->opts.backoff_base_usec = USEC_PER_SEC;
        if (p->opts.backoff_cap_usec == 0)
                p->opts.backoff_cap_usec = 60 * USEC_PER_SEC;
        if (p->opts.debounce_usec == 0)
                p->opts.debounce_usec = 100 * USEC_PER_MSEC;
        if (p->opts.watch_timeout_sec == 0)
                p->opts.watch_timeout_sec = 300;
        p->backoff = (KubeBackoff) { .base_usec = p->opts.backoff_base_usec, .cap_usec = p->opts.backoff_cap_usec };
        p->status.consumable_capacity = -1;
        p->status.device_taints = -1;
        *ret = TAKE_PTR(p);
        return 0;
}

SlicePublisher *slice_publisher_free(SlicePublisher *p) {
        if (!p)
                return NULL;
        kube_request_cancel(p->req);
        kube_request_cancel(p->watch);
        ops_clear(p);
        sd_event_source_disable_unref(p->sync_timer);
        sd_event_source_disable_unref(p->retry_timer);
        json_object_put(p->cache);
        free(p->gpus.gpus);
        strv_free(p->maintenance);
        free(p->driver);
        free(p->node);
        free(p->node_uid);
        free(p->selector);
        free(p->resource_version);
        free(p->last_error);
        free(p->consumable_reason);
        free(p->reported_error);
        sd_event_unref(p->event);
        free(p);
        return NULL;
}

void slice_publisher_set_status_handler(SlicePublisher *p, SlicePublisherStatusHandler h, void *userdata) {
        p->status_handler = h;
        p->status_userdata = userdata;
}

int slice_publisher_start(SlicePublisher *p) {
        publisher_begin(p);
        return 0;
}

int slice_publisher_set_devices(SlicePublisher *p, const GpuList *gpus) {
        Gpu *copy = NULL;

        if (gpus->n_gpus > 0) {
                copy = malloc(gpus->n_gpus * sizeof(Gpu));
                if (!copy)
                        return -ENOMEM;
                memcpy(copy, gpus->gpus, gpus->n_gpus * sizeof(Gpu));
        }
        free(p->gpus.gpus);
        p->gpus = (GpuList) { .gpus = copy, .n_gpus = gpus->n_gpus };
        p->have_devices = true;
        publisher_schedule_sync(p, 0);
        return 0;
}

int slice_publisher_set_device_health(SlicePublisher *p, const char *name, GpuHealth health, const char *reason) {
        for (size_t i = 0; i < p->gpus.n_gpus; i++) {
                Gpu *g = &p->gpus.gpus[i];
                if (!streq(g->name, name))
                        continue;
                if (g->health == health && streq(g->health_reason, reason ?: ""))
                        return 0;
                g->health = health;
                snprintf(g->health_reason, sizeof(g->health_reason), "%s", reason ?: "");
                publisher_schedule_sync(p, p->opts.debounce_usec);
                return 0;
        }
        return -ENOENT;
}

int slice_publisher_set_device_schedulable(SlicePublisher *p, const char *name, bool schedulable) {
        size_t i;
        bool found = false;

        for (i = 0; i < p->gpus.n_gpus; i++)
                found = found || streq(p->gpus.gpus[i].name, name);
        if (!found)
                return -ENOENT;
        for (i = 0; i < p->n_maintenance; i++)
                if (streq(p->maintenance[i], name))
                        break;
        if (!schedulable && i == p->n_maintenance) {
                char **l;
                if (p->n_maintenance >= MAINTENANCE_MAX)
                        return -E2BIG;
                l = realloc(p->maintenance, (p->n_maintenance + 2) * sizeof(char *));
                if (!l)
                        return -ENOMEM;
                p->maintenance = l;
                l[p->n_maintenance] = strdup(name);
                if (!l[p->n_maintenance])
                        return -ENOMEM;
                l[++p->n_maintenance] = NULL;
        } else if (schedulable && i < p->n_maintenance) {
                free(p->maintenance[i]);
                memmove(p->maintenance + i, p->maintenance + i + 1, (p->n_maintenance - i) * sizeof(char *));
                p->n_maintenance--;
        } else
                return 0;
        publisher_schedule_sync(p, 0);
        return 0;
}

bool slice_publisher_device_schedulable(SlicePublisher *p, const char *name) {
        for (size_t i = 0; i < p->n_maintenance; i++)
                if (streq(p->maintenance[i], name))
                        return false;
        return true;
}
