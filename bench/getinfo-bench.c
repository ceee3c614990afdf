/* SPDX-License-Identifier: Apache-2.0 */

/*
 * GetInfo round trips against a running plugin, as the kubelet makes them: one
 * connection per client, unary /pluginregistration.Registration/GetInfo.
 *
 *   getinfo-bench REGISTRATION_SOCKET [CALLS [CLIENTS...]]     default: 10000 calls, clients 1 16 1r
 *                                   (a trailing "r": a new connection for every call, as the
 *                                   kubelet's GetInfo poll dials anew)
 *   getinfo-bench --grpc-floor      gRPC core initialised with one started server and a CQ
 *                                   thread, then waits: bench/rss.sh reads its RSS as the floor
 *
 * Baseline measured in the same run: a 64-byte request/response over a Unix socketpair
 * between two threads (the kernel round trip with no HTTP/2, no protobuf, no daemon).
 * Prints median and p99 per scenario and their ratio to the baseline.
 */

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

typedef struct Client {
        const char *target;
        size_t calls;
        bool reconnect;
        uint64_t *lat_ns;
        size_t failures;
        pthread_barrier_t *start;
} Client;

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static bool get_info(grpc_channel *ch, grpc_completion_queue *cq, grpc_slice method) {
        grpc_metadata_array initial, trailing;
        grpc_byte_buffer *request, *response = NULL;
        grpc_slice empty = grpc_empty_slice(), details;
        grpc_status_code status = GRPC_STATUS_UNKNOWN;
        grpc_op ops[6] = {};
        grpc_call *call;
        grpc_event ev;

        call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL,
                                        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_seconds(10, GPR_TIMESPAN)),
                                        NULL);
        request = grpc_raw_byte_buffer_create(&empty, 1);
        grpc_metadata_array_init(&initial);
        grpc_metadata_array_init(&trailing);
        ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[1].op = GRPC_OP_SEND_MESSAGE;
        ops[1].data.send_message.send_message = request;
        ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial;
        ops[4].op = GRPC_OP_RECV_MESSAGE;
        ops[4].data.recv_message.recv_message = &response;
        ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
        ops[5].data.recv_status_on_client.trailing_metadata = &trailing;
        ops[5].data.recv_status_on_client.status = &status;
        ops[5].data.recv_status_on_client.status_details = &details;
        grpc_call_start_batch(call, ops, 6, call, NULL);
        ev = grpc_completion_queue_pluck(cq, call, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);

        bool ok = ev.type == GRPC_OP_COMPLETE && ev.success && status == GRPC_STATUS_OK && response;
        if (ev.type == GRPC_OP_COMPLETE)
                grpc_slice_unref(details);
        grpc_byte_buffer_destroy(request);
        if (response)
                grpc_byte_buffer_destroy(response);
        grpc_metadata_array_destroy(&initial);
        grpc_metadata_array_destroy(&trailing);
        grpc_call_unref(call);
        return ok;
}

static void *client_run(void *userdata) {
        Client *c = userdata;
        grpc_arg arg = { .type = GRPC_ARG_INTEGER, .key = (char *) GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL,
                         .value.integer = 1 };
        grpc_channel_args args = { .num_args = 1, .args = &arg };
        grpc_channel_credentials *creds = grpc_insecure_credentials_create();
        grpc_channel *ch = grpc_channel_create(c->target, creds, &args);
        grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
        grpc_slice method = grpc_slice_from_static_string("/pluginregistration.Registration/GetInfo");

        (void) get_info(ch, cq, method); /* connect outside the measurement */
        pthread_barrier_wait(c->start);
        for (size_t i = 0; i < c->calls; i++) {
                uint64_t t0 = now_ns();
                if (c->reconnect) { /* as the kubelet's poll: dial, call, hang up */
                        grpc_channel_destroy(ch);
                        ch = grpc_channel_create(c->target, creds, &args);
                }
                if (!get_info(ch, cq, method))
                        c->failures++;
                c->lat_ns[i] = now_ns() - t0;
        }
        grpc_channel_destroy(ch);
        grpc_completion_queue_shutdown(cq);
        while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type != GRPC_QUEUE_SHUTDOWN)
                ;
        grpc_completion_queue_destroy(cq);
        grpc_channel_credentials_release(creds);
        return NULL;
}

typedef struct Result {
        const char *name;
        size_t calls;
        double p50_us, p99_us, per_sec;
        size_t failures;
} Result;

static void summarize(Result *r, uint64_t *lat, size_t n, uint64_t wall_ns) {
        qsort(lat, n, sizeof(uint64_t), cmp_u64);
        r->calls = n;
        r->p50_us = (double) lat[n / 2] / 1000.0;
        r->p99_us = (double) lat[(n * 99) / 100] / 1000.0;
        r->per_sec = wall_ns ? (double) n * 1e9 / (double) wall_ns : 0;
}

static Result run_grpc(const char *target, size_t calls, unsigned clients, bool reconnect, char *name) {
        Client *c = calloc(clients, sizeof(Client));
        pthread_t *t = calloc(clients, sizeof(pthread_t));
        uint64_t *lat = calloc(calls, sizeof(uint64_t));
        pthread_barrier_t barrier;
        Result r = { .name = name };
        size_t per = calls / clients;
        uint64_t t0;

        if (!c || !t || !lat) {
                perror("calloc");
                exit(1);
        }
        pthread_barrier_init(&barrier, NULL, clients + 1);
        for (unsigned i = 0; i < clients; i++) {
                c[i] = (Client) { .target = target, .calls = per, .reconnect = reconnect, .lat_ns = lat + i * per,
                                  .start = &barrier };
                pthread_create(&t[i], NULL, client_run, &c[i]);
        }
        pthread_barrier_wait(&barrier);
        t0 = now_ns();
        for (unsigned i = 0; i < clients; i++) {
                pthread_join(t[i], NULL);
                r.failures += c[i].failures;
        }
        summarize(&r, lat, per * clients, now_ns() - t0);
        pthread_barrier_destroy(&barrier);
        free(c);
        free(t);
        free(lat);
        return r;
}

static void *echo_run(void *userdata) {
        int fd = *(int *) userdata;
        char buf[64];

        while (read(fd, buf, sizeof(buf)) == (ssize_t) sizeof(buf))
                if (write(fd, buf, sizeof(buf)) != (ssize_t) sizeof(buf))
                        break;
        return NULL;
}

static Result run_baseline(size_t calls) {
        uint64_t *lat = calloc(calls, sizeof(uint64_t));
        Result r = { .name = "baseline: 64 B ping-pong, Unix socketpair" };
        char buf[64] = {};
        pthread_t t;
        int sv[2];
        uint64_t t0;

        if (!lat || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
                perror("baseline");
                exit(1);
        }
        pthread_create(&t, NULL, echo_run, &sv[1]);
        t0 = now_ns();
        for (size_t i = 0; i < calls; i++) {
                uint64_t s = now_ns();
                if (write(sv[0], buf, sizeof(buf)) != (ssize_t) sizeof(buf) ||
                    read(sv[0], buf, sizeof(buf)) != (ssize_t) sizeof(buf))
                        r.failures++;
                lat[i] = now_ns() - s;
        }
        summarize(&r, lat, calls, now_ns() - t0);
        close(sv[0]);
        pthread_join(t, NULL);
        close(sv[1]);
        free(lat);
        return r;
}

static void *floor_cq_run(void *userdata) {
        while (grpc_completion_queue_next(userdata, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type != GRPC_QUEUE_SHUTDOWN)
                ;
        return NULL;
}

/* What any gRPC core server costs before it does anything: the floor under our daemon. */
static int grpc_floor(void) {
        grpc_completion_queue *cq;
        grpc_server *server;
        pthread_t t;

        grpc_init();
        cq = grpc_completion_queue_create_for_next(NULL);
        server = grpc_server_create(NULL, NULL);
        grpc_server_register_completion_queue(server, cq, NULL);
        grpc_server_start(server);
        pthread_create(&t, NULL, floor_cq_run, cq);
        printf("ready\n");
        fflush(stdout);
        pause();
        return 0;
}

int main(int argc, char *argv[]) {
        static char names[16][64];
        Result results[17];
        size_t n = 0, calls = 10000;
        char target[256];
        unsigned clients[14] = { 1, 16, 1 }, n_clients = 3;
        bool reconnect[14] = { false, false, true };

        if (argc == 2 && strcmp(argv[1], "--grpc-floor") == 0)
                return grpc_floor();
        if (argc < 2) {
                fprintf(stderr, "usage: %s REGISTRATION_SOCKET [CALLS [CLIENTS...]]\n", argv[0]);
                return 2;
        }
        snprintf(target, sizeof(target), "unix:%s", argv[1]);
        if (argc > 2)
                calls = strtoul(argv[2], NULL, 10);
        if (argc > 3) {
                n_clients = 0;
                for (int i = 3; i < argc && n_clients < 14; i++) {
                        char *end;
                        clients[n_clients] = (unsigned) strtoul(argv[i], &end, 10);
                        reconnect[n_clients++] = *end == 'r';
                }
        }
        if (calls < 100) {
                fprintf(stderr, "at least 100 calls\n");
                return 2;
        }

        grpc_init();
        results[n++] = run_baseline(calls);
        for (unsigned i = 0; i < n_clients; i++) {
                snprintf(names[i], sizeof(names[i]), "GetInfo, %u client%s%s", clients[i], clients[i] > 1 ? "s" : "",
                         reconnect[i] ? ", new connection each" : "");
                results[n++] = run_grpc(target, calls, clients[i], reconnect[i], names[i]);
        }

        printf("%-44s %8s %10s %10s %10s %9s %9s %8s\n", "scenario", "calls", "p50 us", "p99 us", "calls/s",
               "p50/base", "p99/base", "failed");
        for (size_t i = 0; i < n; i++)
                printf("%-44s %8zu %10.1f %10.1f %10.0f %8.1fx %8.1fx %8zu\n", results[i].name, results[i].calls,
                       results[i].p50_us, results[i].p99_us, results[i].per_sec,
                       results[i].p50_us / results[0].p50_us, results[i].p99_us / results[0].p99_us,
                       results[i].failures);
        grpc_shutdown_blocking();

        for (size_t i = 1; i < n; i++)
                if (results[i].failures)
                        return 1;
        return 0;
}
