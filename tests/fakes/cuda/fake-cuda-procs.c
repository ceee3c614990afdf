/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The processes of the fake GPUs (see fake-cuda-state.h): each process's entry in a
 * device's table, its memory and contexts, the reclaiming of dead processes' entries,
 * and the per-process utilization samples the fake NVML reports.
 *
 * Liveness: the owner of entry i holds an OFD write lock on the entry's first byte
 * through `self.fd`, an open file description of its own. A probe through any other
 * description (F_OFD_GETLK) sees the lock while the owner lives; the kernel drops it
 * when the owner dies (or execs: O_CLOEXEC). A forked child closes its copy of the
 * parent's description at once (pthread_atfork), so it never keeps its parent's
 * entries alive, and claims entries of its own when it uses a device.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake-cuda-state.h"

static struct {
        pthread_mutex_t lock;
        int fd;            /* holds this process's entry locks; -1: not opened yet */
        uint32_t host_pid; /* 0: not read yet */
        int slot[FAKE_DEVICES_MAX];
} self = {
        .lock = PTHREAD_MUTEX_INITIALIZER,
        .fd = -1,
        .slot = { [0 ... FAKE_DEVICES_MAX - 1] = -1 },
};
static pthread_once_t self_once = PTHREAD_ONCE_INIT;

static void self_prepare(void) {
        pthread_mutex_lock(&self.lock);
}

static void self_parent(void) {
        pthread_mutex_unlock(&self.lock);
}

/* In a forked child: none of the parent's entries, locks or PID. */
static void self_child(void) {
        if (self.fd >= 0)
                close(self.fd);
        self.fd = -1;
        self.host_pid = 0;
        for (unsigned i = 0; i < FAKE_DEVICES_MAX; i++)
                self.slot[i] = -1;
        pthread_mutex_unlock(&self.lock);
}

static void self_init(void) {
        pthread_atfork(self_prepare, self_parent, self_child);
}

/* The PID the host sees: the first NSpid field of /proc/self/status (its PID in the
 * namespace /proc was mounted for), else getpid(). */
static uint32_t read_host_pid(void) {
        char buf[4096], *p;
        ssize_t n;
        int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return (uint32_t) getpid();
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return (uint32_t) getpid();
        buf[n] = 0;
        p = strstr(buf, "\nNSpid:");
        return p ? (uint32_t) strtoul(p + 7, NULL, 10) : (uint32_t) getpid();
}

static off_t entry_offset(const FakeProcess *p) {
        return (off_t) ((const char *) p - (const char *) fake_state_get());
}

static bool entry_alive(const FakeProcess *p) {
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = entry_offset(p), .l_len = 1 };
        int fd = fake_state_fd();

        if (p->unlocked || fd < 0 || fcntl(fd, F_OFD_GETLK, &fl) < 0)
                return true; /* cannot tell: keep it */
        return fl.l_type != F_UNLCK;
}

static void reclaim_locked(FakeDevice *d) {
        for (unsigned i = 0; i < FAKE_PROCS_MAX; i++) {
                FakeProcess *p = &d->procs[i];

                if (p->pid == 0 || entry_alive(p))
                        continue;
                __atomic_sub_fetch(&d->used_memory, __atomic_load_n(&p->memory, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
                p->memory = 0;
                p->contexts = 0;
                p->pid = 0;
        }
}

void fake_state_reclaim(FakeDevice *d) {
        fake_dev_lock(d);
        reclaim_locked(d);
        fake_dev_unlock(d);
}

/* Device lock held: make p this process's, its lock taken through self.fd. */
static void entry_take(FakeDevice *d, FakeProcess *p) {
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = entry_offset(p), .l_len = 1 };

        p->unlocked = self.fd < 0 || fcntl(self.fd, F_OFD_SETLK, &fl) < 0;
        p->pid = self.host_pid;
        p->ns_pid = (uint32_t) getpid();
        p->contexts = 0;
        p->memory = 0;
        p->wait_ns = 0;
        p->served_ns = 0;
        p->token = ++d->next_token;
        memset(p->bucket_epoch, 0, sizeof(p->bucket_epoch));
        memset(p->bucket_busy_ns, 0, sizeof(p->bucket_busy_ns));
}

/* self.lock held: claim a free (or freed) entry on device dev; its index or -ENOSPC. */
static int entry_claim(FakeState *s, unsigned dev) {
        FakeDevice *d = &s->devices[dev];
        int slot = -ENOSPC;

        if (self.fd < 0)
                self.fd = fake_state_reopen(); /* < 0: entries then never reclaimed */
        if (self.host_pid == 0)
                self.host_pid = read_host_pid();
        fake_dev_lock(d);
        reclaim_locked(d);
        for (unsigned i = 0; i < FAKE_PROCS_MAX && slot < 0; i++)
                if (d->procs[i].pid == 0) {
                        entry_take(d, &d->procs[i]);
                        slot = (int) i;
                }
        fake_dev_unlock(d);
        return slot;
}

FakeProcess *fake_proc_self(unsigned dev) {
        FakeState *s = fake_state_get();
        int slot;

        if (!s || dev >= s->n_devices)
                return NULL;
        pthread_once(&self_once, self_init);
        slot = __atomic_load_n(&self.slot[dev], __ATOMIC_ACQUIRE);
        if (slot < 0) {
                pthread_mutex_lock(&self.lock);
                if (self.slot[dev] < 0)
                        __atomic_store_n(&self.slot[dev], entry_claim(s, dev), __ATOMIC_RELEASE);
                slot = self.slot[dev];
                pthread_mutex_unlock(&self.lock);
        }
        return slot >= 0 ? &s->devices[dev].procs[slot] : NULL;
}

static bool used_add(FakeDevice *d, uint64_t size) {
        uint64_t used = __atomic_load_n(&d->used_memory, __ATOMIC_RELAXED);

        do {
                if (size > d->total_memory || used > d->total_memory - size)
                        return false;
        } while (!__atomic_compare_exchange_n(&d->used_memory, &used, used + size, true, __ATOMIC_RELAXED,
                                              __ATOMIC_RELAXED));
        return true;
}

int fake_proc_charge(unsigned dev, uint64_t size) {
        FakeProcess *p = fake_proc_self(dev);
        FakeDevice *d;

        if (!p)
                return -ENOMEM;
        d = &fake_state_get()->devices[dev];
        if (!used_add(d, size)) {
                fake_state_reclaim(d); /* the dead's memory first, as the driver frees it */
                if (!used_add(d, size))
                        return -ENOMEM;
        }
        __atomic_add_fetch(&p->memory, size, __ATOMIC_RELAXED);
        return 0;
}

/* This process's entry on dev if it has one; claims none. */
static FakeProcess *self_existing(unsigned dev) {
        FakeState *s = fake_state_get();
        int slot = s && dev < s->n_devices ? __atomic_load_n(&self.slot[dev], __ATOMIC_ACQUIRE) : -1;

        return slot >= 0 ? &s->devices[dev].procs[slot] : NULL;
}

void fake_proc_uncharge(unsigned dev, uint64_t size) {
        FakeProcess *p = self_existing(dev);

        if (p)
                __atomic_sub_fetch(&p->memory, size, __ATOMIC_RELAXED);
        __atomic_sub_fetch(&fake_state_get()->devices[dev].used_memory, size, __ATOMIC_RELAXED);
}

void fake_proc_contexts(unsigned dev, int delta) {
        FakeProcess *p = delta > 0 ? fake_proc_self(dev) : self_existing(dev);

        if (p)
                __atomic_add_fetch(&p->contexts, (uint32_t) delta, __ATOMIC_RELAXED);
}

unsigned fake_state_processes(FakeDevice *d, FakeProcessInfo *out, unsigned max) {
        unsigned n = 0;

        fake_dev_lock(d);
        reclaim_locked(d);
        for (unsigned i = 0; i < FAKE_PROCS_MAX; i++) {
                const FakeProcess *p = &d->procs[i];
                uint64_t memory = __atomic_load_n(&p->memory, __ATOMIC_RELAXED);

                if (p->pid == 0 || (__atomic_load_n(&p->contexts, __ATOMIC_RELAXED) == 0 && memory == 0))
                        continue;
                if (n < max)
                        out[n] = (FakeProcessInfo) { .pid = p->pid, .memory = memory };
                n++;
        }
        fake_dev_unlock(d);
        return n;
}

/* ---- utilization samples ---- */

uint64_t fake_proc_busy_ns(const FakeProcess *p, uint64_t from_ms, uint64_t to_ms) {
        uint64_t busy = 0;

        for (uint64_t b = from_ms; b < to_ms; b++) {
                unsigned i = (unsigned) (b % FAKE_BUCKETS);
                if (p->bucket_epoch[i] == b)
                        busy += p->bucket_busy_ns[i];
        }
        return busy;
}

static uint64_t realtime_us(const FakeState *s, uint64_t mono_ms) {
        return (uint64_t) ((int64_t) (mono_ms * FAKE_BUCKET_NS) + s->realtime_offset_ns) / 1000;
}

/* Lock held: p's latest complete window newer than last_seen_us in which it ran. The
 * windows of entry `slot` end at k * period_ms + phase (CLOCK_MONOTONIC ms). */
static bool entry_sample(const FakeState *s, const FakeProcess *p, unsigned slot, uint64_t period_ms,
                         uint64_t now_ms, uint64_t last_seen_us, FakeSample *ret) {
        uint64_t phase = slot * 67ULL % period_ms, end;

        if (now_ms < phase + period_ms)
                return false;
        end = (now_ms - phase) / period_ms * period_ms + phase;
        for (; end >= period_ms && now_ms - (end - period_ms) < FAKE_BUCKETS - 2; end -= period_ms) {
                uint64_t ts = realtime_us(s, end), busy;

                if (ts <= last_seen_us)
                        return false;
                busy = fake_proc_busy_ns(p, end - period_ms, end);
                if (busy == 0)
                        continue;
                busy = busy * 100 / (period_ms * FAKE_BUCKET_NS);
                *ret = (FakeSample) { .pid = p->pid, .timestamp_us = ts, .sm_util = busy > 100 ? 100 : (unsigned) busy };
                return true;
        }
        return false;
}

unsigned fake_state_samples(FakeState *s, FakeDevice *d, uint64_t period_ms, uint64_t last_seen_us,
                            FakeSample *out, unsigned max) {
        uint64_t now_ms = fake_now_ns() / FAKE_BUCKET_NS;
        unsigned n = 0;
        FakeSample x;

        if (period_ms == 0 || period_ms > FAKE_BUCKETS / 4)
                period_ms = 200;
        fake_dev_lock(d);
        reclaim_locked(d);
        for (unsigned i = 0; i < FAKE_PROCS_MAX; i++) {
                if (d->procs[i].pid == 0 || !entry_sample(s, &d->procs[i], i, period_ms, now_ms, last_seen_us, &x))
                        continue;
                if (n < max)
                        out[n] = x;
                n++;
        }
        fake_dev_unlock(d);
        return n;
}
