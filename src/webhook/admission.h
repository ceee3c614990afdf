/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The AdmissionReview exchange (admission.k8s.io/v1) of hami-dra-webhook: decoding the
 * API server's request and encoding our response. Pure: text in, text out.
 *
 * The body is untrusted: it is parsed with a size and nesting bound, and every field we
 * read is checked for its type. A body that is not an AdmissionReview v1 request is
 * refused with -EBADMSG and a one-line reason (the server answers it with a 400, since
 * there is no uid to answer to).
 */

#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>

#include "errbuf.h"

/* The largest body we parse. The API server caps an object at about 3 MiB (etcd's
 * 1.5 MiB request limit, twice for object + oldObject, with room for the review). */
#define ADMISSION_SIZE_MAX (6u * 1024u * 1024u)
/* The deepest nesting we parse: a pod is about 12 deep inside its review. */
#define ADMISSION_DEPTH_MAX 64
/* request.uid: a UUID in practice; anything printable up to this length is echoed. */
#define ADMISSION_UID_MAX 128

typedef struct AdmissionRequest {
        json_object *root;          /* owns everything below */
        const char *uid;            /* non-empty, printable ASCII */
        const char *kind_group;     /* request.kind: "" for the core group */
        const char *kind_version;
        const char *kind;           /* "Pod", "ResourceClaim" ... */
        const char *resource;       /* request.resource.resource: "pods" ... (may be "") */
        const char *sub_resource;   /* "" when none */
        const char *namespace;      /* "" for cluster-scoped objects */
        const char *name;           /* "" for objects created with generateName */
        const char *operation;      /* CREATE, UPDATE, DELETE or CONNECT */
        bool dry_run;
        json_object *object;        /* request.object (an object) or NULL (DELETE) */
} AdmissionRequest;

/* Decode body (n bytes, not NUL-terminated). 0, or -EBADMSG / -E2BIG / -ENOMEM with a
 * reason in e. *ret is left zeroed on failure. */
int admission_request_decode(const char *body, size_t n, AdmissionRequest *ret, ErrBuf *e);
void admission_request_done(AdmissionRequest *r);

typedef struct AdmissionResponse {
        const char *uid;            /* the request's */
        bool allowed;
        int code;                   /* status.code on refusal (400, 403, 500); 0: none */
        const char *message;        /* status.message on refusal */
        const char *patch;          /* JSON Patch text (RFC 6902), NULL for none */
        size_t patch_len;
        const char *const *warnings;
        size_t n_warnings;
} AdmissionResponse;

/* The AdmissionReview response as a new NUL-terminated string. 0 or -ENOMEM / -EINVAL. */
int admission_response_encode(const AdmissionResponse *r, char **ret);

/* Standard base64 (RFC 4648, with padding) of n bytes, as a new string; NULL on ENOMEM. */
char *base64_encode(const void *data, size_t n);
