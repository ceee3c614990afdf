/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Prepare and unprepare, the transactions behind NodePrepareResources and
 * NodeUnprepareResources, and start-up recovery.
 *
 * The Preparer is thread-safe: calls for different claims run concurrently, calls for
 * the same claim UID are serialised. It never talks to the API server itself: the
 * caller hands it the claim JSON (dra-service.c fetches it through an injected fetcher).
 *
 * On disk, per claim (all-or-nothing after a crash, see preparer_recover()):
 *   <state>/checkpoints/<uid>.ckpt         the commit record (checkpoint.h)
 *   <state>/claims/<uid>/vgpu/vgpu.cache   HAMi-core's shared region (dir 0700, file 0600)
 *   <cdi>/k8s.<driver>-claim_<uid>.json    the CDI spec
 * and, shared by all claims, <state>/ld.so.preload naming the preload library (mounted
 * read-only on the containers' /etc/ld.so.preload). A prepare writes the claim
 * directory, then the CDI spec, then the checkpoint (the commit point, fsync'd). Recovery completes committed claims and removes everything
 * no checkpoint owns, so a crash at any point leaves a claim fully prepared or absent.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prepared-claim.h"
#include "gpu.h"
#include "host-driver.h"

/* Journal MESSAGE_IDs of the audit log (catalog/hami-dra.catalog explains them). */
#define HAMI_MESSAGE_CLAIM_PREPARED "19084eb2f9104c438d84c4b807711466"
#define HAMI_MESSAGE_CLAIM_UNPREPARED "aa8f594203154ad8b0c2bee4508def7a"
#define HAMI_MESSAGE_CLAIM_RECOVERED "970d9aa79c094f8a84d15c7a813d1478"
#define HAMI_MESSAGE_CLAIM_REJECTED "222f44e329cf4a31b45c11e31cb03996"
#define HAMI_MESSAGE_CLAIM_CLEANED_UP "d856564a177c4ca983b12ec203930ef8"
#define HAMI_MESSAGE_CLAIM_SPEC_UPDATED "9974418d8b3c480998a91245ed95c2ed"
#define HAMI_MESSAGE_DRIVER_CHANGED "0e535b6def454b41928a26a4eaeafe33"

#define PREPARE_ERROR_MAX 512

typedef struct PrepareOptions {
        const char *driver_name;
        const char *node_name;        /* our pool */
        const char *cdi_dir;
        const char *state_dir;
        const char *preload_library;  /* NULL: no preload (tests) */
        bool driver_from_runtime;
        const char *dev_root;         /* "/" in production; a fixture dir in tests */
        const char *driver_root;      /* "/" in production */
        const char *boot_id;          /* NULL: the kernel's (sd_id128_get_boot); tests inject */
} PrepareOptions;

typedef struct Preparer Preparer;

int preparer_new(const PrepareOptions *o, const GpuList *gpus, Preparer **ret);
Preparer *preparer_free(Preparer *p);

/* Replace the GPU list (after a rescan). Prepared claims are not touched. */
int preparer_set_gpus(Preparer *p, const GpuList *gpus);

typedef struct PrepareClaimRef {
        const char *namespace_;
        const char *name;
        const char *uid;
} PrepareClaimRef;

/*
 * Prepare one claim. claim_json may be NULL when preparer_is_prepared() said yes (the
 * answer then comes from its in-memory record; -EAGAIN if it vanished meanwhile). On
 * success ret holds the prepared claim (devices with their CDI IDs). On failure, nothing
 * of the claim is left on disk and error says why (also logged as "rejected").
 */
int preparer_prepare(Preparer *p, const PrepareClaimRef *ref, const char *claim_json, size_t len,
                     PreparedClaim *ret, char *error, size_t error_size);

/* Unprepare: remove checkpoint, CDI spec and claim directory. Unknown claims succeed. */
int preparer_unprepare(Preparer *p, const char *uid, char *error, size_t error_size);

/*
 * The same without waiting: -EBUSY when another call for uid is in progress. Nothing
 * here syncs to disk, so the event loop may call it directly.
 */
int preparer_try_unprepare(Preparer *p, const char *uid, char *error, size_t error_size);

/* Remove a claim because the API server no longer has it (deleted or re-created). */
int preparer_forget(Preparer *p, const char *uid, const char *reason);

/* Cheap: uid is prepared (looked up in memory, no file is read). */
bool preparer_is_prepared(Preparer *p, const char *uid);

/*
 * Start-up recovery, before serving: load every checkpoint, recreate missing CDI specs
 * and claim directories (a new boot gets a fresh shared region), remove CDI specs,
 * claim directories and temp files that no checkpoint owns, and damaged checkpoints.
 * ret_claims (optional) gets the recovered claims for re-verification against the API
 * server; free with preparer_claims_free().
 */
int preparer_recover(Preparer *p, PrepareClaimRef **ret_claims, size_t *ret_n);
void preparer_claims_free(PrepareClaimRef *claims, size_t n);

/*
 * Call f for every prepared claim, e.g. to fill the D-Bus objects at start: the records
 * loaded by recovery and kept since, without the spec text.
 * Returns how many were visited.
 */
int preparer_foreach(Preparer *p, void (*f)(void *userdata, const PreparedClaim *c), void *userdata);

/*
 * Cut prepared claims' vgpu.cache back to its size (shared_region_trim_at): the one file a
 * container may write, and grow. The daemon calls it every PREPARER_TRIM_INTERVAL_MS, from
 * the main loop only (one caller at a time); each call visits the next
 * PREPARER_TRIM_PER_TICK claims, round robin, so every claim is visited every 250 ms up to
 * 500 claims, and every n/2000 s beyond. A warning names the claim, at most one per 10 s.
 * Returns how many regions were cut, or -ENOMEM.
 */
#define PREPARER_TRIM_INTERVAL_MS 250
#define PREPARER_TRIM_PER_TICK 500
int preparer_trim_regions(Preparer *p);

/*
 * Whether claims can be prepared on this host: >= 0, or negative errno with why (the NVIDIA
 * control nodes are missing). While they are missing, every call (and every prepare)
 * looks again, so a driver installed after start needs no restart. Any thread.
 */
int preparer_host_check(Preparer *p, char *why, size_t why_size);

/* Statistics for benchmarks and STATUS=. */
size_t preparer_n_prepared(Preparer *p);

/*
 * Reconciliation (manager-reconcile.c): forget uid, proven stale by evidence gathered at
 * evidence_usec (CLOCK_MONOTONIC), without waiting: -EBUSY when a call for it is in
 * progress, -ESTALE when the kubelet prepared it (again) since the evidence was gathered
 * (PreparedClaim.last_call_usec), -ENOENT when it is not prepared; otherwise what
 * unprepare says (error). The audit entry is HAMI_MESSAGE_CLAIM_CLEANED_UP with reason.
 * Nothing here syncs to disk, so the event loop may call it.
 */
int preparer_try_forget(Preparer *p, const char *uid, const char *reason, uint64_t evidence_usec, char *error,
                        size_t error_size);

/* The root the driver files are looked up under ("/" in production). */
const char *preparer_driver_root(Preparer *p);

typedef struct PreparerRefresh {
        /* Set by the caller (optional): told of a change before any spec is rewritten. */
        void (*on_change)(const HostDriver *old, const HostDriver *new);
        HostDriver *old, *new;     /* what specs were made with before, and now (NULL when not looked at) */
        bool changed;              /* the host driver differs */
        size_t n_rewritten;        /* specs rewritten (each with a HAMI_MESSAGE_CLAIM_SPEC_UPDATED entry) */
        size_t n_failed;           /* specs that keep the old files, each logged with why */
        size_t n_busy;             /* claims in a kubelet call: not looked at, try again */
} PreparerRefresh;

/*
 * Look for the driver files and control nodes again (a driver upgrade while pods run).
 * When they changed, or with force, bring every prepared claim's CDI spec up to date
 * (cdi_spec_update_host(); spec file, then checkpoint); later prepares use the new ones.
 * A spec that cannot be rewritten keeps the old one and says why. Never waits for a
 * claim's lock. Syncs the checkpoints it rewrites. ret->on_change is kept, the rest
 * filled in. Free ret with preparer_refresh_done().
 */
int preparer_refresh_host(Preparer *p, bool force, PreparerRefresh *ret);
void preparer_refresh_done(PreparerRefresh *r);
