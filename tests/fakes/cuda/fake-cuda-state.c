/* SPDX-License-Identifier: Apache-2.0 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fake-cuda-state.h"

uint64_t fake_now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
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
static pthread_once_t state_once = PTHREAD_ONCE_INIT;

static void state_open(void) {
        const char *path = getenv("FAKE_CUDA_STATE");
        struct stat st;
        void *p;
        int fd;

        if (!path || !*path) {
                p = mmap(NULL, sizeof(FakeState), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
                if (p == MAP_FAILED)
                        return;
                state_init(p);
                state = p;
                return;
        }
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
                return;
        if (flock(fd, LOCK_EX) < 0 || fstat(fd, &st) < 0)
                goto out;
        if (st.st_size == 0 && ftruncate(fd, sizeof(FakeState)) < 0)
                goto out;
        p = mmap(NULL, sizeof(FakeState), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                goto out;
        if (st.st_size == 0)
                state_init(p);
        if (memcmp(((FakeState *) p)->magic, "FAKECUDA", 8) != 0) {
                munmap(p, sizeof(FakeState));
                goto out;
        }
        state = p;
out:
        flock(fd, LOCK_UN); /* the mapping keeps the file description (and a lock) alive */
        close(fd);
}

FakeState *fake_state_get(void) {
        pthread_once(&state_once, state_open);
        return state;
}

static void dev_lock(FakeDevice *d) {
        if (pthread_mutex_lock(&d->lock) == EOWNERDEAD)
                pthread_mutex_consistent(&d->lock);
}

static void add_busy(FakeDevice *d, uint64_t start, uint64_t end) {
        for (unsigned n = 0; start < end && n < FAKE_BUCKETS; n++) {
                uint64_t b = start / FAKE_BUCKET_NS, b_end = (b + 1) * FAKE_BUCKET_NS;
                unsigned i = (unsigned) (b % FAKE_BUCKETS);
                uint64_t upto = end < b_end ? end : b_end;

                if (d->bucket_epoch[i] != b) {
                        d->bucket_epoch[i] = b;
                        d->bucket_busy_ns[i] = 0;
                }
                d->bucket_busy_ns[i] += upto - start;
                start = upto;
        }
}

void fake_state_launch(FakeDevice *d, uint64_t duration_ns, uint64_t queue_max) {
        for (;;) {
                uint64_t now = fake_now_ns(), start, wait;

                dev_lock(d);
                start = d->busy_until_ns > now ? d->busy_until_ns : now;
                if (start - now <= queue_max * duration_ns) {
                        d->busy_until_ns = start + duration_ns;
                        d->launches++;
                        add_busy(d, start, start + duration_ns);
                        pthread_mutex_unlock(&d->lock);
                        return;
                }
                wait = start - now - queue_max * duration_ns;
                pthread_mutex_unlock(&d->lock);
                nanosleep(&(struct timespec) { .tv_sec = (time_t) (wait / 1000000000ULL),
                                               .tv_nsec = (long) (wait % 1000000000ULL) }, NULL);
        }
}

unsigned fake_state_utilization(FakeDevice *d, uint64_t window_ns) {
        uint64_t now = fake_now_ns(), from, busy = 0;

        if (window_ns == 0 || window_ns > (FAKE_BUCKETS - 2) * FAKE_BUCKET_NS)
                window_ns = 1000 * FAKE_BUCKET_NS;
        from = now - window_ns;
        dev_lock(d);
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
        pthread_mutex_unlock(&d->lock);
        return (unsigned) (busy * 100 / window_ns > 100 ? 100 : busy * 100 / window_ns);
}
