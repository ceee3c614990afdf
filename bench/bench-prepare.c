/* SPDX-License-Identifier: Apache-2.0 */

/*
 * Prepare + unprepare through the DRA service (worker threads, checkpoint and CDI
 * files on disk, fsyncs), driven like the kubelet drives it: one claim per
 * NodePrepareResources, then its NodeUnprepareResources.
 *
 * The claim fetcher is in-process (canned JSON answered on the next loop iteration)
 * and DraRequest is the test fake: this measures the prepare core, not the gRPC layer
 * or an API server. Scenarios: sequential and 16 concurrent clients, with 10 and with
 * 5,000 claims already prepared (baseline: 10). Prints p50/p99 pair latency, pairs/s,
 * fsyncs per prepared claim and CPU time per pair (getrusage of this process, which
 * here is also the "kubelet" and the "API server": an upper bound for the daemon).
 *
 *   build/bench/bench-prepare [pairs] [preexisting-large]
 */

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <systemd/sd-event.h>
#include <time.h>

#include "fakes/fake-dra-request.h"
#include "fsutil.h"
#include "log.h"
#include "macro.h"
#include "dra-service.h"
#include "prepare-fixture.h"
#include "tests.h"

#define CLIENTS_MAX 16

typedef struct Bench {
        sd_event *event;
        DraService *service;
        char **names, **uids, **jsons;   /* claim i: "bench-<i>" */
        size_t n_claims;
        /* the run */
        size_t next, done_pairs, target;
        double *latencies;
} Bench;

typedef struct Client {
        Bench *b;
        unsigned id;
        size_t claim;
        bool preparing;
        double started;
        const char *triple[3];
} Client;

typedef struct Reply {
        ClaimFetchDone done;
        void *ctx;
        const char *json;
} Reply;

static double now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static double cpu_usec(void) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        return ru.ru_utime.tv_sec * 1e6 + ru.ru_utime.tv_usec + ru.ru_stime.tv_sec * 1e6 + ru.ru_stime.tv_usec;
}

static int on_reply(sd_event_source *s, void *userdata) {
        Reply *r = userdata;
        r->done(r->ctx, 0, 200, r->json, strlen(r->json), NULL);
        free(r);
        sd_event_source_disable_unref(s);
        return 0;
}

static int fetch(void *userdata, const char *ns, const char *name, ClaimFetchDone done, void *ctx) {
        Bench *b = userdata;
        size_t i = (size_t) strtoul(name + strlen("bench-"), NULL, 10);
        Reply *r = malloc(sizeof(*r));

        ASSERT_TRUE(r && i < b->n_claims);
        *r = (Reply) { .done = done, .ctx = ctx, .json = b->jsons[i] };
        return sd_event_add_defer(b->event, NULL, on_reply, r);
}

static void client_step(Client *c);

static void on_complete(DraRequest *r, void *userdata) {
        Client *c = userdata;
        const FakeAnswer *a = fake_dra_request_answer(r, 0);

        if (a->kind == FAKE_ANSWER_ERROR)
                TEST_FAIL("claim %s: %s", c->triple[2], a->error);
        fake_dra_request_free(r);
        if (c->preparing) {
                c->preparing = false;
                DraRequest *u = fake_dra_request_new(false, c->triple, 1, on_complete, c);
                dra_service_unprepare(c->b->service, u);
                return;
        }
        c->b->latencies[c->b->done_pairs++] = now_usec() - c->started;
        client_step(c);
}

static void client_step(Client *c) {
        Bench *b = c->b;

        if (b->next >= b->target)
                return;
        b->next++;
        c->claim = b->n_claims - 1 - c->id;  /* each client has its own claim among the top 16 */
        c->triple[0] = "bench";
        c->triple[1] = b->names[c->claim];
        c->triple[2] = b->uids[c->claim];
        c->preparing = true;
        c->started = now_usec();
        DraRequest *r = fake_dra_request_new(true, c->triple, 1, on_complete, c);
        dra_service_prepare(b->service, r);
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

typedef struct Result {
        double p50, p99, rate, fsyncs, cpu;
} Result;

static Result run(Bench *b, unsigned clients, size_t pairs) {
        Client cs[CLIENTS_MAX] = {};
        uint64_t fs0 = fsutil_fsync_count();
        double t0 = now_usec(), c0 = cpu_usec(), elapsed;
        Result res;

        b->next = b->done_pairs = 0;
        b->target = pairs;
        b->latencies = calloc(pairs, sizeof(double));
        for (unsigned i = 0; i < clients; i++) {
                cs[i].b = b;
                cs[i].id = i;
                client_step(&cs[i]);
        }
        while (b->done_pairs < pairs)
                ASSERT_OK(sd_event_run(b->event, UINT64_MAX));
        elapsed = now_usec() - t0;
        qsort(b->latencies, pairs, sizeof(double), cmp_double);
        res = (Result) {
                .p50 = b->latencies[pairs / 2],
                .p99 = b->latencies[(size_t) (pairs * 0.99)],
                .rate = pairs / (elapsed / 1e6),
                .fsyncs = (double) (fsutil_fsync_count() - fs0) / pairs,
                .cpu = (cpu_usec() - c0) / pairs,
        };
        free(b->latencies);
        return res;
}

/* The daemon's region trim tick (every PREPARER_TRIM_INTERVAL_MS over every prepared
 * claim, issue 14): p50 and p99 of `ticks` calls, in us. */
typedef struct TrimResult {
        double p50, p99;
} TrimResult;

static TrimResult time_trim(Preparer *p, unsigned ticks) {
        double *t = calloc(ticks, sizeof(double));
        TrimResult r;

        ASSERT_NOT_NULL(t);
        for (unsigned i = 0; i < ticks; i++) {
                double start = now_usec();
                ASSERT_TRUE(preparer_trim_regions(p) == 0); /* nothing grown: nothing cut */
                t[i] = now_usec() - start;
        }
        qsort(t, ticks, sizeof(double), cmp_double);
        r = (TrimResult) { t[ticks / 2], t[ticks * 99 / 100] };
        free(t);
        return r;
}

/* Prepare (or unprepare) claims [from, to), 16 at a time. */
static void batch(Bench *b, size_t from, size_t to, bool prepare) {
        size_t started = from;

        while (started < to) {
                size_t n = MIN((size_t) CLIENTS_MAX, to - started);
                DraRequest *rs[CLIENTS_MAX];
                const char *triples[CLIENTS_MAX][3];

                for (size_t k = 0; k < n; k++) {
                        size_t i = started + k;
                        triples[k][0] = "bench";
                        triples[k][1] = b->names[i];
                        triples[k][2] = b->uids[i];
                        rs[k] = fake_dra_request_new(prepare, triples[k], 1, NULL, NULL);
                }
                for (size_t k = 0; k < n; k++)
                        if (prepare)
                                dra_service_prepare(b->service, rs[k]);
                        else
                                dra_service_unprepare(b->service, rs[k]);
                /* No completion callback: poll the answers. */
                for (;;) {
                        bool all = true;
                        for (size_t k = 0; k < n; k++)
                                all = all && fake_dra_request_answer(rs[k], 0)->kind != FAKE_ANSWER_NONE;
                        if (all)
                                break;
                        ASSERT_OK(sd_event_run(b->event, UINT64_MAX));
                }
                for (size_t k = 0; k < n; k++) {
                        ASSERT_EQ(fake_dra_request_answer(rs[k], 0)->kind,
                                  prepare ? FAKE_ANSWER_DEVICES : FAKE_ANSWER_DONE);
                        fake_dra_request_free(rs[k]);
                }
                started += n;
        }
}

int main(int argc, char *argv[]) {
        size_t pairs = argc > 1 ? (size_t) atol(argv[1]) : 2000;
        size_t large = argc > 2 ? (size_t) atol(argv[2]) : 5000;
        Result results[3][2];
        TrimResult trims[3];
        Bench b = {};
        Fixture fx;
        Preparer *p;

        log_set_max_level(LOG_WARNING);
        fixture_init(&fx, 4);
        ASSERT_OK(sd_event_new(&b.event));
        b.n_claims = large + CLIENTS_MAX;
        b.names = calloc(b.n_claims, sizeof(char *));
        b.uids = calloc(b.n_claims, sizeof(char *));
        b.jsons = calloc(b.n_claims, sizeof(char *));
        for (size_t i = 0; i < b.n_claims; i++) {
                char share[64];
                FixtureResult r[] = { { .device = "hami-gpu-0", .share_id = share, .memory = "1Gi", .cores = "1" } };
                snprintf(share, sizeof(share), "6f1c2f1e-0000-4000-8000-%012zx", i % 1000000);
                ASSERT_TRUE(asprintf(&b.names[i], "bench-%zu", i) > 0);
                ASSERT_TRUE(asprintf(&b.uids[i], "%08zx-2f8e-4c6b-9b7e-4a2a0f1c9d11", i) > 0);
                b.jsons[i] = fixture_claim(b.uids[i], b.names[i], r, 1, NULL);
                /* fixture_claim uses namespace "default"; the fetcher ignores it. */
        }
        ASSERT_OK(preparer_new(&fx.options, &fx.gpus, &p));
        ASSERT_OK(preparer_recover(p, NULL, NULL));
        ASSERT_OK(dra_service_new(b.event, p, fetch, &b, getenv("HAMI_BENCH_WORKERS") ? (unsigned) atoi(getenv("HAMI_BENCH_WORKERS")) : 0, &b.service));

        /* 10 prepared, then 5,000, then back to 10 (shows drift and noise of the machine). */
        const size_t steps[3] = { 10, large, 10 };
        size_t prepared = 0;
        for (size_t s = 0; s < 3; s++) {
                fprintf(stderr, "%s %zu claims...\n", steps[s] > prepared ? "preparing" : "unpreparing",
                        steps[s] > prepared ? steps[s] - prepared : prepared - steps[s]);
                if (steps[s] > prepared)
                        batch(&b, prepared, steps[s], true);
                else
                        batch(&b, steps[s], prepared, false);
                prepared = steps[s];
                for (unsigned c = 0; c < 2; c++)
                        results[s][c] = run(&b, c ? CLIENTS_MAX : 1, pairs);
                trims[s] = time_trim(p, 200);
        }

        printf("Prepare+unprepare pairs (%zu per scenario), in-process fetcher, state and CDI dirs on %s\n", pairs,
               fx.root);
        printf("%-36s %10s %10s %10s %8s %10s %8s\n", "scenario", "p50 us", "p99 us", "pairs/s", "fsyncs", "cpu us",
               "ratio");
        for (unsigned c = 0; c < 2; c++)
                for (size_t s = 0; s < 3; s++) {
                        Result *r = &results[s][c];
                        char name[64];
                        snprintf(name, sizeof(name), "%s, %zu prepared%s", c ? "16 clients" : "sequential", steps[s],
                                 s == 2 ? " (again)" : "");
                        printf("%-36s %10.0f %10.0f %10.0f %8.2f %10.1f %7.2fx\n", name, r->p50, r->p99, r->rate,
                               r->fsyncs, r->cpu, r->p50 / results[0][c].p50);
                }
        printf("(ratio: p50 against the same concurrency with 10 claims prepared first; fsyncs and cpu per\n"
               " prepare+unprepare pair; cpu = this whole process: daemon core + fake kubelet + fake API server)\n");

        printf("\nRegion trim tick (every %d ms over every prepared claim's vgpu.cache), 200 ticks each\n",
               PREPARER_TRIM_INTERVAL_MS);
        printf("%-36s %10s %10s %12s %8s\n", "claims prepared", "p50 us", "p99 us", "% of a core", "ratio");
        for (size_t s = 0; s < 3; s++)
                printf("%-36zu %10.0f %10.0f %12.2f %7.2fx\n", steps[s], trims[s].p50, trims[s].p99,
                       trims[s].p50 * (1000.0 / PREPARER_TRIM_INTERVAL_MS) / 1e4, trims[s].p50 / trims[0].p50);

        dra_service_free(b.service);
        preparer_free(p);
        for (size_t i = 0; i < b.n_claims; i++) {
                free(b.names[i]);
                free(b.uids[i]);
                free(b.jsons[i]);
        }
        free(b.names);
        free(b.uids);
        free(b.jsons);
        sd_event_unref(b.event);
        fixture_done(&fx);
        return 0;
}
