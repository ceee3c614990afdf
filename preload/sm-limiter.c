/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The SM limiter: a token bucket of kernel launches per device, in the shared region so
 * that all the container's processes draw from one bucket. Its rate is fed back from
 * the measured utilization: every period, one process (whoever wins a compare-and-swap)
 * reads NVML's utilization u over the last period and the launches n the container made
 * in it; a launch then costs about u/n of the device, so the rate that meets the limit
 * L is n*L/u per period. The new rate is the mean of the old one and that estimate.
 * Launches past the bucket sleep (never spin) until their token is due.
 */

#include <errno.h>
#include <time.h>

#include "vgpu.h"

#define TOKEN_ONE (1LL << 16)
#define PERIOD_NS (250ULL * 1000 * 1000)
#define BURST_NS (25ULL * 1000 * 1000)
#define REFILL_NS (50ULL * 1000)
#define RATE_MIN (1.0 * TOKEN_ONE)        /* launches per second, fixed point */
#define RATE_MAX (1e8 * TOKEN_ONE)
#define RATE_INITIAL (100.0 * TOKEN_ONE)

/* The coarse clock (a few ms of resolution) costs a load instead of a TSC read; the
 * bucket holds 25 ms and the rate is re-estimated from measurements, so it is enough. */
static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
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
                if (vgpu_nvml.nvmlDeviceGetHandleByIndex_v2((unsigned) dev, &nvml_handles[dev]) != VG_NVML_SUCCESS)
                        return -1;
        }
        if (vgpu_nvml.nvmlDeviceGetUtilizationRates(nvml_handles[dev], &u) != VG_NVML_SUCCESS || u.gpu > 100)
                return -1;
        return (int) u.gpu;
}

static void rate_adjust(int dev, SharedRegionDevice *d, uint64_t now) {
        uint64_t last = __atomic_load_n(&d->adjust_ns, __ATOMIC_RELAXED);
        double rate, target, launches, elapsed;
        int util;

        if (last != 0 && now - last < PERIOD_NS)
                return;
        if (!__atomic_compare_exchange_n(&d->adjust_ns, &last, now, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
                return; /* another process adjusts */
        launches = (double) __atomic_exchange_n(&d->launches, 0, __ATOMIC_RELAXED);
        if (last == 0)
                return;
        elapsed = (double) (now - last) / 1e9;
        util = utilization(dev);
        if (util < 0 || launches <= 0)
                return;
        rate = (double) __atomic_load_n(&d->rate, __ATOMIC_RELAXED);
        /* No measurable utilization: the launches are too short to matter, let them go
         * (the estimate below with util = 1 opens the bucket fast). */
        target = launches / elapsed * TOKEN_ONE * vgpu_config.sm_limit[dev] / (util > 0 ? util : 1);
        rate = (rate + target) / 2;
        if (rate < RATE_MIN)
                rate = RATE_MIN;
        if (rate > RATE_MAX)
                rate = RATE_MAX;
        __atomic_store_n(&d->rate, (uint64_t) rate, __ATOMIC_RELAXED);
        vgpu_log(VGPU_LOG_DEBUG, "device %d: utilization %d%%, %.0f launches/s, rate now %.1f/s", dev, util,
                 launches / elapsed, rate / TOKEN_ONE);
}

static void refill(SharedRegionDevice *d, uint64_t now) {
        uint64_t last = __atomic_load_n(&d->refill_ns, __ATOMIC_RELAXED);
        double rate = (double) __atomic_load_n(&d->rate, __ATOMIC_RELAXED);
        int64_t add, cap, t;

        /* Refill at most every REFILL_NS: the bucket holds a burst, and every refill is a
         * compare-and-swap on a line all the container's launchers share. */
        if (now < last + REFILL_NS ||
            !__atomic_compare_exchange_n(&d->refill_ns, &last, now, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
                return;
        if (last == 0)
                return;
        add = (int64_t) (rate * (double) (now - last < 1000000000ULL ? now - last : 1000000000ULL) / 1e9);
        cap = (int64_t) (rate * BURST_NS / 1e9);
        if (cap < TOKEN_ONE)
                cap = TOKEN_ONE;
        t = __atomic_add_fetch(&d->tokens, add, __ATOMIC_RELAXED);
        if (t > cap)
                __atomic_store_n(&d->tokens, cap, __ATOMIC_RELAXED); /* racy trim: bounded error */
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
        for (;;) {
                uint64_t now = now_ns();
                double rate;
                int64_t t, wait;

                rate_adjust(dev, d, now);
                refill(d, now);
                t = __atomic_sub_fetch(&d->tokens, TOKEN_ONE, __ATOMIC_RELAXED);
                if (t >= 0) {
                        __atomic_add_fetch(&d->launches, 1, __ATOMIC_RELAXED);
                        return;
                }
                __atomic_add_fetch(&d->tokens, TOKEN_ONE, __ATOMIC_RELAXED);
                rate = (double) __atomic_load_n(&d->rate, __ATOMIC_RELAXED);
                wait = (int64_t) ((double) -t / rate * 1e9);
                if (wait < 20000)
                        wait = 20000;
                if (wait > 20000000)
                        wait = 20000000;
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
