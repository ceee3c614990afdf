/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * What HAMi-core enforces for one claim: per allocated GPU the memory and compute
 * granted by the scheduler (consumedCapacity), summed over the claim's results on that
 * GPU, and per result the CUDA index of its GPU inside the container.
 *
 * Rules (hami-dra-parameters(5) and docs/design.md "Prepare"):
 *  - memory = consumedCapacity.memory, cores = consumedCapacity.cores; a result
 *    without consumedCapacity gets the whole device (memory_total, 100);
 *  - several results on the same GPU add up; more than the device has is refused;
 *  - the memory limit is given in MiB, rounded DOWN (never more than was granted);
 *    a limit that rounds to 0 MiB or 0 cores cannot be expressed (HAMi-core reads 0
 *    as "no limit") and is refused;
 *  - each GPU has one index <i> in the claim: the rank of its pcie_bus_id among all the
 *    claim's GPUs (CUDA's order in a container that gets the whole claim). It names the
 *    GPU's device in the claim's shared region and its CUDA_DEVICE_*_<i> variables, the
 *    same for every result and request on it; CUDA_DEVICE_UUID_<i> lets libvgpu find it
 *    in a container that gets only some of the claim's requests (and so numbers its
 *    GPUs otherwise).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "claim.h"
#include "claim-params.h"
#include "gpu.h"

typedef struct GpuLimit {
        const Gpu *gpu;             /* points into the GpuList given to claim_limits_compute() */
        uint64_t memory;            /* bytes granted, summed */
        uint64_t memory_mib;        /* memory / MiB, rounded down */
        unsigned cores;             /* percent, summed */
        LimitPolicy memory_policy;  /* hard unless every result on this GPU disables it */
        LimitPolicy sm_policy;
        bool oversubscription;      /* only when every result on this GPU asks for it */
} GpuLimit;

typedef struct ResultPlacement {
        size_t gpu;                 /* index into ClaimLimits.gpus */
        unsigned cuda_index;        /* <i>: the GPU's index in the claim (region device) */
} ResultPlacement;

typedef struct ClaimLimits {
        GpuLimit gpus[CLAIM_RESULTS_MAX];
        size_t n_gpus;
        ResultPlacement results[CLAIM_RESULTS_MAX];
        size_t n_results;
} ClaimLimits;

/*
 * Errors (with a reason in error): -ENODEV a result names a device this node does not
 * have; -ERANGE consumedCapacity exceeds the device or cannot be expressed; -EBADMSG
 * malformed parameters; -EPERM the claim's own config relaxes a limit of the
 * DeviceClass's (claim_params_merge()).
 */
int claim_limits_compute(const ClaimAllocation *c, const GpuList *gpus, ClaimLimits *ret,
                         char *error, size_t error_size);
