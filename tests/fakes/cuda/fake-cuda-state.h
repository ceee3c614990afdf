/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The fake GPUs' state, shared by every process using the fake libcuda.so.1 and by the
 * fake libnvidia-ml.so.1 (which reports it): a file named by FAKE_CUDA_STATE, or, when
 * that is unset, a memfd private to the process and its forks.
 *
 * Kernel-execution model: a device runs one kernel at a time; each launch occupies it
 * for FAKE_CUDA_KERNEL_US microseconds after whatever is queued, by any process (the
 * processes time-slice on one timeline); at most FAKE_CUDA_QUEUE launches wait (the
 * launch call blocks beyond). Blocked launches of different processes take the room
 * that frees in turn, the process served least recently first, as the GPU's round-robin
 * between processes' channels shares it out. When consecutive kernels on a device come from different
 * processes, FAKE_CUDA_SWITCH_US of busy time that belongs to no process comes between
 * them: the context switch. Busy time is kept per millisecond for the last FAKE_BUCKETS
 * ms, for the device and for each process, so utilization over any recent window is
 * exact.
 *
 * Processes (fake-cuda-procs.c): each device has a table of FAKE_PROCS_MAX entries, one
 * per process that used it: the process's host PID (as the kernel driver records it,
 * the first NSpid of /proc/self/status), the device memory it holds (allocations and
 * contexts) and its busy time. An entry's owner holds an OFD write lock
 * (F_OFD_SETLK) on the entry's first byte of the state file, through an open file
 * description of its own (O_CLOEXEC, and closed in a forked child), so the lock goes
 * when the process dies or execs. Whoever claims an entry or reads the table first
 * probes the locks of the used entries (F_OFD_GETLK through another description) and
 * reclaims the entries nobody holds: their memory goes back to the device.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define FAKE_DEVICES_MAX 8
#define FAKE_PROCS_MAX 64
#define FAKE_BUCKETS 4096
#define FAKE_BUCKET_NS 1000000ULL

typedef struct FakeProcess {
        uint32_t pid;      /* host PID; 0: the entry is free */
        uint32_t ns_pid;   /* getpid() in its own PID namespace */
        uint32_t unlocked; /* no liveness lock could be taken: never reclaimed */
        uint32_t contexts; /* atomic: contexts it holds on the device */
        uint64_t token;    /* unique per claim: tells processes apart on the timeline */
        uint64_t memory;   /* atomic: device memory it holds, contexts included */
        uint64_t wait_ns;   /* device lock: when a launch of it last found the queue full */
        uint64_t served_ns; /* device lock: when it last queued a kernel */
        uint64_t bucket_epoch[FAKE_BUCKETS];
        uint64_t bucket_busy_ns[FAKE_BUCKETS]; /* its kernels' busy time */
} FakeProcess;

typedef struct FakeDevice {
        pthread_mutex_t lock;
        uint64_t total_memory;
        uint64_t used_memory;     /* atomic */
        uint64_t busy_until_ns;   /* CLOCK_MONOTONIC */
        uint64_t launches;
        uint64_t switches;        /* context switches between processes */
        uint64_t last_token;      /* the process of the last kernel queued */
        uint64_t next_token;
        uint64_t bucket_epoch[FAKE_BUCKETS];
        uint64_t bucket_busy_ns[FAKE_BUCKETS]; /* kernels and context switches */
        FakeProcess procs[FAKE_PROCS_MAX];
} FakeDevice;

typedef struct FakeState {
        char magic[8];
        uint32_t n_devices;
        uint32_t reserved;
        int64_t realtime_offset_ns; /* CLOCK_REALTIME - CLOCK_MONOTONIC when created */
        FakeDevice devices[FAKE_DEVICES_MAX];
} FakeState;

/* ---- fake-cuda-state.c ---- */

/* Map (creating if needed) the state; NULL on failure. Reads FAKE_CUDA_DEVICES and
 * FAKE_CUDA_MEMORY when it creates it. */
FakeState *fake_state_get(void);
uint64_t fake_now_ns(void);
/* The descriptor the state was opened with (kept open; for probing locks), and a new
 * open file description of the same file (for holding them); -errno on failure. */
int fake_state_fd(void);
int fake_state_reopen(void);
void fake_dev_lock(FakeDevice *d);
void fake_dev_unlock(FakeDevice *d);
/* Add busy time [start, end) (ns, CLOCK_MONOTONIC) to per-millisecond buckets. */
void fake_add_busy(uint64_t *epoch, uint64_t *busy, uint64_t start, uint64_t end);
/* Occupy device d for duration_ns after what is queued, for process p (NULL: nobody),
 * preceded by switch_ns when the last kernel queued was another process's; waits while
 * more than queue_max launches are pending. */
void fake_state_launch(FakeDevice *d, FakeProcess *p, uint64_t duration_ns, uint64_t switch_ns,
                       uint64_t queue_max);
/* Percent of [now - window_ns, now] during which d was busy. */
unsigned fake_state_utilization(FakeDevice *d, uint64_t window_ns);

/* ---- fake-cuda-procs.c ---- */

/* This process's entry on device dev, claimed on first use (after reclaiming the dead);
 * NULL when the table is full or there is no state. */
FakeProcess *fake_proc_self(unsigned dev);
/* Take size bytes of device dev's memory for this process: 0, or -ENOMEM past the
 * device's memory or without an entry. */
int fake_proc_charge(unsigned dev, uint64_t size);
void fake_proc_uncharge(unsigned dev, uint64_t size);
/* This process holds one context more (delta 1) or fewer (-1) on device dev. */
void fake_proc_contexts(unsigned dev, int delta);
/* Free the entries of dead processes on d and give their memory back. */
void fake_state_reclaim(FakeDevice *d);

typedef struct FakeProcessInfo {
        uint32_t pid;
        uint64_t memory;
} FakeProcessInfo;

/* The live processes holding a context or memory on d: fills up to max, returns how
 * many there are. Reclaims the dead first. */
unsigned fake_state_processes(FakeDevice *d, FakeProcessInfo *out, unsigned max);

/* Busy time of p's kernels in the millisecond buckets [from_ms, to_ms) (CLOCK_MONOTONIC). */
uint64_t fake_proc_busy_ns(const FakeProcess *p, uint64_t from_ms, uint64_t to_ms);

typedef struct FakeSample {
        uint32_t pid;
        uint64_t timestamp_us; /* CLOCK_REALTIME, the end of the sample window */
        unsigned sm_util;      /* percent of the window its kernels kept d busy */
} FakeSample;

/* Per-process utilization as the driver samples it: every period_ms, a window per
 * process (windows of different processes are out of phase). For each live process,
 * its most recent complete window newer than last_seen_us in which it was busy at all.
 * Fills up to max, returns how many there are. */
unsigned fake_state_samples(FakeState *s, FakeDevice *d, uint64_t period_ms, uint64_t last_seen_us,
                            FakeSample *out, unsigned max);
