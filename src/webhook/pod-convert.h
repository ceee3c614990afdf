/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * HAMi's device-plugin requests (nvidia.com/gpu, gpumem, gpumem-percentage, gpucores and
 * the use-/nouse- annotations) turned into DRA: a JSON Patch for the pod and the
 * ResourceClaimTemplates it references. Pure: the pod in, text out. The rules are in
 * hami-dra-webhook(8), CONVERSION; they are summed up where they are coded below.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

#include "errbuf.h"

#define WEBHOOK_DRIVER "hami-core-gpu.project-hami.io"
#define WEBHOOK_MANAGED_BY_LABEL "app.kubernetes.io/managed-by"
#define WEBHOOK_MANAGED_BY "hami-dra-webhook"
#define WEBHOOK_TEMPLATE_PREFIX "hami-gpu-"

/* At most this many GPUs per request: the API's limit on devices in one allocation. */
#define POD_CONVERT_COUNT_MAX 32
/* At most this many firstAvailable subrequests (the API's limit). */
#define POD_CONVERT_SUBREQUESTS_MAX 8
/* An annotation value (a comma list) is at most this long. */
#define POD_CONVERT_ANNOTATION_MAX 1024

/* The memory sizes, in bytes, of the devices our ResourceSlices publish (duplicates and
 * zeros are ignored). n == 0: not known. */
typedef struct DeviceSizes {
        const uint64_t *memory_bytes;
        size_t n;
} DeviceSizes;

typedef struct PodConversion {
        char *patch;            /* JSON Patch (RFC 6902) text; NULL: nothing to convert */
        size_t patch_len;
        char **templates;       /* ResourceClaimTemplate objects (JSON text), distinct */
        size_t n_templates;
        size_t n_converted;     /* containers converted */
} PodConversion;

/*
 * Convert pod (the admission request's object) for the given namespace (the request's,
 * never the pod's own, which may be empty). 0 on success (ret->patch NULL when the pod
 * asks for nothing of ours); -EINVAL when the pod must be refused, with a message in e
 * that says what to change; -ENOMEM. ret is zeroed on failure.
 */
int pod_convert(json_object *pod, const char *namespace, const DeviceSizes *sizes, PodConversion *ret, ErrBuf *e);
void pod_conversion_done(PodConversion *c);

/* RFC 6901: '~' -> "~0", '/' -> "~1", appended to buf of size (truncation: -ENOBUFS). */
int json_pointer_append(char *buf, size_t size, const char *token);
