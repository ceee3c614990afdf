/* SPDX-License-Identifier: Apache-2.0 */

/*
 * bench-dbus: the cost of the org.projecthami.Dra1 objects with 5,000 prepared claims
 * on one GPU, through a real dbus-daemon (started here, private, no policy).
 *
 *   bench-dbus [N_CLAIMS]       (default 5000)
 *
 * The server (the real bus objects of libhami-core) runs in a thread with its own
 * sd-event loop and bus connection; the client calls synchronously and times each
 * round trip. Each claim has a shared-region file (a decimal byte count, read by a
 * bench reader), so "cold" rows include reading 5,000 files.
 * Prints median and p99 per call, and the ratio of each median to the baseline
 * (Properties.Get of Version) measured in the same run.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "dbus/server.h"
#include "log.h"
#include "macro.h"

extern char **environ;

#define BUS_CONF                                                                                  \
        "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"   \
        " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"                   \
        "<busconfig><type>session</type><listen>unix:path=%s/bus</listen><auth>EXTERNAL</auth>"  \
        "<policy context=\"default\"><allow send_destination=\"*\"/><allow own=\"*\"/>"          \
        "<allow user=\"*\"/><allow receive_type=\"method_call\"/><allow receive_type=\"method_return\"/>"  \
        "<allow receive_type=\"error\"/><allow receive_type=\"signal\"/></policy></busconfig>\n"

typedef struct Server {
        char address[512];
        char dir[256];
        unsigned n_claims;
        uint64_t cache_usec;
        pthread_t thread;
        sd_event *event;          /* owned by the thread; exit via sd_event_exit from a signal */
        int ready_pipe[2];
        int stop_fd;              /* eventfd-like: a pipe the thread watches */
        int stop_pipe[2];
} Server;

static int bench_reader(const char *path, SharedRegionUsage *ret) {
        char buf[32];
        ssize_t k;
        int fd;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        k = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (k <= 0)
                return -EBADMSG;
        buf[k] = 0;
        *ret = (SharedRegionUsage) { .n_devices = 1, .n_active = 1, .used[0] = strtoull(buf, NULL, 10) };
        return 0;
}

static int on_stop(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static int server_fill(Server *sv, BusServer *s) {
        BusDevice d = {
                .name = "hami-gpu-0",
                .uuid = "GPU-00000000-0000-0000-0000-000000000000",
                .model = "NVIDIA A10",
                .memory_total = 24ull << 30,
                .cores = 100,
                .health = GPU_HEALTH_HEALTHY,
                .schedulable = true,
        };
        int r;

        r = bus_server_set_properties(s, &(BusManagerProps) {
                .driver_name = "hami-core-gpu.project-hami.io",
                .node_name = "bench-node",
                .state = BUS_STATE_READY,
        });
        if (r >= 0)
                r = bus_server_set_devices(s, &d, 1);
        for (unsigned i = 0; r >= 0 && i < sv->n_claims; i++) {
                char uid[64], name[64], region[512];
                BusClaimDevice cd = { .device = "hami-gpu-0", .memory_limit = 1u << 20, .cores_limit = 1 };

                snprintf(uid, sizeof uid, "%08x-9f4e-4c61-8d3a-%012x", i, i);
                snprintf(name, sizeof name, "claim-%u", i);
                snprintf(region, sizeof region, "%s/r%u", sv->dir, i);
                r = bus_server_claim_prepared(s, &(BusClaim) {
                        .uid = uid, .namespace_ = (char *) "bench", .name = name,
                        .shared_region = region, .devices = &cd, .n_devices = 1,
                });
        }
        return r;
}

static void *server_thread(void *userdata) {
        Server *sv = userdata;
        _cleanup_(bus_server_freep) BusServer *s = NULL;
        sd_bus *bus = NULL;
        sd_event *e = NULL;
        int r;

        r = sd_event_new(&e);
        if (r >= 0)
                r = bus_server_new(e, NULL, NULL, &s);
        if (r >= 0) {
                bus_server_set_usage_reader(s, bench_reader);
                bus_server_set_usage_cache(s, sv->cache_usec);
                r = server_fill(sv, s);
        }
        if (r >= 0)
                r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_address(bus, sv->address);
        if (r >= 0)
                r = sd_bus_set_bus_client(bus, 1);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r >= 0)
                r = sd_bus_attach_event(bus, e, 0);
        if (r >= 0)
                r = bus_server_attach(s, bus);
        if (r >= 0)
                r = sd_bus_request_name(bus, BUS_SERVICE_NAME, 0);
        if (r >= 0)
                r = sd_event_add_io(e, NULL, sv->stop_pipe[0], EPOLLIN, on_stop, NULL);
        (void) !write(sv->ready_pipe[1], r >= 0 ? "1" : "0", 1);
        if (r >= 0)
                (void) sd_event_loop(e);

        s = bus_server_free(s);
        sd_bus_flush_close_unref(bus);
        sd_event_unref(e);
        return NULL;
}

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

typedef struct Row {
        const char *name;
        unsigned n;
        double p50_ms, p99_ms;
} Row;

typedef int (*CallFunc)(sd_bus *bus, const char *arg);

static int call_get_version(sd_bus *bus, const char *arg) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        return sd_bus_call_method(bus, BUS_SERVICE_NAME, BUS_MANAGER_PATH, "org.freedesktop.DBus.Properties",
                                  "Get", NULL, &reply, "ss", BUS_MANAGER_INTERFACE, "Version");
}

static int call_list_claims(sd_bus *bus, const char *arg) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        return sd_bus_call_method(bus, BUS_SERVICE_NAME, BUS_MANAGER_PATH, BUS_MANAGER_INTERFACE,
                                  "ListClaims", NULL, &reply, NULL);
}

static int call_list_devices(sd_bus *bus, const char *arg) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        return sd_bus_call_method(bus, BUS_SERVICE_NAME, BUS_MANAGER_PATH, BUS_MANAGER_INTERFACE,
                                  "ListDevices", NULL, &reply, NULL);
}

static int call_get_all(sd_bus *bus, const char *arg) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *interface = strstr(arg, "/gpu/") ? BUS_DEVICE_INTERFACE : BUS_CLAIM_INTERFACE;
        return sd_bus_call_method(bus, BUS_SERVICE_NAME, arg, "org.freedesktop.DBus.Properties", "GetAll",
                                  NULL, &reply, "s", interface);
}

static int call_get_claim(sd_bus *bus, const char *arg) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        return sd_bus_call_method(bus, BUS_SERVICE_NAME, BUS_MANAGER_PATH, BUS_MANAGER_INTERFACE,
                                  "GetClaim", NULL, &reply, "s", arg);
}

static int measure(sd_bus *bus, const char *name, CallFunc f, const char *arg, unsigned n, Row *ret) {
        _cleanup_free_ uint64_t *t = calloc(n, sizeof *t);
        int r;

        if (!t)
                return -ENOMEM;
        for (unsigned i = 0; i < 3; i++) /* warm up */
                if ((r = f(bus, arg)) < 0)
                        return log_error_errno(r, "%s failed: %m", name);
        for (unsigned i = 0; i < n; i++) {
                uint64_t start = now_ns();
                r = f(bus, arg);
                if (r < 0)
                        return log_error_errno(r, "%s failed: %m", name);
                t[i] = now_ns() - start;
        }
        qsort(t, n, sizeof *t, cmp_u64);
        *ret = (Row) {
                .name = name,
                .n = n,
                .p50_ms = (double) t[n / 2] / 1e6,
                .p99_ms = (double) t[MIN(n - 1, (size_t) ((double) n * 0.99))] / 1e6,
        };
        return 0;
}

static int server_start(Server *sv) {
        char c = 0;
        int r;

        if (pipe2(sv->ready_pipe, O_CLOEXEC) < 0 || pipe2(sv->stop_pipe, O_CLOEXEC) < 0)
                return -errno;
        r = -pthread_create(&sv->thread, NULL, server_thread, sv);
        if (r < 0)
                return r;
        if (read(sv->ready_pipe[0], &c, 1) != 1 || c != '1')
                return -EIO;
        return 0;
}

static void server_stop(Server *sv) {
        (void) !write(sv->stop_pipe[1], "x", 1);
        pthread_join(sv->thread, NULL);
        for (int i = 0; i < 2; i++) {
                close(sv->ready_pipe[i]);
                close(sv->stop_pipe[i]);
        }
}

static pid_t start_dbus_daemon(const char *dir, char *address, size_t size) {
        char conf[512], arg_conf[600], arg_fd[32];
        int p[2];
        pid_t pid;
        FILE *f;

        snprintf(conf, sizeof conf, "%s/bus.conf", dir);
        f = fopen(conf, "we");
        if (!f)
                return -errno;
        fprintf(f, BUS_CONF, dir);
        fclose(f);

        if (pipe(p) < 0)
                return -errno;
        snprintf(arg_conf, sizeof arg_conf, "--config-file=%s", conf);
        snprintf(arg_fd, sizeof arg_fd, "--print-address=%d", p[1]);
        char *argv[] = { (char *) "dbus-daemon", arg_conf, (char *) "--nofork", (char *) "--nopidfile", arg_fd, NULL };
        if (posix_spawnp(&pid, "dbus-daemon", NULL, NULL, argv, environ) != 0) {
                close(p[0]);
                close(p[1]);
                return -ENOENT;
        }
        close(p[1]);
        f = fdopen(p[0], "r");
        if (!f || !fgets(address, (int) size, f)) {
                if (f)
                        fclose(f);
                kill(pid, SIGTERM);
                waitpid(pid, NULL, 0);
                return -EIO;
        }
        fclose(f);
        address[strcspn(address, "\n")] = 0;
        return pid;
}

static int write_regions(const char *dir, unsigned n) {
        for (unsigned i = 0; i < n; i++) {
                char path[512];
                FILE *f;
                snprintf(path, sizeof path, "%s/r%u", dir, i);
                f = fopen(path, "we");
                if (!f)
                        return -errno;
                fprintf(f, "%u\n", (i % 100) << 20);
                fclose(f);
        }
        return 0;
}

static void remove_dir(const char *dir, unsigned n) {
        char path[512];
        for (unsigned i = 0; i < n; i++) {
                snprintf(path, sizeof path, "%s/r%u", dir, i);
                unlink(path);
        }
        snprintf(path, sizeof path, "%s/bus.conf", dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/bus", dir);
        unlink(path);
        rmdir(dir);
}

static int run_rows(Server *sv, Row *rows, size_t *n_rows, bool cold) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        char gpu[] = BUS_DEVICE_PREFIX "/hami_2dgpu_2d0";
        char claim_uid[64], *claim_path = NULL;
        int r;

        r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_address(bus, sv->address);
        if (r >= 0)
                r = sd_bus_set_bus_client(bus, 1);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect: %m");

        snprintf(claim_uid, sizeof claim_uid, "%08x-9f4e-4c61-8d3a-%012x", sv->n_claims / 2, sv->n_claims / 2);
        r = sd_bus_path_encode(BUS_CLAIM_PREFIX, claim_uid, &claim_path);
        if (r < 0)
                return r;

        if (!cold) {
                r = measure(bus, "Get Version (baseline)", call_get_version, NULL, 2000, &rows[(*n_rows)++]);
                if (r >= 0)
                        r = measure(bus, "GetClaim(uid)", call_get_claim, claim_uid, 2000, &rows[(*n_rows)++]);
                if (r >= 0)
                        r = measure(bus, "GetAll Claim", call_get_all, claim_path, 2000, &rows[(*n_rows)++]);
                if (r >= 0)
                        r = measure(bus, "ListDevices", call_list_devices, NULL, 500, &rows[(*n_rows)++]);
                if (r >= 0)
                        r = measure(bus, "ListClaims", call_list_claims, NULL, 200, &rows[(*n_rows)++]);
                if (r >= 0)
                        r = measure(bus, "GetAll Device (MemoryUsed cached)", call_get_all, gpu, 200,
                                    &rows[(*n_rows)++]);
        } else
                r = measure(bus, "GetAll Device (MemoryUsed read: N files)", call_get_all, gpu, 100,
                            &rows[(*n_rows)++]);
        free(claim_path);
        return r;
}

int main(int argc, char *argv[]) {
        Server sv = { .n_claims = 5000, .cache_usec = 500 * 1000 };
        Row rows[16];
        size_t n_rows = 0;
        char tmpl[] = "/tmp/bench-dbus-XXXXXX";
        pid_t daemon;
        int r;

        log_set_target(LOG_TARGET_CONSOLE);
        if (argc > 1)
                sv.n_claims = (unsigned) strtoul(argv[1], NULL, 10);
        if (sv.n_claims == 0 || sv.n_claims > BUS_CLAIMS_MAX) {
                fprintf(stderr, "N_CLAIMS must be 1..%u\n", BUS_CLAIMS_MAX);
                return 2;
        }
        if (!mkdtemp(tmpl))
                return 1;
        snprintf(sv.dir, sizeof sv.dir, "%s", tmpl);
        r = write_regions(sv.dir, sv.n_claims);
        if (r < 0)
                return 1;

        daemon = start_dbus_daemon(sv.dir, sv.address, sizeof sv.address);
        if (daemon < 0) {
                fprintf(stderr, "dbus-daemon not available, skipping\n");
                remove_dir(sv.dir, sv.n_claims);
                return 77;
        }

        /* Once with the MemoryUsed cache as shipped, once with it off. */
        r = server_start(&sv);
        if (r >= 0) {
                r = run_rows(&sv, rows, &n_rows, false);
                server_stop(&sv);
        }
        if (r >= 0) {
                sv.cache_usec = 0;
                r = server_start(&sv);
                if (r >= 0) {
                        r = run_rows(&sv, rows, &n_rows, true);
                        server_stop(&sv);
                }
        }

        kill(daemon, SIGTERM);
        waitpid(daemon, NULL, 0);
        remove_dir(sv.dir, sv.n_claims);
        if (r < 0)
                return 1;

        printf("org.projecthami.Dra1 with %u prepared claims on one GPU, via dbus-daemon\n\n", sv.n_claims);
        printf("%-42s %6s %10s %10s %9s\n", "call", "n", "p50 ms", "p99 ms", "p50/base");
        for (size_t i = 0; i < n_rows; i++)
                printf("%-42s %6u %10.3f %10.3f %8.1fx\n", rows[i].name, rows[i].n, rows[i].p50_ms,
                       rows[i].p99_ms, rows[i].p50_ms / rows[0].p50_ms);
        return 0;
}
