/* SPDX-License-Identifier: Apache-2.0 */

/*
 * /metrics in the daemon: the Metrics store (metrics.h) follows the prepared claims
 * through the DRA service's observer, and each scrape hands it the GPUs and the
 * counters of the DRA service, the gRPC server, the API client and the slice publisher.
 */

#include <errno.h>

#include "log.h"
#include "macro.h"
#include "manager-metrics.h"
#include "manager.h"
#include "metrics-server.h"
#include "metrics.h"
#include "time-util.h"

static int manager_metrics_set_devices(Manager *m) {
        _cleanup_free_ MetricsDevice *d = NULL;

        if (m->gpus.n_gpus > 0) {
                d = calloc(m->gpus.n_gpus, sizeof(*d));
                if (!d)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < m->gpus.n_gpus; i++) {
                metrics_device_from_gpu(&d[i], &m->gpus.gpus[i]);
                if (m->publisher)
                        d[i].schedulable = slice_publisher_device_schedulable(m->publisher, d[i].name);
        }
        return metrics_set_devices(m->metrics, d, m->gpus.n_gpus);
}

static int manager_metrics_render(void *userdata, char **ret_body, size_t *ret_size) {
        _cleanup_(metrics_buffer_donep) MetricsBuffer b = {};
        Manager *m = userdata;
        MetricsOperation op = {};
        DraServiceStats dra;
        SlicePublisherStatus st;
        int r;

        r = manager_metrics_set_devices(m);
        if (r < 0)
                return r;
        if (m->dra_service) {
                dra_service_get_stats(m->dra_service, &dra);
                op.dra = &dra;
        }
        if (m->grpc) {
                GrpcServerStats gs;

                grpc_server_get_stats(m->grpc, &gs);
                op.grpc_in_flight = gs.calls_in_flight;
        }
        if (m->kube)
                op.n_api = kube_client_request_counts(m->kube, &op.api);
        if (m->publisher) {
                slice_publisher_get_status(m->publisher, &st);
                op.slice_writes = (const uint64_t (*)[2]) st.writes;
        }
        r = metrics_render(m->metrics, &op, now_usec(), &b);
        if (r < 0)
                return r;
        *ret_body = metrics_buffer_steal(&b, ret_size);
        return *ret_body ? 0 : -ENOMEM;
}

void manager_metrics_claim_changed(Manager *m, const char *uid, const PreparedClaim *c) {
        _cleanup_free_ char *region = NULL;
        int r;

        if (!m->metrics)
                return;
        if (!c) {
                metrics_claim_unprepared(m->metrics, uid);
                return;
        }
        region = prepared_claim_region_path(m->config.state_dir, c->uid);
        r = region ? metrics_claim_prepared(m->metrics, c, region) : -ENOMEM;
        if (r < 0)
                log_warning_errno(r, "Claim %s is left out of the metrics: %m", uid);
}

int manager_setup_metrics(Manager *m) {
        int r;

        if (m->listen_fd_metrics < 0)
                return 0;
        r = metrics_new(m->config.node_name, m->config.driver_name, PACKAGE_VERSION, &m->metrics);
        if (r < 0)
                return log_oom();
        r = metrics_server_new(m->event, TAKE_FD(m->listen_fd_metrics), manager_metrics_render, m,
                               &m->metrics_server);
        if (r < 0) {
                /* Metrics are not worth failing the kubelet for: say so and go on. */
                log_error_errno(r, "Failed to serve /metrics on the socket from systemd, no metrics: %m");
                m->metrics = metrics_free(m->metrics);
                return 0;
        }
        log_info("Serving Prometheus metrics at /metrics on the socket from systemd");
        return 0;
}

void manager_free_metrics(Manager *m) {
        m->metrics_server = metrics_server_free(m->metrics_server);
        m->metrics = metrics_free(m->metrics);
        m->listen_fd_metrics = safe_close(m->listen_fd_metrics);
}
