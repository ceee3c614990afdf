/* SPDX-License-Identifier: Apache-2.0 */

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/inotify.h>

#include "driver-watch.h"
#include "host-driver.h"
#include "log.h"
#include "macro.h"
#include "time-util.h"

#define DRIVER_WATCH_DIRS_MAX 16
#define DRIVER_WATCH_RETRIES 5
#define DRIVER_WATCH_MASK                                                                                   \
        (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF | \
         IN_ONLYDIR)

struct DriverWatch {
        sd_event *event;
        Preparer *preparer;
        sd_event_source *dirs[DRIVER_WATCH_DIRS_MAX];  /* one per host_driver_dir(), NULL: not watched */
        sd_event_source *settle;
        uint64_t first_change_usec;                    /* of the burst being coalesced; 0: none */
        unsigned retries;                              /* looks again because claims were busy */
        bool force_next;                               /* the next look compares every spec */
        DriverWatchStats stats;
};

static int on_change(sd_event_source *s, const struct inotify_event *ev, void *userdata);

/* The directory as it is on this host: the driver root in front. */
static int watch_path(DriverWatch *w, size_t i, char *buf, size_t size) {
        const char *root = preparer_driver_root(w->preparer);
        const char *dir = host_driver_dir(i);

        if (!dir)
                return -ENOENT;
        return snprintf(buf, size, "%s%s", streq(root, "/") ? "" : root, dir) >= (int) size ? -ENAMETOOLONG : 0;
}

/* Watch the directories that exist and are not watched yet (one that was removed and
 * made again, by an installer, is watched anew). */
static void watch_dirs(DriverWatch *w) {
        for (size_t i = 0; i < DRIVER_WATCH_DIRS_MAX && host_driver_dir(i); i++) {
                char path[PATH_MAX];

                if (w->dirs[i])
                        continue;
                if (watch_path(w, i, path, sizeof(path)) < 0 || access(path, F_OK) < 0)
                        continue;
                if (sd_event_add_inotify(w->event, &w->dirs[i], path, DRIVER_WATCH_MASK, on_change, w) < 0) {
                        log_debug("Cannot watch %s for driver changes; Rescan still looks", path);
                        continue;
                }
                (void) sd_event_source_set_description(w->dirs[i], "driver-watch");
        }
}

/* One entry per file (or control node) that changed, old -> new. */
static void report_file(const char *what, const char *old, const char *new) {
        log_struct(LOG_NOTICE, LOG_MESSAGE_ID(HAMI_MESSAGE_DRIVER_CHANGED),
                   LOG_MESSAGE("Host driver changed: %s: %s -> %s", what, old ?: "(none)", new ?: "(none)"),
                   LOG_FIELD("DRIVER_FILE=%s", what), LOG_FIELD("DRIVER_OLD=%s", old ?: ""),
                   LOG_FIELD("DRIVER_NEW=%s", new ?: ""), NULL);
}

static const HostFile *find_file(const HostDriver *h, const char *container_path) {
        for (size_t i = 0; i < h->n_files; i++)
                if (streq(h->files[i].container_path, container_path))
                        return &h->files[i];
        return NULL;
}

static const HostDeviceNode *find_node(const HostDriver *h, const char *path) {
        for (size_t i = 0; i < h->n_control; i++)
                if (streq(h->control[i].path, path))
                        return &h->control[i];
        return NULL;
}

static void node_string(const HostDeviceNode *n, char *buf, size_t size) {
        if (n)
                (void) snprintf(buf, size, "%s %u:%u", n->host_path, n->major, n->minor);
        else
                (void) snprintf(buf, size, "(none)");
}

/* What differs between old and new, both ways. */
static void report_changes(const HostDriver *old, const HostDriver *new) {
        for (size_t i = 0; i < new->n_files; i++) {
                const HostFile *o = find_file(old, new->files[i].container_path);
                if (!o || !streq(o->host_path, new->files[i].host_path))
                        report_file(new->files[i].container_path, o ? o->host_path : NULL, new->files[i].host_path);
        }
        for (size_t i = 0; i < old->n_files; i++)
                if (!find_file(new, old->files[i].container_path))
                        report_file(old->files[i].container_path, old->files[i].host_path, NULL);
        for (size_t i = 0; i < MAX(old->n_control, new->n_control); i++) {
                const HostDeviceNode *a = i < old->n_control ? &old->control[i] : NULL;
                const HostDeviceNode *b = a ? find_node(new, a->path) : &new->control[i];
                char sa[HOST_PATH_MAX + 32], sb[HOST_PATH_MAX + 32];

                if (!a && find_node(old, b->path))
                        continue;
                if (a && b && streq(a->host_path, b->host_path) && a->major == b->major && a->minor == b->minor)
                        continue;
                node_string(a, sa, sizeof(sa));
                node_string(b, sb, sizeof(sb));
                report_file(a ? a->path : b->path, sa, sb);
        }
}

int driver_watch_check(DriverWatch *w, bool force) {
        _cleanup_(preparer_refresh_done) PreparerRefresh rf = { .on_change = report_changes };
        int r;

        uint64_t start = now_usec();

        watch_dirs(w);
        w->stats.looks++;
        r = preparer_refresh_host(w->preparer, force, &rf);
        if (r < 0)
                return r;
        if (force || rf.changed)
                log_debug("Compared the CDI specs of %zu claim(s) with the driver files in %" PRIu64 " ms",
                          preparer_n_prepared(w->preparer), (now_usec() - start) / USEC_PER_MSEC);
        w->stats.specs_rewritten += rf.n_rewritten;
        w->stats.specs_failed += rf.n_failed;
        if (rf.changed)
                w->stats.changes++;
        if (rf.changed || rf.n_rewritten > 0 || rf.n_failed > 0)
                log_notice("The host driver %s: %zu prepared claim(s) got a new CDI spec, %zu keep the old one%s",
                           rf.changed ? "changed" : "is what it was, but some specs were not", rf.n_rewritten,
                           rf.n_failed, rf.n_failed > 0 ? " (see above why)" : "");
        if ((rf.changed || force) && rf.n_busy > 0 && w->retries < DRIVER_WATCH_RETRIES) {
                /* Claims in a kubelet call were left alone (or planned with the old files):
                 * compare every spec again once they are done, a few times at most. */
                log_debug("%zu claim(s) were busy, comparing the specs again shortly", rf.n_busy);
                w->retries++;
                w->force_next = true;
                w->first_change_usec = now_usec();
                (void) sd_event_source_set_time_relative(w->settle, DRIVER_WATCH_SETTLE_USEC);
                (void) sd_event_source_set_enabled(w->settle, SD_EVENT_ONESHOT);
                return 0;
        }
        if ((rf.changed || force) && rf.n_busy > 0)
                log_warning("Claims stayed busy while the CDI specs were compared with the driver files; some "
                            "may still name the old ones until the next Rescan");
        w->retries = 0;
        w->force_next = false;
        return 0;
}

static int on_settled(sd_event_source *s, uint64_t usec, void *userdata) {
        DriverWatch *w = userdata;

        w->first_change_usec = 0;
        /* After a kubelet call held some claims back, every spec is compared again. */
        (void) driver_watch_check(w, w->force_next);
        return 0;
}

static int on_change(sd_event_source *s, const struct inotify_event *ev, void *userdata) {
        DriverWatch *w = userdata;
        uint64_t now = now_usec(), delay = DRIVER_WATCH_SETTLE_USEC;

        if (w->first_change_usec == 0)
                w->first_change_usec = now;
        else if (now + delay > w->first_change_usec + DRIVER_WATCH_DELAY_MAX_USEC)
                delay = w->first_change_usec + DRIVER_WATCH_DELAY_MAX_USEC > now ?
                                w->first_change_usec + DRIVER_WATCH_DELAY_MAX_USEC - now : 0;
        if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED))
                /* Its watch is gone with it: watch_dirs() makes a new one when it is back. */
                for (size_t i = 0; i < DRIVER_WATCH_DIRS_MAX; i++)
                        if (w->dirs[i] == s) {
                                log_debug("A driver directory went away; watched again when it is back");
                                w->dirs[i] = sd_event_source_disable_unref(w->dirs[i]);
                        }
        (void) sd_event_source_set_time_relative(w->settle, delay);
        (void) sd_event_source_set_enabled(w->settle, SD_EVENT_ONESHOT);
        return 0;
}

int driver_watch_new(sd_event *e, Preparer *p, DriverWatch **ret) {
        DriverWatch *w;
        int r;

        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->event = sd_event_ref(e);
        w->preparer = p;
        /* The first look compares every spec (an upgrade made while the daemon was down),
         * from the loop, once the daemon serves. */
        w->force_next = true;
        r = sd_event_add_time_relative(e, &w->settle, CLOCK_MONOTONIC, 0, 0, on_settled, w);
        if (r < 0) {
                driver_watch_free(w);
                return r;
        }
        (void) sd_event_source_set_description(w->settle, "driver-watch-settle");
        watch_dirs(w);
        *ret = w;
        return 0;
}

DriverWatch *driver_watch_free(DriverWatch *w) {
        if (!w)
                return NULL;
        for (size_t i = 0; i < DRIVER_WATCH_DIRS_MAX; i++)
                sd_event_source_disable_unref(w->dirs[i]);
        sd_event_source_disable_unref(w->settle);
        sd_event_unref(w->event);
        free(w);
        return NULL;
}

const DriverWatchStats *driver_watch_stats(DriverWatch *w) {
        return &w->stats;
}
