/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * GET /metrics over plain HTTP on a listening socket systemd passed in
 * (FileDescriptorName=metrics, units/hami-dra-metrics.socket). libmicrohttpd runs
 * without a thread of its own: its epoll fd is watched by the daemon's sd-event loop, so
 * the renderer reads the manager's state with no lock. A slow or idle client is cut
 * after METRICS_SERVER_TIMEOUT_SEC; at most METRICS_SERVER_CONNECTIONS_MAX are open.
 * Anything but GET or HEAD gets 405, any other path 404.
 */

#include <stddef.h>
#include <systemd/sd-event.h>

#define METRICS_SERVER_TIMEOUT_SEC 10
#define METRICS_SERVER_CONNECTIONS_MAX 16

/* The body of one answer, malloc'd (the server frees it). 0 or negative errno (500). */
typedef int (*MetricsServerRender)(void *userdata, char **ret_body, size_t *ret_size);

typedef struct MetricsServer MetricsServer;

/* Takes listen_fd (a listening stream socket of any family), even on failure. */
int metrics_server_new(sd_event *e, int listen_fd, MetricsServerRender render, void *userdata,
                       MetricsServer **ret);
MetricsServer *metrics_server_free(MetricsServer *s);

/* Answers given since start (any status), for tests and benchmarks. */
unsigned long metrics_server_n_answers(const MetricsServer *s);
