/* SPDX-License-Identifier: Apache-2.0 */

#include <inttypes.h>
#include <signal.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include "kept-connections.h"
#include "list.h"
#include "log.h"
#include "manager-dbus-claim.h"
#include "manager-dbus.h"
#include "manager-metrics.h"
#include "manager-monitor.h"
#include "manager-reconcile.h"
#include "manager.h"
#include "time-util.h"
#include "sandbox.h"

#define HEALTH_REFRESH_USEC (10ULL * 1000 * 1000) /* re-send the health list, well within... */
/* Looking again for what is missing at start (the NVIDIA driver, the API server
 * credentials): 2 s, doubling up to a minute. */
#define RETRY_MIN_USEC (2 * USEC_PER_SEC)
#define RETRY_MAX_USEC (60 * USEC_PER_SEC)
#define HEALTH_TIMEOUT_SECONDS 60                  /* ...the timeout we tell the kubelet */

static const char *const manager_state_table[] = {
        [MANAGER_STARTING] = "starting",
        [MANAGER_READY] = "ready",
        [MANAGER_DEGRADED] = "degraded",
        [MANAGER_STOPPING] = "stopping",
};

const char *manager_state_to_string(ManagerState s) {
        return s < ELEMENTSOF(manager_state_table) ? manager_state_table[s] : "unknown";
}

/* ---------------------------------------------------------------- status */

/* The problems joined, in a fixed order; NULL when there is none. */
static char *manager_join_problems(Manager *m) {
        char *joined = NULL;

        for (size_t i = 0; i < _MANAGER_PROBLEM_MAX; i++) {
                char *next;
                if (!m->problems[i])
                        continue;
                if (asprintf(&next, "%s%s%s", joined ?: "", joined ? "; " : "", m->problems[i]) < 0) {
                        free(joined);
                        (void) log_oom();
                        return NULL;
                }
                free(joined);
                joined = next;
        }
        return joined;
}

/* STARTING stays until manager_start() is done; after that, READY or DEGRADED. */
static void manager_recompute_state(Manager *m) {
        free(m->degraded_reason);
        m->degraded_reason = manager_join_problems(m);
        if (m->state != MANAGER_STARTING && m->state != MANAGER_STOPPING)
                m->state = m->degraded_reason ? MANAGER_DEGRADED : MANAGER_READY;
        manager_update_status(m);
}

void manager_set_problem(Manager *m, ManagerProblem p, const char *reason) {
        char *copy = NULL;

        if ((unsigned) p >= _MANAGER_PROBLEM_MAX)
                return;
        if (streq_ptr(m->problems[p], reason))
                return;
        if (reason && !(copy = strdup(reason)))
                (void) log_oom();
        free(m->problems[p]);
        m->problems[p] = copy;
        manager_recompute_state(m);
}

static char *manager_format_status(Manager *m) {
        _cleanup_free_ char *base = NULL;
        const char *registration;
        char *s;
        int r;

        if (m->registration_error)
                registration = "kubelet registration FAILED";
        else if (m->kubelet_registered)
                registration = "registered with the kubelet";
        else
                registration = "waiting for the kubelet";

        if (m->state == MANAGER_STOPPING)
                return strdup("Stopping: finishing the calls in progress, new connections wait for the next start");
        if (m->degraded_reason)
                r = asprintf(&base, "%s: %s; %zu GPU(s), %s", m->state == MANAGER_STARTING ? "Starting" : "Degraded",
                             m->degraded_reason,
                             m->gpus.n_gpus, registration);
        else if (m->registration_error)
                r = asprintf(&base, "%zu GPU(s); %s: %s", m->gpus.n_gpus, registration,
                             m->registration_error);
        else
                r = asprintf(&base, "%zu GPU(s) (%s); %s", m->gpus.n_gpus,
                             m->backend ? m->backend->ops->name : "no backend", registration);
        if (r < 0) {
                base = NULL;    /* undefined after a failed asprintf() */
                return NULL;
        }
        if (!m->apiserver_status || m->problems[MANAGER_PROBLEM_APISERVER] || m->problems[MANAGER_PROBLEM_CREDENTIALS])
                return TAKE_PTR(base);
        if (asprintf(&s, "%s; %s", base, m->apiserver_status) < 0)
                return NULL;
        return s;
}

void manager_update_status(Manager *m) {
        _cleanup_free_ char *status = manager_format_status(m);

        if (status && !streq_ptr(status, m->last_status)) {
                (void) sd_notifyf(false, "STATUS=%s", status);
                free(m->last_status);
                m->last_status = TAKE_PTR(status);
        }
        if (m->bus)
                (void) manager_dbus_sync(m, m->bus);
}

/* ---------------------------------------------------------------- health */

static DraHealthStatus health_to_dra(GpuHealth h) {
        switch (h) {
        case GPU_HEALTH_HEALTHY:
                return DRA_HEALTH_HEALTHY;
        case GPU_HEALTH_UNHEALTHY:
                return DRA_HEALTH_UNHEALTHY;
        default:
                return DRA_HEALTH_UNKNOWN;
        }
}

static int manager_publish_health(Manager *m) {
        _cleanup_free_ DraDeviceHealth *list = NULL;
        time_t now = time(NULL);

        if (!m->grpc)
                return 0;
        if (m->gpus.n_gpus > 0) {
                list = calloc(m->gpus.n_gpus, sizeof(*list));
                if (!list)
                        return log_oom();
        }
        for (size_t i = 0; i < m->gpus.n_gpus; i++) {
                const Gpu *g = &m->gpus.gpus[i];
                list[i] = (DraDeviceHealth) {
                        .pool_name = m->config.node_name,
                        .device_name = g->name,
                        .health = health_to_dra(g->health),
                        .last_updated = now,
                        .timeout_seconds = HEALTH_TIMEOUT_SECONDS,
                        .message = g->health_reason,
                };
        }
        return grpc_server_set_health(m->grpc, list, m->gpus.n_gpus);
}

static void manager_on_gpu_health(GpuBackend *b, const char *gpu_name, GpuHealth health,
                                  const char *reason, void *userdata) {
        Manager *m = userdata;

        for (size_t i = 0; i < m->gpus.n_gpus; i++) {
                Gpu *g = &m->gpus.gpus[i];
                if (!streq(g->name, gpu_name))
                        continue;
                if (g->health == health && streq(g->health_reason, reason ?: ""))
                        return;
                g->health = health;
                snprintf(g->health_reason, sizeof(g->health_reason), "%s", reason ?: "");
                g->health_changed = time(NULL);
                log_struct(health == GPU_HEALTH_HEALTHY ? LOG_NOTICE : LOG_WARNING,
                           LOG_MESSAGE("GPU %s (%s) is %s%s%s", g->name, g->uuid,
                                       gpu_health_to_string(health), isempty(reason) ? "" : ": ",
                                       reason ?: ""),
                           LOG_FIELD("DEVICE=%s", g->name), LOG_FIELD("GPU_UUID=%s", g->uuid),
                           LOG_FIELD("GPU_HEALTH=%s", gpu_health_to_string(health)), NULL);
                (void) manager_publish_health(m);
                if (m->publisher)
                        (void) slice_publisher_set_device_health(m->publisher, g->name, health, reason);
                if (m->bus)
                        (void) manager_dbus_sync(m, m->bus);
                return;
        }
        log_debug("Health event for unknown GPU %s, ignoring", gpu_name);
}

/* Whether claims can be prepared (the NVIDIA control nodes are there); while they are
 * not, the preparer looks again on every call. */
static void manager_check_prepare(Manager *m) {
        char why[256] = "", reason[320];

        if (!m->preparer)
                return;
        if (preparer_host_check(m->preparer, why, sizeof(why)) >= 0) {
                manager_set_problem(m, MANAGER_PROBLEM_PREPARE, NULL);
                return;
        }
        (void) snprintf(reason, sizeof(reason), "claims cannot be prepared: %s", why);
        manager_set_problem(m, MANAGER_PROBLEM_PREPARE, reason);
}

static int manager_on_health_refresh(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        manager_check_prepare(m);
        (void) manager_publish_health(m);
        return sd_event_source_set_time_relative(s, HEALTH_REFRESH_USEC);
}

/* ---------------------------------------------------------------- discovery */

static void manager_log_gpus(Manager *m) {
        log_info("Found %zu GPU(s) with the %s backend", m->gpus.n_gpus, m->backend->ops->name);
        for (size_t i = 0; i < m->gpus.n_gpus; i++) {
                const Gpu *g = &m->gpus.gpus[i];
                log_struct(LOG_INFO,
                           LOG_MESSAGE("%s: %s, %" PRIu64 " MiB, %s, PCI %s, driver %s", g->name,
                                       g->product_name, g->memory_total >> 20, g->uuid, g->pcie_bus_id,
                                       g->driver_version),
                           LOG_FIELD("DEVICE=%s", g->name), LOG_FIELD("GPU_UUID=%s", g->uuid),
                           LOG_FIELD("GPU_MODEL=%s", g->product_name),
                           LOG_FIELD("GPU_MEMORY_MIB=%" PRIu64, g->memory_total >> 20), NULL);
        }
        for (size_t i = 0; i < m->gpus.n_problems; i++)
                log_error("GPU at NVML index %u could not be used: %s", m->gpus.problems[i].index,
                          m->gpus.problems[i].what);
}

static int manager_on_backend_retry(sd_event_source *s, uint64_t usec, void *userdata);

int manager_rescan(Manager *m) {
        GpuList fresh = {};
        int r;

        manager_rescan_driver(m);

        if (!m->backend) {
                /* The driver is not there yet: try now (hamictl rescan after installing
                 * it), and the retry timer keeps trying. */
                if (m->backend_retry)
                        (void) manager_on_backend_retry(m->backend_retry, 0, m);
                return 0;
        }
        r = gpu_backend_enumerate(m->backend, &fresh);
        if (r < 0)
                return log_error_errno(r, "GPU discovery failed: %m");

        /* Health comes from events, not from enumeration: carry it over. */
        for (size_t i = 0; i < fresh.n_gpus; i++) {
                const Gpu *old = gpu_list_find(&m->gpus, fresh.gpus[i].name);
                if (old && streq(old->uuid, fresh.gpus[i].uuid)) {
                        fresh.gpus[i].health = old->health;
                        memcpy(fresh.gpus[i].health_reason, old->health_reason,
                               sizeof(old->health_reason));
                        fresh.gpus[i].health_changed = old->health_changed;
                }
        }

        bool changed = !gpu_list_equal(&m->gpus, &fresh) || m->gpus.n_problems != fresh.n_problems;
        gpu_list_done(&m->gpus);
        m->gpus = fresh;
        if (changed) {
                manager_log_gpus(m);
                (void) manager_publish_health(m);
                if (m->publisher)
                        (void) slice_publisher_set_devices(m->publisher, &m->gpus);
                if (m->preparer)
                        (void) preparer_set_gpus(m->preparer, &m->gpus);
        }

        manager_set_problem(m, MANAGER_PROBLEM_GPUS,
                            m->gpus.n_problems > 0 ? "some GPUs could not be read, see the log" : NULL);
        manager_update_status(m);
        return changed;
}

/* ---------------------------------------------------------------- gRPC callbacks */

static void manager_on_registration_status(void *userdata, bool registered, const char *error) {
        Manager *m = userdata;

        free(m->registration_error);
        m->registration_error = NULL;
        m->kubelet_registered = registered;
        if (registered)
                log_struct(LOG_INFO,
                           LOG_MESSAGE("The kubelet accepted the registration of %s",
                                       m->config.driver_name),
                           LOG_FIELD("DRIVER=%s", m->config.driver_name), NULL);
        else {
                m->registration_error = strdup(isempty(error) ? "no reason given" : error);
                log_struct(LOG_ERR,
                           LOG_MESSAGE("The kubelet REJECTED the registration of %s: %s",
                                       m->config.driver_name, isempty(error) ? "no reason given" : error),
                           LOG_FIELD("DRIVER=%s", m->config.driver_name), NULL);
        }
        manager_update_status(m);
}

static void manager_on_prepare(void *userdata, DraRequest *r) {
        Manager *m = userdata;
        dra_service_prepare(m->dra_service, r);
}

static void manager_on_unprepare(void *userdata, DraRequest *r) {
        Manager *m = userdata;
        dra_service_unprepare(m->dra_service, r);
}

/* ---------------------------------------------------------------- prepare */

/*
 * The DRA service's claim fetcher: a GET through the API client, the answer handed back
 * as is. Without an API client only claims that are already prepared (answered from
 * the Preparer's records) can be served.
 */
typedef struct ManagerFetch {
        ClaimFetchDone done;
        void *ctx;
        Manager *manager;
        struct ManagerFetch *prev, *next;
} ManagerFetch;

static void manager_fetch_free(ManagerFetch *f) {
        LIST_REMOVE(f->manager->fetches, f);
        free(f);
}

static void manager_on_claim_fetched(KubeClient *c, const KubeResponse *r, void *userdata) {
        ManagerFetch *f = userdata;

        f->done(f->ctx, r->error, r->status, r->body, r->body_size, r->message);
        manager_fetch_free(f);
}

static int manager_fetch_claim(void *userdata, const char *ns, const char *name, ClaimFetchDone done,
                               void *ctx) {
        Manager *m = userdata;
        ManagerFetch *f;
        int r;

        if (!m->kube)
                return -EOPNOTSUPP; /* no credentials: the DRA service says so per claim */
        f = malloc(sizeof(*f));
        if (!f)
                return -ENOMEM;
        *f = (ManagerFetch) { .done = done, .ctx = ctx, .manager = m };
        LIST_PREPEND(m->fetches, f);
        r = kube_client_get_resource_claim(m->kube, ns, name, manager_on_claim_fetched, f);
        if (r < 0)
                manager_fetch_free(f);
        return r;
}

/* Prepared, unprepared, released, forgotten: the D-Bus objects follow. */
static void manager_on_claim_changed(void *userdata, const char *uid, const PreparedClaim *c) {
        Manager *m = userdata;
        _cleanup_(bus_claim_done) BusClaim b = {};

        manager_metrics_claim_changed(m, uid, c);
        if (!m->bus)
                return;
        if (!c)
                (void) bus_server_claim_unprepared(m->bus, uid);  /* -ENOENT for unknown claims: fine */
        else if (manager_dbus_claim_from_prepared(c, m->config.state_dir, &b) >= 0)
                (void) bus_server_claim_prepared(m->bus, &b);
}

static void manager_publish_claim(void *userdata, const PreparedClaim *c) {
        manager_on_claim_changed(userdata, c->uid, c);
}

/* Once the API client is up: forget claims deleted or re-created while we were down. */
static void manager_verify_recovered(Manager *m) {
        if (!m->dra_service || m->n_recovered == 0)
                return;
        (void) dra_service_verify(m->dra_service, TAKE_PTR(m->recovered), m->n_recovered);
        m->n_recovered = 0;
}

static int manager_setup_prepare(Manager *m) {
        int r;

        PrepareOptions o = {
                .driver_name = m->config.driver_name,
                .node_name = m->config.node_name,
                .cdi_dir = m->config.cdi_dir,
                .state_dir = m->config.state_dir,
                .preload_library = m->config.preload_library,
                .driver_from_runtime = m->config.driver_from_runtime,
                /* Test and demo set-ups (mock GPUs) point these at mknod fixtures. */
                .dev_root = secure_getenv("HAMI_DRA_DEV_ROOT") ?: "/",
                .driver_root = secure_getenv("HAMI_DRA_DRIVER_ROOT") ?: "/",
        };
        r = preparer_new(&o, &m->gpus, &m->preparer);
        if (r < 0)
                return log_error_errno(r, "Failed to set up prepare in %s and %s: %m", o.state_dir, o.cdi_dir);
        /* Before serving: every claim fully prepared or fully absent. */
        r = preparer_recover(m->preparer, &m->recovered, &m->n_recovered);
        if (r < 0)
                return log_error_errno(r, "Failed to recover the prepared claims: %m");
        r = dra_service_new(m->event, m->preparer, manager_fetch_claim, m, 0, &m->dra_service);
        if (r < 0)
                return log_error_errno(r, "Failed to start the prepare workers: %m");
        return 0;
}

/* ---------------------------------------------------------------- sockets */

static int manager_take_listen_fds(Manager *m) {
        _cleanup_strv_free_ char **names = NULL;
        int n;

        n = sd_listen_fds_with_names(true, &names);
        if (n < 0)
                return log_error_errno(n, "Failed to read the sockets passed by systemd: %m");
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;
                const char *name = names && names[i] ? names[i] : "unknown";

                /* A connection an earlier instance kept for its client (kept-connections.h):
                 * systemd holds its own copy until the client closes it. */
                if (kept_connection_is_ours(name)) {
                        log_debug("Connection of an earlier instance passed back (fd %d), closing our copy", fd);
                        safe_close(fd);
                /* /metrics: TCP (hami-dra-metrics.socket), or any stream socket. */
                } else if (streq(name, "metrics") && m->listen_fd_metrics < 0 &&
                    sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) > 0)
                        m->listen_fd_metrics = fd;
                else if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0) {
                        log_warning("Passed fd %d (%s) is not a listening AF_UNIX stream socket, ignoring",
                                    fd, name);
                        safe_close(fd);
                } else if (streq(name, "registration") && m->listen_fd_registration < 0)
                        m->listen_fd_registration = fd;
                else if (streq(name, "dra") && m->listen_fd_dra < 0)
                        m->listen_fd_dra = fd;
                else {
                        log_warning("Passed socket \"%s\" (fd %d) is not one of ours (FileDescriptorName= "
                                    "registration, dra or metrics), ignoring", name, fd);
                        safe_close(fd);
                }
        }
        if (n > 0)
                log_info("Socket-activated: registration socket %s, DRA socket %s",
                         m->listen_fd_registration >= 0 ? "from systemd" : "bound here",
                         m->listen_fd_dra >= 0 ? "from systemd" : "bound here");
        return 0;
}

static int manager_start_grpc(Manager *m) {
        static const GrpcServerCallbacks callbacks = {
                .registration_status = manager_on_registration_status,
                .prepare = manager_on_prepare,
                .unprepare = manager_on_unprepare,
        };
        _cleanup_free_ char *reg = config_registration_socket(&m->config),
                           *dra = config_dra_socket(&m->config);
        int r;

        if (!reg || !dra)
                return log_oom();

        GrpcServerConfig cfg = {
                .driver_name = m->config.driver_name,
                .registration_socket = reg,
                .dra_socket = dra,
                .registration_fd = m->listen_fd_registration,
                .dra_fd = m->listen_fd_dra,
        };
        r = grpc_server_new(m->event, &cfg, &callbacks, m, &m->grpc);
        /* The server owns the listening fds now, even when it failed. */
        m->listen_fd_registration = m->listen_fd_dra = -EBADF;
        if (r < 0)
                return log_error_errno(r, "Failed to start the kubelet gRPC services: %m");
        log_info("Serving DRA on %s and registration on %s", dra, reg);
        return 0;
}

/* ---------------------------------------------------------------- signals, reload */

static int manager_open_backend(Manager *m) {
        int r;

        r = gpu_backend_open(&m->config, &m->backend);
        if (r < 0)
                return log_error_errno(r, "Failed to open the %s GPU backend: %m",
                                       m->config.backend == GPU_BACKEND_MOCK ? "mock" : "nvml");
        return 0;
}

static int manager_watch_health(Manager *m) {
        int r;

        r = gpu_backend_watch_health(m->backend, m->event, manager_on_gpu_health, m);
        if (r < 0)
                /* Discovery worked; without events we still serve, and say so. */
                log_warning_errno(r, "Cannot watch GPU health events, health stays as discovered: %m");
        return 0;
}

/* The backend keeps what it read from the configuration at open: a new [Mock] needs a new one. */
static int manager_reopen_backend(Manager *m) {
        GpuBackend *old = TAKE_PTR(m->backend);
        int r;

        r = manager_open_backend(m);
        if (r < 0) {
                m->backend = old; /* keep serving what we had */
                return r;
        }
        gpu_backend_free(old);
        log_info("Reopened the %s GPU backend with the new configuration", m->backend->ops->name);
        return manager_watch_health(m);
}

static void manager_on_grpc_stopped(void *userdata) {
        Manager *m = userdata;

        log_debug("Every call answered, exiting");
        (void) sd_event_exit(m->event, 0);
}

/*
 * SIGTERM (systemctl stop or restart): the gRPC server stops gracefully while the event
 * loop runs on, so prepares in progress finish and are answered; only then do we exit.
 * A second SIGTERM exits at once.
 */
static int manager_on_terminate(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        if (m->state == MANAGER_STOPPING || !m->grpc) {
                log_info("Received SIG%s, exiting now", sigabbrev_np((int) si->ssi_signo));
                return sd_event_exit(m->event, 0);
        }
        log_info("Received SIG%s, stopping: finishing the calls in progress", sigabbrev_np((int) si->ssi_signo));
        (void) sd_notify(false, "STOPPING=1");
        m->state = MANAGER_STOPPING;
        manager_update_status(m);
        if (grpc_server_stop(m->grpc, manager_on_grpc_stopped, m) < 0)
                return sd_event_exit(m->event, 0);
        return 0;
}

static int manager_on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        (void) manager_reload(userdata);
        return 0;
}

/* Settings that only take effect on restart: sockets, names and directories are bound at start. */
static void manager_warn_restart_needed(const Config *old, const Config *new) {
        static const struct {
                const char *key;
                size_t offset;
        } fixed[] = {
                { "DriverName", offsetof(Config, driver_name) },
                { "NodeName", offsetof(Config, node_name) },
                { "RegistryDirectory", offsetof(Config, registry_dir) },
                { "PluginsDirectory", offsetof(Config, plugins_dir) },
                { "CDIDirectory", offsetof(Config, cdi_dir) },
                { "StateDirectory", offsetof(Config, state_dir) },
        };

        for (size_t i = 0; i < ELEMENTSOF(fixed); i++) {
                const char *a = *(char *const *) ((const uint8_t *) old + fixed[i].offset);
                const char *b = *(char *const *) ((const uint8_t *) new + fixed[i].offset);
                if (!streq_ptr(a, b))
                        log_warning("%s= changed from %s to %s: takes effect on the next restart",
                                    fixed[i].key, a, b);
        }
        if (old->backend != new->backend)
                log_warning("Backend= changed: takes effect on the next restart");
}

static int manager_setup_apiserver(Manager *m);
static void manager_reload_credentials(Manager *m);

int manager_reload(Manager *m) {
        Config fresh;
        int r;

        (void) sd_notifyf(false, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64 "\nSTATUS=Reloading the configuration",
                          now_usec());
        /* STATUS= is now this line, whatever was sent last: the next update must be sent
         * even when the state is what it was before the reload. */
        m->last_status = mfree(m->last_status);
        r = config_init(&fresh);
        if (r >= 0)
                r = config_parse_argv(&fresh, m->argc, m->argv);
        if (r < 0) {
                log_error_errno(r, "Reloading the configuration failed, keeping the old one: %m");
                config_done(&fresh);
                (void) sd_notify(false, "READY=1");
                manager_update_status(m);
                return r;
        }

        manager_warn_restart_needed(&m->config, &fresh);
        bool mock_changed = fresh.mock_gpus != m->config.mock_gpus ||
                            fresh.mock_memory != m->config.mock_memory ||
                            !streq_ptr(fresh.mock_model, m->config.mock_model);

        /* Carry over what is bound at start; take the rest. */
        Config keep = m->config;
        SWAP_FIELD(fresh, keep, driver_name);
        SWAP_FIELD(fresh, keep, node_name);
        SWAP_FIELD(fresh, keep, registry_dir);
        SWAP_FIELD(fresh, keep, plugins_dir);
        SWAP_FIELD(fresh, keep, cdi_dir);
        SWAP_FIELD(fresh, keep, state_dir);
        fresh.backend = keep.backend;
        config_done(&keep);
        m->config = fresh;

        log_set_max_level(m->config.log_level);
        log_info("Configuration reloaded");
        manager_reload_reconcile(m);
        if (mock_changed && m->config.backend == GPU_BACKEND_MOCK)
                (void) manager_reopen_backend(m);
        (void) manager_rescan(m);
        if (!m->kube) {
                /* Credentials that were missing (a kubelet.conf written after start). */
                m->credentials_retry_usec = 0;
                (void) manager_setup_apiserver(m);
        } else
                manager_reload_credentials(m);
        (void) sd_notify(false, "READY=1");
        manager_update_status(m);
        return 0;
}

/* ---------------------------------------------------------------- life */

int manager_new(int argc, char *argv[], Manager **ret) {
        _cleanup_(manager_freep) Manager *m = NULL;
        int r;

        m = calloc(1, sizeof(*m));
        if (!m)
                return log_oom();
        m->argc = argc;
        m->argv = argv;
        m->listen_fd_registration = m->listen_fd_dra = m->listen_fd_metrics = -EBADF;

        r = config_init(&m->config);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the default configuration: %m");
        r = config_parse_argv(&m->config, argc, argv);
        if (r != 0)
                return r; /* 1: --help or --version was printed */

        *ret = TAKE_PTR(m);
        return 0;
}

static int manager_setup_event(Manager *m) {
        int r;

        r = sd_event_default(&m->event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");
        /* sd-event sends WATCHDOG=1 itself when the service manager armed the watchdog. */
        r = sd_event_set_watchdog(m->event, true);
        if (r < 0)
                return log_error_errno(r, "Failed to enable the watchdog: %m");
        if (r > 0)
                log_debug("Service watchdog armed");
        r = sd_event_add_signal(m->event, NULL, SIGTERM, manager_on_terminate, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, NULL, SIGINT, manager_on_terminate, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, NULL, SIGHUP, manager_on_sighup, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch signals: %m");
        return 0;
}

/* What STATUS= and D-Bus say while the NVIDIA driver cannot be used. */
static const char *backend_missing_reason(int error) {
        switch (error) {
        case -ENOENT:
                return "no NVIDIA driver: libnvidia-ml.so.1 cannot be loaded; install the driver "
                       "(hami-dra-plugin picks it up by itself) or set Backend=mock";
        case -ENOSYS:
                return "the NVIDIA driver is too old for hami-dra (see the log); upgrade it";
        default:
                return "the NVIDIA driver does not answer (NVML failed to initialise, see the log); "
                       "is the kernel module loaded?";
        }
}

static int manager_on_backend_retry(sd_event_source *s, uint64_t usec, void *userdata);

/* The NVIDIA kernel module is loaded on the host (the proc file it creates). */
static bool nvidia_module_loaded(void) {
        return access("/proc/driver/nvidia/version", F_OK) == 0;
}

static int manager_backend_ready(Manager *m) {
        int r;

        manager_check_prepare(m); /* the driver's nodes may have come with it */

        r = manager_rescan(m);
        if (r < 0)
                return r;
        return manager_watch_health(m);
}

/* The backend could not be opened (the NVIDIA driver is not installed yet, a common
 * provisioning order): serve the kubelet with no GPUs, say why, and try again with
 * backoff, instead of exiting into a restart loop that ends in failed sockets. */
/* Arm the one-shot timer *source (made on first use) after the next delay of *delay_usec:
 * RETRY_MIN_USEC, doubling up to RETRY_MAX_USEC; 0 in *delay_usec starts over. */
static int manager_schedule_retry(Manager *m, sd_event_source **source, uint64_t *delay_usec,
                                  sd_event_time_handler_t handler) {
        int r;

        *delay_usec = *delay_usec == 0 ? RETRY_MIN_USEC : MIN(*delay_usec * 2, RETRY_MAX_USEC);
        if (!*source)
                return sd_event_add_time_relative(m->event, source, CLOCK_MONOTONIC, *delay_usec, 0, handler, m);
        r = sd_event_source_set_time_relative(*source, *delay_usec);
        if (r >= 0)
                r = sd_event_source_set_enabled(*source, SD_EVENT_ONESHOT);
        return r;
}

static int manager_wait_for_backend(Manager *m, int error) {
        int r;

        manager_set_problem(m, MANAGER_PROBLEM_DRIVER, backend_missing_reason(error));
        r = manager_schedule_retry(m, &m->backend_retry, &m->backend_retry_usec, manager_on_backend_retry);
        log_warning("Serving without GPUs until the NVIDIA driver is usable; trying again in %" PRIu64 " s",
                    m->backend_retry_usec / USEC_PER_SEC);
        return r;
}

static int manager_on_backend_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        int r;

        r = manager_open_backend(m);
        if (r < 0 && m->config.sandbox && !m->driver_loaded_at_start && nvidia_module_loaded()) {
                /* The unit's private /dev and device cgroup were made before the module
                 * was loaded: its device nodes cannot reach us. A fresh start gets them. */
                log_notice("The NVIDIA kernel module was loaded after hami-dra-plugin started; restarting "
                           "so that its sandbox includes the driver's device nodes");
                (void) sd_notify(false, "STOPPING=1\nSTATUS=Restarting to take up the NVIDIA driver");
                return sd_event_exit(m->event, MANAGER_EXIT_RESTART);
        }
        if (r < 0) {
                (void) manager_wait_for_backend(m, r);
                return 0;
        }
        m->backend_retry_usec = 0;
        log_info("The NVIDIA driver is usable now: discovering the GPUs");
        manager_set_problem(m, MANAGER_PROBLEM_DRIVER, NULL);
        (void) manager_backend_ready(m);
        return 0;
}

static int manager_setup_gpus(Manager *m) {
        int r;

        r = sd_event_add_time_relative(m->event, &m->health_refresh, CLOCK_MONOTONIC, HEALTH_REFRESH_USEC, 0,
                                       manager_on_health_refresh, m);
        if (r < 0)
                return r;
        m->driver_loaded_at_start = nvidia_module_loaded();
        r = manager_open_backend(m);
        if (r < 0 && m->config.backend == GPU_BACKEND_NVML && r != -ENOMEM)
                return manager_wait_for_backend(m, r);
        if (r < 0)
                return r; /* the mock backend's configuration is wrong: say so and stop */
        r = manager_rescan(m);
        if (r < 0)
                return r;
        return manager_watch_health(m);
}

/* ---------------------------------------------------------------- API server */

int manager_set_device_schedulable(Manager *m, const char *name, bool schedulable) {
        if (!gpu_list_find(&m->gpus, name))
                return -ENOENT;
        if (!m->publisher)
                return -ENOTCONN;
        return slice_publisher_set_device_schedulable(m->publisher, name, schedulable);
}

static void manager_on_publisher_status(SlicePublisher *p, const SlicePublisherStatus *st, void *userdata) {
        Manager *m = userdata;
        char line[1024];

        if (slice_publisher_status_format(st, line, sizeof(line)) < 0)
                return;
        if (!st->api_reachable && m->problems[MANAGER_PROBLEM_APISERVER] == NULL)
                log_warning("The API server does not answer: %s", line);
        else if (st->api_reachable && m->problems[MANAGER_PROBLEM_APISERVER] && st->consumable_capacity != 0)
                log_info("The API server answers again: %s", line); /* recovery from an outage */
        free(m->apiserver_status);
        m->apiserver_status = strdup(line);
        /* Unreachable, refusing (401/403: a failed sync), or without the feature gate:
         * the node's GPUs are not (correctly) published. */
        manager_set_problem(m, MANAGER_PROBLEM_APISERVER,
                            !st->api_reachable || st->consumable_capacity == 0 || (!st->synced && st->last_error)
                                    ? line : NULL);
        manager_update_status(m);
}

/*
 * The API client and the slice publisher. Without credentials, or while the API server
 * is down, the daemon still serves the kubelet: the publisher retries on its own.
 */
/* What STATUS= says when the credentials cannot be loaded (the log has the details). */
static const char *credentials_missing_reason(Manager *m, int error) {
        static char buf[PATH_MAX + 256];

        if (error == -ENOENT)
                (void) snprintf(buf, sizeof(buf),
                                "no API server credentials: %s%s and KUBERNETES_SERVICE_HOST is not set; "
                                "ResourceSlices are not published until they appear",
                                isempty(m->config.kubeconfig) ? "Kubeconfig= is empty" : m->config.kubeconfig,
                                isempty(m->config.kubeconfig) ? "" : " does not exist");
        else
                (void) snprintf(buf, sizeof(buf),
                                "the API server credentials cannot be used (%s, see the log); ResourceSlices are "
                                "not published", strerror(-error));
        return buf;
}

static int manager_on_credentials_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        if (!m->kube)
                (void) manager_setup_apiserver(m);
        return 0;
}

/* Look for the credentials again later: 2 s, doubling up to a minute (and at reload). */
static int manager_retry_credentials(Manager *m) {
        return manager_schedule_retry(m, &m->credentials_retry, &m->credentials_retry_usec,
                                      manager_on_credentials_retry);
}

/* Reload: credentials that changed (another server, a rotated certificate file named
 * anew, a new token) are used from the next request on; unreadable ones leave the client
 * as it is. */
static void manager_reload_credentials(Manager *m) {
        _cleanup_(kube_credentials_done) KubeCredentials creds = {};
        int r;

        r = kube_credentials_load(m->config.kubeconfig, &creds);
        if (r < 0) {
                log_warning_errno(r, "Reload: the API server credentials cannot be read, keeping %s: %m",
                                  kube_client_credential_description(m->kube));
                return;
        }
        r = kube_client_set_credentials(m->kube, &creds);
        if (r <= 0) {
                if (r < 0)
                        log_warning_errno(r, "Reload: the new API server credentials cannot be used, keeping %s: %m",
                                          kube_client_credential_description(m->kube));
                return;
        }
        log_info("Reload: API server %s, authenticating with %s", kube_client_server(m->kube),
                 kube_client_credential_description(m->kube));
        if (m->publisher)
                slice_publisher_restart(m->publisher);
}

/* The unit's IP sandbox, read once from systemd: the API client names it when it drops a
 * connection. Not under systemd, or no system bus: nothing to name. */
static void manager_load_ip_sandbox(Manager *m) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        if (sd_bus_open_system(&bus) < 0)
                return;
        r = ip_sandbox_load(bus, &m->ip_sandbox);
        if (r < 0)
                log_debug_errno(r, "Not reading the unit's IP sandbox: %m");
        else
                log_debug("%s: IPAddressAllow= %zu prefixes, IPAddressDeny= %zu", m->ip_sandbox.unit,
                          m->ip_sandbox.n_allow, m->ip_sandbox.n_deny);
}

static int manager_setup_apiserver(Manager *m) {
        KubeCredentials creds = {};
        int r;

        r = kube_credentials_load(m->config.kubeconfig, &creds);
        if (r < 0) {
                manager_set_problem(m, MANAGER_PROBLEM_CREDENTIALS, credentials_missing_reason(m, r));
                return manager_retry_credentials(m);
        }
        if (m->problems[MANAGER_PROBLEM_CREDENTIALS])
                log_info("API server credentials found");
        manager_set_problem(m, MANAGER_PROBLEM_CREDENTIALS, NULL);
        m->credentials_retry_usec = 0;
        r = kube_client_new(m->event, &creds, &(KubeClientOptions) { .ip_sandbox = &m->ip_sandbox }, &m->kube);
        kube_credentials_done(&creds);
        if (r < 0) {
                log_error_errno(r, "Failed to set up the API server client, ResourceSlices are NOT published: %m");
                return r == -ENOMEM ? r : 0;
        }
        log_info("API server %s, authenticating with %s", kube_client_server(m->kube),
                 kube_client_credential_description(m->kube));

        r = slice_publisher_new(m->event, m->kube, m->config.driver_name, m->config.node_name, NULL,
                                &m->publisher);
        if (r < 0) {
                log_error_errno(r, "Failed to set up the ResourceSlice publisher (driver %s, node %s), ResourceSlices are NOT published: %m",
                                m->config.driver_name, m->config.node_name);
                return r == -ENOMEM ? r : 0;
        }
        slice_publisher_set_status_handler(m->publisher, manager_on_publisher_status, m);
        r = slice_publisher_set_devices(m->publisher, &m->gpus);
        if (r < 0)
                return log_error_errno(r, "Failed to hand the GPUs to the publisher: %m");
        return slice_publisher_start(m->publisher);
}

int manager_start(Manager *m) {
        int r;

        log_set_max_level(m->config.log_level);
        (void) sd_notify(false, "STATUS=Starting");

        /* Capabilities are per thread: drop them before anything starts one. */
        r = sandbox_drop_capabilities(&m->config);
        if (r < 0)
                return r;

        r = manager_setup_event(m);
        if (r < 0)
                return r;
        r = manager_take_listen_fds(m);
        if (r < 0)
                return r;
        r = manager_setup_gpus(m);
        if (r < 0)
                return r;
        r = manager_setup_prepare(m);
        if (r < 0)
                return r;
        manager_check_prepare(m);
        r = manager_start_grpc(m);
        if (r < 0)
                return r;
        (void) manager_publish_health(m);
        manager_load_ip_sandbox(m);
        r = manager_setup_apiserver(m);
        if (r < 0)
                return r;
        /* After the API client is set up (it reads the claims). */
        manager_verify_recovered(m);
        r = manager_setup_reconcile(m);
        if (r < 0)
                return r;

        r = manager_setup_metrics(m);
        if (r < 0)
                return r;
        r = manager_dbus_start(m, &m->bus);
        if (r < 0)
                /* No system bus (a container, a test) is no reason to stop serving the kubelet. */
                log_warning_errno(r, "Not on the system bus, org.projecthami.Dra1 is unavailable: %m");
        /* The D-Bus objects and the metrics follow the prepared claims. */
        dra_service_set_observer(m->dra_service, manager_on_claim_changed, m);
        (void) preparer_foreach(m->preparer, manager_publish_claim, m);

        r = manager_setup_monitor(m);
        if (r < 0)
                return r;

        /* Everything is open and bound: from here on only the allowlisted calls. */
        r = sandbox_apply(&m->config);
        if (r < 0)
                return r;

        m->state = MANAGER_READY;
        manager_recompute_state(m);
        (void) sd_notify(false, "READY=1");
        manager_update_status(m);
        log_info("hami-dra-plugin %s ready: driver %s on node %s", PACKAGE_VERSION,
                 m->config.driver_name, m->config.node_name);
        return 0;
}

int manager_run(Manager *m) {
        return sd_event_loop(m->event);
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        /* gRPC first: no callback may run into a half-freed manager. */
        m->grpc = grpc_server_free(m->grpc);
        m->publisher = slice_publisher_free(m->publisher);
        manager_free_reconcile(m); /* its requests, before the client */
        m->kube = kube_client_free(m->kube);
        ip_sandbox_done(&m->ip_sandbox);
        /* Its claim GETs went without an answer; the DRA service answers their jobs when freed. */
        while (m->fetches)
                manager_fetch_free(m->fetches);
        free(m->apiserver_status);
        /* Then the DRA service: waits for its workers and completes what is still in flight. */
        m->dra_service = dra_service_free(m->dra_service);
        manager_free_monitor(m);
        manager_free_metrics(m);
        m->preparer = preparer_free(m->preparer);
        preparer_claims_free(m->recovered, m->n_recovered);
        m->bus = bus_server_free(m->bus);
        m->health_refresh = sd_event_source_disable_unref(m->health_refresh);
        m->backend_retry = sd_event_source_disable_unref(m->backend_retry);
        m->backend = gpu_backend_free(m->backend);
        gpu_list_done(&m->gpus);
        safe_close(m->listen_fd_registration);
        safe_close(m->listen_fd_dra);
        m->event = sd_event_unref(m->event);
        free(m->registration_error);
        for (size_t i = 0; i < _MANAGER_PROBLEM_MAX; i++)
                free(m->problems[i]);
        m->credentials_retry = sd_event_source_disable_unref(m->credentials_retry);
        free(m->degraded_reason);
        free(m->last_status);
        config_done(&m->config);
        free(m);
        return NULL;
}
