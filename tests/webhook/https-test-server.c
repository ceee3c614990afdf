/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The HTTPS server of hami-dra-webhook with canned handlers, for test-https-server.py
 * and bench/bench-webhook-tls.py:
 *   POST /echo      the body back, 200 (400 with a Status when it is not JSON)
 *   POST /fail      the handler fails: 500
 *   GET  /healthz   {"status":"ok"}
 * Usage: https-test-server TLS_DIR [ADDRESS [PORT]]
 * Prints "PORT=<n>" once listening, then runs until SIGTERM or SIGINT.
 */

#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "webhook/https-server.h"

static int echo(void *userdata, const char *body, size_t size, char **ret_body,
                unsigned *ret_status) {
        _cleanup_free_ char *copy = NULL;
        json_tokener *tok;
        json_object *o;
        bool ok;

        tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        o = json_tokener_parse_ex(tok, body, (int) MIN(size, (size_t) INT32_MAX));
        ok = o && json_tokener_get_error(tok) == json_tokener_success &&
             json_tokener_get_parse_end(tok) == size;
        json_object_put(o);
        json_tokener_free(tok);

        if (!ok) {
                *ret_status = 400;
                *ret_body = strdup("{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
                                   "\"message\":\"the body is not JSON\",\"code\":400}");
                return *ret_body ? 0 : -ENOMEM;
        }
        copy = strndup(body, size);
        if (!copy)
                return -ENOMEM;
        *ret_body = TAKE_PTR(copy);
        return 0;
}

static int fail(void *userdata, const char *body, size_t size, char **ret_body,
                unsigned *ret_status) {
        return -EIO;
}

static int healthz(void *userdata, const char *body, size_t size, char **ret_body,
                   unsigned *ret_status) {
        *ret_body = strdup("{\"status\":\"ok\"}");
        return *ret_body ? 0 : -ENOMEM;
}

int main(int argc, char *argv[]) {
        _cleanup_(https_server_freep) HttpsServer *s = NULL;
        sigset_t mask;
        int r, sig;

        if (argc < 2 || argc > 4) {
                fprintf(stderr, "Usage: %s TLS_DIR [ADDRESS [PORT]]\n", argv[0]);
                return EXIT_FAILURE;
        }
        log_set_ident("https-test-server");
        if (secure_getenv("HTTPS_TEST_DEBUG"))
                log_set_max_level(LOG_DEBUG);

        /* A client that goes away mid-write must not kill us; SIGTERM is taken by sigwait. */
        signal(SIGPIPE, SIG_IGN);
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        pthread_sigmask(SIG_BLOCK, &mask, NULL);

        r = https_server_new(&(HttpsServerConfig) {
                                     .tls_dir = argv[1],
                                     .address = argc > 2 ? argv[2] : "127.0.0.1",
                                     .port = argc > 3 ? (uint16_t) atoi(argv[3]) : 0,
                             },
                             &s);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the server: %m"), EXIT_FAILURE;
        if (https_server_add_route(s, "/echo", echo, NULL) < 0 ||
            https_server_add_route(s, "/fail", fail, NULL) < 0 ||
            https_server_add_get_route(s, "/healthz", healthz, NULL) < 0)
                return log_oom(), EXIT_FAILURE;
        r = https_server_start(s);
        if (r < 0)
                return EXIT_FAILURE;

        printf("PORT=%u\n", https_server_get_port(s));
        fflush(stdout);

        if (sigwait(&mask, &sig) != 0)
                return EXIT_FAILURE;
        log_info("Stopping on signal %d.", sig);
        return EXIT_SUCCESS;
}
