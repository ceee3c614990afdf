/* SPDX-License-Identifier: Apache-2.0 */

/*
 * Threads: MHD_USE_EPOLL_INTERNAL_THREAD with a pool of `threads` workers. Each worker
 * has its own epoll set and accepts on the shared listening socket, so handlers run
 * in parallel (the API server sends many admissions at once), while a slow or silent
 * client costs a file descriptor and a few KiB, not a thread as with thread-per-
 * connection: TLS handshakes and bodies are read without blocking, and the idle timeout
 * closes what stalls.
 *
 * Certificates: libmicrohttpd hands the choice of certificate to our callback
 * (MHD_OPTION_HTTPS_CERT_CALLBACK, GnuTLS's retrieve_function2), which returns the
 * current TlsCreds. At most once a second it stats tls.crt and tls.key; when either
 * changed it reads both, checks that the key matches the certificate, and swaps them
 * in. The set it replaces may still be signing a handshake on another worker, so it is
 * kept for a grace period (a handshake's first flight is signed within one call) and
 * freed at a later reload or with the server.
 */

#include <arpa/inet.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/stat.h>

#include "fsutil.h"
#include "log.h"
#include "time-util.h"
#include "webhook/https-server.h"

#define TLS_FILE_MAX (1024U * 1024U)
#define TLS_CHAIN_MAX 16U
#define CERT_CHECK_INTERVAL_USEC USEC_PER_SEC
#define RETIRED_GRACE_MIN_USEC (60 * USEC_PER_SEC)
#define CONNECTION_LIMIT 1024U

typedef struct FileSig {
        dev_t dev;
        ino_t ino;
        off_t size;
        struct timespec mtim;
        bool valid;
} FileSig;

typedef struct TlsFilesSig {
        FileSig crt, key;
} TlsFilesSig;

typedef struct TlsCreds {
        gnutls_pcert_st pcerts[TLS_CHAIN_MAX];
        unsigned n_pcerts;
        gnutls_privkey_t key;
        uint64_t retired_usec;
        struct TlsCreds *next_retired;
} TlsCreds;

typedef struct Route {
        char *path;
        bool get;
        HttpsHandler handler;
        void *userdata;
} Route;

typedef struct Request {
        const Route *route;
        char *body;
        size_t size, allocated;
        bool too_large;
} Request;

struct HttpsServer {
        char *address;
        uint16_t port;
        char *tls_dir;
        size_t body_max;
        unsigned threads, timeout_sec;
        char *priorities;

        Route *routes;
        size_t n_routes;

        struct MHD_Daemon *daemon;

        pthread_mutex_t lock; /* guards what follows */
        TlsCreds *creds;
        TlsCreds *retired;
        TlsFilesSig sig;        /* of the files creds came from */
        TlsFilesSig failed_sig; /* of files we refused: logged once, retried when they change */
        uint64_t last_check_usec;
};

/* ---- certificates ---- */

static void tls_creds_free(TlsCreds *c) {
        if (!c)
                return;
        for (unsigned i = 0; i < c->n_pcerts; i++)
                gnutls_pcert_deinit(&c->pcerts[i]);
        if (c->key)
                gnutls_privkey_deinit(c->key);
        free(c);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(TlsCreds *, tls_creds_free);

static int file_sig(int dir_fd, const char *name, FileSig *ret) {
        struct stat st;

        if (fstatat(dir_fd, name, &st, 0) < 0)
                return -errno;
        *ret = (FileSig) { .dev = st.st_dev, .ino = st.st_ino, .size = st.st_size,
                           .mtim = st.st_mtim, .valid = true };
        return 0;
}

static bool file_sig_equal(const FileSig *a, const FileSig *b) {
        return a->valid == b->valid && a->dev == b->dev && a->ino == b->ino &&
               a->size == b->size && a->mtim.tv_sec == b->mtim.tv_sec &&
               a->mtim.tv_nsec == b->mtim.tv_nsec;
}

static bool tls_files_sig_equal(const TlsFilesSig *a, const TlsFilesSig *b) {
        return file_sig_equal(&a->crt, &b->crt) && file_sig_equal(&a->key, &b->key);
}

/* *ret_what: what could not be looked at, for the message. */
static int tls_files_sig(const char *dir, TlsFilesSig *ret, const char **ret_what) {
        _cleanup_close_ int fd = open_directory(dir);
        int r;

        *ret_what = "the directory";
        if (fd < 0)
                return fd;
        *ret_what = "tls.crt";
        r = file_sig(fd, "tls.crt", &ret->crt);
        if (r < 0)
                return r;
        *ret_what = "tls.key";
        return file_sig(fd, "tls.key", &ret->key);
}

static int gnutls_to_errno(int g) {
        switch (g) {
        case GNUTLS_E_MEMORY_ERROR:
                return -ENOMEM;
        case GNUTLS_E_FILE_ERROR:
                return -EIO;
        default:
                return -EBADMSG;
        }
}

static void gnutls_pubkey_deinitp(gnutls_pubkey_t *k) {
        if (*k)
                gnutls_pubkey_deinit(*k);
}

static void gnutls_datum_freep(gnutls_datum_t *d) {
        gnutls_free(d->data);
}

/* Whether key is the private half of the leaf certificate's public key. */
static int key_matches(gnutls_pubkey_t cert_pub, gnutls_privkey_t key) {
        _cleanup_(gnutls_pubkey_deinitp) gnutls_pubkey_t pub = NULL;
        _cleanup_(gnutls_datum_freep) gnutls_datum_t a = {}, b = {};

        if (gnutls_pubkey_init(&pub) < 0)
                return -ENOMEM;
        if (gnutls_pubkey_import_privkey(pub, key, 0, 0) < 0 ||
            gnutls_pubkey_export2(cert_pub, GNUTLS_X509_FMT_DER, &a) < 0 ||
            gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &b) < 0)
                return -EBADMSG;
        return a.size == b.size && memcmp(a.data, b.data, a.size) == 0;
}

/* Both PEM files into a TlsCreds; -EBADMSG when unusable or when the key does not match. */
static int tls_creds_parse(const gnutls_datum_t *crt, const gnutls_datum_t *key, TlsCreds **ret) {
        _cleanup_(tls_creds_freep) TlsCreds *c = NULL;
        int g, r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->n_pcerts = TLS_CHAIN_MAX;
        g = gnutls_pcert_list_import_x509_raw(c->pcerts, &c->n_pcerts, crt, GNUTLS_X509_FMT_PEM, 0);
        if (g < 0) {
                c->n_pcerts = 0;
                return log_error_errno(gnutls_to_errno(g), "TLS certificate refused: %s",
                                       gnutls_strerror(g));
        }
        if (c->n_pcerts == 0)
                return log_error_errno(EBADMSG, "TLS certificate refused: no certificate in tls.crt.");
        if (gnutls_privkey_init(&c->key) < 0)
                return -ENOMEM;
        g = gnutls_privkey_import_x509_raw(c->key, key, GNUTLS_X509_FMT_PEM, NULL, 0);
        if (g < 0)
                return log_error_errno(gnutls_to_errno(g), "TLS key refused: %s", gnutls_strerror(g));
        r = key_matches(c->pcerts[0].pubkey, c->key);
        if (r < 0)
                return log_error_errno(r, "TLS key refused: cannot compare it with the certificate.");
        if (r == 0)
                return log_error_errno(EBADMSG, "TLS key refused: it is not the certificate's key.");

        *ret = TAKE_PTR(c);
        return 0;
}

static int tls_creds_load(const char *dir, TlsCreds **ret) {
        _cleanup_free_ char *crt = NULL, *key = NULL;
        _cleanup_close_ int fd = open_directory(dir);
        size_t crt_len, key_len;
        int r;

        if (fd < 0)
                return log_error_errno(fd, "Failed to open TLS directory %s: %m", dir);
        r = read_file_bounded_at(fd, "tls.crt", TLS_FILE_MAX, 0, &crt, &crt_len);
        if (r < 0)
                return log_error_errno(r, "Failed to read %s/tls.crt: %m", dir);
        r = read_file_bounded_at(fd, "tls.key", TLS_FILE_MAX, 0, &key, &key_len);
        if (r < 0)
                return log_error_errno(r, "Failed to read %s/tls.key: %m", dir);

        r = tls_creds_parse(&(gnutls_datum_t) { .data = (unsigned char *) crt, .size = crt_len },
                            &(gnutls_datum_t) { .data = (unsigned char *) key, .size = key_len },
                            ret);
        explicit_bzero(key, key_len);
        return r;
}

static uint64_t retired_grace_usec(const HttpsServer *s) {
        return MAX(RETIRED_GRACE_MIN_USEC, 2 * (uint64_t) s->timeout_sec * USEC_PER_SEC);
}

/* Frees the retired sets that no handshake can still be using. Called with the lock held. */
static void retired_gc(HttpsServer *s, uint64_t now) {
        for (TlsCreds **p = &s->retired; *p;) {
                TlsCreds *c = *p;

                if (now - c->retired_usec >= retired_grace_usec(s)) {
                        *p = c->next_retired;
                        tls_creds_free(c);
                } else
                        p = &c->next_retired;
        }
}

/* Called with the lock held. 0: unchanged, 1: reloaded, negative: refused. */
static int check_certificate_locked(HttpsServer *s, uint64_t now) {
        _cleanup_(tls_creds_freep) TlsCreds *c = NULL;
        TlsFilesSig sig = {};
        const char *what;
        int r;

        s->last_check_usec = now;
        retired_gc(s, now);

        r = tls_files_sig(s->tls_dir, &sig, &what);
        if (r < 0 && s->creds && tls_files_sig_equal(&sig, &s->failed_sig))
                return r; /* still missing: said so already */
        if (r >= 0 && tls_files_sig_equal(&sig, &s->sig))
                return 0;
        if (r >= 0 && tls_files_sig_equal(&sig, &s->failed_sig))
                return -EBADMSG;

        if (r >= 0)
                r = tls_creds_load(s->tls_dir, &c);
        else
                log_error_errno(r, "Failed to look at %s in %s: %m", what, s->tls_dir);
        if (r < 0) {
                s->failed_sig = sig;
                log_warning("Keeping the TLS certificate in use: the new files in %s are unusable.",
                            s->tls_dir);
                return r;
        }

        if (s->creds) {
                s->creds->retired_usec = now;
                s->creds->next_retired = s->retired;
                s->retired = s->creds;
        }
        s->creds = TAKE_PTR(c);
        s->sig = sig;
        s->failed_sig = (TlsFilesSig) {};
        log_info("Loaded the TLS certificate from %s.", s->tls_dir);
        return 1;
}

int https_server_check_certificate(HttpsServer *s) {
        int r;

        pthread_mutex_lock(&s->lock);
        r = check_certificate_locked(s, now_usec());
        pthread_mutex_unlock(&s->lock);
        return r;
}

static int cert_callback(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                         const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                         gnutls_pcert_st **ret_pcert, unsigned *ret_n_pcert,
                         gnutls_privkey_t *ret_key) {
        struct MHD_Connection *connection = gnutls_session_get_ptr(session);
        const union MHD_ConnectionInfo *info;
        HttpsServer *s;
        uint64_t now = now_usec();

        if (!connection)
                return -1;
        info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        if (!info || !info->socket_context)
                return -1;
        s = info->socket_context;

        pthread_mutex_lock(&s->lock);
        if (now - s->last_check_usec >= CERT_CHECK_INTERVAL_USEC)
                (void) check_certificate_locked(s, now);
        *ret_pcert = s->creds->pcerts;
        *ret_n_pcert = s->creds->n_pcerts;
        *ret_key = s->creds->key;
        pthread_mutex_unlock(&s->lock);
        return 0;
}

/* Lets cert_callback find its server: MHD sets the session's pointer to the connection. */
static void on_connection(void *cls, struct MHD_Connection *connection, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
        if (toe == MHD_CONNECTION_NOTIFY_STARTED)
                *socket_context = cls;
}

/* ---- requests ---- */

static const char *status_reason(unsigned status) {
        switch (status) {
        case 400:
                return "BadRequest";
        case 404:
                return "NotFound";
        case 405:
                return "MethodNotAllowed";
        case 413:
                return "RequestEntityTooLarge";
        case 415:
                return "UnsupportedMediaType";
        default:
                return "InternalError";
        }
}

static enum MHD_Result queue_json(struct MHD_Connection *c, unsigned status, char *body,
                                  const char *allow) {
        struct MHD_Response *resp;
        enum MHD_Result ret;

        resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
                free(body);
                return MHD_NO;
        }
        (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        if (allow)
                (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
        ret = MHD_queue_response(c, status, resp);
        MHD_destroy_response(resp);
        return ret;
}

/* A Kubernetes Status: what the API server shows of a failed webhook call. message is ours. */
static enum MHD_Result queue_status(struct MHD_Connection *c, unsigned status, const char *message,
                                    const char *allow) {
        char *body = NULL;

        if (asprintf(&body,
                     "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
                     "\"status\":\"Failure\",\"message\":\"%s\",\"reason\":\"%s\",\"code\":%u}",
                     message, status_reason(status), status) < 0)
                return MHD_NO;
        return queue_json(c, status, body, allow);
}

static const Route *find_route(const HttpsServer *s, const char *url) {
        for (size_t i = 0; i < s->n_routes; i++)
                if (streq(s->routes[i].path, url))
                        return &s->routes[i];
        return NULL;
}

/* application/json, in any case, with or without parameters ("; charset=utf-8"). */
static bool content_type_is_json(const char *v) {
        static const char json[] = "application/json";

        if (!v)
                return false;
        v += strspn(v, " \t");
        if (strncasecmp(v, json, strlen(json)) != 0)
                return false;
        v += strlen(json);
        v += strspn(v, " \t");
        return *v == '\0' || *v == ';';
}

/* -ERANGE when over max, -EINVAL when not a number, 0 when absent. */
static int declared_length(struct MHD_Connection *c, size_t max) {
        const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                    MHD_HTTP_HEADER_CONTENT_LENGTH);
        unsigned long long n = 0;

        if (!v)
                return 0;
        for (const char *p = v; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                if (n > max)
                        return -ERANGE;
                n = n * 10 + (unsigned) (*p - '0');
        }
        return n > max ? -ERANGE : 0;
}

static enum MHD_Result run_handler(struct MHD_Connection *c, const Route *route, const char *body,
                                   size_t size) {
        _cleanup_free_ char *reply = NULL;
        unsigned status = MHD_HTTP_OK;
        int r;

        r = route->handler(route->userdata, body, size, &reply, &status);
        if (r < 0 || !reply) {
                log_warning_errno(r < 0 ? r : -EINVAL, "Handler for %s failed: %m", route->path);
                return queue_status(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                    "the webhook failed to handle the request", NULL);
        }
        if (status < 100 || status > 599)
                status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        return queue_json(c, status, TAKE_PTR(reply), NULL);
}

/* The first call, headers only: refuse what can be refused before the body is read. */
static enum MHD_Result on_headers(HttpsServer *s, struct MHD_Connection *c, const char *url,
                                  const char *method, void **con_cls) {
        const Route *route = find_route(s, url);
        Request *req;

        if (!route)
                return queue_status(c, MHD_HTTP_NOT_FOUND, "no such path", NULL);
        if (route->get) {
                if (!streq(method, MHD_HTTP_METHOD_GET) && !streq(method, MHD_HTTP_METHOD_HEAD))
                        return queue_status(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET", "GET, HEAD");
                return run_handler(c, route, NULL, 0);
        }
        if (!streq(method, MHD_HTTP_METHOD_POST))
                return queue_status(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST", "POST");
        if (!content_type_is_json(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                              MHD_HTTP_HEADER_CONTENT_TYPE)))
                return queue_status(c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                    "the body must be application/json", NULL);
        switch (declared_length(c, s->body_max)) {
        case -ERANGE:
                return queue_status(c, MHD_HTTP_CONTENT_TOO_LARGE, "the body is too large", NULL);
        case -EINVAL:
                return queue_status(c, MHD_HTTP_BAD_REQUEST, "bad Content-Length", NULL);
        }

        req = calloc(1, sizeof(*req));
        if (!req)
                return MHD_NO;
        req->route = route;
        *con_cls = req;
        return MHD_YES;
}

static int request_append(Request *req, const char *data, size_t n, size_t max) {
        size_t want;
        char *p;

        if (req->too_large)
                return 0;
        if (n > max - req->size) {
                /* A chunked body grew past the limit: count nothing more, keep nothing. */
                req->too_large = true;
                req->body = mfree(req->body);
                req->size = req->allocated = 0;
                return 0;
        }
        want = req->size + n + 1;
        if (want > req->allocated) {
                size_t a = MAX(want, MIN(max + 1, MAX((size_t) 4096, req->allocated * 2)));

                p = realloc(req->body, a);
                if (!p)
                        return -ENOMEM;
                req->body = p;
                req->allocated = a;
        }
        memcpy(req->body + req->size, data, n);
        req->size += n;
        req->body[req->size] = '\0';
        return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
        HttpsServer *s = cls;
        Request *req = *con_cls;

        if (!req)
                return on_headers(s, c, url, method, con_cls);

        if (*upload_data_size > 0) {
                if (request_append(req, upload_data, *upload_data_size, s->body_max) < 0)
                        return MHD_NO;
                *upload_data_size = 0;
                return MHD_YES;
        }

        if (req->too_large)
                return queue_status(c, MHD_HTTP_CONTENT_TOO_LARGE, "the body is too large", NULL);
        if (req->size == 0)
                return queue_status(c, MHD_HTTP_BAD_REQUEST, "the body is empty", NULL);
        return run_handler(c, req->route, req->body, req->size);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
        Request *req = *con_cls;

        if (!req)
                return;
        free(req->body);
        free(req);
        *con_cls = NULL;
}

/* libmicrohttpd's own messages are mostly about clients that misbehave: debug level. */
static void on_mhd_log(void *cls, const char *format, va_list ap) {
        char buf[512];
        size_t n;

        _Pragma("GCC diagnostic push");
        _Pragma("GCC diagnostic ignored \"-Wformat-nonliteral\"");
        vsnprintf(buf, sizeof(buf), format, ap);
        _Pragma("GCC diagnostic pop");
        n = strlen(buf);
        if (n > 0 && buf[n - 1] == '\n')
                buf[n - 1] = '\0';
        log_debug("libmicrohttpd: %s", buf);
}

/* ---- the server ---- */

int https_server_new(const HttpsServerConfig *config, HttpsServer **ret) {
        _cleanup_(https_server_freep) HttpsServer *s = NULL;
        int r;

        if (!config || !config->tls_dir || !ret)
                return -EINVAL;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        pthread_mutex_init(&s->lock, NULL);
        s->port = config->port;
        s->body_max = config->body_max ?: HTTPS_SERVER_BODY_MAX_DEFAULT;
        s->threads = config->threads ?: HTTPS_SERVER_THREADS_DEFAULT;
        s->timeout_sec = config->timeout_sec ?: HTTPS_SERVER_TIMEOUT_SEC_DEFAULT;
        if (strdup_or_null(config->address, &s->address) < 0 ||
            strdup_or_null(config->tls_dir, &s->tls_dir) < 0 ||
            strdup_or_null(config->priorities ?: HTTPS_SERVER_PRIORITIES_DEFAULT, &s->priorities) < 0)
                return -ENOMEM;

        r = https_server_check_certificate(s);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(s);
        return 0;
}

static int add_route(HttpsServer *s, const char *path, bool get, HttpsHandler handler,
                     void *userdata) {
        Route *routes;
        char *p;

        if (!s || !path || path[0] != '/' || !handler)
                return -EINVAL;
        if (s->daemon)
                return -EBUSY;
        if (find_route(s, path))
                return -EEXIST;

        p = strdup(path);
        if (!p)
                return -ENOMEM;
        routes = reallocarray(s->routes, s->n_routes + 1, sizeof(Route));
        if (!routes) {
                free(p);
                return -ENOMEM;
        }
        s->routes = routes;
        s->routes[s->n_routes++] = (Route) { .path = p, .get = get, .handler = handler,
                                             .userdata = userdata };
        return 0;
}

int https_server_add_route(HttpsServer *s, const char *path, HttpsHandler handler, void *userdata) {
        return add_route(s, path, false, handler, userdata);
}

int https_server_add_get_route(HttpsServer *s, const char *path, HttpsHandler handler,
                               void *userdata) {
        return add_route(s, path, true, handler, userdata);
}

typedef union SockAddr {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
} SockAddr;

/* 1 for IPv6, 0 for IPv4, -EINVAL for anything but a numeric address. */
static int parse_address(const char *address, uint16_t port, SockAddr *ret) {
        *ret = (SockAddr) {};
        if (inet_pton(AF_INET, address, &ret->in.sin_addr) == 1) {
                ret->in.sin_family = AF_INET;
                ret->in.sin_port = htons(port);
                return 0;
        }
        if (inet_pton(AF_INET6, address, &ret->in6.sin6_addr) == 1) {
                ret->in6.sin6_family = AF_INET6;
                ret->in6.sin6_port = htons(port);
                return 1;
        }
        return -EINVAL;
}

int https_server_start(HttpsServer *s) {
        unsigned flags = MHD_USE_TLS | MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
        SockAddr addr;
        struct MHD_OptionItem options[] = {
                { MHD_OPTION_HTTPS_CERT_CALLBACK, 0, (void *) cert_callback },
                { MHD_OPTION_HTTPS_PRIORITIES, 0, s->priorities },
                { MHD_OPTION_NOTIFY_CONNECTION, (intptr_t) on_connection, s },
                { MHD_OPTION_NOTIFY_COMPLETED, (intptr_t) on_completed, s },
                { MHD_OPTION_EXTERNAL_LOGGER, (intptr_t) on_mhd_log, s },
                { MHD_OPTION_THREAD_POOL_SIZE, s->threads, NULL },
                { MHD_OPTION_CONNECTION_TIMEOUT, s->timeout_sec, NULL },
                { MHD_OPTION_CONNECTION_LIMIT, CONNECTION_LIMIT, NULL },
                { MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, NULL },
                { MHD_OPTION_END, 0, NULL }, /* the address, when there is one */
                { MHD_OPTION_END, 0, NULL },
        };
        int r;

        if (!s)
                return -EINVAL;
        if (s->daemon)
                return -EBUSY;

        if (s->address) {
                r = parse_address(s->address, s->port, &addr);
                if (r < 0)
                        return log_error_errno(r, "Not a numeric IP address: %s", s->address);
                if (r > 0)
                        flags |= MHD_USE_IPv6;
                options[ELEMENTSOF(options) - 2] = (struct MHD_OptionItem) { MHD_OPTION_SOCK_ADDR,
                                                                             0, &addr };
        } else
                flags |= MHD_USE_DUAL_STACK;

        s->daemon = MHD_start_daemon(flags, s->port, NULL, NULL, on_request, s, MHD_OPTION_ARRAY,
                                     options, MHD_OPTION_END);
        if (!s->daemon)
                return log_error_errno(EADDRNOTAVAIL, "Failed to start the HTTPS server on %s port %u.",
                                       s->address ?: "*", s->port);
        log_info("Listening for HTTPS on %s port %u.", s->address ?: "*", https_server_get_port(s));
        return 0;
}

uint16_t https_server_get_port(HttpsServer *s) {
        const union MHD_DaemonInfo *info;

        if (!s || !s->daemon)
                return 0;
        info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
        return info ? info->port : 0;
}

HttpsServer *https_server_free(HttpsServer *s) {
        if (!s)
                return NULL;
        if (s->daemon)
                MHD_stop_daemon(s->daemon);
        for (size_t i = 0; i < s->n_routes; i++)
                free(s->routes[i].path);
        free(s->routes);
        tls_creds_free(s->creds);
        while (s->retired) {
                TlsCreds *c = s->retired;

                s->retired = c->next_retired;
                tls_creds_free(c);
        }
        pthread_mutex_destroy(&s->lock);
        free(s->address);
        free(s->tls_dir);
        free(s->priorities);
        free(s);
        return NULL;
}
