/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Our driver's opaque parameters (ResourceClaim / DeviceClass
 * `config[].opaque.parameters` with driver = ours), documented in
 * hami-dra-parameters(5):
 *
 *   {"apiVersion": "gpu.project-hami.io/v1alpha1", "kind": "GpuConfig",
 *    "memoryLimitPolicy": "hard", "smLimitPolicy": "hard", "oversubscription": false}
 *
 * Untrusted JSON: unknown fields, wrong types and unknown versions are rejected with a
 * message that names the field.
 */

#include <stdbool.h>
#include <stddef.h>

#define GPU_CONFIG_API_VERSION "gpu.project-hami.io/v1alpha1"
#define GPU_CONFIG_KIND "GpuConfig"
#define GPU_CONFIG_PARAMETERS_MAX (10 * 1024) /* API limit on opaque parameters */

typedef enum LimitPolicy {
        LIMIT_POLICY_HARD,     /* HAMi-core enforces the granted amount */
        LIMIT_POLICY_DISABLED, /* no limit set for this GPU in the container */
} LimitPolicy;

typedef struct GpuConfig {
        LimitPolicy memory_limit_policy;
        LimitPolicy sm_limit_policy;
        bool oversubscription;  /* CUDA_OVERSUBSCRIBE: spill device memory to host memory */
} GpuConfig;

/* The defaults: both limits hard, no oversubscription. */
void gpu_config_init(GpuConfig *c);

/*
 * Parse one parameters object (JSON text). On error returns -EINVAL and, when
 * error/size are given, a one-line reason ("unknown field \"foo\"").
 */
int gpu_config_parse(const char *json, size_t len, GpuConfig *ret, char *error, size_t error_size);

/* The same for an already parsed object (claim.c validates while decoding). */
struct json_object;
int gpu_config_from_json(struct json_object *o, GpuConfig *ret, char *error, size_t error_size);

const char *limit_policy_to_string(LimitPolicy p);
