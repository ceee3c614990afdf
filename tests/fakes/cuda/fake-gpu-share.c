/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fake-gpu-share DEVICE WINDOW_MS: the ground truth of the sharing tests, read straight
 * from the fake GPU's timeline (FAKE_CUDA_STATE), not through NVML: for each live
 * process on DEVICE, its host PID, the permille of the last WINDOW_MS its kernels kept
 * the device busy and the device memory it holds (bytes, contexts included); then the
 * device's own busy permille ("device ...").
 */
#include <stdio.h>
#include <stdlib.h>

#include "fake-cuda-state.h"

int main(int argc, char **argv) {
        FakeState *s;
        FakeDevice *d;
        uint64_t now_ms, from_ms, window_ms;
        unsigned dev;

        if (argc != 3) {
                fprintf(stderr, "usage: %s DEVICE WINDOW_MS\n", argv[0]);
                return 2;
        }
        dev = (unsigned) atoi(argv[1]);
        window_ms = strtoull(argv[2], NULL, 10);
        s = fake_state_get();
        if (!s || dev >= s->n_devices || window_ms == 0 || window_ms >= FAKE_BUCKETS) {
                fprintf(stderr, "%s: no fake state, no device %u, or a window outside 1..%u ms\n", argv[0], dev,
                        FAKE_BUCKETS - 1);
                return 1;
        }
        d = &s->devices[dev];
        now_ms = fake_now_ns() / FAKE_BUCKET_NS;
        from_ms = now_ms - window_ms;
        unsigned device_percent;

        fake_state_reclaim(d);
        device_percent = fake_state_utilization(d, window_ms * FAKE_BUCKET_NS); /* takes the lock */
        fake_dev_lock(d);
        for (unsigned i = 0; i < FAKE_PROCS_MAX; i++) {
                const FakeProcess *p = &d->procs[i];
                if (p->pid != 0)
                        printf("%u %llu %llu\n", p->pid,
                               (unsigned long long) (fake_proc_busy_ns(p, from_ms, now_ms) * 1000 / (window_ms * FAKE_BUCKET_NS)),
                               (unsigned long long) __atomic_load_n(&p->memory, __ATOMIC_RELAXED));
        }
        fake_dev_unlock(d);
        printf("device %u\n", device_percent * 10);
        return 0;
}
