/* SPDX-License-Identifier: Apache-2.0 */

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/epoll.h>

#include "log.h"
#include "macro.h"
#include "metrics-server.h"
#include "metrics.h"

/* Per connection: headers fit in this much; a scraper sends a few hundred bytes. */
#define METRICS_SERVER_CONNECTION_MEMORY (32 * 1024)

struct MetricsServer {
        struct MHD_Daemon *daemon;
        sd_event_source *io;
        sd_event_source *timer;
        MetricsServerRender render;
        void *userdata;
        unsigned long n_answers;
};

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
        char line[512];

        _Pragma("GCC diagnostic push");
        _Pragma("GCC diagnostic ignored \"-Wformat-nonliteral\"");
        (void) vsnprintf(line, sizeof(line), fmt, ap);
        _Pragma("GCC diagnostic pop");
        line[strcspn(line, "\n")] = '\0';
        log_debug("Metrics server: %s", line);
}

static enum MHD_Result answer(MetricsServer *s, struct MHD_Connection *c, unsigned status, char *body,
                              size_t size, const char *content_type, const char *allow) {
        struct MHD_Response *resp;
        enum MHD_Result ret;

        resp = MHD_create_response_from_buffer_with_free_callback(size, body, free);
        if (!resp) {
                free(body);
                return MHD_NO;
        }
        (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
        if (allow)
                (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
        ret = MHD_queue_response(c, status, resp);
        MHD_destroy_response(resp);
        s->n_answers++;
        return ret;
}

static enum MHD_Result answer_text(MetricsServer *s, struct MHD_Connection *c, unsigned status, const char *text,
                                   const char *allow) {
        char *body = strdup(text);

        if (!body)
                return MHD_NO;
        return answer(s, c, status, body, strlen(body), "text/plain; charset=utf-8", allow);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
        static int headers_seen;
        MetricsServer *s = cls;
        char *body = NULL;
        size_t size = 0;
        int r;

        if (!streq(method, MHD_HTTP_METHOD_GET) && !streq(method, MHD_HTTP_METHOD_HEAD))
                return answer_text(s, c, MHD_HTTP_METHOD_NOT_ALLOWED, "Only GET and HEAD are served.\n",
                                   "GET, HEAD");
        if (!*con_cls) {
                /* The headers are in; a GET has no body to wait for. */
                *con_cls = &headers_seen;
                return MHD_YES;
        }
        if (*upload_data_size > 0) {
                *upload_data_size = 0; /* a GET with a body: ignored */
                return MHD_YES;
        }
        if (!streq(url, "/metrics"))
                return answer_text(s, c, MHD_HTTP_NOT_FOUND, "Not found: the metrics are at /metrics.\n", NULL);

        r = s->render(s->userdata, &body, &size);
        if (r < 0) {
                log_warning_errno(r, "Failed to render the metrics: %m");
                return answer_text(s, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "Failed to render the metrics.\n", NULL);
        }
        return answer(s, c, MHD_HTTP_OK, body, size, METRICS_CONTENT_TYPE, NULL);
}

static void metrics_server_arm_timer(MetricsServer *s) {
        MHD_UNSIGNED_LONG_LONG ms = 0;

        if (MHD_get_timeout(s->daemon, &ms) != MHD_YES) {
                (void) sd_event_source_set_enabled(s->timer, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time_relative(s->timer, (uint64_t) MIN(ms, 3600 * 1000ULL) * 1000);
        (void) sd_event_source_set_enabled(s->timer, SD_EVENT_ONESHOT);
}

static void metrics_server_run(MetricsServer *s) {
        (void) MHD_run(s->daemon);
        metrics_server_arm_timer(s);
}

static int on_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        metrics_server_run(userdata);
        return 0;
}

static int on_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        metrics_server_run(userdata);
        return 0;
}

static int listen_fd_prepare(int fd) {
        int flags = fcntl(fd, F_GETFL);

        if (flags < 0)
                return -errno;
        if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return -errno;
        return 0;
}

int metrics_server_new(sd_event *e, int listen_fd, MetricsServerRender render, void *userdata,
                       MetricsServer **ret) {
        _cleanup_close_ int fd = listen_fd;
        const union MHD_DaemonInfo *info;
        MetricsServer *s;
        int r;

        r = listen_fd_prepare(fd);
        if (r < 0)
                return r;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->render = render;
        s->userdata = userdata;
        /* No MHD_USE_INTERNAL_POLLING_THREAD: MHD_run() from our loop, on its epoll fd. */
        s->daemon = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, s,
                                     MHD_OPTION_LISTEN_SOCKET, (MHD_socket) fd,
                                     MHD_OPTION_CONNECTION_LIMIT, (unsigned) METRICS_SERVER_CONNECTIONS_MAX,
                                     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) METRICS_SERVER_TIMEOUT_SEC,
                                     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) METRICS_SERVER_CONNECTION_MEMORY,
                                     MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
                                     MHD_OPTION_END);
        if (!s->daemon) {
                free(s);
                return -EIO;
        }
        fd = -EBADF; /* MHD closes it */
        info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_EPOLL_FD);
        r = info ? sd_event_add_io(e, &s->io, info->epoll_fd, EPOLLIN, on_io, s) : -EIO;
        if (r >= 0)
                r = sd_event_add_time_relative(e, &s->timer, CLOCK_MONOTONIC, 0, 0, on_timer, s);
        if (r < 0) {
                metrics_server_free(s);
                return r;
        }
        metrics_server_arm_timer(s);
        *ret = s;
        return 0;
}

MetricsServer *metrics_server_free(MetricsServer *s) {
        if (!s)
                return NULL;
        s->io = sd_event_source_disable_unref(s->io);
        s->timer = sd_event_source_disable_unref(s->timer);
        if (s->daemon)
                MHD_stop_daemon(s->daemon);
        free(s);
        return NULL;
}

unsigned long metrics_server_n_answers(const MetricsServer *s) {
        return s->n_answers;
}
