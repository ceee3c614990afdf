/* SPDX-License-Identifier: Apache-2.0 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fake-cuda-state.h"

static uint64_t clock_ns(clockid_t id) {
        struct timespec ts;
        clock_gettime(id, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

uint64_t fake_now_ns(void) {
        return clock_ns(CLOCK_MONOTONIC);
}

static uint64_t env_u64(const char *name, uint64_t def) {
        const char *v = getenv(name);
        return v && *v ? strtoull(v, NULL, 0) : def;
}

static void state_init(FakeState *s) {
        pthread_mutexattr_t a;

        memcpy(s->magic, "FAKECUDA", 8);
        s->n_devices = (uint32_t) env_u64("FAKE_CUDA_DEVICES", 2);
        if (s->n_devices > FAKE_DEVICES_MAX)
                s->n_devices = FAKE_DEVICES_MAX;
        s->realtime_offset_ns = (int64_t) (clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_MONOTONIC));
        pthread_mutexattr_init(&a);
        pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
        pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
        for (unsigned i = 0; i < FAKE_DEVICES_MAX; i++) {
                pthread_mutex_init(&s->devices[i].lock, &a);
                s->devices[i].total_memory = env_u64("FAKE_CUDA_MEMORY", 16ULL << 30);
        }
        pthread_mutexattr_destroy(&a);
}

static FakeState *state;
static int state_fd = -1;            /* kept open: probes the entries' locks */
static char state_path[PATH_MAX];    /* reopened for this process's own locks */
static pthread_once_t state_once = PTHREAD_ONCE_INIT;

/* Without FAKE_CUDA_STATE: a memfd, shared with forks, reopened through /proc. */
static int state_memfd(void) {
        int fd = memfd_create("fake-cuda-state", MFD_CLOEXEC);

        if (fd < 0)
                return -errno;
        if (ftruncate(fd, sizeof(FakeState)) < 0) {
                close(fd);
                return -errno;
        }
        snprintf(state_path, sizeof(state_path), "/proc/self/fd/%d", fd);
        return fd;
}

/* Lock held: size the file, initialising it when new or left by an older layout. */
static int state_prepare(int fd, bool *ret_new) {
        struct stat st;

        if (fstat(fd, &st) < 0)
                return -errno;
        *ret_new = st.st_size != (off_t) sizeof(FakeState);
        if (*ret_new && (ftruncate(fd, 0) < 0 || ftruncate(fd, sizeof(FakeState)) < 0))
                return -errno;
        return 0;
}

static int state_map(int fd, bool init) {
        void *p = mmap(NULL, sizeof(FakeState), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

        if (p == MAP_FAILED)
                return -errno;
        if (init)
                state_init(p);
        if (memcmp(((FakeState *) p)->magic, "FAKECUDA", 8) != 0) {
                munmap(p, sizeof(FakeState));
                return -EINVAL;
        }
        state = p;
        return 0;
}

static void state_open(void) {
        const char *path = getenv("FAKE_CUDA_STATE");
        bool init = true;
        int fd, r;

        if (!path || !*path) {
                fd = state_memfd();
                if (fd < 0)
                        return;
                if (state_map(fd, true) < 0)
                        close(fd);
                else
                        state_fd = fd;
                return;
        }
        if (strlen(path) >= sizeof(state_path))
                return;
        strcpy(state_path, path);
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
                return;
        r = flock(fd, LOCK_EX) < 0 ? -errno : state_prepare(fd, &init);
        if (r >= 0)
                r = state_map(fd, init);
        flock(fd, LOCK_UN);
        if (r < 0)
                close(fd);
        else
                state_fd = fd;
}

FakeState *fake_state_get(void) {
        pthread_once(&state_once, state_open);
        return state;
}

int fake_state_fd(void) {
        return fake_state_get() ? state_fd : -ENOENT;
}

int fake_state_reopen(void) {
        int fd;

        if (!fake_state_get())
                return -ENOENT;
        fd = open(state_path, O_RDWR | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

void fake_dev_lock(FakeDevice *d) {
        if (pthread_mutex_lock(&d->lock) == EOWNERDEAD)
                pthread_mutex_consistent(&d->lock);
}

void fake_dev_unlock(FakeDevice *d) {
        pthread_mutex_unlock(&d->lock);
}

void fake_add_busy(uint64_t *epoch, uint64_t *busy, uint64_t start, uint64_t end) {
        for (unsigned n = 0; start < end && n < FAKE_BUCKETS; n++) {
                uint64_t b = start / FAKE_BUCKET_NS, b_end = (b + 1) * FAKE_BUCKET_NS;
                unsigned i = (unsigned) (b % FAKE_BUCKETS);
                uint64_t upto = end < b_end ? end : b_end;

                if (epoch[i] != b) {
                        epoch[i] = b;
                        busy[i] = 0;
                }
                busy[i] += upto - start;
                start = upto;
        }
}

/* Lock held: queue one kernel at start (plus the switch, when another process's kernel
 * was queued last), charging the kernel to p. Zero-length kernels switch nothing. */
static void launch_locked(FakeDevice *d, FakeProcess *p, uint64_t start, uint64_t duration_ns, uint64_t switch_ns) {
        uint64_t token = p ? p->token : 0;

        if (token && duration_ns) {
                if (d->last_token && d->last_token != token && switch_ns) {
                        fake_add_busy(d->bucket_epoch, d->bucket_busy_ns, start, start + switch_ns);
                        start += switch_ns;
                        d->switches++;
                }
                d->last_token = token;
        }
        d->busy_until_ns = start + duration_ns;
        d->launches++;
        fake_add_busy(d->bucket_epoch, d->bucket_busy_ns, start, start + duration_ns);
        if (p)
                fake_add_busy(p->bucket_epoch, p->bucket_busy_ns, start, start + duration_ns);
}

/* Lock held: whether p must leave the room in the queue to another process that waits
 * for it too (blocked within horizon_ns: a dead or idle one stops counting) and was
 * served before p. */
static bool another_first(const FakeDevice *d, const FakeProcess *p, uint64_t now, uint64_t horizon_ns) {
        if (!p)
                return false;
        for (unsigned i = 0; i < FAKE_PROCS_MAX; i++) {
                const FakeProcess *q = &d->procs[i];

                if (q != p && q->pid != 0 && q->wait_ns != 0 && q->wait_ns + horizon_ns >= now &&
                    q->served_ns < p->served_ns)
                        return true;
        }
        return false;
}

void fake_state_launch(FakeDevice *d, FakeProcess *p, uint64_t duration_ns, uint64_t switch_ns,
                       uint64_t queue_max) {
        uint64_t horizon_ns = 2 * (duration_ns + switch_ns) + FAKE_BUCKET_NS;

        for (;;) {
                uint64_t now = fake_now_ns(), start, wait;
                bool room;

                fake_dev_lock(d);
                start = d->busy_until_ns > now ? d->busy_until_ns : now;
                room = start - now <= queue_max * duration_ns;
                if (room && (duration_ns == 0 || !another_first(d, p, now, horizon_ns))) {
                        launch_locked(d, p, start, duration_ns, switch_ns);
                        if (p) {
                                p->wait_ns = 0;
                                p->served_ns = now;
                        }
                        fake_dev_unlock(d);
                        return;
                }
                if (p)
                        p->wait_ns = now;
                wait = room ? duration_ns : start - now - queue_max * duration_ns;
                fake_dev_unlock(d);
                nanosleep(&(struct timespec) { .tv_sec = (time_t) (wait / 1000000000ULL),
                                               .tv_nsec = (long) (wait % 1000000000ULL) }, NULL);
        }
}

unsigned fake_state_utilization(FakeDevice *d, uint64_t window_ns) {
        uint64_t now = fake_now_ns(), from, busy = 0;

        if (window_ns == 0 || window_ns > (FAKE_BUCKETS - 2) * FAKE_BUCKET_NS)
                window_ns = 1000 * FAKE_BUCKET_NS;
        from = now - window_ns;
        fake_dev_lock(d);
        for (uint64_t b = from / FAKE_BUCKET_NS; b <= now / FAKE_BUCKET_NS; b++) {
                unsigned i = (unsigned) (b % FAKE_BUCKETS);
                uint64_t v;

                if (d->bucket_epoch[i] != b)
                        continue;
                v = d->bucket_busy_ns[i];
                /* Partial buckets at both ends: count the covered share (busy time
                 * within a bucket is contiguous from its start when queued back to
                 * back, which is what the limiter produces; good to the bucket). */
                if (b == now / FAKE_BUCKET_NS) {
                        uint64_t elapsed = now - b * FAKE_BUCKET_NS;
                        if (v > elapsed)
                                v = elapsed;
                }
                if (b == from / FAKE_BUCKET_NS)
                        v = v * ((b + 1) * FAKE_BUCKET_NS - from) / FAKE_BUCKET_NS;
                busy += v;
        }
        fake_dev_unlock(d);
        return (unsigned) (busy * 100 / window_ns > 100 ? 100 : busy * 100 / window_ns);
}
