/* SPDX-License-Identifier: Apache-2.0 */

/*
 * region-writer: plays a claim's containers and the node's usage monitor on a real
 * shared-region file, for tests of what the daemon reads from it (hamictl top).
 *
 *   region-writer REGION
 *
 * Stdin takes one command per line, each answered "ok" or "error <why>" on stdout:
 *   create N_DEVICES             create the region (16 slots)
 *   attach                       a new process: claims a slot (printed: "ok K")
 *   reserve K DEV BYTES          process K reserves BYTES on device DEV
 *   release K DEV BYTES
 *   detach K                     process K exits
 *   measure DEV PERMILLE PROCS EXTRA   the monitor's measurement of device DEV
 * The "processes" are slots this one process holds, each with its own lock, so the
 * daemon's reader counts them live until they detach or this program exits.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "macro.h"
#include "shared-region.h"

#define WRITER_SLOTS 16u

typedef struct Writer {
        const char *path;
        SharedRegion procs[WRITER_SLOTS];
        bool attached[WRITER_SLOTS];
} Writer;

static int get_proc(Writer *w, unsigned k, SharedRegion **ret) {
        if (k >= WRITER_SLOTS || !w->attached[k])
                return -ESRCH;
        *ret = &w->procs[k];
        return 0;
}

static int cmd_attach(Writer *w) {
        for (unsigned k = 0; k < WRITER_SLOTS; k++)
                if (!w->attached[k]) {
                        int r = shared_region_attach(&w->procs[k], w->path, 0);
                        if (r < 0)
                                return r;
                        w->attached[k] = true;
                        return (int) k;
                }
        return -EMFILE;
}

static int cmd_measure(Writer *w, unsigned dev, unsigned permille, unsigned procs, uint64_t extra) {
        SharedRegionMeasurement m[SHARED_REGION_DEVICES_MAX] = {};
        struct stat st;

        if (dev >= SHARED_REGION_DEVICES_MAX)
                return -EINVAL;
        if (stat(w->path, &st) < 0)
                return -errno;
        m[dev] = (SharedRegionMeasurement) {
                .footprint_extra = extra,
                .measured_sm = permille,
                .measured_procs = procs,
                .measured = true,
        };
        return shared_region_write_measurements(w->path, &st, m, dev + 1);
}

static int run(Writer *w, const char *line) {
        unsigned a, b, c;
        uint64_t bytes;
        SharedRegion *p;
        int r;

        if (sscanf(line, "create %u", &a) == 1)
                return shared_region_create(w->path, a, WRITER_SLOTS, NULL, NULL, 0644);
        if (streq(line, "attach"))
                return cmd_attach(w);
        if (sscanf(line, "reserve %u %u %" SCNu64, &a, &b, &bytes) == 3) {
                r = get_proc(w, a, &p);
                return r < 0 ? r : shared_region_reserve(p, b, bytes, 0);
        }
        if (sscanf(line, "release %u %u %" SCNu64, &a, &b, &bytes) == 3) {
                r = get_proc(w, a, &p);
                if (r >= 0)
                        shared_region_release(p, b, bytes);
                return r;
        }
        if (sscanf(line, "detach %u", &a) == 1) {
                r = get_proc(w, a, &p);
                if (r >= 0) {
                        shared_region_detach(p);
                        w->attached[a] = false;
                }
                return r;
        }
        if (sscanf(line, "measure %u %u %u %" SCNu64, &a, &b, &c, &bytes) == 4)
                return cmd_measure(w, a, b, c, bytes);
        return -EINVAL;
}

int main(int argc, char **argv) {
        Writer w = {};
        char line[256];

        if (argc != 2) {
                fprintf(stderr, "usage: %s REGION\n", argv[0]);
                return 2;
        }
        w.path = argv[1];
        while (fgets(line, sizeof line, stdin)) {
                int r;

                line[strcspn(line, "\n")] = 0;
                r = run(&w, line);
                if (r < 0)
                        printf("error %s\n", strerror(-r));
                else if (streq(line, "attach"))
                        printf("ok %d\n", r);
                else
                        printf("ok\n");
                fflush(stdout);
        }
        for (unsigned k = 0; k < WRITER_SLOTS; k++)
                if (w.attached[k])
                        shared_region_detach(&w.procs[k]);
        return 0;
}
