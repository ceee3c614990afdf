/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The gRPC layer alone, wired to canned callbacks: lets the integration tests, the
 * benchmark and sanitizer runs exercise grpc-server.c without the rest of the daemon.
 *
 *   grpc-test-server --registration-socket PATH --dra-socket PATH [--driver-name NAME] [--gpus N]
 *
 * Socket activation: fds named "registration" and "dra" (FileDescriptorName=).
 * Prepare: a claim named "device-*" gets one device (with share_id), "unanswered-*" no
 * answer, "hold-*" makes us keep the request unanswered until exit (after the server is
 * freed: the orphan path), "block-main-*" blocks the main loop for 15 s first (GetInfo
 * must not care), others an error.
 * Unprepare: success. SIGUSR1 toggles hami-gpu-1 between healthy and unhealthy.
 * SIGUSR2 prints the stats and the bytes malloc() has handed out on stdout. SIGTERM/SIGINT: clean exit.
 */

#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <time.h>

#include "grpc-server.h"
#include "log.h"
#include "macro.h"
#include "rlimit-util.h"

#define GPUS_MAX 16

typedef struct TestServer {
        GrpcServer *grpc;
        unsigned n_gpus;
        bool gpu1_unhealthy;
        char names[GPUS_MAX][32];
        DraRequest *held[8];
        size_t n_held;
} TestServer;

static void on_registration_status(void *userdata, bool registered, const char *error) {
        if (registered)
                printf("registration-status: registered\n");
        else
                printf("registration-status: FAILED: %s\n", error);
        fflush(stdout);
}

static DraDevice *canned_device(void) {
        DraDevice *d = calloc(1, sizeof(DraDevice));
        if (!d)
                return NULL;
        d->request_names = calloc(2, sizeof(char *));
        d->cdi_device_ids = calloc(2, sizeof(char *));
        if (d->request_names)
                d->request_names[0] = strdup("gpu");
        if (d->cdi_device_ids)
                d->cdi_device_ids[0] = strdup("k8s.hami-core-gpu.project-hami.io/gpu=hami-gpu-0");
        d->pool_name = strdup("test-node");
        d->device_name = strdup("hami-gpu-0");
        d->share_id = strdup("6a9f1a9e-0000-4000-8000-000000000001");
        return d;
}

static void on_prepare(void *userdata, DraRequest *r) {
        TestServer *t = userdata;

        if (dra_request_n_claims(r) > 0 && strncmp(dra_request_claim(r, 0)->name, "hold-", 5) == 0 &&
            t->n_held < ELEMENTSOF(t->held)) {
                t->held[t->n_held++] = r;
                return;
        }
        for (size_t i = 0; i < dra_request_n_claims(r); i++) {
                const DraClaimRef *c = dra_request_claim(r, i);
                if (strncmp(c->name, "block-main-", 11) == 0)
                        (void) usleep(15 * 1000 * 1000);
                if (strncmp(c->name, "device-", 7) == 0)
                        (void) dra_request_set_devices(r, i, canned_device(), 1);
                else if (strncmp(c->name, "unanswered-", 11) != 0)
                        (void) dra_request_set_error(r, i, "prepare of %s/%s is not implemented", c->namespace_,
                                                     c->name);
        }
        dra_request_complete(r);
}

static void on_unprepare(void *userdata, DraRequest *r) {
        for (size_t i = 0; i < dra_request_n_claims(r); i++)
                (void) dra_request_set_done(r, i);
        dra_request_complete(r);
}

static void publish_health(TestServer *t) {
        DraDeviceHealth h[GPUS_MAX];

        for (unsigned i = 0; i < t->n_gpus; i++)
                h[i] = (DraDeviceHealth) {
                        .pool_name = "test-node",
                        .device_name = t->names[i],
                        .health = i == 1 && t->gpu1_unhealthy ? DRA_HEALTH_UNHEALTHY : DRA_HEALTH_HEALTHY,
                        .last_updated = time(NULL),
                        .message = i == 1 && t->gpu1_unhealthy ? "XID 79: GPU has fallen off the bus" : "",
                };
        (void) grpc_server_set_health(t->grpc, h, t->n_gpus);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        TestServer *t = userdata;
        GrpcServerStats st;

        switch (si->ssi_signo) {
        case SIGUSR1:
                t->gpu1_unhealthy = !t->gpu1_unhealthy;
                publish_health(t);
                return 0;
        case SIGUSR2:
                grpc_server_get_stats(t->grpc, &st);
                printf("stats: calls=%llu get_info=%llu connections=%llu streams=%u in_flight=%u heap_in_use=%zu\n",
                       (unsigned long long) st.calls, (unsigned long long) st.get_info_calls,
                       (unsigned long long) st.connections, st.health_streams, st.calls_in_flight,
                       mallinfo2().uordblks);
                fflush(stdout);
                return 0;
        default:
                return sd_event_exit(sd_event_source_get_event(s), 0);
        }
}

static void take_systemd_fds(GrpcServerConfig *cfg) {
        _cleanup_strv_free_ char **names = NULL;
        int n = sd_listen_fds_with_names(true, &names);

        for (int i = 0; i < n; i++) {
                if (streq(names[i], "registration"))
                        cfg->registration_fd = SD_LISTEN_FDS_START + i;
                else if (streq(names[i], "dra"))
                        cfg->dra_fd = SD_LISTEN_FDS_START + i;
        }
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "registration-socket", required_argument, NULL, 'r' },
                { "dra-socket", required_argument, NULL, 'd' },
                { "driver-name", required_argument, NULL, 'n' },
                { "gpus", required_argument, NULL, 'g' },
                {},
        };
        GrpcServerConfig cfg = {
                .driver_name = "hami-core-gpu.project-hami.io",
                .registration_fd = -1,
                .dra_fd = -1,
        };
        GrpcServerCallbacks cb = {
                .registration_status = on_registration_status,
                .prepare = on_prepare,
                .unprepare = on_unprepare,
        };
        TestServer t = { .n_gpus = 2 };
        sd_event *e = NULL;
        sigset_t ss;
        int c, r;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'r':
                        cfg.registration_socket = optarg;
                        break;
                case 'd':
                        cfg.dra_socket = optarg;
                        break;
                case 'n':
                        cfg.driver_name = optarg;
                        break;
                case 'g':
                        t.n_gpus = (unsigned) MIN(strtoul(optarg, NULL, 10), GPUS_MAX);
                        break;
                default:
                        return 2;
                }
        if (!cfg.registration_socket || !cfg.dra_socket) {
                fprintf(stderr, "--registration-socket and --dra-socket are required\n");
                return 2;
        }
        for (unsigned i = 0; i < t.n_gpus; i++)
                snprintf(t.names[i], sizeof(t.names[i]), "hami-gpu-%u", i);
        take_systemd_fds(&cfg);

        (void) rlimit_nofile_bump(NULL); /* as the daemon does */
        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        sigaddset(&ss, SIGUSR1);
        sigaddset(&ss, SIGUSR2);
        sigprocmask(SIG_BLOCK, &ss, NULL);
        signal(SIGPIPE, SIG_IGN);

        r = sd_event_default(&e);
        if (r < 0)
                return 1;
        (void) sd_event_add_signal(e, NULL, SIGTERM, on_signal, &t);
        (void) sd_event_add_signal(e, NULL, SIGINT, on_signal, &t);
        (void) sd_event_add_signal(e, NULL, SIGUSR1, on_signal, &t);
        (void) sd_event_add_signal(e, NULL, SIGUSR2, on_signal, &t);

        r = grpc_server_new(e, &cfg, &cb, &t, &t.grpc);
        if (r < 0) {
                log_error_errno(r, "Failed to start the gRPC server: %m");
                sd_event_unref(e);
                return 1;
        }
        publish_health(&t);
        printf("ready\n");
        fflush(stdout);
        (void) sd_notify(false, "READY=1");

        r = sd_event_loop(e);
        t.grpc = grpc_server_free(t.grpc);
        for (size_t i = 0; i < t.n_held; i++) /* orphaned by the free: completing only frees them */
                dra_request_complete(t.held[i]);
        sd_event_unref(e);
        printf("exited cleanly\n");
        return r < 0 ? 1 : 0;
}
