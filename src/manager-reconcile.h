/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Reconciliation: every ReconcileIntervalSec (hami-dra.conf(5)), the prepared claims are
 * checked against the API server, and those that nobody will unprepare any more are
 * cleaned up, each with its audit entry (HAMI_MESSAGE_CLAIM_CLEANED_UP and the reason).
 * The kubelet's NodeUnprepareResources stays the normal path; this is the safety net for
 * the calls it never makes (a kubelet that lost its state, a node drained while the
 * daemon was down, a claim force-deleted).
 *
 * What proves a claim stale (docs/design.md, "Reconciliation"):
 *   - gone: the API server's NotFound Status naming the claim
 *     (kube_status_proves_not_found()), or the claim under another UID: cleaned at once;
 *   - unused: not allocated any more, reserved for no consumer, or reserved only for pods
 *     proven gone (NotFound, another UID) or bound to another node: cleaned only when two
 *     consecutive passes say so.
 * Anything else (transport errors, 5xx, 403, a 404 that is not that Status, an answer
 * that is not the object asked for, a consumer that is not a pod) proves nothing and
 * keeps the claim; it also restarts the count of an "unused" claim. A claim the kubelet
 * prepared less than one interval ago, or prepared again after the evidence was
 * gathered, is never cleaned (preparer_try_forget()). After RECONCILE_FAILING_MAX answers
 * in a row from an API server that does not answer, a pass stops asking.
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "kube-client.h"
#include "prepare.h"

typedef struct Manager Manager;
typedef struct Reconciler Reconciler;

/* Plain counters, since start (for STATUS=, D-Bus or metrics to pick up). */
typedef struct ReconcilerStats {
        uint64_t passes;            /* passes completed */
        uint64_t claims_checked;    /* claims asked about */
        uint64_t claims_cleaned;    /* forgotten by reconciliation */
        uint64_t claims_unproven;   /* answers that proved nothing (kept) */
        uint64_t claims_suspect;    /* "unused" seen once, waiting for the next pass */
        uint64_t cleanups_deferred; /* stale, but busy, re-prepared since, or too young */
        uint64_t last_pass_usec;    /* how long the last pass took */
} ReconcilerStats;

/* The API client now (NULL without credentials: the pass is skipped). */
typedef KubeClient *(*ReconcilerKubeFunc)(void *userdata);
/* uid was cleaned up (for the D-Bus objects). */
typedef void (*ReconcilerForgottenFunc)(void *userdata, const char *uid);

int reconciler_new(sd_event *e, Preparer *p, const char *node_name, ReconcilerKubeFunc kube,
                   ReconcilerForgottenFunc forgotten, void *userdata, Reconciler **ret);
/* Cancels the requests in flight (call before the API client is freed). */
Reconciler *reconciler_free(Reconciler *r);

/* 0: off. The first pass comes one interval from now. */
int reconciler_set_interval(Reconciler *r, uint64_t usec);
/* Start a pass now (unless one is running). */
int reconciler_run_now(Reconciler *r);
bool reconciler_running(Reconciler *r);
const ReconcilerStats *reconciler_stats(Reconciler *r);

/* The manager's side (manager.c calls these): the reconciler and the driver watch, made
 * at start, the interval from the configuration (and again at reload), freed before the
 * API client. */
int manager_setup_reconcile(Manager *m);
void manager_reload_reconcile(Manager *m);
void manager_free_reconcile(Manager *m);
/* D-Bus Rescan and reload: look at the driver's files again (driver-watch.h). */
void manager_rescan_driver(Manager *m);
