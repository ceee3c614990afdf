/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * A ResourceClaim as prepare needs it: the allocation results for our driver and our
 * pool, decoded from the API server's JSON (claim.c, fuzzed) and checked against what
 * the kubelet sent. The JSON is untrusted: everything here was validated on decode.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLAIM_RESULTS_MAX 32      /* API limit on results per claim */
#define CLAIM_CONFIGS_MAX 64      /* API limit on config entries */

typedef struct ClaimResult {
        char *request;            /* as allocated: "<main>" or "<main>/<sub>" */
        char *device;             /* our device name, "hami-gpu-<minor>" */
        char *share_id;           /* lower-case UUID, or NULL for an exclusive allocation */
        bool admin_access;
        bool has_consumed_capacity;
        uint64_t consumed_memory; /* bytes, from consumedCapacity.memory */
        uint64_t consumed_cores;  /* percent, from consumedCapacity.cores */
        /* Our driver's opaque parameters that apply, or NULL: the last applicable entry copied
         * from the DeviceClass (the administrator's word) and the last of the claim's own
         * (the tenant's), kept apart: a claim may tighten the class's limits, never relax
         * them (claim_limits_compute()). */
        char *class_parameters_json;
        char *claim_parameters_json;
} ClaimResult;

typedef struct ClaimAllocation {
        char *namespace_;
        char *name;
        char *uid;
        char *resource_version;
        char *pod;                /* the first pod in status.reservedFor, or NULL: metrics only */
        ClaimResult *results;     /* only results with our driver and our pool */
        size_t n_results;
} ClaimAllocation;

void claim_allocation_done(ClaimAllocation *c);

/*
 * Decode a ResourceClaim (the API server's JSON, untrusted) into c, keeping the
 * results for driver_name in pool (our node). Errors, each with a one-line reason in
 * error (when given):
 *   -EBADMSG   malformed JSON or fields (also malformed opaque parameters of ours)
 *   -ENODATA   status.allocation is absent: "not allocated"
 *   -EXDEV     a result for our driver names another pool: "allocated to another node"
 *   -E2BIG     more results/configs/bytes than the API allows
 */
int claim_allocation_decode(const char *json, size_t len, const char *driver_name, const char *pool,
                            ClaimAllocation *c, char *error, size_t error_size);

#define CLAIM_JSON_MAX (3u * 1024 * 1024)  /* the API server's object limit is 1.5 MiB */
#define CLAIM_UID_MAX 64

/* "0c6a3d6e-..."; letters, digits and '-', not starting with '-': safe in paths and CDI names. */
bool claim_uid_is_valid(const char *uid);

/* "<main>/<sub>" -> length of "<main>". */
size_t claim_request_main_len(const char *request);
