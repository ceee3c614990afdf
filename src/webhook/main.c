/* SPDX-License-Identifier: Apache-2.0 */

/*
 * hami-dra-webhook: the HTTPS server (https-server.h) answering the API server's
 * admission calls with webhook.h's decisions, plus the two API calls those need:
 *   - the inventory (memory sizes of our driver's devices) listed from the
 *     ResourceSlices, at most every 30 s, cached under a mutex; unreachable: empty;
 *   - the ResourceClaimTemplates a patched pod references, created (POST) before the
 *     answer; 409 AlreadyExists is success; any other failure refuses the pod.
 * API calls use libcurl's easy interface, one handle per call (handlers run on several
 * threads at once; nothing of curl is shared between them).
 */

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "config.h"
#include "conf.h"
#include "fsutil.h"
#include "https-server.h"
#include "json-util.h"
#include "kube-client.h"
#include "kubeconfig.h"
#include "log.h"
#include "webhook.h"

#define INVENTORY_REFRESH_SEC 30
/* The API server gives the whole admission call 10 s (timeoutSeconds): a list and a
 * creation must fit in it. */
#define API_TIMEOUT_MS 4000L
#define API_RESPONSE_MAX (16u * 1024u * 1024u)
#define SLICES_PATH "/apis/resource.k8s.io/v1/resourceslices?fieldSelector=spec.driver%3D" DEFAULT_DRIVER_NAME

typedef struct Webhook {
        KubeCredentials creds;
        pthread_mutex_t lock;       /* guards the inventory below */
        uint64_t *memory;
        size_t n_memory;
        time_t fetched;             /* CLOCK_MONOTONIC seconds of the last attempt; 0: never */
        bool refreshing;            /* one worker lists, the others go on with what is known */
        char *base_url;             /* https://host:port, or https://<tls-server-name>:port */
        struct curl_slist *connect_to; /* with tls-server-name: where to really connect */
} Webhook;

typedef struct Buffer {
        char *data;
        size_t size;
} Buffer;

static size_t on_data(char *ptr, size_t size, size_t n, void *userdata) {
        Buffer *b = userdata;
        size_t len = size * n;
        char *p;

        if (len > API_RESPONSE_MAX - b->size)
                return 0;
        p = realloc(b->data, b->size + len + 1);
        if (!p)
                return 0;
        memcpy(p + b->size, ptr, len);
        b->data = p;
        b->size += len;
        p[b->size] = 0;
        return len;
}

/* One synchronous request: the HTTP status (≥ 100) or a negative errno; *ret_body is the answer. */
static int api_call(Webhook *w, const char *method, const char *path, const char *body, char **ret_body) {
        struct curl_slist *headers = NULL;
        char errbuf[CURL_ERROR_SIZE] = "", url[2048];
        _cleanup_free_ char *auth = NULL;
        Buffer b = {};
        CURLcode cc = CURLE_OK;
        long status = 0;
        CURL *e;
        int r;

        r = kube_credentials_auth_header(&w->creds, &auth);
        if (r < 0)
                return r;
        if (snprintf(url, sizeof url, "%s%s", w->base_url, path) >= (int) sizeof url)
                return -E2BIG;

        e = curl_easy_init();
        if (!e)
                return -ENOMEM;
        headers = curl_slist_append(headers, "Accept: application/json");
        if (body)
                headers = curl_slist_append(headers, "Content-Type: application/json");
        if (auth)
                headers = curl_slist_append(headers, auth);
        if (!headers) {
                r = -ENOMEM;
                goto finish;
        }

        cc = cc ?: curl_easy_setopt(e, CURLOPT_URL, url);
        cc = cc ?: curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        cc = cc ?: curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
        cc = cc ?: curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
        cc = cc ?: curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
        cc = cc ?: curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
        cc = cc ?: curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
        cc = cc ?: curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, API_TIMEOUT_MS);
        cc = cc ?: curl_easy_setopt(e, CURLOPT_USERAGENT, "hami-dra-webhook/" PACKAGE_VERSION);
        if (strcmp(method, "GET") != 0)
                cc = cc ?: curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        if (body) {
                cc = cc ?: curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
                cc = cc ?: curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long) strlen(body));
        }
        if (cc != CURLE_OK || kube_credentials_setup_tls(&w->creds, w->connect_to, e) < 0) {
                log_error("Failed to set up a request to %s: %s", url, curl_easy_strerror(cc));
                r = -EINVAL;
                goto finish;
        }
        cc = curl_easy_perform(e);
        if (cc != CURLE_OK) {
                log_warning("%s %s failed: %s", method, url, errbuf[0] ? errbuf : curl_easy_strerror(cc));
                r = cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED;
                goto finish;
        }
        (void) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        r = (int) status;
        *ret_body = b.data;
        b.data = NULL;
finish:
        free(b.data);
        curl_slist_free_all(headers);
        curl_easy_cleanup(e);
        return r;
}

static time_t now_sec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec;
}

/* List the ResourceSlices when the inventory is older than INVENTORY_REFRESH_SEC and
 * nobody else is listing them; the lock is not held during the call. */
static void inventory_refresh(Webhook *w) {
        _cleanup_free_ char *body = NULL;
        time_t now = now_sec();
        uint64_t *mem = NULL;
        size_t n = 0;
        bool mine, parsed;
        int s;

        pthread_mutex_lock(&w->lock);
        mine = !w->refreshing && (w->fetched == 0 || now - w->fetched >= INVENTORY_REFRESH_SEC);
        if (mine) {
                w->refreshing = true;
                w->fetched = now;
        }
        pthread_mutex_unlock(&w->lock);
        if (!mine)
                return;

        s = api_call(w, "GET", SLICES_PATH, NULL, &body);
        parsed = s == 200 && body && webhook_inventory_parse(body, strlen(body), &mem, &n) >= 0;

        pthread_mutex_lock(&w->lock);
        if (parsed) {
                free(w->memory);
                w->memory = mem;
                w->n_memory = n;
                log_debug("Inventory: %zu devices of %s", n, DEFAULT_DRIVER_NAME);
        } else
                log_warning("Could not list the ResourceSlices of %s (%s %d): keeping %zu known devices",
                            DEFAULT_DRIVER_NAME, s < 0 ? "error" : "HTTP", s < 0 ? -s : s, w->n_memory);
        w->refreshing = false;
        pthread_mutex_unlock(&w->lock);
}

/* A copy of the inventory, refreshed first when stale. */
static int inventory_get(Webhook *w, WebhookInventory *ret) {
        int r = 0;

        inventory_refresh(w);
        pthread_mutex_lock(&w->lock);
        ret->n = w->n_memory;
        ret->memory_bytes = NULL;
        if (w->n_memory > 0) {
                ret->memory_bytes = malloc(w->n_memory * sizeof(uint64_t));
                if (ret->memory_bytes)
                        memcpy(ret->memory_bytes, w->memory, w->n_memory * sizeof(uint64_t));
                else {
                        ret->n = 0;
                        r = -ENOMEM;
                }
        }
        pthread_mutex_unlock(&w->lock);
        return r;
}

/* Create one template; 0 when it exists afterwards, else a message in errbuf. */
static int create_template(Webhook *w, const char *namespace, const char *text, char *err, size_t errsize) {
        _cleanup_free_ char *body = NULL;
        char path[512], ns[256];
        int s;

        if (kube_escape(namespace, ns, sizeof ns) < 0 ||
            snprintf(path, sizeof path, "/apis/resource.k8s.io/v1/namespaces/%s/resourceclaimtemplates",
                     ns) >= (int) sizeof path) {
                snprintf(err, errsize, "namespace too long");
                return -E2BIG;
        }
        s = api_call(w, "POST", path, text, &body);
        if (s == 201 || s == 200 || s == 409)
                return 0;
        if (s < 0)
                snprintf(err, errsize, "the API server could not be reached: %s", strerror(-s));
        else {
                json_object *root = body ? json_tokener_parse(body) : NULL, *m = NULL;

                snprintf(err, errsize, "HTTP %d: %s", s,
                         root && json_object_object_get_ex(root, "message", &m) ? json_object_get_string(m) : "");
                json_object_put(root);
        }
        return -EIO;
}

/* The AdmissionReview refusing request uid with message. */
static char *refusal(const char *uid, const char *message) {
        json_object *root = json_object_new_object(), *resp = json_object_new_object(),
                    *status = json_object_new_object();
        char *s;

        json_object_object_add(root, "apiVersion", json_object_new_string("admission.k8s.io/v1"));
        json_object_object_add(root, "kind", json_object_new_string("AdmissionReview"));
        json_object_object_add(resp, "uid", json_object_new_string(uid ?: ""));
        json_object_object_add(resp, "allowed", json_object_new_boolean(false));
        json_object_object_add(status, "code", json_object_new_int(403));
        json_object_object_add(status, "message", json_object_new_string(message));
        json_object_object_add(resp, "status", status);
        json_object_object_add(root, "response", resp);
        s = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
        json_object_put(root);
        return s;
}

static char *status_body(unsigned code, const char *message) {
        json_object *root = json_object_new_object();
        char *s;

        json_object_object_add(root, "kind", json_object_new_string("Status"));
        json_object_object_add(root, "apiVersion", json_object_new_string("v1"));
        json_object_object_add(root, "status", json_object_new_string("Failure"));
        json_object_object_add(root, "message", json_object_new_string(message));
        json_object_object_add(root, "code", json_object_new_int((int) code));
        s = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
        json_object_put(root);
        return s;
}

/* "ns/name" or "ns/generateName*" of the object in the request, for the log line. */
static void describe_object(const char *body, size_t size, char *buf, size_t bufsize) {
        json_tokener *tok = json_tokener_new();
        json_object *root = tok ? json_tokener_parse_ex(tok, body, (int) size) : NULL, *o, *meta, *v;
        const char *ns = "", *name = "?", *suffix = "";

        if (root && json_object_object_get_ex(root, "request", &o)) {
                if (json_object_object_get_ex(o, "namespace", &v))
                        ns = json_object_get_string(v);
                if (json_object_object_get_ex(o, "object", &o) && json_object_object_get_ex(o, "metadata", &meta)) {
                        if (json_object_object_get_ex(meta, "name", &v) && json_object_get_string_len(v) > 0)
                                name = json_object_get_string(v);
                        else if (json_object_object_get_ex(meta, "generateName", &v)) {
                                name = json_object_get_string(v);
                                suffix = "*";
                        }
                }
        }
        snprintf(buf, bufsize, "%s/%s%s", ns, name, suffix);
        json_object_put(root);
        if (tok)
                json_tokener_free(tok);
}

static int answer(Webhook *w, const char *what, int r, WebhookResult *res, const char *body, size_t size,
                  char **ret_body, unsigned *ret_status) {
        char obj[512];

        if (r == -EBADMSG || r == -E2BIG) {
                log_warning("%s: bad request: %s", what, res->error);
                *ret_body = status_body(400, res->error);
                *ret_status = 400;
                return 0;
        }
        if (r < 0) {
                log_error_errno(r, "%s: failed: %m", what);
                *ret_body = status_body(500, "internal error");
                *ret_status = 500;
                return 0;
        }
        describe_object(body, size, obj, sizeof obj);

        if (w && !res->dry_run)
                for (size_t i = 0; i < res->n_templates; i++) {
                        char err[512] = "", msg[768];

                        if (create_template(w, res->namespace, res->templates[i], err, sizeof err) >= 0)
                                continue;
                        snprintf(msg, sizeof msg, "hami-dra-webhook: could not create the ResourceClaimTemplate "
                                 "for this pod: %s", err);
                        log_warning("%s %s (uid %s): refused: %s", what, obj, res->uid ?: "", msg);
                        *ret_body = refusal(res->uid, msg);
                        *ret_status = 200;
                        return *ret_body ? 0 : -ENOMEM;
                }

        if (res->allowed)
                log_info("%s %s (uid %s): allowed, %zu template(s)%s", what, obj, res->uid ?: "",
                         res->n_templates, res->dry_run ? " (dry run: none created)" : "");
        else
                log_info("%s %s (uid %s): refused: %s", what, obj, res->uid ?: "", res->error);
        *ret_body = res->response;
        res->response = NULL;
        *ret_status = 200;
        return 0;
}

static int on_mutate(void *userdata, const char *body, size_t size, char **ret_body, unsigned *ret_status) {
        Webhook *w = userdata;
        WebhookInventory inv = {};
        WebhookResult res = {};
        int r;

        (void) inventory_get(w, &inv);
        r = webhook_mutate(body, size, &inv, &res);
        free(inv.memory_bytes);
        r = answer(w, "mutate", r, &res, body, size, ret_body, ret_status);
        webhook_result_done(&res);
        return r;
}

static int on_validate(void *userdata, const char *body, size_t size, char **ret_body, unsigned *ret_status) {
        WebhookResult res = {};
        int r;

        (void) userdata;
        r = webhook_validate(body, size, &res);
        r = answer(NULL, "validate", r, &res, body, size, ret_body, ret_status);
        webhook_result_done(&res);
        return r;
}

static int on_healthz(void *userdata, const char *body, size_t size, char **ret_body, unsigned *ret_status) {
        (void) userdata, (void) body, (void) size;
        *ret_body = strdup("{\"status\":\"ok\"}");
        *ret_status = 200;
        return *ret_body ? 0 : -ENOMEM;
}

static void help(void) {
        printf("hami-dra-webhook [OPTIONS...]\n\n"
               "HAMi compatibility admission webhook: converts nvidia.com/gpu* limits into\n"
               "ResourceClaims of " DEFAULT_DRIVER_NAME " and validates their parameters.\n\n"
               "  -h --help              Show this help\n"
               "     --version           Show the version\n"
               "     --tls-dir=DIR       Directory with tls.crt and tls.key (required)\n"
               "     --address=ADDRESS   Numeric address to listen on (default: all)\n"
               "     --port=PORT         Port to listen on (default: 8443)\n"
               "     --kubeconfig=FILE   API server credentials (default: in-cluster)\n"
               "     --log-level=LEVEL   debug, info, notice, warning, err (default: info)\n");
}

int main(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_TLS_DIR, ARG_ADDRESS, ARG_PORT, ARG_KUBECONFIG, ARG_LOG_LEVEL };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "tls-dir", required_argument, NULL, ARG_TLS_DIR },
                { "address", required_argument, NULL, ARG_ADDRESS },
                { "port", required_argument, NULL, ARG_PORT },
                { "kubeconfig", required_argument, NULL, ARG_KUBECONFIG },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                {}
        };
        const char *tls_dir = NULL, *address = NULL, *kubeconfig = NULL;
        _cleanup_(https_server_freep) HttpsServer *s = NULL;
        Webhook w = { .lock = PTHREAD_MUTEX_INITIALIZER };
        unsigned long port = 8443;
        sigset_t ss;
        int c, r, sig = 0;

        log_set_ident("hami-dra-webhook");
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                case ARG_VERSION:
                        printf("hami-dra-webhook %s\n", PACKAGE_VERSION);
                        return EXIT_SUCCESS;
                case ARG_TLS_DIR:
                        tls_dir = optarg;
                        break;
                case ARG_ADDRESS:
                        address = optarg;
                        break;
                case ARG_PORT: {
                        char *end;

                        errno = 0;
                        port = strtoul(optarg, &end, 10);
                        if (errno != 0 || *end || end == optarg || port > 65535) {
                                log_error("Invalid --port: %s", optarg);
                                return EXIT_FAILURE;
                        }
                        break;
                }
                case ARG_KUBECONFIG:
                        kubeconfig = optarg;
                        break;
                case ARG_LOG_LEVEL:
                        r = log_parse_level(optarg);
                        if (r < 0) {
                                log_error("Invalid --log-level: %s", optarg);
                                return EXIT_FAILURE;
                        }
                        log_set_max_level(r);
                        break;
                default:
                        return EXIT_FAILURE;
                }
        if (optind < argc) {
                log_error("Unexpected argument: %s", argv[optind]);
                return EXIT_FAILURE;
        }
        if (!tls_dir) {
                log_error("--tls-dir=DIR is required");
                return EXIT_FAILURE;
        }

        /* Before any thread starts: SIGTERM and SIGINT only reach sigwait() below. */
        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        if (pthread_sigmask(SIG_BLOCK, &ss, NULL) != 0)
                return EXIT_FAILURE;
        signal(SIGPIPE, SIG_IGN);

        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                log_error("Failed to initialise libcurl");
                return EXIT_FAILURE;
        }
        r = kubeconfig ? kubeconfig_load(kubeconfig, &w.creds) : kube_credentials_in_cluster(NULL, &w.creds);
        if (r < 0) {
                log_error_errno(r, "Failed to load API server credentials from %s: %m",
                                kubeconfig ?: "the in-cluster service account");
                goto fail;
        }
        r = kube_credentials_url(&w.creds, &w.base_url, &w.connect_to);
        if (r < 0) {
                log_error_errno(r, "Invalid API server %s or tls-server-name %s: %m", w.creds.server,
                                w.creds.tls_server_name ?: "");
                goto fail;
        }
        log_info("API server %s (%s%s)", w.creds.server, w.creds.origin,
                 w.creds.tls_server_name ? ", with tls-server-name" : "");

        r = https_server_new(&(HttpsServerConfig) { .address = address, .port = (uint16_t) port,
                                                    .tls_dir = tls_dir }, &s);
        if (r < 0) {
                log_error_errno(r, "Failed to set up the HTTPS server with %s: %m", tls_dir);
                goto fail;
        }
        r = https_server_add_route(s, "/mutate", on_mutate, &w);
        if (r >= 0)
                r = https_server_add_route(s, "/validate", on_validate, &w);
        if (r >= 0)
                r = https_server_add_get_route(s, "/healthz", on_healthz, &w);
        if (r >= 0)
                r = https_server_start(s);
        if (r < 0) {
                log_error_errno(r, "Failed to start the HTTPS server: %m");
                goto fail;
        }
        /* Before the first call: the inventory, once (a failure is logged and retried later). */
        inventory_refresh(&w);
        log_info("Listening on %s port %u", address ?: "every address", https_server_get_port(s));
        (void) sd_notifyf(false, "READY=1\nSTATUS=Listening on port %u", https_server_get_port(s));

        if (sigwait(&ss, &sig) != 0)
                sig = SIGTERM;
        log_info("Received %s, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
        (void) sd_notify(false, "STOPPING=1");
        s = https_server_free(s);
        kube_credentials_done(&w.creds);
        free(w.memory);
        free(w.base_url);
        curl_slist_free_all(w.connect_to);
        curl_global_cleanup();
        return EXIT_SUCCESS;

fail:
        (void) sd_notifyf(false, "STATUS=Failed to start: %s\nERRNO=%d", strerror(-r), -r);
        kube_credentials_done(&w.creds);
        free(w.base_url);
        curl_slist_free_all(w.connect_to);
        curl_global_cleanup();
        return EXIT_FAILURE;
}
