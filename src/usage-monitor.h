/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The node's usage monitor: what each container really uses of each GPU, measured where
 * the truth is, and written into the container's shared region for libvgpu.so.
 *
 * libvgpu.so cannot measure its own compute share: NVML's device utilization counts
 * every container on the GPU, and the container does not know the host PIDs under which
 * the driver accounts its processes (NVML speaks host PIDs; a container sees its own
 * PID namespace). The daemon, in the host's PID namespace, learns them from /proc/locks
 * (each process holds a POSIX lock on its slot's beacon, shared-region.h) and reads the
 * driver's per-process accounting:
 *   - nvmlDeviceGetProcessUtilization: per-process SM samples (about one per process
 *     every 200 ms on an H200, only for the periods in which it ran); a process's share
 *     is the sum of its samples over the last second times the sampling period over
 *     the second, a container's the sum over its processes;
 *   - nvmlDeviceGetComputeRunningProcesses_v3: per-process device memory, contexts,
 *     modules and pool reserves included.
 * For each region device it writes the container's SM share, the bytes the driver holds
 * beyond what the container reserved (counted against the memory limit), and what a
 * context costs on that GPU (the smallest per-process overhead seen), then bumps
 * measured_seq. Pure of sd-event: the daemon calls usage_monitor_tick() from a timer,
 * tools/hami-vgpu-monitor.c from a loop.
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "shared-region.h"

#define USAGE_MONITOR_WINDOW_US 1000000ULL   /* samples averaged over the last second */
#define USAGE_MONITOR_PERIOD_NS (10ULL * 1000 * 1000) /* the GPU's time is shared out in these */
#define USAGE_MONITOR_PERIOD_MIN_US 20000ULL         /* a sampling period shorter than this is noise */
#define USAGE_MONITOR_INTERVAL_MS 100                 /* faster than the driver samples (~200 ms) */
#define USAGE_MONITOR_SWITCH_RESERVE 40               /* permille of a GPU left for context switches */

typedef struct UsageMonitorRegion {
        const char *path;                               /* the claim's region file */
        unsigned n_devices;                             /* region device i is the GPU uuid[i] */
        const char *uuid[SHARED_REGION_DEVICES_MAX];
        /* Out: what the tick found (0 or negative errno; -ENOENT: no such file). A device
         * whose GPU NVML does not know, or of a container with a process whose host PID
         * is unknown, is not measured (measured[d].measured false) and left alone. */
        int error;
        SharedRegionMeasurement measured[SHARED_REGION_DEVICES_MAX];
        unsigned n_measured;                            /* devices in measured[] */
        uint32_t sm_limit[SHARED_REGION_DEVICES_MAX];   /* as the region records it */
        unsigned n_processes;                           /* live processes with a beacon */
        unsigned n_unresolved;                          /* live processes without: not measured */
        struct stat st;                                 /* the file measured */
        /* Out: what the read found before this tick's writes (the metrics show it, so
         * that a scrape need not read the region again), and the read's own result. */
        SharedRegionUsage usage;
        int read_error;                                 /* left alone when not read */
} UsageMonitorRegion;

typedef struct UsageMonitor UsageMonitor;

/* Load NVML (library: NULL for libnvidia-ml.so.1) and initialise it. -ENOENT without a
 * driver, -EIO if it does not initialise. */
int usage_monitor_new(const char *library, UsageMonitor **ret);
UsageMonitor *usage_monitor_free(UsageMonitor *m);

/* One measurement of every region; each region's error is in its `error`. Returns the
 * number of regions written, or negative errno when nothing could be measured. */
int usage_monitor_tick(UsageMonitor *m, UsageMonitorRegion *regions, size_t n);

/* Pure parts, for the unit test and the fuzzer. */
typedef struct UsageSample {
        uint32_t pid;
        uint64_t timestamp_us;
        uint32_t sm_percent;
} UsageSample;
/* pid's share of the GPU over the window ending at the newest sample, in permille: its
 * samples' sum times the driver's sampling period over the window (the periods it is
 * missing from were idle); with period_us 0 (not known yet), the mean of its samples. */
uint32_t usage_samples_pid_permille(const UsageSample *s, size_t n, uint32_t pid, uint64_t window_us,
                                    uint64_t period_us);
