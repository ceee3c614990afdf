/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The host driver's files, watched: a driver upgrade while pods run replaces
 * libcuda.so.<old> by libcuda.so.<new> (and the other libraries and binaries), and a
 * prepared claim's CDI spec still names the old files, which the next container of the
 * claim cannot get. The directories the driver files are looked up in
 * (host_driver_dir(), under the driver root) are watched with inotify; a burst of
 * changes (one upgrade) is coalesced into one look, DRIVER_WATCH_SETTLE_USEC after the
 * last change (at most DRIVER_WATCH_DELAY_MAX_USEC after the first). D-Bus Rescan and
 * reload look too (driver_watch_check()). A look rediscovers the driver files and
 * control nodes (preparer_refresh_host()); when they changed, every prepared claim's
 * spec is rewritten to match, and each changed file is logged with
 * HAMI_MESSAGE_DRIVER_CHANGED (old -> new).
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "prepare.h"

#define DRIVER_WATCH_SETTLE_USEC (1 * USEC_PER_SEC)
#define DRIVER_WATCH_DELAY_MAX_USEC (10 * USEC_PER_SEC)

typedef struct DriverWatch DriverWatch;

/* Plain counters, since start. */
typedef struct DriverWatchStats {
        uint64_t looks;             /* rediscoveries */
        uint64_t changes;           /* looks that found the driver changed */
        uint64_t specs_rewritten;
        uint64_t specs_failed;      /* specs that keep the old files (logged with why) */
} DriverWatchStats;

/* Watches the directories that exist now under driver_root; others are looked for again
 * at each check. The first check, with force, runs from the loop right after start. */
int driver_watch_new(sd_event *e, Preparer *p, DriverWatch **ret);
DriverWatch *driver_watch_free(DriverWatch *w);

/* Look now: rediscover, and rewrite the specs if the driver changed (or with force:
 * compare every spec, as at start, for an upgrade made while the daemon was down). */
int driver_watch_check(DriverWatch *w, bool force);

const DriverWatchStats *driver_watch_stats(DriverWatch *w);
