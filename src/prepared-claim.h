/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * A prepared claim as the daemon keeps it: its identity, the boot it was prepared in,
 * the devices answered to the kubelet with their limits, and the CDI spec text. The
 * Preparer keeps one per prepared claim in memory (without the spec text), and the
 * checkpoint file (checkpoint.h) stores it on disk.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PREPARED_CLAIM_DEVICES_MAX 32

typedef struct PreparedClaimDevice {
        char *request;          /* main request name */
        char *pool;
        char *device;
        char *cdi_device_id;
        char *share_id;         /* or NULL */
        char *gpu_uuid;
        uint64_t memory_mib;    /* 0: no memory limit */
        unsigned cores;         /* 0: no SM limit */
        unsigned cuda_index;    /* the GPU's index in the claim: its region device (< PREPARED_CLAIM_DEVICES_MAX) */
} PreparedClaimDevice;

typedef struct PreparedClaim {
        char *uid;
        char *namespace_;
        char *name;
        char *pod;              /* the pod it was prepared for (claim.h), or NULL; not in
                                   the checkpoint: unknown after a restart */
        char boot_id[33];       /* 32 hex digits */
        PreparedClaimDevice *devices;
        size_t n_devices;
        char *cdi_spec;         /* the spec text written to the CDI dir */
        uint64_t last_call_usec; /* in memory only: the last prepare of it (or its recovery), CLOCK_MONOTONIC */
} PreparedClaim;

void prepared_claim_done(PreparedClaim *c);
/* A deep copy; the CDI spec text only if with_spec. */
int prepared_claim_copy(const PreparedClaim *src, bool with_spec, PreparedClaim *ret);

/* <state_dir>/claims/<uid>/vgpu/vgpu.cache: the claim's shared region (prepare.h), or
 * NULL without memory. */
char *prepared_claim_region_path(const char *state_dir, const char *uid);
