/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * A claim's opaque parameters: ResourceClaim / DeviceClass `config[].opaque.parameters`
 * with driver = ours, of kind GpuConfig, documented in hami-dra-parameters(5):
 *
 *   {"apiVersion": "gpu.project-hami.io/v1alpha1", "kind": "GpuConfig",
 *    "memoryLimitPolicy": "hard", "smLimitPolicy": "hard", "oversubscription": false}
 *
 * Untrusted JSON: unknown fields, wrong types and unknown versions are rejected with a
 * message that names the field.
 */

#include <stdbool.h>
#include <stddef.h>

#define CLAIM_PARAMS_API_VERSION "gpu.project-hami.io/v1alpha1"
#define CLAIM_PARAMS_KIND "GpuConfig"
#define CLAIM_PARAMS_SIZE_MAX (10 * 1024) /* API limit on opaque parameters */

typedef enum LimitPolicy {
        LIMIT_POLICY_HARD,     /* HAMi-core enforces the granted amount */
        LIMIT_POLICY_DISABLED, /* no limit set for this GPU in the container */
} LimitPolicy;

typedef struct ClaimParams {
        LimitPolicy memory_limit_policy;
        LimitPolicy sm_limit_policy;
        bool oversubscription;  /* CUDA_OVERSUBSCRIBE: spill device memory to host memory */
} ClaimParams;

/* The defaults: both limits hard, no oversubscription. */
void claim_params_init(ClaimParams *c);

/*
 * Parse one parameters object (JSON text). On error returns -EINVAL and, when
 * error/size are given, a one-line reason ("unknown field \"foo\"").
 */
int claim_params_parse(const char *json, size_t len, ClaimParams *ret, char *error, size_t error_size);

/* The same for an already parsed object (claim.c validates while decoding). */
struct json_object;
int claim_params_from_json(struct json_object *o, ClaimParams *ret, char *error, size_t error_size);

const char *limit_policy_to_string(LimitPolicy p);

/*
 * What applies to one device: the DeviceClass's entry (class, NULL: the defaults) as
 * tightened by the claim's own (claim, NULL: none). Only the administrator relaxes a
 * limit: a claim entry whose policy is looser than the class's ("disabled" where the
 * class says "hard", which is also what a class without an entry says) is refused with
 * -EPERM and a reason naming the field. oversubscription is the claim's word when it
 * gives one (it moves memory beyond the limit to the host, never onto the GPU).
 */
int claim_params_merge(const ClaimParams *class_params, const ClaimParams *claim_params, ClaimParams *ret,
                       char *error, size_t error_size);
