/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The HTTPS front of hami-dra-webhook: libmicrohttpd with GnuTLS, TLS 1.2 or newer,
 * the certificate and key read from a directory in cert-manager's secret layout
 * (tls.crt, tls.key) and reloaded when they change, without a restart.
 *
 * What the server enforces before a handler runs, with a Kubernetes Status body:
 *   unknown path 404; POST routes: other methods 405, a Content-Type other than
 *   application/json 415, a body over the limit 413 (a declared length is refused
 *   before the body is read; a chunked one is counted and dropped, never stored),
 *   an empty body 400; a handler that fails 500.
 *
 *   _cleanup_(https_server_freep) HttpsServer *s = NULL;
 *   r = https_server_new(&(HttpsServerConfig) { .address = "0.0.0.0", .port = 8443,
 *                                               .tls_dir = "/etc/hami-dra-webhook/tls" }, &s);
 *   r = https_server_add_route(s, "/mutate", mutate, inventory);
 *   r = https_server_add_get_route(s, "/healthz", healthz, NULL);
 *   r = https_server_start(s);
 *
 * Handlers run on the server's worker threads, several at once: they must be
 * thread-safe. Routes are added before https_server_start().
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* The API server's own limit on a request (3 MiB): an AdmissionReview is never larger. */
#define HTTPS_SERVER_BODY_MAX_DEFAULT (3U * 1024U * 1024U)
#define HTTPS_SERVER_THREADS_DEFAULT 4U
#define HTTPS_SERVER_TIMEOUT_SEC_DEFAULT 30U
/* TLS 1.3 and 1.2 only, GnuTLS's NORMAL ciphers otherwise. */
#define HTTPS_SERVER_PRIORITIES_DEFAULT "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

typedef struct HttpsServer HttpsServer;

/*
 * One request: body is NUL-terminated (size excludes the NUL); NULL and 0 for a GET
 * route. On success set *ret_body (a JSON document, malloc'd, taken over by the server)
 * and optionally *ret_status (200 when left alone). A negative errno answers 500 with a
 * Status body; *ret_body is then ignored (and freed if set).
 */
typedef int (*HttpsHandler)(void *userdata, const char *body, size_t size, char **ret_body,
                            unsigned *ret_status);

typedef struct HttpsServerConfig {
        const char *address;    /* numeric IPv4 or IPv6; NULL: every address (IPv6 and IPv4) */
        uint16_t port;          /* 0: any free port, see https_server_get_port() */
        const char *tls_dir;    /* holds tls.crt (the chain, leaf first) and tls.key (PEM) */
        size_t body_max;        /* 0: HTTPS_SERVER_BODY_MAX_DEFAULT */
        unsigned threads;       /* 0: HTTPS_SERVER_THREADS_DEFAULT */
        unsigned timeout_sec;   /* idle connection timeout; 0: HTTPS_SERVER_TIMEOUT_SEC_DEFAULT */
        const char *priorities; /* GnuTLS priority string; NULL: HTTPS_SERVER_PRIORITIES_DEFAULT */
} HttpsServerConfig;

/* Reads the certificate and key at once: -ENOENT, -EBADMSG (not PEM, or a key that
 * does not match the certificate), ... when they cannot be used. Copies config. */
int https_server_new(const HttpsServerConfig *config, HttpsServer **ret);

/* path is matched exactly ("/mutate"); -EEXIST when taken, -EBUSY once started. */
int https_server_add_route(HttpsServer *s, const char *path, HttpsHandler handler, void *userdata);
int https_server_add_get_route(HttpsServer *s, const char *path, HttpsHandler handler,
                               void *userdata);

/* Binds and listens; the server then answers on its own threads. */
int https_server_start(HttpsServer *s);

/* The bound port (useful with port 0), or 0 before the start. */
uint16_t https_server_get_port(HttpsServer *s);

/*
 * Look at tls.crt and tls.key now (the server also does it by itself, at most once a
 * second, when a handshake asks for the certificate): reload them when their inode,
 * size or mtime changed. 0: unchanged, 1: reloaded, negative: the new files were
 * refused and the old certificate stays (logged once per change of the files).
 */
int https_server_check_certificate(HttpsServer *s);

/* Stops answering (waits for the handlers that run) and frees everything. */
HttpsServer *https_server_free(HttpsServer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(HttpsServer *, https_server_free);
