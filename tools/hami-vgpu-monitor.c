/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hami-vgpu-monitor: the daemon's usage monitor (src/usage-monitor.h) on its own, for
 * benchmarks and tests that run libvgpu.so without the daemon, and for looking at what
 * the monitor measures.
 *
 *   hami-vgpu-monitor [--interval-ms N] [--count N] [--verbose] REGION=GPU-UUID[,GPU-UUID...] ...
 *
 * Every interval (default 100 ms, the daemon's) it measures each region's container
 * (SM share, footprint, context cost) through NVML and writes it into the region. It
 * stops on SIGTERM or SIGINT, or after --count ticks. Exit 1 if NVML is unusable.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "usage-monitor.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
        stop = 1;
}

static int parse_region(char *arg, UsageMonitorRegion *r) {
        char *eq = strchr(arg, '='), *save = NULL;

        if (!eq || eq == arg)
                return -EINVAL;
        *eq = 0;
        *r = (UsageMonitorRegion) { .path = arg };
        for (char *u = strtok_r(eq + 1, ",", &save); u; u = strtok_r(NULL, ",", &save)) {
                if (r->n_devices >= SHARED_REGION_DEVICES_MAX)
                        return -E2BIG;
                r->uuid[r->n_devices++] = u;
        }
        return r->n_devices > 0 ? 0 : -EINVAL;
}

static void print_tick(const UsageMonitorRegion *regions, size_t n) {
        for (size_t i = 0; i < n; i++) {
                const UsageMonitorRegion *r = &regions[i];

                if (r->error < 0) {
                        printf("%s: %s\n", r->path, strerror(-r->error));
                        continue;
                }
                for (unsigned d = 0; d < r->n_devices; d++)
                        printf("%s: device %u: sm %.1f%% (%u of %u processes), unowned %.1f%%, extra %llu MiB, context %llu MiB\n",
                               r->path, d, r->measured[d].measured_sm / 10.0, r->measured[d].measured_procs,
                               r->n_processes, r->measured[d].unowned / 10.0, (unsigned long long) (r->measured[d].footprint_extra >> 20),
                               (unsigned long long) (r->measured[d].context_bytes >> 20));
        }
        fflush(stdout);
}

int main(int argc, char **argv) {
        UsageMonitorRegion regions[64];
        long interval_ms = USAGE_MONITOR_INTERVAL_MS, count = -1;
        bool verbose = false;
        UsageMonitor *m = NULL;
        size_t n = 0;
        int r;

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--interval-ms") == 0 && i + 1 < argc)
                        interval_ms = strtol(argv[++i], NULL, 10);
                else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
                        count = strtol(argv[++i], NULL, 10);
                else if (strcmp(argv[i], "--verbose") == 0)
                        verbose = true;
                else if (n < sizeof(regions) / sizeof(regions[0]) && parse_region(argv[i], &regions[n]) >= 0)
                        n++;
                else {
                        fprintf(stderr, "usage: %s [--interval-ms N] [--count N] [--verbose] REGION=GPU-UUID[,...] ...\n",
                                argv[0]);
                        return 2;
                }
        }
        if (n == 0 || interval_ms < 10 || interval_ms > 60000) {
                fprintf(stderr, "%s: no region, or an interval outside 10..60000 ms\n", argv[0]);
                return 2;
        }
        r = usage_monitor_new(NULL, &m);
        if (r < 0) {
                fprintf(stderr, "%s: NVML: %s\n", argv[0], strerror(-r));
                return 1;
        }
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
        while (!stop && count != 0) {
                struct timespec ts = { .tv_sec = interval_ms / 1000, .tv_nsec = (interval_ms % 1000) * 1000000L };

                usage_monitor_tick(m, regions, n);
                if (verbose)
                        print_tick(regions, n);
                if (count > 0)
                        count--;
                if (count != 0)
                        nanosleep(&ts, NULL);
        }
        usage_monitor_free(m);
        return 0;
}
