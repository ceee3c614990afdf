/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The node daemon's state and its life: configuration, the sd-event loop, GPU
 * discovery and health, the kubelet-facing gRPC server, sd_notify. The other parts
 * (slice publisher, prepare and the DRA service, D-Bus, usage monitor) hang off the
 * Manager and are driven from here.
 */

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "conf.h"
#include "dra-service.h"
#include "gpu-backend.h"
#include "gpu.h"
#include "grpc-server.h"
#include "kube-client.h"
#include "prepare.h"
#include "slice-publisher.h"

typedef struct BusServer BusServer;

/* The exit status that asks systemd for a fresh start (EX_TEMPFAIL; Restart=on-failure):
 * the NVIDIA driver appeared after the unit's sandbox was set up without its devices. */
#define MANAGER_EXIT_RESTART 75

typedef enum ManagerState {
        MANAGER_STARTING,
        MANAGER_READY,
        MANAGER_DEGRADED,
        MANAGER_STOPPING,    /* SIGTERM: finishing the calls in progress, then exiting */
} ManagerState;

/* What keeps the daemon from being fully useful, each with its own reason (NULL: fine).
 * Any of them set makes the state degraded; STATUS=, the D-Bus State/StateReason and
 * hamictl status are all made from this one set (manager_set_problem). */
typedef enum ManagerProblem {
        MANAGER_PROBLEM_DRIVER,      /* the NVIDIA driver cannot be used: no GPUs */
        MANAGER_PROBLEM_GPUS,        /* some GPUs could not be read */
        MANAGER_PROBLEM_PREPARE,     /* claims cannot be prepared (no /dev/nvidiactl) */
        MANAGER_PROBLEM_CREDENTIALS, /* no usable API server credentials: nothing published */
        MANAGER_PROBLEM_APISERVER,   /* the API server does not answer, or drops our fields */
        _MANAGER_PROBLEM_MAX,
} ManagerProblem;

typedef struct Manager {
        Config config;
        int argc;                 /* kept for SIGHUP: reload re-reads the files and re-applies the flags */
        char **argv;

        sd_event *event;
        sd_event_source *health_refresh;

        GpuBackend *backend;       /* NULL while the NVIDIA driver is not usable yet */
        GpuList gpus;
        sd_event_source *backend_retry; /* retrying to open the backend, with backoff */
        uint64_t backend_retry_usec;
        bool driver_loaded_at_start;    /* /proc/driver/nvidia existed when we started */

        GrpcServer *grpc;

        /* Prepare/unprepare (prepare.c, dra-service.c). Claims recovered at start wait in
         * recovered[] until the API client can re-verify them. */
        Preparer *preparer;
        DraService *dra_service;
        PrepareClaimRef *recovered;
        size_t n_recovered;
        int listen_fd_registration; /* from systemd, or -1 */
        int listen_fd_dra;
        int listen_fd_metrics;     /* FileDescriptorName=metrics, or -1: no /metrics */
        bool kubelet_registered;
        char *registration_error;

        KubeClient *kube;          /* NULL when there are no API server credentials */
        IPSandbox ip_sandbox;      /* the unit's IPAddressAllow=/Deny=, for the API client's errors */
        struct ManagerFetch *fetches; /* claim GETs in flight (freeing the client drops them) */
        SlicePublisher *publisher;
        char *apiserver_status;    /* one line for STATUS=, from the publisher */
        BusServer *bus;           /* org.projecthami.Dra1; NULL without a system bus */

        struct Metrics *metrics;   /* NULL without a metrics socket (manager-metrics.c) */
        struct MetricsServer *metrics_server;

        struct Reconciler *reconciler;   /* prepared claims against the API server (manager-reconcile.c) */
        struct DriverWatch *driver_watch; /* the host driver's files (driver-watch.c) */

        struct UsageMonitor *monitor; /* NULL until NVML can be loaded (manager-monitor.c) */
        sd_event_source *monitor_timer;
        bool monitor_unavailable_logged;

        ManagerState state;
        char *problems[_MANAGER_PROBLEM_MAX];
        char *degraded_reason;       /* the problems set, joined with "; " */
        sd_event_source *credentials_retry; /* looking for credentials that were missing */
        uint64_t credentials_retry_usec;
        char *last_status;
} Manager;

int manager_new(int argc, char *argv[], Manager **ret);
Manager *manager_free(Manager *m);
int manager_start(Manager *m);
int manager_run(Manager *m);

/* Re-read the configuration (SIGHUP, D-Bus Reload). */
int manager_reload(Manager *m);
/* Enumerate the GPUs again and publish any change (D-Bus Rescan, reload). */
int manager_rescan(Manager *m);

/*
 * Maintenance (D-Bus SetDeviceSchedulable): false puts a NoSchedule taint on the GPU in
 * the ResourceSlice. -ENOENT for an unknown GPU, -ENOTCONN without an API server client.
 */
int manager_set_device_schedulable(Manager *m, const char *name, bool schedulable);

const char *manager_state_to_string(ManagerState s);

/* Set (reason) or clear (NULL) one problem, and recompute the state from all of them. */
void manager_set_problem(Manager *m, ManagerProblem p, const char *reason);

/* Recompute the one-line STATUS= and send it when it changed; bring the D-Bus objects up to date. */
void manager_update_status(Manager *m);

static inline void manager_freep(Manager **m) {
        if (*m)
                manager_free(*m);
}
