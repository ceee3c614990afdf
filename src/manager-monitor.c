/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The usage monitor in the daemon (usage-monitor.h): every MONITOR_INTERVAL_USEC, the
 * region of every prepared claim gets its container's own SM share and memory
 * footprint, measured from the driver's per-process accounting. Without NVML (the mock
 * backend on a host without a driver, or the driver not installed yet) it retries every
 * MONITOR_RETRY_USEC; libvgpu.so falls back to device-wide utilization meanwhile.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "macro.h"
#include "manager-monitor.h"
#include "manager.h"
#include "metrics.h"
#include "prepare.h"
#include "time-util.h"
#include "usage-monitor.h"

#define MONITOR_INTERVAL_USEC (USAGE_MONITOR_INTERVAL_MS * USEC_PER_MSEC)
#define MONITOR_RETRY_USEC (30 * USEC_PER_SEC)
#define MONITOR_REGIONS_MAX 4096

typedef struct MonitorCollect {
        const char *state_dir;
        UsageMonitorRegion *regions;
        char **paths;
        const char **uids;      /* the claims' records stay put during the tick */
        size_t n;
        int error;
} MonitorCollect;

static void collect_claim(void *userdata, const PreparedClaim *c) {
        MonitorCollect *mc = userdata;
        UsageMonitorRegion *r;

        if (mc->error < 0 || mc->n >= MONITOR_REGIONS_MAX)
                return;
        r = &mc->regions[mc->n];
        *r = (UsageMonitorRegion) {};
        mc->paths[mc->n] = prepared_claim_region_path(mc->state_dir, c->uid);
        if (!mc->paths[mc->n]) {
                mc->error = -ENOMEM;
                return;
        }
        r->path = mc->paths[mc->n];
        r->read_error = 1; /* not read (yet): the tick sets 0 or negative errno */
        mc->uids[mc->n] = c->uid;
        /* Region device i is the GPU with index i in the claim (claim-limits.h). */
        for (size_t i = 0; i < c->n_devices; i++) {
                unsigned idx = c->devices[i].cuda_index;

                if (idx >= SHARED_REGION_DEVICES_MAX || !c->devices[i].gpu_uuid)
                        continue;
                r->uuid[idx] = c->devices[i].gpu_uuid;
                if (idx + 1 > r->n_devices)
                        r->n_devices = idx + 1;
        }
        mc->n++;
}

static void monitor_report(Manager *m, const UsageMonitorRegion *r) {
        if (r->error >= 0 || r->error == -ENOENT) /* -ENOENT: unprepared meanwhile */
                return;
        log_debug_errno(r->error, "Usage monitor: cannot measure %s: %m", r->path);
}

/* Must run while the claims' records stay put: on the main loop, like every prepare
 * result that changes them. */
static void monitor_tick(Manager *m) {
        MonitorCollect mc = { .state_dir = m->config.state_dir };

        mc.regions = calloc(MONITOR_REGIONS_MAX, sizeof(UsageMonitorRegion));
        mc.paths = calloc(MONITOR_REGIONS_MAX, sizeof(char *));
        mc.uids = calloc(MONITOR_REGIONS_MAX, sizeof(char *));
        if (mc.regions && mc.paths && mc.uids && m->preparer) {
                (void) preparer_foreach(m->preparer, collect_claim, &mc);
                if (mc.n > 0 && mc.error >= 0) {
                        uint64_t now = now_usec();

                        (void) usage_monitor_tick(m->monitor, mc.regions, mc.n);
                        for (size_t i = 0; i < mc.n; i++) {
                                monitor_report(m, &mc.regions[i]);
                                /* The metrics take this reading instead of making their own. */
                                if (m->metrics && mc.regions[i].read_error <= 0)
                                        metrics_claim_usage(m->metrics, mc.uids[i], mc.regions[i].read_error,
                                                            &mc.regions[i].usage, now);
                        }
                }
        }
        free(mc.uids);
        for (size_t i = 0; mc.paths && i < mc.n; i++)
                free(mc.paths[i]);
        free(mc.paths);
        free(mc.regions);
}

static int monitor_open(Manager *m) {
        int r;

        if (m->monitor)
                return 0;
        r = usage_monitor_new(NULL, &m->monitor);
        if (r < 0) {
                if (!m->monitor_unavailable_logged)
                        log_notice_errno(r, "Usage monitor off for now (NVML: %m); libvgpu.so measures whole-GPU "
                                            "utilization until it runs. Retrying every %u s.",
                                         (unsigned) (MONITOR_RETRY_USEC / USEC_PER_SEC));
                m->monitor_unavailable_logged = true;
                return r;
        }
        log_info("Usage monitor measuring each claim's own GPU share and memory footprint every %u ms",
                 (unsigned) (MONITOR_INTERVAL_USEC / USEC_PER_MSEC));
        return 0;
}

static int on_monitor_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        bool open = monitor_open(m) >= 0;

        if (open)
                monitor_tick(m);
        return sd_event_source_set_time_relative(s, open ? MONITOR_INTERVAL_USEC : MONITOR_RETRY_USEC) < 0
                       ? 0
                       : sd_event_source_set_enabled(s, SD_EVENT_ON);
}

/*
 * Not the usage monitor's (it needs NVML): every claim's vgpu.cache is writable by its
 * containers, and one that grows is cut back (preparer_trim_regions) before it can fill
 * the state file system.
 */
static int on_trim_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        if (m->preparer)
                (void) preparer_trim_regions(m->preparer);
        return sd_event_source_set_time_relative(s, PREPARER_TRIM_INTERVAL_MS * USEC_PER_MSEC) < 0
                       ? 0
                       : sd_event_source_set_enabled(s, SD_EVENT_ON);
}

int manager_setup_monitor(Manager *m) {
        sd_event_source *trim = NULL;
        int r;

        /* Floating: the event loop owns it. */
        r = sd_event_add_time_relative(m->event, &trim, CLOCK_MONOTONIC, PREPARER_TRIM_INTERVAL_MS * USEC_PER_MSEC,
                                       10 * USEC_PER_MSEC, on_trim_timer, m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the region guard's timer: %m");
        (void) sd_event_source_set_floating(trim, true);
        sd_event_source_unref(trim);

        /* Before the sandbox: loading NVML opens files and devices. */
        (void) monitor_open(m);
        r = sd_event_add_time_relative(m->event, &m->monitor_timer, CLOCK_MONOTONIC,
                                       m->monitor ? MONITOR_INTERVAL_USEC : MONITOR_RETRY_USEC, 10 * USEC_PER_MSEC,
                                       on_monitor_timer, m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the usage monitor's timer: %m");
        return 0;
}

void manager_free_monitor(Manager *m) {
        m->monitor_timer = sd_event_source_disable_unref(m->monitor_timer);
        m->monitor = usage_monitor_free(m->monitor);
}
