/* SPDX-License-Identifier: Apache-2.0 */

/*
 * bench-metrics: the cost of one /metrics scrape with 8 GPUs and 5,000 prepared claims,
 * in process (the renderer and the region reads are all the daemon does per scrape;
 * libmicrohttpd then writes the body). Each claim has a real shared region
 * (shared_region_create, 1,024 slots, as prepare makes it) in a temporary directory,
 * half of them with a live-looking measurement.
 *
 *   bench-metrics [N_CLAIMS] [SCRAPES]      (defaults 5000, 200)
 *
 * Rows: the baseline (8 GPUs, no claim), 5,000 claims with every region read (a scrape
 * more than a second after the last: Prometheus's usual 15 to 60 s), and 5,000 claims
 * within the second (regions cached), and 5,000 claims with the usage monitor's readings
 * (what the daemon does when NVML is there: the monitor reads every region every 100 ms
 * anyway and hands the metrics what it read, so a scrape reads none). CPU is this process's user+system time per
 * scrape (getrusage); the table has its median and p99, the ratio of the medians to
 * the baseline, and the body's size.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "macro.h"
#include "metrics.h"
#include "shared-region.h"
#include "time-util.h"

static uint64_t cpu_usec(void) {
        struct rusage ru;

        getrusage(RUSAGE_SELF, &ru);
        return (uint64_t) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * USEC_PER_SEC + (uint64_t) ru.ru_utime.tv_usec +
               (uint64_t) ru.ru_stime.tv_usec;
}

static uint64_t wall_usec(void) {
        return now_usec();
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

typedef struct Row {
        const char *what;
        uint64_t cpu_p50, cpu_p99, wall_p50, wall_p99;
        size_t size;
} Row;

static bool monitor_feed;

/* What the usage monitor hands the metrics after each tick. */
static void feed(Metrics *m, unsigned n, uint64_t now) {
        SharedRegionUsage u = { .n_devices = 1, .n_active = 1, .used = { 1ULL << 28 }, .measured_sm = { 97 },
                                .measured_seq = { 3 } };

        for (unsigned i = 0; i < n; i++) {
                char uid[64];

                snprintf(uid, sizeof(uid), "6f1c2f1e-0000-4000-8000-%012x", i);
                metrics_claim_usage(m, uid, 0, &u, now);
        }
}

static unsigned n_claims_fed;

/* advance: how far "now" moves between scrapes (> 1 s: every region is read again). */
static int measure(Metrics *m, unsigned scrapes, uint64_t advance, const char *what, Row *ret) {
        _cleanup_free_ uint64_t *cpu = calloc(scrapes, sizeof(uint64_t)), *wall = calloc(scrapes, sizeof(uint64_t));
        uint64_t now = 100 * USEC_PER_SEC;
        size_t size = 0;

        if (!cpu || !wall)
                return -ENOMEM;
        for (unsigned i = 0; i < scrapes + 1; i++) {
                MetricsBuffer b = {};

                if (monitor_feed)
                        feed(m, n_claims_fed, now);
                uint64_t c0 = cpu_usec(), w0 = wall_usec();
                int r = metrics_render(m, NULL, now, &b);
                uint64_t c1 = cpu_usec(), w1 = wall_usec();

                if (r < 0)
                        return r;
                size = b.size;
                metrics_buffer_done(&b);
                now += advance;
                if (i == 0)
                        continue; /* the first builds the cache */
                cpu[i - 1] = c1 - c0;
                wall[i - 1] = w1 - w0;
        }
        qsort(cpu, scrapes, sizeof(uint64_t), cmp_u64);
        qsort(wall, scrapes, sizeof(uint64_t), cmp_u64);
        *ret = (Row) {
                .what = what,
                .cpu_p50 = cpu[scrapes / 2],
                .cpu_p99 = cpu[scrapes * 99 / 100],
                .wall_p50 = wall[scrapes / 2],
                .wall_p99 = wall[scrapes * 99 / 100],
                .size = size,
        };
        return 0;
}

static int add_claims(Metrics *m, const char *dir, const MetricsDevice *gpus, unsigned n) {
        for (unsigned i = 0; i < n; i++) {
                char uid[64], name[64], path[256];
                const MetricsDevice *g = &gpus[i % 8];
                uint64_t limit = 1ULL << 30;
                uint32_t sm = 10;
                SharedRegionMeasurement meas = { .measured = true, .measured_sm = 97, .measured_procs = 1,
                                                 .footprint_extra = 300ULL << 20 };
                struct stat st;
                int r;

                snprintf(uid, sizeof(uid), "6f1c2f1e-0000-4000-8000-%012x", i);
                snprintf(name, sizeof(name), "claim-%u", i);
                snprintf(path, sizeof(path), "%s/%s.cache", dir, uid);
                r = shared_region_create(path, 1, SHARED_REGION_SLOTS_DEFAULT, &limit, &sm, 0600);
                if (r >= 0 && i % 2 == 0 && stat(path, &st) >= 0)
                        r = shared_region_write_measurements(path, &st, &meas, 1);
                if (r < 0)
                        return r;

                PreparedClaimDevice d = { .gpu_uuid = (char *) g->uuid, .memory_mib = 1024, .cores = 10 };
                PreparedClaim c = { .uid = uid, .namespace_ = (char *) "bench-namespace", .name = name,
                                    .devices = &d, .n_devices = 1 };
                r = metrics_claim_prepared(m, &c, path);
                if (r < 0)
                        return r;
        }
        return 0;
}

int main(int argc, char *argv[]) {
        unsigned n_claims = argc > 1 ? (unsigned) atoi(argv[1]) : 5000;
        unsigned scrapes = argc > 2 ? (unsigned) atoi(argv[2]) : 200;
        char dir[] = "/var/tmp/bench-metrics.XXXXXX";
        _cleanup_(metrics_freep) Metrics *base = NULL, *m = NULL;
        MetricsDevice gpus[8];
        Row rows[4];
        int r;

        n_claims_fed = n_claims;
        if (scrapes < 2 || !mkdtemp(dir))
                return EXIT_FAILURE;
        for (unsigned i = 0; i < 8; i++) {
                gpus[i] = (MetricsDevice) { .memory_total = 141ULL << 30, .healthy = true, .schedulable = true };
                snprintf(gpus[i].name, sizeof(gpus[i].name), "hami-gpu-%u", i);
                snprintf(gpus[i].uuid, sizeof(gpus[i].uuid), "GPU-%08x-1111-2222-3333-444455556666", i);
                snprintf(gpus[i].model, sizeof(gpus[i].model), "NVIDIA H200");
        }
        log_set_max_level(LOG_ERR);
        r = metrics_new("bench-node", "hami-core-gpu.project-hami.io", "0.1.0", &base);
        if (r >= 0)
                r = metrics_set_devices(base, gpus, 8);
        if (r >= 0)
                r = metrics_new("bench-node", "hami-core-gpu.project-hami.io", "0.1.0", &m);
        if (r >= 0)
                r = metrics_set_devices(m, gpus, 8);
        if (r >= 0)
                r = add_claims(m, dir, gpus, n_claims);
        if (r >= 0)
                r = measure(base, scrapes, 2 * USEC_PER_SEC, "baseline: 8 GPUs, no claims", &rows[0]);
        if (r >= 0)
                r = measure(m, scrapes, 2 * USEC_PER_SEC, "claims, every region read", &rows[1]);
        if (r >= 0)
                r = measure(m, scrapes, 1000, "claims, regions cached (<1 s)", &rows[2]);
        if (r >= 0) {
                /* With the usage monitor running (NVML there), its readings are fed in
                 * between scrapes (not counted: it reads the regions anyway). */
                monitor_feed = true;
                r = measure(m, scrapes, 2 * USEC_PER_SEC, "claims, usage monitor readings", &rows[3]);
        }
        if (rm_rf(dir) < 0)
                fprintf(stderr, "bench-metrics: could not remove %s\n", dir);
        if (r < 0) {
                fprintf(stderr, "bench-metrics: %s\n", strerror(-r));
                return EXIT_FAILURE;
        }

        printf("bench-metrics: %u claims on 8 GPUs, %u scrapes per row\n\n", n_claims, scrapes);
        printf("%-32s %10s %10s %10s %10s %8s %10s\n", "scrape", "CPU p50", "CPU p99", "wall p50", "wall p99",
               "x base", "body");
        for (size_t i = 0; i < ELEMENTSOF(rows); i++)
                printf("%-32s %7.2f ms %7.2f ms %7.2f ms %7.2f ms %7.1fx %7.2f MB\n", rows[i].what,
                       rows[i].cpu_p50 / 1000.0, rows[i].cpu_p99 / 1000.0, rows[i].wall_p50 / 1000.0,
                       rows[i].wall_p99 / 1000.0, (double) rows[i].wall_p50 / (double) MAX(rows[0].wall_p50, 1u),
                       rows[i].size / 1e6);
        return EXIT_SUCCESS;
}
