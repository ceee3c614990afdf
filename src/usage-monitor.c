/* SPDX-License-Identifier: Apache-2.0 */

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nvml-abi.h"
#include "proc-locks.h"
#include "usage-monitor.h"

#define MONITOR_GPUS_MAX 64
#define MONITOR_SAMPLES_MAX 1024       /* per GPU, within the window */
#define MONITOR_PROCESSES_MAX 1024     /* per GPU, what NVML lists */
#define MONITOR_PIDS_MAX 256           /* beacons of one region */
#define PROC_LOCKS_MAX (16u << 20)
#define MiB (1ULL << 20)

typedef nvmlReturn_t (*NvmlInit)(void);
typedef nvmlReturn_t (*NvmlByUuid)(const char *uuid, nvmlDevice_t *device);
typedef nvmlReturn_t (*NvmlProcessUtilization)(nvmlDevice_t device, nvmlProcessUtilizationSample_t *samples,
                                               unsigned int *count, unsigned long long last_seen);
typedef nvmlReturn_t (*NvmlRunningProcesses)(nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_t *infos);
typedef nvmlReturn_t (*NvmlUtilizationRates)(nvmlDevice_t device, nvmlUtilization_t *utilization);

typedef struct MonitorGpu {
        char uuid[96];
        nvmlDevice_t device;
        uint64_t last_seen_us;
        UsageSample samples[MONITOR_SAMPLES_MAX];
        size_t n_samples;
        nvmlProcessInfo_t processes[MONITOR_PROCESSES_MAX];
        unsigned n_processes;
        uint64_t context_bytes;        /* smallest per-process overhead seen; 0: none yet */
        uint64_t period_us;            /* the driver's sampling period as seen; 0: not yet */
        uint32_t unowned;              /* this tick: permille busy with nobody's kernels */
        uint32_t busy[16];             /* device-wide utilization, the last readings (percent) */
        uint64_t busy_at[16];          /* when (the newest sample's time, microseconds) */
        unsigned n_busy;
        bool polled;                   /* in this tick */
} MonitorGpu;

struct UsageMonitor {
        void *dl;
        NvmlInit shutdown;
        NvmlByUuid by_uuid;
        NvmlProcessUtilization process_utilization;
        NvmlRunningProcesses running_processes;
        NvmlUtilizationRates utilization_rates;
        MonitorGpu *gpus;
        size_t n_gpus;
};

int usage_monitor_new(const char *library, UsageMonitor **ret) {
        UsageMonitor *m;
        NvmlInit init;
        int r;

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->dl = dlopen(library ? library : "libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
        if (!m->dl) {
                free(m);
                return -ENOENT;
        }
        init = (NvmlInit) dlsym(m->dl, "nvmlInit_v2");
        m->shutdown = (NvmlInit) dlsym(m->dl, "nvmlShutdown");
        m->by_uuid = (NvmlByUuid) dlsym(m->dl, "nvmlDeviceGetHandleByUUID");
        m->process_utilization = (NvmlProcessUtilization) dlsym(m->dl, "nvmlDeviceGetProcessUtilization");
        m->running_processes = (NvmlRunningProcesses) dlsym(m->dl, "nvmlDeviceGetComputeRunningProcesses_v3");
        m->utilization_rates = (NvmlUtilizationRates) dlsym(m->dl, "nvmlDeviceGetUtilizationRates");
        if (!m->running_processes) /* the same layout before R510 */
                m->running_processes = (NvmlRunningProcesses) dlsym(m->dl, "nvmlDeviceGetComputeRunningProcesses_v2");
        if (!init || !m->shutdown || !m->by_uuid || !m->process_utilization || !m->running_processes ||
            !m->utilization_rates) {
                dlclose(m->dl);
                free(m);
                return -EOPNOTSUPP;
        }
        m->gpus = calloc(MONITOR_GPUS_MAX, sizeof(MonitorGpu));
        r = !m->gpus ? -ENOMEM : init() != NVML_SUCCESS ? -EIO : 0;
        if (r < 0) {
                free(m->gpus);
                dlclose(m->dl);
                free(m);
                return r;
        }
        *ret = m;
        return 0;
}

UsageMonitor *usage_monitor_free(UsageMonitor *m) {
        if (!m)
                return NULL;
        m->shutdown();
        dlclose(m->dl);
        free(m->gpus);
        free(m);
        return NULL;
}

/* ---- pure parts ---- */

uint32_t usage_samples_pid_permille(const UsageSample *s, size_t n, uint32_t pid, uint64_t window_us,
                                    uint64_t period_us) {
        uint64_t newest = 0, first = UINT64_MAX, sum = 0, count = 0, span;
        bool older = false;

        for (size_t i = 0; i < n; i++)
                if (s[i].timestamp_us > newest)
                        newest = s[i].timestamp_us;
        for (size_t i = 0; i < n; i++) {
                if (s[i].pid != pid)
                        continue;
                if (s[i].timestamp_us + window_us <= newest) {
                        older = true; /* it ran before the window: not a new process */
                        continue;
                }
                sum += s[i].sm_percent > 100 ? 100 : s[i].sm_percent;
                count++;
                if (s[i].timestamp_us < first)
                        first = s[i].timestamp_us;
        }
        if (count == 0)
                return 0;
        if (period_us == 0) /* the sampling period is not known yet: the mean of what is there */
                return (uint32_t) (sum * 10 / count);
        /* The driver reports a process only for the sample periods in which it ran: the
         * periods it is missing from count as idle. Over the window, or, for a process
         * never seen before the window, since the period of its first sample. */
        span = older ? window_us : newest - (first > period_us ? first - period_us : 0);
        if (span > window_us)
                span = window_us;
        if (span < period_us)
                span = period_us;
        sum = sum * 10 * period_us / span;
        return (uint32_t) (sum > 1000 ? 1000 : sum);
}

/* The driver's sampling period, as the smallest gap between two samples of one process. */
static void gpu_learn_period(MonitorGpu *g, const UsageSample *s) {
        for (size_t i = 0; i < g->n_samples; i++) {
                uint64_t a = g->samples[i].timestamp_us, gap;

                if (g->samples[i].pid != s->pid || a == s->timestamp_us)
                        continue;
                gap = a > s->timestamp_us ? a - s->timestamp_us : s->timestamp_us - a;
                if (gap >= USAGE_MONITOR_PERIOD_MIN_US && (g->period_us == 0 || gap < g->period_us))
                        g->period_us = gap;
        }
}

/* ---- NVML ---- */

static MonitorGpu *gpu_get(UsageMonitor *m, const char *uuid) {
        MonitorGpu *g;

        for (size_t i = 0; i < m->n_gpus; i++)
                if (strcmp(m->gpus[i].uuid, uuid) == 0)
                        return &m->gpus[i];
        if (m->n_gpus >= MONITOR_GPUS_MAX || strlen(uuid) >= sizeof(g->uuid))
                return NULL;
        g = &m->gpus[m->n_gpus];
        memset(g, 0, sizeof(*g));
        strcpy(g->uuid, uuid);
        if (m->by_uuid(uuid, &g->device) != NVML_SUCCESS)
                return NULL;
        m->n_gpus++;
        return g;
}

/* Drop samples older than two windows (the older one tells old processes from new). */
static void gpu_prune_samples(MonitorGpu *g) {
        size_t k = 0;

        for (size_t i = 0; i < g->n_samples; i++)
                if (g->samples[i].timestamp_us + 2 * USAGE_MONITOR_WINDOW_US > g->last_seen_us)
                        g->samples[k++] = g->samples[i];
        g->n_samples = k;
}

static void gpu_add_sample(MonitorGpu *g, const nvmlProcessUtilizationSample_t *s) {
        UsageSample u = { .pid = s->pid, .timestamp_us = s->timeStamp, .sm_percent = s->smUtil };

        for (size_t i = 0; i < g->n_samples; i++)
                if (g->samples[i].pid == u.pid && g->samples[i].timestamp_us == u.timestamp_us)
                        return; /* seen in an earlier call */
        gpu_learn_period(g, &u);
        if (g->n_samples == MONITOR_SAMPLES_MAX) { /* the oldest goes */
                memmove(g->samples, g->samples + 1, (MONITOR_SAMPLES_MAX - 1) * sizeof(UsageSample));
                g->n_samples--;
        }
        g->samples[g->n_samples++] = u;
}

static void gpu_poll_samples(UsageMonitor *m, MonitorGpu *g) {
        nvmlProcessUtilizationSample_t *buf;
        unsigned count = 0;
        nvmlReturn_t nr;

        /* The size query, then the samples newer than the last we saw. */
        nr = m->process_utilization(g->device, NULL, &count, g->last_seen_us);
        if (nr != NVML_ERROR_INSUFFICIENT_SIZE && nr != NVML_SUCCESS)
                return; /* NOT_FOUND: nothing new */
        if (count == 0)
                return;
        if (count > MONITOR_SAMPLES_MAX)
                count = MONITOR_SAMPLES_MAX;
        count += 8; /* a process may appear between the two calls */
        buf = calloc(count, sizeof(*buf));
        if (!buf)
                return;
        nr = m->process_utilization(g->device, buf, &count, g->last_seen_us);
        if (nr == NVML_SUCCESS) {
                uint64_t newest = g->last_seen_us;
                for (unsigned i = 0; i < count && i < MONITOR_SAMPLES_MAX + 8; i++) {
                        gpu_add_sample(g, &buf[i]);
                        if (buf[i].timeStamp > newest)
                                newest = buf[i].timeStamp;
                }
                g->last_seen_us = newest;
                gpu_prune_samples(g);
        }
        free(buf);
}

static void gpu_poll_processes(UsageMonitor *m, MonitorGpu *g) {
        unsigned count = MONITOR_PROCESSES_MAX;

        if (m->running_processes(g->device, &count, g->processes) != NVML_SUCCESS)
                count = 0; /* INSUFFICIENT_SIZE past 1024 processes: count nothing rather than part */
        g->n_processes = count <= MONITOR_PROCESSES_MAX ? count : 0;
}

/*
 * How much of the GPU's busy time is nobody's: the device-wide utilization less every
 * process's own share (all processes on the GPU, not only ours). That is the cost of
 * switching contexts between processes whose kernels interleave: when it is large, the
 * containers' queues have grown into each other's slots, and their limiters back off
 * until the GPU catches up (sm-limiter.c).
 */
static void gpu_poll_congestion(UsageMonitor *m, MonitorGpu *g) {
        nvmlUtilization_t u;
        uint32_t owned = 0, pids[64];
        uint64_t sum = 0, count = 0;
        unsigned n = 0;

        g->unowned = 0;
        if (m->utilization_rates(g->device, &u) != NVML_SUCCESS || u.gpu > 100)
                return;
        /* Over the same second as the processes' shares: the readings of that second. */
        memmove(g->busy + 1, g->busy, sizeof(g->busy) - sizeof(g->busy[0]));
        memmove(g->busy_at + 1, g->busy_at, sizeof(g->busy_at) - sizeof(g->busy_at[0]));
        g->busy[0] = u.gpu;
        g->busy_at[0] = g->last_seen_us;
        if (g->n_busy < 16)
                g->n_busy++;
        for (unsigned i = 0; i < g->n_busy; i++)
                if (g->busy_at[i] + USAGE_MONITOR_WINDOW_US > g->last_seen_us) {
                        sum += g->busy[i];
                        count++;
                }
        for (size_t i = 0; i < g->n_samples && n < 64; i++) {
                bool seen = false;
                for (unsigned k = 0; k < n && !seen; k++)
                        seen = pids[k] == g->samples[i].pid;
                if (!seen)
                        pids[n++] = g->samples[i].pid;
        }
        for (unsigned k = 0; k < n; k++)
                owned += usage_samples_pid_permille(g->samples, g->n_samples, pids[k], USAGE_MONITOR_WINDOW_US,
                                                    g->period_us);
        sum = count ? sum * 10 / count : 0;
        g->unowned = sum > owned ? (uint32_t) (sum - owned) : 0;
}

static uint64_t gpu_process_memory(const MonitorGpu *g, uint32_t pid) {
        for (unsigned i = 0; i < g->n_processes; i++)
                if (g->processes[i].pid == pid)
                        return g->processes[i].usedGpuMemory;
        return 0;
}

/* ---- one region ---- */

typedef struct RegionScan {
        SharedRegionUsage usage;
        struct stat st;
        /* live slots: index, usage, context reservation */
        uint32_t slot[MONITOR_PIDS_MAX];
        uint64_t used[MONITOR_PIDS_MAX][SHARED_REGION_DEVICES_MAX];
        uint16_t context_mib[MONITOR_PIDS_MAX][SHARED_REGION_DEVICES_MAX];
        uint32_t host_pid[MONITOR_PIDS_MAX];    /* 0: no beacon */
        unsigned n;
} RegionScan;

static void scan_slot(uint32_t slot, const SharedRegionSlot *copy, void *userdata) {
        RegionScan *s = userdata;

        if (s->n >= MONITOR_PIDS_MAX)
                return;
        s->slot[s->n] = slot;
        memcpy(s->used[s->n], copy->used, sizeof(copy->used));
        memcpy(s->context_mib[s->n], copy->context_mib, sizeof(copy->context_mib));
        s->host_pid[s->n] = 0;
        s->n++;
}

/* The locks that can be beacons (POSIX read locks on one byte), read once per tick. */
typedef struct Beacons {
        ProcLock *locks;
        size_t n, allocated;
} Beacons;

static int collect_beacon(const ProcLock *l, void *userdata) {
        Beacons *b = userdata;

        if (l->write || l->start != l->end)
                return 0;
        if (b->n == b->allocated) {
                size_t more = b->allocated ? b->allocated * 2 : 64;
                ProcLock *p = realloc(b->locks, more * sizeof(*p));
                if (!p)
                        return -ENOMEM;
                b->locks = p;
                b->allocated = more;
        }
        b->locks[b->n++] = *l;
        return 0;
}

/* Read /proc/locks; on any failure no beacons (memory and SM read as 0 this time). */
static void beacons_read(Beacons *ret) {
        char *text = NULL;
        size_t size = 0;

        *ret = (Beacons) {};
        if (proc_locks_read("/proc/locks", PROC_LOCKS_MAX, &text, &size) < 0)
                return;
        if (proc_locks_parse(text, size, collect_beacon, ret) < 0)
                ret->n = 0;
        free(text);
}

/* The host PIDs of the region's live slots, from the beacons on its file. */
static void scan_beacons(RegionScan *s, const Beacons *b) {
        uint64_t first = (uint64_t) shared_region_beacon_offset(s->usage.n_slots, 0);

        for (size_t k = 0; k < b->n; k++) {
                const ProcLock *l = &b->locks[k];

                if (l->dev != s->st.st_dev || l->ino != (uint64_t) s->st.st_ino || l->start < first ||
                    l->start >= first + s->usage.n_slots)
                        continue;
                for (unsigned i = 0; i < s->n; i++)
                        if (s->slot[i] == l->start - first)
                                s->host_pid[i] = (uint32_t) l->pid;
        }
}

static void measure_device(UsageMonitor *m, const RegionScan *s, unsigned d, MonitorGpu *g,
                           SharedRegionMeasurement *ret) {
        SharedRegionMeasurement out = {};
        uint32_t sm = 0;

        for (unsigned i = 0; i < s->n; i++) {
                uint64_t real, allocated, reserved = s->used[i][d], context = (uint64_t) s->context_mib[i][d] * MiB;
                uint32_t pid = s->host_pid[i];
                uint32_t p;

                if (pid == 0)
                        continue;
                p = usage_samples_pid_permille(g->samples, g->n_samples, pid, USAGE_MONITOR_WINDOW_US, g->period_us);
                if (p > 0)
                        out.measured_procs++;
                sm += p;
                real = gpu_process_memory(g, pid);
                if (real > reserved)
                        out.footprint_extra += real - reserved;
                /* What the driver holds beyond the process's own allocations: its context
                 * and modules. The smallest seen on this GPU is what a context costs. */
                allocated = reserved > context ? reserved - context : 0;
                if (real > allocated) {
                        uint64_t overhead = real - allocated;
                        if (g->context_bytes == 0 || overhead < g->context_bytes)
                                g->context_bytes = overhead;
                }
        }
        out.measured_sm = sm > 1000 ? 1000 : sm;
        out.context_bytes = g->context_bytes;
        out.unowned = g->unowned;
        *ret = out;
}

/* Read one region and measure its devices into r->measured (written later). */
static int scan_region(UsageMonitor *m, UsageMonitorRegion *r, const Beacons *beacons) {
        RegionScan *s;
        int k;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        k = shared_region_read_usage_slots(r->path, &s->usage, &s->st, scan_slot, s);
        if (k >= 0)
                scan_beacons(s, beacons);
        r->n_processes = 0;
        r->n_measured = 0;
        r->n_unresolved = 0;
        for (unsigned i = 0; k >= 0 && i < s->n; i++) {
                r->n_processes += s->host_pid[i] != 0;
                r->n_unresolved += s->host_pid[i] == 0;
        }
        for (unsigned d = 0; k >= 0 && d < r->n_devices && d < s->usage.n_devices; d++) {
                MonitorGpu *g = r->uuid[d] ? gpu_get(m, r->uuid[d]) : NULL;

                memset(&r->measured[d], 0, sizeof(r->measured[d]));
                r->sm_limit[d] = s->usage.sm_limit[d];
                r->n_measured = d + 1;
                if (!g)
                        continue;
                if (!g->polled) {
                        gpu_poll_samples(m, g);
                        gpu_poll_processes(m, g);
                        gpu_poll_congestion(m, g);
                        g->polled = true;
                }
                /* A live process whose host PID is unknown (no beacon yet, or it lost it)
                 * would be counted as idle: better no figure, and libvgpu's stricter
                 * device-wide fallback, than a share that is too low. */
                if (r->n_unresolved > 0)
                        continue;
                measure_device(m, s, d, g, &r->measured[d]);
                r->measured[d].measured = true;
        }
        r->st = s->st;
        r->usage = s->usage;
        free(s);
        return k;
}

/*
 * The GPU's time, shared out: each container with an SM limit on it gets a slot of its
 * limit's length in every USAGE_MONITOR_PERIOD_NS, one after the other (in the order
 * of their region paths, so that a slot stays put while its neighbours stay), and its
 * limiter hands out a slot's worth of launches at the slot's start. The containers'
 * kernels then reach the GPU one container at a time instead of interleaved, and the
 * GPU switches contexts at slot boundaries, not between every two kernels.
 */
static bool on_gpu(const UsageMonitorRegion *r, unsigned d, const MonitorGpu *g) {
        return r->error >= 0 && r->uuid[d] && strcmp(r->uuid[d], g->uuid) == 0 && r->sm_limit[d] > 0 &&
               r->sm_limit[d] < 100;
}

static void schedule_gpu(UsageMonitorRegion **sorted, size_t n, const MonitorGpu *g) {
        uint64_t offset = 0, total = 0, reserve, target = 1000;
        unsigned tenants = 0;

        for (size_t i = 0; i < n; i++)
                for (unsigned d = 0; d < sorted[i]->n_measured; d++) {
                        if (!on_gpu(sorted[i], d, g))
                                continue;
                        /* The limiter's quantum starts when (now + phase) crosses a multiple
                         * of the period: at `offset` into it. Never 0 (0: unscheduled). */
                        sorted[i]->measured[d].phase_ns = USAGE_MONITOR_PERIOD_NS - offset % USAGE_MONITOR_PERIOD_NS;
                        offset += USAGE_MONITOR_PERIOD_NS * sorted[i]->sm_limit[d] / 100;
                        total += sorted[i]->sm_limit[d] * 10;
                        tenants++;
                }
        /* Limits that leave the GPU no time for switching between their slots cannot all
         * be met: each aims at the same fraction of its own, what is left after the switches
         * (at least 4 %) shared out in proportion to the limits. Alone, there is nobody to
         * switch to (what reads as unowned is then the samples' rounding). */
        reserve = g->unowned > USAGE_MONITOR_SWITCH_RESERVE ? g->unowned : USAGE_MONITOR_SWITCH_RESERVE;
        if (tenants >= 2 && total + reserve > 1000)
                target = (1000 - (reserve < 1000 ? reserve : 999)) * 1000 / total;
        for (size_t i = 0; i < n; i++)
                for (unsigned d = 0; d < sorted[i]->n_measured; d++)
                        if (on_gpu(sorted[i], d, g))
                                sorted[i]->measured[d].target_permille = (uint32_t) target;
}

static int region_cmp(const void *a, const void *b) {
        const UsageMonitorRegion *const *x = a, *const *y = b;
        return strcmp((*x)->path, (*y)->path);
}

int usage_monitor_tick(UsageMonitor *m, UsageMonitorRegion *regions, size_t n) {
        UsageMonitorRegion **sorted;
        Beacons beacons;
        int written = 0;

        if (!m || (!regions && n > 0))
                return -EINVAL;
        for (size_t i = 0; i < m->n_gpus; i++)
                m->gpus[i].polled = false;
        beacons_read(&beacons);
        for (size_t i = 0; i < n; i++)
                regions[i].error = regions[i].read_error = scan_region(m, &regions[i], &beacons);
        free(beacons.locks);

        /* Slots in path order, whatever order the caller listed the regions in. */
        sorted = calloc(n ? n : 1, sizeof(*sorted));
        if (sorted) {
                for (size_t i = 0; i < n; i++)
                        sorted[i] = &regions[i];
                qsort(sorted, n, sizeof(*sorted), region_cmp);
                for (size_t g = 0; g < m->n_gpus; g++)
                        schedule_gpu(sorted, n, &m->gpus[g]);
                free(sorted);
        }

        for (size_t i = 0; i < n; i++) {
                UsageMonitorRegion *r = &regions[i];

                if (r->error >= 0)
                        r->error = shared_region_write_measurements(r->path, &r->st, r->measured, r->n_measured);
                if (r->error >= 0)
                        written++;
        }
        return written;
}
