/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The SM limiter: a token bucket of kernel launches per device, in the shared region so
 * that all the container's processes draw from one bucket. Its rate is fed back from
 * the container's measured share u of the GPU and the launches n it made meanwhile: a
 * launch costs about u/n of the device, so the rate that meets the limit L is n*L/u.
 * The new rate is the mean of the old one and that estimate. The share is the node's
 * usage monitor's (the daemon reads the driver's per-process accounting under host
 * PIDs, usage-monitor.h): the container's own, whatever else runs on the GPU. Without a
 * monitor, NVML's device-wide utilization stands in (right when the container is alone,
 * stricter than asked when it is not). Launches past the bucket sleep (never spin)
 * until their token is due.
 */

#include <errno.h>
#include <unistd.h>
#include <time.h>

#include "vgpu.h"

#define TOKEN_ONE (1LL << 16)
#define PERIOD_NS (250ULL * 1000 * 1000)
#define BURST_NS QUANTUM_NS /* a slot's worth, never more: the rest would spill into the next container's slot */
#define QUANTUM_NS (10ULL * 1000 * 1000) /* = USAGE_MONITOR_PERIOD_NS, the monitor's slot period */
#define RATE_MIN (1.0 * TOKEN_ONE)        /* launches per second, fixed point */
#define RATE_MAX (1e8 * TOKEN_ONE)
#define RATE_INITIAL (100.0 * TOKEN_ONE)
/* The monitor writes every 100 ms; 1.5 s without an update and it counts as gone. */
#define MONITOR_STALE_NS (1500ULL * 1000 * 1000)
/* More than this of the GPU busy with context switches (permille: the monitor's
 * "unowned"), and the limiters of all its containers back off below what the GPU ran
 * of theirs, by BACK_OFF_* per adjustment, until their queues have drained. */
#define CONGESTED_PERMILLE 80
#define BACK_OFF_OVER 0.8
#define BACK_OFF_UNDER 0.95
#define ADJUST_MIN_NS (1000ULL * 1000 * 1000)

/* The fine clock: quanta are placed at random phases, which the coarse clock (a few
 * ms of resolution, ticking for every process at once) would line up again. */
static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static NvmlDevice nvml_handles[SHARED_REGION_DEVICES_MAX];

static int utilization(int dev) {
        NvmlUtilization u;

        if (!vgpu_nvml_init() || !vgpu_nvml.nvmlDeviceGetUtilizationRates || !vgpu_nvml.nvmlDeviceGetHandleByIndex_v2)
                return -1;
        if (!nvml_handles[dev]) {
                static bool inited;
                if (!inited) {
                        if (!vgpu_nvml.nvmlInit_v2 || vgpu_nvml.nvmlInit_v2() != VG_NVML_SUCCESS)
                                return -1;
                        inited = true;
                }
                /* The claim's GPU by its UUID where the CDI spec gave one, else by position. */
                if ((!vgpu_config.uuid[dev][0] || !vgpu_nvml.nvmlDeviceGetHandleByUUID ||
                     vgpu_nvml.nvmlDeviceGetHandleByUUID(vgpu_config.uuid[dev], &nvml_handles[dev]) != VG_NVML_SUCCESS) &&
                    vgpu_nvml.nvmlDeviceGetHandleByIndex_v2((unsigned) dev, &nvml_handles[dev]) != VG_NVML_SUCCESS)
                        return -1;
        }
        if (vgpu_nvml.nvmlDeviceGetUtilizationRates(nvml_handles[dev], &u) != VG_NVML_SUCCESS || u.gpu > 100)
                return -1;
        return (int) u.gpu;
}

/* The new rate from what the container launched (launches over elapsed_s) and the
 * share of the GPU that cost (util, percent): the rate that meets the limit, averaged
 * with the old one. No measurable share: the launches are too short to matter, open up. */
static void rate_update(int dev, SharedRegionDevice *d, double launches, double elapsed_s, double util,
                        double limit, const char *source) {
        double rate = (double) __atomic_load_n(&d->rate, __ATOMIC_RELAXED), target;

        if (launches <= 0 || elapsed_s <= 0)
                return;
        target = launches / elapsed_s * TOKEN_ONE * limit / (util > 0.5 ? util : 0.5);
        rate = (rate + target) / 2;
        if (rate < RATE_MIN)
                rate = RATE_MIN;
        if (rate > RATE_MAX)
                rate = RATE_MAX;
        __atomic_store_n(&d->rate, (uint64_t) rate, __ATOMIC_RELAXED);
        vgpu_log(VGPU_LOG_DEBUG, "device %d: %s share %.1f%%, %.0f launches/s, rate now %.1f/s", dev, source, util,
                 launches / elapsed_s, rate / TOKEN_ONE);
}

/* Below what the GPU ran of ours lately (launches per second): the queue drains. A
 * container at or over its limit gives way more than one under it, so that the GPU's
 * time goes back to the limits, not to whoever got ahead. */
static void rate_back_off(int dev, SharedRegionDevice *d, double launches_per_s, double util) {
        double rate = (double) __atomic_load_n(&d->rate, __ATOMIC_RELAXED);

        if (launches_per_s * TOKEN_ONE < rate)
                rate = launches_per_s * TOKEN_ONE;
        rate *= util >= vgpu_config.sm_limit[dev] ? BACK_OFF_OVER : BACK_OFF_UNDER;
        __atomic_store_n(&d->rate, (uint64_t) (rate < RATE_MIN ? RATE_MIN : rate), __ATOMIC_RELAXED);
        vgpu_log(VGPU_LOG_DEBUG, "device %d: the GPU is congested, rate now %.1f/s", dev, rate / TOKEN_ONE);
}

/* What to aim at: the limit, or, where the monitor says the limits on this GPU add up
 * to more than it can run, the share of it the monitor gives (never under half). */
static double target_limit(int dev, SharedRegionDevice *d) {
        uint32_t t = __atomic_load_n(&d->target_permille, __ATOMIC_RELAXED);

        return vgpu_config.sm_limit[dev] * (t >= 500 && t < 1000 ? t / 1000.0 : 1.0);
}

/* The node's usage monitor measured the container's own share (measured_seq moved):
 * whoever sees the new sequence first adjusts. True when the monitor is alive. */
static bool rate_adjust_from_monitor(int dev, SharedRegionDevice *d, uint64_t now) {
        uint64_t seq = __atomic_load_n(&d->measured_seq, __ATOMIC_ACQUIRE);
        uint64_t seen = __atomic_load_n(&d->adjust_seq, __ATOMIC_RELAXED);
        uint64_t last;
        double launches;

        if (seq == 0)
                return false; /* no monitor has ever written: the device-wide fallback */
        last = __atomic_load_n(&d->adjust_ns, __ATOMIC_RELAXED);
        if (seq == seen)
                return last != 0 && now - last < MONITOR_STALE_NS;
        /* The monitor writes every 100 ms; its figures move slower (a 1 s window). */
        if (last != 0 && now - last < ADJUST_MIN_NS)
                return true;
        if (!__atomic_compare_exchange_n(&d->adjust_seq, &seen, seq, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
                return true; /* another process adjusts */
        last = __atomic_exchange_n(&d->adjust_ns, now, __ATOMIC_ACQ_REL);
        if (last == 0 || now - last > MONITOR_STALE_NS) {
                __atomic_store_n(&d->launches, 0, __ATOMIC_RELAXED); /* a fresh start */
                return true;
        }
        launches = (double) __atomic_exchange_n(&d->launches, 0, __ATOMIC_RELAXED);
        if (__atomic_load_n(&d->unowned, __ATOMIC_RELAXED) >= CONGESTED_PERMILLE) {
                /* The GPU switches between containers' kernels more than it runs them:
                 * everyone's queue is too long. Back off until it catches up. */
                rate_back_off(dev, d, launches / ((double) (now - last) / 1e9),
                              __atomic_load_n(&d->measured_sm, __ATOMIC_RELAXED) / 10.0);
                return true;
        }
        rate_update(dev, d, launches, (double) (now - last) / 1e9,
                    __atomic_load_n(&d->measured_sm, __ATOMIC_RELAXED) / 10.0, target_limit(dev, d), "own");
        return true;
}

/* Without a monitor (a container started by hand, or the daemon down for more than
 * MONITOR_STALE_NS): NVML's device-wide utilization, which counts other containers'
 * kernels as ours, so the limit is then stricter than asked, never looser. */
static void rate_adjust_device_wide(int dev, SharedRegionDevice *d, uint64_t now) {
        uint64_t last = __atomic_load_n(&d->adjust_ns, __ATOMIC_RELAXED);
        double launches;
        int util;

        if (last != 0 && now - last < PERIOD_NS)
                return;
        if (!__atomic_compare_exchange_n(&d->adjust_ns, &last, now, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
                return; /* another process adjusts */
        launches = (double) __atomic_exchange_n(&d->launches, 0, __ATOMIC_RELAXED);
        if (last == 0)
                return;
        util = utilization(dev);
        if (util < 0) {
                vgpu_report_degraded(SHARED_REGION_DEGRADED_SM_LIMIT,
                                     "device %d: no usage monitor and no NVML utilization: the SM limit holds "
                                     "at its last rate", dev);
                return;
        }
        rate_update(dev, d, launches, (double) (now - last) / 1e9, util, vgpu_config.sm_limit[dev],
                    "device-wide");
}

static void rate_adjust(int dev, SharedRegionDevice *d, uint64_t now) {
        if (!rate_adjust_from_monitor(dev, d, now))
                rate_adjust_device_wide(dev, d, now);
}

/* This container's phase in the quantum grid: chosen once per region device, at random,
 * so that containers sharing a GPU do not all refill (and submit) at the same instant. */
static uint64_t quantum_phase(SharedRegionDevice *d, uint64_t now) {
        uint64_t phase = __atomic_load_n(&d->phase_ns, __ATOMIC_RELAXED), zero = 0;

        if (phase != 0)
                return phase % QUANTUM_NS;
        phase = 1 + ((now ^ ((uint64_t) getpid() << 32)) * 0x9e3779b97f4a7c15ULL >> 11) % (QUANTUM_NS - 1);
        if (!__atomic_compare_exchange_n(&d->phase_ns, &zero, phase, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
                phase = zero;
        return phase;
}

/* Tokens come a quantum at a time: the container then submits that quantum's kernels
 * together, and the GPU runs them as one stretch instead of switching contexts between
 * every kernel of every container (each switch costs GPU time nobody gets: two
 * time-sliced processes got 87 % of the GPU together on an H200).
 *
 * A bucket found full, its last quantum's tokens undrawn (the container was idle, or
 * launched less than its share), loses them: it gets only the rest of the current
 * quantum's share, so a hard cap hands out no idle time. (A full quantum at each start of
 * work gave a tenant busy half the time, in 50 ms stretches, 54 % at a 90 % limit instead
 * of 45.) A container waiting for its tokens never has a full bucket: at low rates, where
 * a launch takes several quanta's tokens, those still add up. */
static void refill(SharedRegionDevice *d, uint64_t now) {
        uint64_t phased = now + quantum_phase(d, now), q = phased / QUANTUM_NS;
        uint64_t last = __atomic_load_n(&d->refill_ns, __ATOMIC_RELAXED);
        double rate = (double) __atomic_load_n(&d->rate, __ATOMIC_RELAXED);
        int64_t add, cap, t;

        if (q == last || !__atomic_compare_exchange_n(&d->refill_ns, &last, q, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
                return;
        if (last == 0)
                return;
        cap = (int64_t) (rate * BURST_NS / 1e9) + TOKEN_ONE;
        if (__atomic_load_n(&d->tokens, __ATOMIC_RELAXED) >= cap) {
                t = (int64_t) (rate * (double) (QUANTUM_NS - phased % QUANTUM_NS) / 1e9);
                __atomic_store_n(&d->tokens, t, __ATOMIC_RELAXED); /* racy: bounded error */
                return;
        }
        if (q - last > 1 && __atomic_load_n(&d->waiters, __ATOMIC_RELAXED) == 0) {
                /* Nobody launched for a whole quantum and nobody sleeps for tokens: the
                 * container was idle, and its tokens were not drawn. It starts with the
                 * rest of the current quantum's share less half a quantum (at least one
                 * launch): a busy stretch draws its last quantum's tokens at the quantum's
                 * start, half a quantum more than it lasts on average, and pays that back
                 * here. With a full quantum instead, a tenant busy in 50 ms bursts got 54 %
                 * at a 90 % limit instead of 45; with the rest of the quantum, 49. */
                t = (int64_t) (rate * ((double) (QUANTUM_NS - phased % QUANTUM_NS) - QUANTUM_NS / 2.0) / 1e9);
                if (t < TOKEN_ONE)
                        t = TOKEN_ONE;
                __atomic_store_n(&d->tokens, t, __ATOMIC_RELAXED); /* racy: bounded error */
                return;
        }
        add = (int64_t) (rate * (double) ((q - last) < 100 ? q - last : 100) * QUANTUM_NS / 1e9);
        /* Capped at a quantum's worth and the fraction of a launch carried over: 1.5
         * launches a quantum must come out as 3 every 2 quanta, not 1 every quantum. */
        t = __atomic_add_fetch(&d->tokens, add, __ATOMIC_RELAXED);
        if (t > cap)
                __atomic_store_n(&d->tokens, cap, __ATOMIC_RELAXED); /* racy trim: bounded error */
}

/* Until the token is due: the next quantum, or later at a low rate. */
static int64_t wait_ns(SharedRegionDevice *d, uint64_t now, int64_t deficit) {
        double rate = (double) __atomic_load_n(&d->rate, __ATOMIC_RELAXED);
        int64_t to_next = (int64_t) (QUANTUM_NS - (now + quantum_phase(d, now)) % QUANTUM_NS);
        int64_t due = (int64_t) ((double) deficit / rate * 1e9);

        return due > to_next ? (due < 20000000 ? due : 20000000) : to_next;
}

void vgpu_sm_throttle(int dev) {
        SharedRegionDevice *d;
        uint64_t zero = 0;

        if (dev < 0 || dev >= (int) SHARED_REGION_DEVICES_MAX || vgpu_config.sm_limit[dev] == 0 ||
            !vgpu_region.header || (unsigned) dev >= vgpu_region.header->n_devices)
                return;
        d = &vgpu_region.header->devices[dev];
        __atomic_compare_exchange_n(&d->rate, &zero, (uint64_t) RATE_INITIAL, false, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED);
        for (bool waited = false;; waited = true) {
                uint64_t now = now_ns();
                int64_t t, wait;

                rate_adjust(dev, d, now);
                refill(d, now); /* still counted as a waiter: the tokens due add up */
                if (waited)
                        __atomic_sub_fetch(&d->waiters, 1, __ATOMIC_RELAXED);
                t = __atomic_sub_fetch(&d->tokens, TOKEN_ONE, __ATOMIC_RELAXED);
                if (t >= 0) {
                        __atomic_add_fetch(&d->launches, 1, __ATOMIC_RELAXED);
                        return;
                }
                __atomic_add_fetch(&d->tokens, TOKEN_ONE, __ATOMIC_RELAXED);
                wait = wait_ns(d, now, -t);
                __atomic_add_fetch(&d->waiters, 1, __ATOMIC_RELAXED);
                nanosleep(&(struct timespec) { .tv_sec = 0, .tv_nsec = wait }, NULL);
        }
}

void vgpu_sm_throttle_current(void) {
        if (!vgpu_guard_enter()) {
                vgpu_guard_leave();
                return;
        }
        vgpu_sm_throttle(vgpu_current_device());
        vgpu_guard_leave();
}
