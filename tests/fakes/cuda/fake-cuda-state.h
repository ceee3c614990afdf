/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The fake GPUs' state, shared by every process using the fake libcuda.so.1 and by the
 * fake libnvidia-ml.so.1 (which reports it): a file named by FAKE_CUDA_STATE, or, when
 * that is unset, private to the process.
 *
 * Kernel-execution model: a device runs one kernel at a time; each launch occupies it
 * for FAKE_CUDA_KERNEL_US microseconds after whatever is queued; at most
 * FAKE_CUDA_QUEUE launches wait (the launch call blocks beyond). Busy time is kept per
 * millisecond for the last FAKE_BUCKETS ms, so utilization over any recent window is
 * exact.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define FAKE_DEVICES_MAX 8
#define FAKE_BUCKETS 4096
#define FAKE_BUCKET_NS 1000000ULL

typedef struct FakeDevice {
        pthread_mutex_t lock;
        uint64_t total_memory;
        uint64_t used_memory;     /* atomic */
        uint64_t busy_until_ns;   /* CLOCK_MONOTONIC */
        uint64_t launches;
        uint64_t bucket_epoch[FAKE_BUCKETS];
        uint64_t bucket_busy_ns[FAKE_BUCKETS];
} FakeDevice;

typedef struct FakeState {
        char magic[8];
        uint32_t n_devices;
        uint32_t reserved;
        FakeDevice devices[FAKE_DEVICES_MAX];
} FakeState;

/* Map (creating if needed) the state; NULL on failure. Reads FAKE_CUDA_DEVICES and
 * FAKE_CUDA_MEMORY when it creates it. */
FakeState *fake_state_get(void);
uint64_t fake_now_ns(void);
/* Occupy device d for duration_ns after what is queued, waiting while more than
 * queue_max launches are pending. */
void fake_state_launch(FakeDevice *d, uint64_t duration_ns, uint64_t queue_max);
/* Percent of [now - window_ns, now] during which d was busy. */
unsigned fake_state_utilization(FakeDevice *d, uint64_t window_ns);
