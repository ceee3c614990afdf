/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * An asynchronous API server client: libcurl's multi interface driven by the
 * sd-event loop (sockets and timers become event sources), so no request ever blocks
 * the loop. Requests complete through a callback; watches deliver one callback per
 * event line.
 *
 * Retries: a request made with `attempts > 1` is retried on transport errors, 429
 * and 5xx, honouring Retry-After, with capped exponential backoff and jitter; every
 * retry is logged with its reason. Callers that keep something true forever (the
 * slice publisher) use KubeBackoff themselves.
 */

#include <stdbool.h>
#include <stdint.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include <systemd/sd-event.h>

#include "kubeconfig.h"
#include "macro.h"

#define KUBE_RESPONSE_SIZE_MAX (16u * 1024u * 1024u)
#define KUBE_WATCH_LINE_MAX (4u * 1024u * 1024u)
#define KUBE_REQUESTS_MAX 64u                       /* in flight at once */
#define KUBE_TIMEOUT_USEC_DEFAULT (30u * 1000000ull)
#define KUBE_CONNECT_TIMEOUT_USEC_DEFAULT (10u * 1000000ull)
#define KUBE_RETRY_AFTER_MAX_USEC (300u * 1000000ull)
#define KUBE_CLAIM_GET_ATTEMPTS 3u
#define KUBE_CLAIM_RETRY_DELAY_MAX_USEC (10u * 1000000ull)

typedef struct KubeClient KubeClient;
typedef struct KubeRequest KubeRequest;

typedef struct KubeResponse {
        long status;                /* HTTP status; 0 when none arrived */
        int error;                  /* 0, or negative errno: transport failure, timeout, too large */
        const char *message;        /* what went wrong, for logs ("timed out after 30 s", "HTTP 403: ...") */
        const char *body;           /* raw body (NUL-terminated), may be NULL */
        size_t body_size;
        json_object *json;          /* parsed body when it is JSON, else NULL; borrowed (always NULL
                                     * for kube_client_get_resource_claim(): read body) */
        uint64_t retry_after_usec;  /* from Retry-After, 0 if absent */
} KubeResponse;

/* Called once when the request is done (success, HTTP error or transport failure). */
typedef void (*KubeResponseHandler)(KubeClient *c, const KubeResponse *r, void *userdata);

/* One watch event: type "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"; object borrowed. */
typedef void (*KubeWatchHandler)(KubeClient *c, const char *type, json_object *object, void *userdata);

typedef struct KubeClientOptions {
        uint64_t timeout_usec;           /* whole request; 0: default */
        uint64_t connect_timeout_usec;   /* 0: default */
        uint64_t backoff_base_usec;      /* first retry delay; 0: 500 ms */
        uint64_t backoff_cap_usec;       /* 0: 30 s */
} KubeClientOptions;

int kube_client_new(sd_event *event, const KubeCredentials *creds, const KubeClientOptions *opts,
                    KubeClient **ret);
KubeClient *kube_client_free(KubeClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(KubeClient *, kube_client_free);

/* "client certificate /path (kubeconfig /etc/kubernetes/kubelet.conf)" */
const char *kube_client_credential_description(KubeClient *c);
const char *kube_client_server(KubeClient *c);

/* Requests the API server answered (code: the HTTP status) or did not (code 0), per
 * method, every attempt counted: for the metrics. At most KUBE_REQUEST_COUNTS_MAX keys;
 * a key first seen past them is not counted. Event thread only. */
#define KUBE_REQUEST_COUNTS_MAX 64
typedef struct KubeRequestCount {
        char verb[8];
        int code;
        uint64_t count;
} KubeRequestCount;
size_t kube_client_request_counts(const KubeClient *c, const KubeRequestCount **ret);

/*
 * Start a request. `path` begins with '/' (query included, already escaped). `body`
 * is sent as JSON when not NULL. `attempts` ≥ 1: how often to try. The handler is
 * always called exactly once unless the request is cancelled. `ret` (may be NULL)
 * receives a handle that stays valid until the handler has been called.
 */
int kube_client_request(KubeClient *c, const char *method, const char *path, json_object *body,
                        unsigned attempts, KubeResponseHandler handler, void *userdata,
                        KubeRequest **ret);

/* A watch: `path` with watch=true. on_event per line, on_done when the stream ends. */
int kube_client_watch(KubeClient *c, const char *path, KubeWatchHandler on_event,
                      KubeResponseHandler on_done, void *userdata, KubeRequest **ret);

/* Drop a request without calling its handler. Safe from inside its own watch handler. */
void kube_request_cancel(KubeRequest *r);

/*
 * GET /apis/resource.k8s.io/v1/namespaces/<ns>/resourceclaims/<name>, tried up to
 * KUBE_CLAIM_GET_ATTEMPTS times on 429/5xx/transport errors, never waiting more than
 * 10 s between tries (the kubelet is waiting). The handler gets the status and the raw
 * JSON body (r->body; claim.c decodes it and checks the UID) or the error.
 */
int kube_client_get_resource_claim(KubeClient *c, const char *namespace, const char *name,
                                   KubeResponseHandler handler, void *userdata);

/*
 * The Kubernetes Status object that API errors carry as their body:
 *   {"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound",
 *    "message":"resourceclaims.resource.k8s.io \"x\" not found",
 *    "details":{"name":"x","group":"resource.k8s.io","kind":"resourceclaims"},"code":404}
 * Strings are NULL when absent (or not strings, or holding a NUL); code is 0 when absent.
 */
typedef struct KubeStatus {
        char *reason;
        char *message;
        char *name, *group, *kind;   /* details.* */
        int64_t code;
} KubeStatus;

#define KUBE_STATUS_SIZE_MAX (64u * 1024u)

/* Parse an untrusted body of n bytes: -EBADMSG when it is not a JSON object of kind
 * Status (or is over KUBE_STATUS_SIZE_MAX), -ENOMEM. */
int kube_status_parse(const char *body, size_t n, KubeStatus *ret);
void kube_status_done(KubeStatus *s);

/*
 * Does a 404 with this body prove that object `name` of `resource` (the plural,
 * "resourceclaims") in API `group` ("" for the core group) does not exist? Only a
 * Status with reason NotFound whose details name that very object does (details.group,
 * when present, must match too). A 404 from a proxy ("{}", HTML, empty), for an API
 * group the server does not serve ("the server could not find the requested
 * resource": reason NotFound but no details.name), or about another object proves
 * nothing: callers that would delete state on a 404 keep it and ask again later.
 */
bool kube_status_proves_not_found(const char *body, size_t n, const char *group, const char *resource,
                                  const char *name);

/* Percent-encode for a query parameter value or a path segment. */
int kube_escape(const char *s, char *buf, size_t size);

/* Is this response worth retrying (transport error, 429, 5xx)? */
bool kube_response_retryable(const KubeResponse *r);

/* Capped exponential backoff with jitter. */
typedef struct KubeBackoff {
        uint64_t base_usec, cap_usec;
        unsigned failures;
} KubeBackoff;

/* The next delay; `retry_after_usec` (if larger) wins, up to KUBE_RETRY_AFTER_MAX_USEC. */
uint64_t kube_backoff_next(KubeBackoff *b, uint64_t retry_after_usec);
void kube_backoff_reset(KubeBackoff *b);

/* Parse "120" (seconds) into usec; 0 when absent or an HTTP date we don't honour. */
uint64_t kube_parse_retry_after(const char *value);

/*
 * What any libcurl request to the API server needs from the credentials; the client
 * above uses them, and so does hami-dra-webhook's synchronous client.
 *
 * kube_credentials_url: the URL prefix to talk to; with tls-server-name it is
 * https://<tls-server-name>:<port>, and *ret_connect_to tells curl the real host
 * (CURLOPT_CONNECT_TO), else NULL. -EINVAL for a server or name that cannot be used.
 * kube_credentials_setup_tls: verification, the CA, the client certificate and key,
 * and connect_to on the easy handle; -EINVAL when curl refuses an option.
 * kube_credentials_auth_header: "Authorization: Bearer <token>" (the token file is
 * read anew each time, for rotated service account tokens), or NULL without a token.
 */
int kube_credentials_url(const KubeCredentials *creds, char **ret_url, struct curl_slist **ret_connect_to);
int kube_credentials_setup_tls(const KubeCredentials *creds, struct curl_slist *connect_to, CURL *e);
int kube_credentials_auth_header(const KubeCredentials *creds, char **ret);
