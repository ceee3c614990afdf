/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * hami-dra-webhook's decisions, as pure functions for the HTTPS server to call: the body
 * of the API server's POST in, the body of our answer (and the templates to create) out.
 * No sockets, no API calls, no global state; safe to call from several threads at once.
 *
 *   int webhook_mutate(const char *body, size_t size, const WebhookInventory *inventory,
 *                      WebhookResult *ret);
 *     The mutating webhook (pods, CREATE). inventory: the memory sizes of our published
 *     devices (from the ResourceSlices; may be NULL or empty: then gpumem-percentage is
 *     refused and gpumem is not checked against the devices).
 *
 *   int webhook_validate(const char *body, size_t size, WebhookResult *ret);
 *     The validating webhook (resource.k8s.io ResourceClaim and ResourceClaimTemplate,
 *     CREATE and UPDATE): our driver's opaque parameters are checked with the daemon's
 *     own decoder (claim-params.h). ret->templates is always empty.
 *
 * Both return:
 *   0        ret->response is the AdmissionReview to answer with HTTP 200, allowed or
 *            refused (a refusal is an answer, not an error). Anything that is not ours
 *            (another kind, another operation, a subresource) is allowed unchanged.
 *            ret->templates[0..n_templates) are ResourceClaimTemplate objects (JSON
 *            text, resource.k8s.io/v1, metadata.namespace set) that the patched pod
 *            references: create each in ret->namespace *before* answering, treating
 *            409 AlreadyExists as success (same name, same content: the name is a hash
 *            of the spec). If one cannot be created, answer with a refusal instead.
 *            When ret->dry_run is true, create nothing (sideEffects: NoneOnDryRun).
 *   -EBADMSG, -E2BIG
 *            the body is not an AdmissionReview v1 request (or is over
 *            ADMISSION_SIZE_MAX): answer HTTP 400; ret->error says why. ret->response
 *            is NULL.
 *   -ENOMEM  (or another negative errno): answer HTTP 500.
 * In every case call webhook_result_done(ret) afterwards (it is safe on a zeroed one).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct WebhookInventory {
        uint64_t *memory_bytes;     /* one per device or per distinct size: duplicates are fine */
        size_t n;
} WebhookInventory;

typedef struct WebhookResult {
        char *response;             /* AdmissionReview JSON, NUL-terminated */
        char **templates;           /* ResourceClaimTemplate JSON each */
        size_t n_templates;
        char *namespace;            /* request.namespace ("" for cluster-scoped) */
        bool dry_run;               /* request.dryRun */
        bool allowed;               /* what response says */
        char *uid;                  /* request.uid, for logs */
        char error[256];            /* the reason of -EBADMSG/-E2BIG, or of a refusal */
} WebhookResult;

int webhook_mutate(const char *body, size_t size, const WebhookInventory *inventory, WebhookResult *ret);
int webhook_validate(const char *body, size_t size, WebhookResult *ret);
void webhook_result_done(WebhookResult *r);

/*
 * The inventory from the body of a ResourceSliceList (the API server's answer, untrusted):
 * capacity.memory.value of every device of every slice, in *ret (malloc'd, n entries;
 * NULL when none). Devices without a parseable memory are skipped. -EBADMSG when it is
 * not JSON with an items array (or nests over 64 deep), -ENOMEM.
 */
int webhook_inventory_parse(const char *text, size_t size, uint64_t **ret, size_t *ret_n);
