/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The usage monitor's pure parts and its contract with the kernel and the region:
 * /proc/locks parsing, the beacon a region writer holds (found in the real /proc/locks
 * under our PID, at our slot's offset, on the region's inode), the sample window, and
 * the measurement writer (which refuses a replaced file, a symlink and a FIFO).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "proc-locks.h"
#include "shared-region.h"
#include "tests.h"
#include "usage-monitor.h"

static char dir[] = "/var/tmp/test-usage-monitor.XXXXXX";

/* dir/name, in one of a few rotating buffers: two paths live at once. */
static const char *path_in(const char *name) {
        static char bufs[4][256];
        static unsigned next;
        char *p = bufs[next++ % 4];

        snprintf(p, sizeof(bufs[0]), "%s/%s", dir, name);
        return p;
}

typedef struct Collected {
        ProcLock locks[16];
        unsigned n;
} Collected;

static int collect(const ProcLock *l, void *userdata) {
        Collected *c = userdata;

        if (c->n < 16)
                c->locks[c->n++] = *l;
        return 0;
}

static void test_parse(void) {
        static const char text[] = "1: POSIX  ADVISORY  READ 21165 fe:00:10952785 5000 5000\n"
                                   "2: -> POSIX  ADVISORY  WRITE 2117 fe:00:10952785 0 EOF\n"
                                   "3: OFDLCK ADVISORY  WRITE -1 fe:00:10952785 2048 2239\n"
                                   "4: FLOCK  ADVISORY  WRITE 613 00:19:1236 0 EOF\n"
                                   "5: POSIX  ADVISORY  WRITE 7 103:2a:99 0 EOF\n"
                                   "6: POSIX  ADVISORY  READ 0 fe:00:1 0 0\n"
                                   "7: POSIX  ADVISORY  READ 8 fe:00:1 9 1\n"
                                   "8: POSIX  ADVISORY  READ 9 fe:00:1 1";
        Collected c = {};

        ASSERT_EQ(proc_locks_parse(text, strlen(text), collect, &c), 2);
        ASSERT_EQ(c.n, 2u);
        ASSERT_EQ(c.locks[0].pid, 21165);
        ASSERT_TRUE(c.locks[0].dev == makedev(0xfe, 0));
        ASSERT_EQ_U(c.locks[0].ino, 10952785);
        ASSERT_EQ_U(c.locks[0].start, 5000);
        ASSERT_EQ_U(c.locks[0].end, 5000);
        ASSERT_FALSE(c.locks[0].write);
        ASSERT_EQ(c.locks[1].pid, 7); /* waiter, OFD, FLOCK, pid 0, end < start, truncated: skipped */
        ASSERT_TRUE(c.locks[1].dev == makedev(0x103, 0x2a));
        ASSERT_EQ_U(c.locks[1].end, UINT64_MAX);
        ASSERT_TRUE(c.locks[1].write);
        ASSERT_EQ(proc_locks_parse("", 0, collect, &c), 0);
        ASSERT_EQ(proc_locks_parse(NULL, 3, collect, &c), -EINVAL);
}

/* A writer's beacon, as the host's kernel shows it. */
typedef struct BeaconSearch {
        struct stat st;
        off_t offset;
        pid_t found;
} BeaconSearch;

static int find_beacon(const ProcLock *l, void *userdata) {
        BeaconSearch *b = userdata;

        if (l->dev == b->st.st_dev && l->ino == (uint64_t) b->st.st_ino && l->start == (uint64_t) b->offset &&
            l->end == l->start && !l->write)
                b->found = l->pid;
        return 0;
}

static void test_beacon(void) {
        const char *p = path_in("beacon");
        SharedRegion r, r2;
        BeaconSearch b = {};
        char *text = NULL;
        size_t size = 0;

        ASSERT_OK(shared_region_create(p, 1, 8, NULL, NULL, 0600));
        ASSERT_OK(shared_region_attach(&r, p, 0));
        ASSERT_OK(shared_region_attach(&r2, p, 0)); /* a second writer: slot 1 */
        ASSERT_EQ(r2.slot, 1u);
        ASSERT_OK(stat(p, &b.st));
        b.offset = shared_region_beacon_offset(8, r2.slot);
        ASSERT_OK(proc_locks_read("/proc/locks", 16 << 20, &text, &size));
        ASSERT_TRUE(proc_locks_parse(text, size, find_beacon, &b) > 0);
        ASSERT_EQ(b.found, getpid());
        free(text);
        shared_region_detach(&r2);
        shared_region_detach(&r);
        /* Gone with the writer (its lock fd closed). */
        b.found = 0;
        ASSERT_OK(proc_locks_read("/proc/locks", 16 << 20, &text, &size));
        (void) proc_locks_parse(text, size, find_beacon, &b);
        ASSERT_EQ(b.found, 0);
        free(text);
}

static void test_window(void) {
        const UsageSample s[] = {
                { .pid = 10, .timestamp_us = 1000000, .sm_percent = 90 }, /* out of the window */
                { .pid = 10, .timestamp_us = 1500000, .sm_percent = 30 },
                { .pid = 10, .timestamp_us = 1700000, .sm_percent = 40 },
                { .pid = 11, .timestamp_us = 2000000, .sm_percent = 250 }, /* garbage: 100 */
                { .pid = 10, .timestamp_us = 1900000, .sm_percent = 50 },
        };

        /* Period unknown: the mean of the samples there. */
        ASSERT_EQ(usage_samples_pid_permille(s, 5, 10, 1000000, 0), 400u);
        ASSERT_EQ(usage_samples_pid_permille(s, 5, 11, 1000000, 0), 1000u);
        ASSERT_EQ(usage_samples_pid_permille(s, 5, 12, 1000000, 0), 0u);
        ASSERT_EQ(usage_samples_pid_permille(s, 0, 10, 1000000, 0), 0u);
        ASSERT_EQ(usage_samples_pid_permille(s, 5, 10, 1, 0), 0u);
        /* 200 ms periods: pid 10 (seen before the window) ran in 3 of the 5 of the last
         * second (1.0-2.0 s), at 30, 40 and 50 %: 120 % x 0.2 s over 1 s = 24 %. */
        ASSERT_EQ(usage_samples_pid_permille(s, 5, 10, 1000000, 200000), 240u);
        /* pid 11 began with its one sample: its span is one period, 100 %. */
        ASSERT_EQ(usage_samples_pid_permille(s, 5, 11, 1000000, 200000), 1000u);
        /* A process that started 400 ms ago: 2 periods, both full, is 100 %, not 40. */
        const UsageSample young[] = {
                { .pid = 7, .timestamp_us = 5800000, .sm_percent = 100 },
                { .pid = 7, .timestamp_us = 6000000, .sm_percent = 100 },
        };
        ASSERT_EQ(usage_samples_pid_permille(young, 2, 7, 1000000, 200000), 1000u);
}

static void test_write_measurements(void) {
        const char *p = path_in("measured"), *moved = path_in("other");
        SharedRegionMeasurement m[3] = {
                { .footprint_extra = 7 << 20, .context_bytes = 520 << 20, .measured_sm = 301, .measured_procs = 2,
                  .phase_ns = 4000000, .unowned = 12, .target_permille = 960, .measured = true },
                { .footprint_extra = 1, .measured_sm = 1000, .measured = true },
                { .footprint_extra = 5, .measured_sm = 5 }, /* not measured: left alone */
        };
        SharedRegionHeader h;
        struct stat st;
        int fd;

        ASSERT_OK(shared_region_create(p, 3, 8, NULL, NULL, 0600));
        ASSERT_OK(stat(p, &st));
        ASSERT_OK(shared_region_write_measurements(p, &st, m, 3));
        ASSERT_OK(shared_region_write_measurements(p, &st, m, 3));
        fd = open(p, O_RDONLY | O_CLOEXEC);
        ASSERT_EQ(pread(fd, &h, sizeof(h), 0), (ssize_t) sizeof(h));
        close(fd);
        ASSERT_EQ_U(h.devices[0].footprint_extra, 7 << 20);
        ASSERT_EQ_U(h.devices[0].context_bytes, 520 << 20);
        ASSERT_EQ(h.devices[0].measured_sm, 301u);
        ASSERT_EQ(h.devices[0].measured_procs, 2u);
        ASSERT_EQ_U(h.devices[0].measured_seq, 2);
        ASSERT_EQ_U(h.devices[0].phase_ns, 4000000);
        ASSERT_EQ(h.devices[0].unowned, 12u);
        ASSERT_EQ(h.devices[0].target_permille, 960u);
        ASSERT_EQ_U(h.devices[1].phase_ns, 0); /* 0: not scheduled, not written */
        ASSERT_EQ(h.devices[1].measured_sm, 1000u);
        ASSERT_EQ_U(h.devices[1].measured_seq, 2);
        ASSERT_EQ(h.devices[2].measured_sm, 0u);
        ASSERT_EQ_U(h.devices[2].footprint_extra, 0);
        ASSERT_EQ_U(h.devices[2].measured_seq, 0);

        /* Replaced since it was read: not written. */
        ASSERT_OK(shared_region_create(moved, 2, 8, NULL, NULL, 0600));
        ASSERT_OK(rename(moved, p));
        ASSERT_ERROR(shared_region_write_measurements(p, &st, m, 2), ESTALE);
        /* A symlink or a FIFO planted under the name: refused, nothing blocks. */
        ASSERT_OK(unlink(p));
        ASSERT_OK(symlink("/etc/passwd", p));
        ASSERT_ERROR(shared_region_write_measurements(p, &st, m, 2), ELOOP);
        ASSERT_OK(unlink(p));
        ASSERT_OK(mkfifo(p, 0600));
        ASSERT_OK(stat(p, &st));
        ASSERT_ERROR(shared_region_write_measurements(p, &st, m, 2), ESTALE);
        ASSERT_OK(unlink(p));
        /* Not a region: refused. */
        fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        ASSERT_EQ(write(fd, "not a region", 12), 12);
        close(fd);
        ASSERT_OK(stat(p, &st));
        ASSERT_ERROR(shared_region_write_measurements(p, &st, m, 2), EBADMSG);
}

/* The reader hands out the live slots with their usage and context reservation. */
static void slot_seen(uint32_t slot, const SharedRegionSlot *copy, void *userdata) {
        unsigned *n = userdata;

        ASSERT_EQ(slot, *n);
        (*n)++;
}

static void test_read_slots(void) {
        const char *p = path_in("slots");
        SharedRegionUsage u;
        SharedRegion r;
        struct stat st, st2;
        unsigned n = 0;

        ASSERT_OK(shared_region_create(p, 1, 8, (uint64_t[]) { 64 << 20 }, NULL, 0600));
        ASSERT_OK(shared_region_attach(&r, p, 0));
        ASSERT_OK(shared_region_reserve_context(&r, 0, (3 << 20) + 1, 64 << 20)); /* rounds up to 4 MiB */
        ASSERT_EQ(r.self->context_mib[0], 4);
        ASSERT_ERROR(shared_region_reserve_context(&r, 0, 61 << 20, 64 << 20), ENOMEM);
        ASSERT_OK(shared_region_read_usage_slots(p, &u, &st, slot_seen, &n));
        ASSERT_EQ(n, 1u);
        ASSERT_EQ_U(u.used[0], 4 << 20);
        ASSERT_EQ(u.n_slots, 8u);
        ASSERT_OK(stat(p, &st2));
        ASSERT_TRUE(st.st_ino == st2.st_ino && st.st_dev == st2.st_dev);
        /* The footprint counts what the monitor says the driver holds beyond it. */
        ASSERT_OK(shared_region_write_measurements(p, &st,
                                                   &(SharedRegionMeasurement) { .footprint_extra = 5 << 20, .measured = true },
                                                   1));
        ASSERT_EQ_U(shared_region_footprint(&r, 0), 9 << 20);
        shared_region_detach(&r);
}

int main(void) {
        ASSERT_NOT_NULL(mkdtemp(dir));
        test_parse();
        test_beacon();
        test_window();
        test_write_measurements();
        test_read_slots();
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        ASSERT_EQ(system(cmd), 0);
        return 0;
}
