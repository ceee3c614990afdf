/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * NodePrepareResources / NodeUnprepareResources on top of the Preparer: reads each
 * claim through an injected fetcher (the API client in the daemon, canned JSON in
 * tests), runs the file work on a few worker threads so claims are handled
 * concurrently (the Preparer serialises calls for the same UID), and answers each
 * claim of the DraRequest on the sd-event thread.
 *
 * Wiring in the manager (see README "Prepare"):
 *
 *   prepare_service_new(m->event, preparer, fetch, fetch_userdata, 0, &m->prepare);
 *   .prepare   = manager_on_prepare   -> prepare_service_prepare(m->prepare, r)
 *   .unprepare = manager_on_unprepare -> prepare_service_unprepare(m->prepare, r)
 */

#include <stddef.h>
#include <systemd/sd-event.h>

#include "grpc-server.h"
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

typedef struct PrepareService PrepareService;

#define PREPARE_WORKERS_DEFAULT 4
#define PREPARE_WORKERS_MAX 64

/* n_workers 0: PREPARE_WORKERS_DEFAULT. The service does not own the preparer. */
int prepare_service_new(sd_event *e, Preparer *p, ClaimFetchFunc fetch, void *fetch_userdata, unsigned n_workers,
                        PrepareService **ret);
/* Waits for the workers; requests still in flight are completed with errors. */
PrepareService *prepare_service_free(PrepareService *s);

/* The gRPC callbacks: each answers every claim of r and completes it, later. */
void prepare_service_prepare(PrepareService *s, DraRequest *r);
void prepare_service_unprepare(PrepareService *s, DraRequest *r);

/*
 * After preparer_recover(): ask the API server about each recovered claim and forget
 * those that were deleted (404) or re-created with another UID while we were down.
 * Takes ownership of claims. Transport errors keep the claim (the kubelet will still
 * unprepare it).
 */
int prepare_service_verify(PrepareService *s, PrepareClaimRef *claims, size_t n);

/* Claims whose verification is still running (tests wait for 0). */
size_t prepare_service_n_verifying(PrepareService *s);

/*
 * Told on the event thread after each change: c is the prepared claim (a fresh prepare
 * or one restored), or NULL when uid was unprepared, released or forgotten. For the
 * D-Bus objects (bus_server_claim_prepared()/..._unprepared(), see
 * manager_dbus_claim_from_prepared()).
 */
typedef void (*PrepareObserver)(void *userdata, const char *uid, const Checkpoint *c);
void prepare_service_set_observer(PrepareService *s, PrepareObserver observer, void *userdata);

/*
 * An administrator's release (D-Bus ReleaseClaim): unprepare uid now, as if the
 * kubelet had asked. -ENOENT when it is not prepared.
 */
int prepare_service_release(PrepareService *s, const char *uid);
