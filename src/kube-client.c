/* SPDX-License-Identifier: Apache-2.0 */

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <time.h>

#include "config.h"
#include "fsutil.h"
#include "json-util.h"
#include "kube-client.h"
#include "list.h"
#include "log.h"
#include "macro.h"
#include "time-util.h"

#define WATCH_TIMEOUT_USEC (15ull * 60 * USEC_PER_SEC)
#define KUBE_IDLE_EASY_MAX 16u   /* handles kept for reuse; the claim reads of a busy kubelet */
#define KUBE_JSON_DEPTH_MAX 64   /* nesting of a response or watch event */

struct KubeClient {
        sd_event *event;
        CURLM *multi;
        sd_event_source *timer;
        KubeCredentials creds;
        KubeClientOptions opts;
        char *host_url;           /* URL prefix we talk to (tls-server-name substituted) */
        struct curl_slist *connect_to;
        char description[1024];
        KubeRequest *requests;    /* every live request */
        unsigned n_requests;
        /* Finished handles, reset, for the next requests: a new one costs ~25 kB of
         * allocations that curl_easy_reset() keeps. The connections live in the multi. */
        CURL *idle_easy[KUBE_IDLE_EASY_MAX];
        unsigned n_idle_easy;
        bool in_curl;             /* inside curl_multi_socket_action(): no curl_multi_* calls now */
        KubeRequestCount counts[KUBE_REQUEST_COUNTS_MAX];
        size_t n_counts;
};

struct KubeRequest {
        KubeClient *client;
        KubeRequest *prev, *next;
        CURL *easy;
        struct curl_slist *headers;
        char *method, *path, *url, *body;
        char errbuf[CURL_ERROR_SIZE];

        char *buf;               /* body, or the current watch line */
        size_t size, allocated;
        bool too_large;

        unsigned attempts_left;
        uint64_t retry_after_usec;
        uint64_t retry_delay_max_usec;   /* a longer Retry-After ends the retries */
        KubeBackoff backoff;
        sd_event_source *retry_timer;

        KubeResponseHandler handler;
        KubeWatchHandler on_event;
        void *userdata;

        bool watch, in_multi, dispatching, completing, cancelled;
        bool body_only;          /* the handler decodes the body itself: no JSON tree */
};

/* ---- backoff ---- */

static uint64_t random_u64(void) {
        uint64_t v;
        if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != sizeof(v))
                v = now_usec() * 6364136223846793005ull + 1442695040888963407ull;
        return v;
}

uint64_t kube_backoff_next(KubeBackoff *b, uint64_t retry_after_usec) {
        uint64_t base = b->base_usec ?: 500 * USEC_PER_MSEC, cap = b->cap_usec ?: 30 * USEC_PER_SEC, d;

        d = b->failures >= 32 ? cap : MIN(cap, base << b->failures);
        if (b->failures < 64)
                b->failures++;
        d = d / 2 + random_u64() % (d / 2 + 1);    /* jitter: [d/2, d] */
        if (retry_after_usec > d)
                d = MIN(retry_after_usec, (uint64_t) KUBE_RETRY_AFTER_MAX_USEC);
        return d;
}

void kube_backoff_reset(KubeBackoff *b) {
        b->failures = 0;
}

uint64_t kube_parse_retry_after(const char *v) {
        unsigned long long s;
        char *end;

        while (v && isspace((unsigned char) *v))
                v++;
        if (!v || !isdigit((unsigned char) *v))
                return 0;
        errno = 0;
        s = strtoull(v, &end, 10);
        if (errno != 0 || s > 3600)
                return KUBE_RETRY_AFTER_MAX_USEC;
        return (uint64_t) s * USEC_PER_SEC;
}

bool kube_response_retryable(const KubeResponse *r) {
        if (r->error != 0)
                return r->error != -EFBIG && r->error != -EPROTO && r->error != -EKEYREJECTED;
        return r->status == 429 || r->status >= 500;
}

/* ---- Status bodies ---- */

/* A copy of the string member at path; NULL when absent, not a string, or holding a NUL
 * (which would make "x\u0000y" compare equal to "x"). */
static int status_string(json_object *root, const char *path, char **ret) {
        json_object *v = json_get(root, path);
        const char *s;

        *ret = NULL;
        if (!json_object_is_type(v, json_type_string))
                return 0;
        s = json_object_get_string(v);
        if (strlen(s) != (size_t) json_object_get_string_len(v))
                return 0;
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

int kube_status_parse(const char *body, size_t n, KubeStatus *ret) {
        _cleanup_json_ json_object *root = NULL;
        _cleanup_(kube_status_done) KubeStatus s = {};
        json_object *code;
        int r;

        if (!body || n > KUBE_STATUS_SIZE_MAX)
                return -EBADMSG;
        while (n > 0 && isspace((unsigned char) body[n - 1]))
                n--;  /* the API server ends its bodies with a newline */
        if (n == 0)
                return -EBADMSG;
        r = json_parse_bounded(body, n, 16, &root);
        if (r < 0)
                return r;
        if (!json_object_is_type(root, json_type_object) || !streq_ptr(json_get_string(root, "kind"), "Status"))
                return -EBADMSG;
        if (status_string(root, "reason", &s.reason) < 0 || status_string(root, "message", &s.message) < 0 ||
            status_string(root, "details.name", &s.name) < 0 ||
            status_string(root, "details.group", &s.group) < 0 ||
            status_string(root, "details.kind", &s.kind) < 0)
                return -ENOMEM;
        code = json_get(root, "code");
        if (json_object_is_type(code, json_type_int))
                s.code = json_object_get_int64(code);
        *ret = s;
        s = (KubeStatus) {};
        return 0;
}

void kube_status_done(KubeStatus *s) {
        free(s->reason);
        free(s->message);
        free(s->name);
        free(s->group);
        free(s->kind);
        *s = (KubeStatus) {};
}

bool kube_status_proves_not_found(const char *body, size_t n, const char *group, const char *resource,
                                  const char *name) {
        _cleanup_(kube_status_done) KubeStatus s = {};

        if (isempty(name) || kube_status_parse(body, n, &s) < 0)
                return false;
        return streq_ptr(s.reason, "NotFound") && (s.code == 0 || s.code == 404) &&
               streq_ptr(s.name, name) && streq_ptr(s.kind, resource) &&
               (!s.group || streq(s.group, group ?: ""));
}

int kube_escape(const char *s, char *buf, size_t size) {
        size_t n = 0;

        for (; *s; s++) {
                unsigned char c = (unsigned char) *s;
                if (isalnum(c) || strchr("-._~", c)) {
                        if (n + 1 >= size)
                                return -ENOBUFS;
                        buf[n++] = (char) c;
                } else {
                        if (n + 3 >= size)
                                return -ENOBUFS;
                        snprintf(buf + n, 4, "%%%02X", c);
                        n += 3;
                }
        }
        if (n >= size)
                return -ENOBUFS;
        buf[n] = '\0';
        return 0;
}

/* ---- curl <-> sd-event ---- */

static void kube_client_check(KubeClient *c);

static int on_curl_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        KubeClient *c = userdata;
        int action = 0, running;

        if (revents & EPOLLIN)
                action |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                action |= CURL_CSELECT_OUT;
        if (revents & (EPOLLERR | EPOLLHUP))
                action |= CURL_CSELECT_ERR;
        c->in_curl = true;
        if (curl_multi_socket_action(c->multi, fd, action, &running) != CURLM_OK)
                log_debug("curl_multi_socket_action failed.");
        c->in_curl = false;
        kube_client_check(c);
        return 0;
}

static int curl_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
        KubeClient *c = userp;
        sd_event_source *io = socketp;
        uint32_t events = 0;
        int r;

        if (what == CURL_POLL_REMOVE) {
                if (io) {
                        sd_event_source_disable_unref(io);
                        curl_multi_assign(c->multi, fd, NULL);
                }
                return 0;
        }
        if (what & CURL_POLL_IN)
                events |= EPOLLIN;
        if (what & CURL_POLL_OUT)
                events |= EPOLLOUT;

        if (io) {
                if (sd_event_source_set_io_events(io, events) < 0 ||
                    sd_event_source_set_enabled(io, SD_EVENT_ON) < 0)
                        return -1;
                return 0;
        }
        r = sd_event_add_io(c->event, &io, fd, events, on_curl_io, c);
        if (r < 0) {
                log_error_errno(r, "Failed to watch a curl socket: %m");
                return -1;
        }
        (void) sd_event_source_set_description(io, "kube-curl-io");
        curl_multi_assign(c->multi, fd, io);
        return 0;
}

static int on_curl_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        KubeClient *c = userdata;
        int running;

        c->in_curl = true;
        curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        c->in_curl = false;
        kube_client_check(c);
        return 0;
}

static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp) {
        KubeClient *c = userp;
        uint64_t when;
        int r;

        if (timeout_ms < 0) {
                if (c->timer)
                        (void) sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
                return 0;
        }
        when = now_usec() + (uint64_t) timeout_ms * USEC_PER_MSEC;
        if (c->timer) {
                if (sd_event_source_set_time(c->timer, when) < 0 ||
                    sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT) < 0)
                        return -1;
                return 0;
        }
        r = sd_event_add_time(c->event, &c->timer, CLOCK_MONOTONIC, when, USEC_PER_MSEC, on_curl_timer, c);
        if (r < 0) {
                log_error_errno(r, "Failed to add the curl timer: %m");
                return -1;
        }
        (void) sd_event_source_set_description(c->timer, "kube-curl-timer");
        return 0;
}

/* ---- requests ---- */

static void kube_request_free(KubeRequest *req) {
        KubeClient *c = req->client;

        if (req->in_multi)
                curl_multi_remove_handle(c->multi, req->easy);
        if (req->easy && !req->watch && c->n_idle_easy < KUBE_IDLE_EASY_MAX) {
                curl_easy_reset(req->easy);   /* no pointer into this request survives it */
                c->idle_easy[c->n_idle_easy++] = req->easy;
        } else if (req->easy)
                curl_easy_cleanup(req->easy);
        curl_slist_free_all(req->headers);
        sd_event_source_disable_unref(req->retry_timer);
        LIST_REMOVE(c->requests, req);
        c->n_requests--;
        free(req->method);
        free(req->path);
        free(req->url);
        free(req->body);
        free(req->buf);
        free(req);
}

static int buffer_append(KubeRequest *req, const char *p, size_t n, size_t max) {
        if (req->size + n > max) {
                req->too_large = true;
                return -EFBIG;
        }
        if (req->size + n + 1 > req->allocated) {
                size_t a = MAX(req->allocated * 2, req->size + n + 1);
                char *b = realloc(req->buf, MIN(a, max + 1));
                if (!b)
                        return -ENOMEM;
                req->buf = b;
                req->allocated = MIN(a, max + 1);
        }
        memcpy(req->buf + req->size, p, n);
        req->size += n;
        req->buf[req->size] = '\0';
        return 0;
}

/* One complete watch line: {"type": "...", "object": {...}} */
static void kube_request_dispatch_line(KubeRequest *req, const char *line, size_t n) {
        json_object *ev = NULL, *type, *obj;

        while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' '))
                n--;
        if (n == 0)
                return;
        if (json_parse_bounded(line, n, KUBE_JSON_DEPTH_MAX, &ev) < 0 || !json_object_object_get_ex(ev, "type", &type) ||
            !json_object_is_type(type, json_type_string) || !json_object_object_get_ex(ev, "object", &obj)) {
                log_warning("%s: ignoring a malformed watch event (%zu bytes).", req->path, n);
                json_object_put(ev);
                return;
        }
        req->dispatching = true;
        req->on_event(req->client, json_object_get_string(type), obj, req->userdata);
        req->dispatching = false;
        json_object_put(ev);
}

static size_t on_watch_data(char *p, size_t size, size_t nmemb, void *userdata) {
        KubeRequest *req = userdata;
        size_t n = size * nmemb;

        for (size_t i = 0; i < n && !req->cancelled; ) {
                char *nl = memchr(p + i, '\n', n - i);
                size_t k = nl ? (size_t) (nl - (p + i)) : n - i;

                if (buffer_append(req, p + i, k, KUBE_WATCH_LINE_MAX) < 0)
                        return 0;
                i += k;
                if (nl) {
                        i++;
                        kube_request_dispatch_line(req, req->buf, req->size);
                        req->size = 0;
                }
        }
        return req->cancelled ? 0 : n;
}

static size_t on_body_data(char *p, size_t size, size_t nmemb, void *userdata) {
        KubeRequest *req = userdata;
        size_t n = size * nmemb;

        if (req->cancelled)
                return 0;
        if (req->watch) {
                long status = 0;
                curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
                if (status == 200)
                        return on_watch_data(p, size, nmemb, userdata);
        }
        return buffer_append(req, p, n, KUBE_RESPONSE_SIZE_MAX) < 0 ? 0 : n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *userdata) {
        KubeRequest *req = userdata;
        size_t n = size * nmemb;
        char v[64];

        if (n > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
                size_t k = MIN(n - 12, sizeof(v) - 1);
                memcpy(v, p + 12, k);
                v[k] = '\0';
                req->retry_after_usec = kube_parse_retry_after(v);
        }
        return n;
}

int kube_credentials_auth_header(const KubeCredentials *creds, char **ret) {
        _cleanup_free_ char *token = NULL;
        char *auth;
        int r;

        if (creds->token_file) {
                r = read_file_bounded(creds->token_file, KUBE_TOKEN_SIZE_MAX, &token, NULL);
                if (r < 0)
                        return log_error_errno(r, "Failed to read the token file %s: %m", creds->token_file);
                token[strcspn(token, "\r\n")] = '\0';
        } else if (creds->token) {
                token = strdup(creds->token);
                if (!token)
                        return -ENOMEM;
        }
        if (isempty(token)) {
                *ret = NULL;
                return 0;
        }
        r = asprintf(&auth, "Authorization: Bearer %s", token);
        explicit_bzero(token, strlen(token));
        if (r < 0)
                return -ENOMEM;
        *ret = auth;
        return 0;
}

static int kube_request_headers(KubeRequest *req, struct curl_slist **ret) {
        _cleanup_free_ char *auth = NULL;
        /* "Expect:" off: no 100-continue round trip before a PUT body. */
        const char *lines[4] = { "Accept: application/json", "Expect:" };
        struct curl_slist *h = NULL;
        size_t n = 2;
        int r;

        r = kube_credentials_auth_header(&req->client->creds, &auth);
        if (r < 0)
                return r;
        if (req->body)
                lines[n++] = "Content-Type: application/json";
        if (auth)
                lines[n++] = auth;
        for (size_t i = 0; i < n; i++) {
                struct curl_slist *t = curl_slist_append(h, lines[i]);
                if (!t) {
                        curl_slist_free_all(h);
                        return -ENOMEM;
                }
                h = t;
        }
        if (auth)
                explicit_bzero(auth, strlen(auth));
        *ret = h;
        return 0;
}

int kube_credentials_setup_tls(const KubeCredentials *creds, struct curl_slist *connect_to, CURL *e) {
        CURLcode cc = CURLE_OK;

        cc = cc ?: curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
        cc = cc ?: curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
        if (creds->ca.path)
                cc = cc ?: curl_easy_setopt(e, CURLOPT_CAINFO, creds->ca.path);
        else if (creds->ca.data) {
                struct curl_blob b = { .data = creds->ca.data, .len = creds->ca.size, .flags = CURL_BLOB_NOCOPY };
                cc = cc ?: curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &b);
        }
        if (creds->client_cert.path)
                cc = cc ?: curl_easy_setopt(e, CURLOPT_SSLCERT, creds->client_cert.path);
        else if (creds->client_cert.data) {
                struct curl_blob b = { .data = creds->client_cert.data, .len = creds->client_cert.size,
                                       .flags = CURL_BLOB_NOCOPY };
                cc = cc ?: curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &b);
        }
        if (creds->client_key.path)
                cc = cc ?: curl_easy_setopt(e, CURLOPT_SSLKEY, creds->client_key.path);
        else if (creds->client_key.data) {
                struct curl_blob b = { .data = creds->client_key.data, .len = creds->client_key.size,
                                       .flags = CURL_BLOB_NOCOPY };
                cc = cc ?: curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &b);
        }
        if (creds->client_cert.path || creds->client_cert.data) {
                cc = cc ?: curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
                cc = cc ?: curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
        }
        if (connect_to)
                cc = cc ?: curl_easy_setopt(e, CURLOPT_CONNECT_TO, connect_to);
        return cc == CURLE_OK ? 0 : -EINVAL;
}

static int kube_request_setup(KubeRequest *req) {
        KubeClient *c = req->client;
        CURL *e = req->easy;
        CURLcode cc = CURLE_OK;
        uint64_t timeout = req->watch ? WATCH_TIMEOUT_USEC : c->opts.timeout_usec;
        int r;

        curl_easy_reset(e);
        curl_slist_free_all(req->headers);
        req->headers = NULL;
        req->size = 0;
        req->too_large = false;
        req->retry_after_usec = 0;
        req->errbuf[0] = '\0';

        r = kube_request_headers(req, &req->headers);
        if (r < 0)
                return r;

        cc = cc ?: curl_easy_setopt(e, CURLOPT_URL, req->url);
        cc = cc ?: curl_easy_setopt(e, CURLOPT_PRIVATE, req);
        cc = cc ?: curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        cc = cc ?: curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
        cc = cc ?: curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
        cc = cc ?: curl_easy_setopt(e, CURLOPT_ERRORBUFFER, req->errbuf);
        cc = cc ?: curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body_data);
        cc = cc ?: curl_easy_setopt(e, CURLOPT_WRITEDATA, req);
        cc = cc ?: curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
        cc = cc ?: curl_easy_setopt(e, CURLOPT_HEADERDATA, req);
        cc = cc ?: curl_easy_setopt(e, CURLOPT_HTTPHEADER, req->headers);
        cc = cc ?: curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long) (timeout / USEC_PER_MSEC));
        cc = cc ?: curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long) (c->opts.connect_timeout_usec / USEC_PER_MSEC));
        cc = cc ?: curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
        cc = cc ?: curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
        cc = cc ?: curl_easy_setopt(e, CURLOPT_USERAGENT, "hami-dra-plugin/" PACKAGE_VERSION);
        if (!streq(req->method, "GET"))
                cc = cc ?: curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
        if (req->body) {
                cc = cc ?: curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body);
                cc = cc ?: curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long) strlen(req->body));
        }
        if (cc != CURLE_OK)
                return -EINVAL;
        return kube_credentials_setup_tls(&c->creds, c->connect_to, e);
}

static int kube_request_start(KubeRequest *req) {
        int r;

        r = kube_request_setup(req);
        if (r < 0)
                return r;
        if (curl_multi_add_handle(req->client->multi, req->easy) != CURLM_OK)
                return -EIO;
        req->in_multi = true;
        return 0;
}

/* Turn what curl and the server said into a message naming what failed. */
static int kube_request_describe(KubeRequest *req, CURLcode result, long status, char *msg, size_t size) {
        KubeClient *c = req->client;
        long verify = 0;

        switch (result) {
        case CURLE_OK:
                break;
        case CURLE_OPERATION_TIMEDOUT:
                snprintf(msg, size, "%s %s timed out: %s", req->method, req->path, req->errbuf);
                return -ETIMEDOUT;
        case CURLE_PEER_FAILED_VERIFICATION:
                curl_easy_getinfo(req->easy, CURLINFO_SSL_VERIFYRESULT, &verify);
                snprintf(msg, size,
                         "the API server's certificate at %s failed verification against %s%s (X509 verify result %ld): %s",
                         c->creds.server, c->creds.ca.path ?: (c->creds.ca.data ? "the embedded certificate-authority-data" : "the system CA store"),
                         c->creds.tls_server_name ? " with tls-server-name" : "", verify, req->errbuf);
                return -EPROTO;
        case CURLE_SSL_CERTPROBLEM:
                snprintf(msg, size, "our client certificate %s could not be used: %s",
                         c->creds.client_cert.path ?: "(embedded client-certificate-data)", req->errbuf);
                return -EKEYREJECTED;
        case CURLE_SSL_CACERT_BADFILE:
                snprintf(msg, size, "the CA %s could not be loaded: %s",
                         c->creds.ca.path ?: "(embedded certificate-authority-data)", req->errbuf);
                return -EKEYREJECTED;
        case CURLE_SSL_CONNECT_ERROR:
                snprintf(msg, size, "TLS handshake with %s failed (credential: %s): %s", c->creds.server,
                         c->description, req->errbuf);
                return -ECONNABORTED;
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
                /* With TLS 1.3 a refused client certificate shows up as an alert after the handshake. */
                if (strstr(req->errbuf, "alert"))
                        snprintf(msg, size, "the API server %s refused the TLS session, check our %s: %s",
                                 c->creds.server, c->description, req->errbuf);
                else
                        snprintf(msg, size, "connection to %s broken (credential: %s): %s", c->creds.server,
                                 c->description, req->errbuf);
                return -ECONNRESET;
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
                snprintf(msg, size, "cannot connect to %s: %s", c->creds.server, req->errbuf);
                return -ECONNREFUSED;
        case CURLE_WRITE_ERROR:
                if (req->too_large) {
                        snprintf(msg, size, "%s %s: response larger than allowed, dropped", req->method, req->path);
                        return -EFBIG;
                }
                __attribute__((fallthrough));
        default:
                snprintf(msg, size, "%s %s failed: %s%s%s", req->method, req->path, curl_easy_strerror(result),
                         req->errbuf[0] ? ": " : "", req->errbuf);
                return -EIO;
        }

        if (status >= 200 && status < 300) {
                msg[0] = '\0';
                return 0;
        }
        {
                json_object *j = NULL, *m = NULL;
                if (req->size > 0)
                        (void) json_parse_bounded(req->buf, req->size, KUBE_JSON_DEPTH_MAX, &j);
                const char *text = j && json_object_object_get_ex(j, "message", &m) ? json_object_get_string(m) : "";

                if (status == 401 || status == 403)
                        snprintf(msg, size, "HTTP %ld %s for %s %s using %s: %s", status,
                                 status == 401 ? "Unauthorized (credential not accepted)" : "Forbidden (credential lacks permission)",
                                 req->method, req->path, c->description, text);
                else
                        snprintf(msg, size, "HTTP %ld for %s %s: %s", status, req->method, req->path, text);
                json_object_put(j);
        }
        return 0;
}

static int on_retry_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        KubeRequest *req = userdata;
        int r;

        req->retry_timer = sd_event_source_disable_unref(req->retry_timer);
        r = kube_request_start(req);
        if (r < 0) {
                KubeResponse resp = { .error = r, .message = "could not restart the request" };
                req->completing = true;
                if (req->handler)
                        req->handler(req->client, &resp, req->userdata);
                kube_request_free(req);
        }
        return 0;
}

/* One more attempt of method that got status (0: no answer). The table does not grow:
 * a key first seen once it is full is not counted. */
static void kube_client_count(KubeClient *c, const char *method, long status) {
        int code = status > 0 && status < 1000 ? (int) status : 0;
        size_t i;

        for (i = 0; i < c->n_counts; i++)
                if (c->counts[i].code == code && streq(c->counts[i].verb, method))
                        break;
        if (i == c->n_counts) {
                if (c->n_counts == KUBE_REQUEST_COUNTS_MAX)
                        return;
                c->counts[i] = (KubeRequestCount) { .code = code };
                snprintf(c->counts[i].verb, sizeof(c->counts[i].verb), "%s", method);
                c->n_counts++;
        }
        c->counts[i].count++;
}

size_t kube_client_request_counts(const KubeClient *c, const KubeRequestCount **ret) {
        *ret = c->counts;
        return c->n_counts;
}

static void kube_request_finish(KubeRequest *req, CURLcode result) {
        KubeClient *c = req->client;
        json_object *json = NULL;
        char msg[2048];
        long status = 0;
        KubeResponse resp;

        curl_multi_remove_handle(c->multi, req->easy);
        req->in_multi = false;
        if (req->cancelled) {
                kube_request_free(req);
                return;
        }

        curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
        kube_client_count(c, req->method, result == CURLE_OK ? status : 0);
        resp = (KubeResponse) {
                .status = result == CURLE_OK ? status : 0,
                .retry_after_usec = req->retry_after_usec,
        };
        resp.error = kube_request_describe(req, result, resp.status, msg, sizeof(msg));
        resp.message = msg;

        if (req->attempts_left > 1 && kube_response_retryable(&resp)) {
                uint64_t d = kube_backoff_next(&req->backoff, req->retry_after_usec);

                if (req->retry_delay_max_usec > 0 && d > req->retry_delay_max_usec) {
                        log_warning("%s; not retrying: the server asks to wait %" PRIu64 " s, longer than this request may take.",
                                    msg, d / USEC_PER_SEC);
                        goto complete;
                }
                req->attempts_left--;
                log_warning("%s; retrying in %" PRIu64 " ms (%u attempts left).", msg, d / USEC_PER_MSEC,
                            req->attempts_left);
                if (sd_event_add_time_relative(c->event, &req->retry_timer, CLOCK_MONOTONIC, d, USEC_PER_MSEC,
                                               on_retry_timer, req) >= 0)
                        return;
                log_error("Failed to schedule the retry, giving up on %s %s.", req->method, req->path);
        }

complete:
        if (!req->watch || status != 200) {
                resp.body = req->buf;
                resp.body_size = req->size;
                if (req->size > 0 && !req->body_only)
                        (void) json_parse_bounded(req->buf, req->size, KUBE_JSON_DEPTH_MAX, &json);
                resp.json = json;
        }
        req->completing = true;
        if (req->handler)
                req->handler(c, &resp, req->userdata);
        json_object_put(json);
        kube_request_free(req);
}

static void kube_client_check(KubeClient *c) {
        CURLMsg *m;
        int left;

        while ((m = curl_multi_info_read(c->multi, &left))) {
                KubeRequest *req = NULL;
                if (m->msg != CURLMSG_DONE)
                        continue;
                curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **) &req);
                if (req)
                        kube_request_finish(req, m->data.result);
        }
}

static int on_deferred_free(sd_event_source *s, uint64_t usec, void *userdata) {
        kube_request_free(userdata);
        return 0;
}

/* Inside curl's callbacks (a watch handler) curl_multi_add_handle() is refused: start from the loop. */
static int kube_request_start_or_defer(KubeRequest *req) {
        if (!req->client->in_curl)
                return kube_request_start(req);
        return sd_event_add_time_relative(req->client->event, &req->retry_timer, CLOCK_MONOTONIC, 0, 1,
                                          on_retry_timer, req);
}

static int kube_request_new(KubeClient *c, const char *method, const char *path, json_object *body,
                            KubeRequest **ret) {
        KubeRequest *req;

        *ret = NULL;    /* on every failure too: the callers' req is never left unset */
        if (!path || path[0] != '/' || strlen(path) > 8192 || strpbrk(path, " \r\n"))
                return -EINVAL;
        if (c->n_requests >= KUBE_REQUESTS_MAX)
                return log_warning_errno(EBUSY, "Too many API requests in flight, refusing %s %s.", method, path);

        req = calloc(1, sizeof(*req));
        if (!req)
                return -ENOMEM;
        req->client = c;
        LIST_PREPEND(c->requests, req);
        c->n_requests++;
        req->backoff = (KubeBackoff) { .base_usec = c->opts.backoff_base_usec, .cap_usec = c->opts.backoff_cap_usec };
        req->easy = c->n_idle_easy > 0 ? c->idle_easy[--c->n_idle_easy] : curl_easy_init();
        req->method = strdup(method);
        req->path = strdup(path);
        if (!req->easy || !req->method || !req->path || asprintf(&req->url, "%s%s", c->host_url, path) < 0) {
                req->url = NULL;
                kube_request_free(req);
                return -ENOMEM;
        }
        if (body) {
                req->body = strdup(json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN));
                if (!req->body) {
                        kube_request_free(req);
                        return -ENOMEM;
                }
        }
        *ret = req;
        return 0;
}

int kube_client_request(KubeClient *c, const char *method, const char *path, json_object *body,
                        unsigned attempts, KubeResponseHandler handler, void *userdata, KubeRequest **ret) {
        KubeRequest *req;
        int r;

        r = kube_request_new(c, method, path, body, &req);
        if (r < 0)
                return r;
        req->attempts_left = MAX(attempts, 1u);
        req->handler = handler;
        req->userdata = userdata;
        r = kube_request_start_or_defer(req);
        if (r < 0) {
                kube_request_free(req);
                return log_error_errno(r, "Failed to start %s %s: %m", method, path);
        }
        if (ret)
                *ret = req;
        return 0;
}

int kube_client_watch(KubeClient *c, const char *path, KubeWatchHandler on_event, KubeResponseHandler on_done,
                      void *userdata, KubeRequest **ret) {
        KubeRequest *req;
        int r;

        r = kube_request_new(c, "GET", path, NULL, &req);
        if (r < 0)
                return r;
        req->watch = true;
        req->attempts_left = 1;
        req->on_event = on_event;
        req->handler = on_done;
        req->userdata = userdata;
        r = kube_request_start_or_defer(req);
        if (r < 0) {
                kube_request_free(req);
                return log_error_errno(r, "Failed to start watch %s: %m", path);
        }
        if (ret)
                *ret = req;
        return 0;
}

void kube_request_cancel(KubeRequest *req) {
        if (!req || req->completing || req->cancelled)
                return;
        if (req->dispatching) {
                req->cancelled = true;   /* the write callback aborts, finish frees */
                return;
        }
        if (req->in_multi && req->client->in_curl) {
                /* curl_multi_remove_handle() is refused inside curl's callbacks: free from the loop. */
                req->cancelled = true;
                req->retry_timer = sd_event_source_disable_unref(req->retry_timer);
                if (sd_event_add_time_relative(req->client->event, &req->retry_timer, CLOCK_MONOTONIC, 0, 1,
                                               on_deferred_free, req) < 0)
                        log_error("Failed to schedule freeing a cancelled request.");
                return;
        }
        kube_request_free(req);
}

int kube_client_get_resource_claim(KubeClient *c, const char *namespace, const char *name,
                                   KubeResponseHandler handler, void *userdata) {
        char ns[256 * 3 + 1], n[256 * 3 + 1], path[2048];
        KubeRequest *req;
        int r;

        if (isempty(namespace) || isempty(name) || strlen(namespace) > 253 || strlen(name) > 253)
                return -EINVAL;
        if (kube_escape(namespace, ns, sizeof(ns)) < 0 || kube_escape(name, n, sizeof(n)) < 0)
                return -EINVAL;
        snprintf(path, sizeof(path), "/apis/resource.k8s.io/v1/namespaces/%s/resourceclaims/%s", ns, n);
        r = kube_client_request(c, "GET", path, NULL, KUBE_CLAIM_GET_ATTEMPTS, handler, userdata, &req);
        if (r < 0)
                return r;
        /* The kubelet waits for prepare: give up rather than sleep through its deadline. */
        req->retry_delay_max_usec = KUBE_CLAIM_RETRY_DELAY_MAX_USEC;
        /* claim.c decodes (and bounds) the body on a worker; a tree here would be parsed twice. */
        req->body_only = true;
        return 0;
}

/* ---- the client ---- */

int kube_credentials_url(const KubeCredentials *creds, char **ret_url, struct curl_slist **ret_connect_to) {
        const char *server = creds->server, *hostport = server + strlen("https://"), *port;
        _cleanup_free_ char *host = NULL, *rule = NULL, *url = NULL;
        struct curl_slist *connect_to;
        char portbuf[6];
        size_t hl, pl;

        if (!creds->tls_server_name) {
                url = strdup(server);
                if (!url)
                        return -ENOMEM;
                *ret_url = TAKE_PTR(url);
                *ret_connect_to = NULL;
                return 0;
        }
        if (hostport[0] == '[') {
                const char *end = strchr(hostport, ']');
                if (!end)
                        return -EINVAL;
                hl = (size_t) (end - hostport) + 1;
        } else
                hl = strcspn(hostport, ":/");
        host = strndup(hostport, hl);
        if (!host)
                return -ENOMEM;
        port = hostport[hl] == ':' ? hostport + hl + 1 : "443";
        pl = strcspn(port, "/");
        if (pl == 0 || pl >= sizeof(portbuf))
                return -EINVAL;
        memcpy(portbuf, port, pl);
        portbuf[pl] = '\0';
        if (strspn(creds->tls_server_name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") !=
            strlen(creds->tls_server_name))
                return -EINVAL;
        if (asprintf(&url, "https://%s:%s", creds->tls_server_name, portbuf) < 0) {
                url = NULL;
                return -ENOMEM;
        }
        if (asprintf(&rule, "%s:%s:%s:%s", creds->tls_server_name, portbuf, host, portbuf) < 0) {
                rule = NULL;
                return -ENOMEM;
        }
        connect_to = curl_slist_append(NULL, rule);
        if (!connect_to)
                return -ENOMEM;
        *ret_url = TAKE_PTR(url);
        *ret_connect_to = connect_to;
        return 0;
}

int kube_client_new(sd_event *event, const KubeCredentials *creds, const KubeClientOptions *opts,
                    KubeClient **ret) {
        _cleanup_(kube_client_freep) KubeClient *c = NULL;
        static bool curl_initialized = false;
        int r;

        if (!creds || isempty(creds->server))
                return -EINVAL;
        if (!curl_initialized) {
                if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                        return -EIO;
                curl_initialized = true;
        }

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->event = sd_event_ref(event);
        /* Take a private copy of what we need: the caller may free its credentials. */
        c->creds = (KubeCredentials) {
                .origin = strdup(creds->origin ?: "credentials"),
                .server = strdup(creds->server),
                .tls_server_name = creds->tls_server_name ? strdup(creds->tls_server_name) : NULL,
                .token = creds->token ? strdup(creds->token) : NULL,
                .token_file = creds->token_file ? strdup(creds->token_file) : NULL,
        };
        const KubeBlob *src[] = { &creds->ca, &creds->client_cert, &creds->client_key };
        KubeBlob *dst[] = { &c->creds.ca, &c->creds.client_cert, &c->creds.client_key };
        for (size_t i = 0; i < ELEMENTSOF(src); i++) {
                if (src[i]->path && !(dst[i]->path = strdup(src[i]->path)))
                        return -ENOMEM;
                if (src[i]->data) {
                        dst[i]->data = malloc(src[i]->size + 1);
                        if (!dst[i]->data)
                                return -ENOMEM;
                        memcpy(dst[i]->data, src[i]->data, src[i]->size);
                        dst[i]->data[src[i]->size] = '\0';
                        dst[i]->size = src[i]->size;
                }
        }
        if (!c->creds.origin || !c->creds.server)
                return -ENOMEM;
        (void) kube_credentials_describe(&c->creds, c->description, sizeof(c->description));

        c->opts = opts ? *opts : (KubeClientOptions) {};
        if (c->opts.timeout_usec == 0)
                c->opts.timeout_usec = KUBE_TIMEOUT_USEC_DEFAULT;
        if (c->opts.connect_timeout_usec == 0)
                c->opts.connect_timeout_usec = KUBE_CONNECT_TIMEOUT_USEC_DEFAULT;

        r = kube_credentials_url(&c->creds, &c->host_url, &c->connect_to);
        if (r < 0)
                return log_error_errno(r, "Bad server or tls-server-name in %s: %m", c->creds.origin);

        c->multi = curl_multi_init();
        if (!c->multi)
                return -ENOMEM;
        if (curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) != CURLM_OK ||
            /* Keep idle connections for as many requests as may be in flight. curl's
             * default (4 per easy handle currently added) shrinks the cache when a burst
             * ends, and every claim GET after it pays a new TLS handshake. */
            curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long) KUBE_REQUESTS_MAX) != CURLM_OK)
                return -EIO;

        *ret = TAKE_PTR(c);
        return 0;
}

KubeClient *kube_client_free(KubeClient *c) {
        if (!c)
                return NULL;
        while (c->requests)
                kube_request_free(c->requests);
        while (c->n_idle_easy > 0)
                curl_easy_cleanup(c->idle_easy[--c->n_idle_easy]);
        if (c->multi)
                curl_multi_cleanup(c->multi);
        sd_event_source_disable_unref(c->timer);
        curl_slist_free_all(c->connect_to);
        free(c->host_url);
        kube_credentials_done(&c->creds);
        sd_event_unref(c->event);
        free(c);
        return NULL;
}

const char *kube_client_credential_description(KubeClient *c) {
        return c->description;
}

const char *kube_client_server(KubeClient *c) {
        return c->creds.server;
}
