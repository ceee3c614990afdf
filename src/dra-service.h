/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The DRA service: the daemon's implementation of the kubelet's DRAPlugin gRPC calls,
 * NodePrepareResources / NodeUnprepareResources, on top of the Preparer. Reads each
 * claim through an injected fetcher (the API client in the daemon, canned JSON in
 * tests), runs the file work on a few worker threads so claims are handled
 * concurrently (the Preparer serialises calls for the same UID), and answers each
 * claim of the DraRequest on the sd-event thread.
 *
 * Wiring in the manager (see docs/design.md "Prepare"):
 *
 *   dra_service_new(m->event, preparer, fetch, fetch_userdata, 0, &m->dra_service);
 *   .prepare   = manager_on_prepare   -> dra_service_prepare(m->dra_service, r)
 *   .unprepare = manager_on_unprepare -> dra_service_unprepare(m->dra_service, r)
 */

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "grpc-server.h"
#include "histogram.h"
#include "prepare.h"

/*
 * The fetcher's answer, exactly once per fetch, on the event thread (it may also come
 * before the fetch function returns). error < 0: transport failure; otherwise
 * http_status says what the API server answered (404: the claim does not exist) and
 * json/len is the body. message: what went wrong, for the claim's error.
 */
typedef void (*ClaimFetchDone)(void *ctx, int error, long http_status, const char *json, size_t len,
                               const char *message);
typedef int (*ClaimFetchFunc)(void *userdata, const char *namespace_, const char *name, ClaimFetchDone done,
                              void *ctx);

typedef struct DraService DraService;

#define DRA_SERVICE_WORKERS_DEFAULT 4
#define DRA_SERVICE_WORKERS_MAX 64

/* n_workers 0: DRA_SERVICE_WORKERS_DEFAULT. The service does not own the preparer. */
int dra_service_new(sd_event *e, Preparer *p, ClaimFetchFunc fetch, void *fetch_userdata, unsigned n_workers,
                    DraService **ret);
/* Waits for the workers; requests still in flight are completed with errors. */
DraService *dra_service_free(DraService *s);

/* The gRPC callbacks: each answers every claim of r and completes it, later. */
void dra_service_prepare(DraService *s, DraRequest *r);
void dra_service_unprepare(DraService *s, DraRequest *r);

/*
 * After preparer_recover(): ask the API server about each recovered claim and forget
 * those proven gone: a 404 whose body is the API server's NotFound Status naming that
 * claim (kube_status_proves_not_found()), or a 200 with that claim under another UID or
 * no longer allocated. Any other answer (transport errors, 5xx, 403, a 404 from a proxy
 * or for an API group not served, a 200 that is not this claim) keeps the claim, says
 * so once, and asks again later: after 30 s, then backing off to every 10 min, until an
 * answer proves something. Takes ownership of claims.
 */
int dra_service_verify(DraService *s, PrepareClaimRef *claims, size_t n);

/* Verifications not concluded yet, those waiting to ask again included. */
size_t dra_service_n_verifying(DraService *s);
/* Of those, the ones waiting to ask again (tests wait for n_verifying == this). */
size_t dra_service_n_verify_waiting(DraService *s);
/* The first wait before asking again (tests); 0: the default, 30 s. */
void dra_service_set_verify_retry(DraService *s, uint64_t usec);

/*
 * Told on the event thread after each change: c is the prepared claim (a fresh prepare
 * or one restored), or NULL when uid was unprepared, released or forgotten. For the
 * D-Bus objects (bus_server_claim_prepared()/..._unprepared(), see
 * manager_dbus_claim_from_prepared()).
 */
typedef void (*DraServiceObserver)(void *userdata, const char *uid, const PreparedClaim *c);
void dra_service_set_observer(DraService *s, DraServiceObserver observer, void *userdata);

/*
 * An administrator's release (D-Bus ReleaseClaim): unprepare uid now, as if the
 * kubelet had asked. -ENOENT when it is not prepared.
 */
int dra_service_release(DraService *s, const char *uid);

/* What the kubelet's claims got, for the metrics: [0] succeeded, [1] failed; durations
 * from the call's arrival to the claim's answer, the API server's read included. */
typedef struct DraServiceStats {
        uint64_t prepare[2];
        uint64_t unprepare[2];
        Histogram prepare_duration;
        Histogram unprepare_duration;
} DraServiceStats;
void dra_service_get_stats(const DraService *s, DraServiceStats *ret);
