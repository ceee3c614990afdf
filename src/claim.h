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
        char *parameters_json;    /* our driver's opaque parameters that apply (last wins), or NULL */
} ClaimResult;

typedef struct ClaimAllocation {
        char *namespace_;
        char *name;
        char *uid;
        char *resource_version;
        ClaimResult *results;     /* only results with our driver and our pool */
        size_t n_results;
} ClaimAllocation;

void claim_allocation_done(ClaimAllocation *c);
