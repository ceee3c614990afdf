/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The per-claim accounting region shared by libvgpu.so (every CUDA process of a
 * container) and the daemon (which creates it and reads live usage from it).
 *
 * The file, named by CUDA_DEVICE_MEMORY_SHARED_CACHE, is:
 *
 *   SharedRegionHeader   (header_size bytes: magic, version, sizes, the robust lock,
 *                         one SharedRegionDevice per device)
 *   SharedRegionSlot[n_slots]   (slot_size bytes each, one per live process)
 *
 * Locking and liveness:
 *  - `lock` is a process-shared *robust* pthread mutex, held only for a few loads and
 *    stores (never across a driver call or a system call). A process killed holding it
 *    leaves EOWNERDEAD to the next locker, who rebuilds the per-device totals from the
 *    slots (the slots are the journal) and carries on.
 *  - Each live process owns one slot and holds an open-file-description (OFD) write lock
 *    on that slot's byte range for its whole life. The kernel drops the lock when the
 *    process dies, whatever its PID namespace and whichever of its threads set it up, so
 *    a slot whose state is ACTIVE but whose range is unlocked belongs to a dead process:
 *    its usage is reclaimed by the next process that claims a slot or runs short.
 *  - devices[i].used is the sum of the ACTIVE slots' used[i]; an allocation reserves
 *    its size there (checked against the limit) before the driver is called, and rolls
 *    back if the driver fails, so concurrent allocators never overshoot the limit.
 *
 * The daemon never locks anything and never maps the file: it reads a copy with
 * shared_region_read_usage(), which validates everything (the file is written by the
 * container, so it is hostile).
 */

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#define SHARED_REGION_MAGIC "HAMIVGPU"
#define SHARED_REGION_VERSION 1u
#define SHARED_REGION_DEVICES_MAX 16u
#define SHARED_REGION_SLOTS_MAX 1024u
#define SHARED_REGION_SLOTS_DEFAULT 1024u

/* What a process of the container could not enforce: set by libvgpu.so (and never
 * cleared), reported by the daemon's reader. Unknown bits are reported, not refused. */
enum {
        SHARED_REGION_DEGRADED_MEMORY_LIMIT = 1u << 0, /* a memory limit it could not parse or apply */
        SHARED_REGION_DEGRADED_SM_LIMIT = 1u << 1,     /* an SM limit it could not measure or apply */
};

enum {
        SHARED_REGION_SLOT_FREE = 0,
        SHARED_REGION_SLOT_ACTIVE = 1,
};

typedef struct SharedRegionDevice {
        uint64_t used;          /* bytes reserved by all ACTIVE slots (atomic, under lock) */
        uint64_t limit;         /* bytes; 0: no limit recorded */
        uint32_t sm_limit;      /* percent; 0: no limit recorded */
        uint32_t reserved0;
        /* SM limiter, shared by the container's processes (atomics, no lock). */
        int64_t tokens;         /* launch tokens available, fixed point (1 << 16 = 1 launch) */
        uint64_t refill_ns;     /* the refill quantum last served (libvgpu's sm-limiter.c) */
        uint64_t rate;          /* launches per second, fixed point 1 << 16 */
        uint64_t adjust_ns;     /* CLOCK_MONOTONIC of the last rate adjustment */
        uint64_t launches;      /* launches since adjust_ns */
        /* Written by the node's usage monitor (the daemon: usage-monitor.c), which sees
         * the driver's per-process accounting under host PIDs; read by libvgpu.so. */
        uint64_t footprint_extra; /* bytes the driver holds for the container's processes
                                     beyond what they reserved here (contexts, modules,
                                     pool reserves): counted against the limit */
        uint64_t context_bytes;   /* what one process's context costs on this GPU; 0: unknown */
        uint32_t measured_sm;     /* the container's own SM share, permille of the GPU */
        uint32_t measured_procs;  /* its processes the driver reported in that window */
        uint64_t measured_seq;    /* bumped after every update of the fields above */
        uint64_t adjust_seq;      /* libvgpu: the measured_seq its limiter last used */
        uint64_t phase_ns;        /* its phase in the refill quanta: the monitor's slot
                                     (usage-monitor.c), else libvgpu picks one at random */
        uint32_t unowned;         /* monitor: permille of the GPU busy with no process's
                                     kernels (context switches): congestion */
        uint32_t target_permille; /* monitor: aim at this much of the limit (the limits on
                                     this GPU add up to more than it can run); 0: all */
        uint64_t waiters;         /* libvgpu: its processes sleeping for tokens now (a
                                     process killed in its sleep leaves it high: the
                                     limiter then treats idle time as waiting) */
} __attribute__((aligned(64))) SharedRegionDevice;

_Static_assert(sizeof(SharedRegionDevice) == 128, "the device layout of region version 1 changed");

typedef struct SharedRegionSlot {
        uint32_t state;         /* SHARED_REGION_SLOT_* */
        int32_t pid;            /* owner's pid in its own namespace: informational only */
        uint64_t generation;    /* bumped on every claim */
        uint64_t used[SHARED_REGION_DEVICES_MAX];
        /* Of used[d], what libvgpu reserved for its context on device d before the
         * driver made it (MiB; the monitor's context_bytes): not an allocation. */
        uint16_t context_mib[SHARED_REGION_DEVICES_MAX];
} __attribute__((aligned(64))) SharedRegionSlot;

_Static_assert(sizeof(SharedRegionSlot) == 192, "the slot layout of region version 1 changed");

typedef struct SharedRegionHeader {
        char magic[8];          /* SHARED_REGION_MAGIC, no NUL */
        uint32_t version;       /* SHARED_REGION_VERSION */
        uint32_t header_size;   /* sizeof(SharedRegionHeader); slots start here */
        uint32_t slot_size;     /* sizeof(SharedRegionSlot) */
        uint32_t n_devices;     /* 1..SHARED_REGION_DEVICES_MAX */
        uint32_t n_slots;       /* 1..SHARED_REGION_SLOTS_MAX */
        uint32_t flags;         /* none defined: must be 0 */
        uint64_t file_size;     /* header_size + n_slots * slot_size */
        uint32_t slot_hwm;      /* slots [slot_hwm, n_slots) were never used (atomic) */
        uint32_t degraded;      /* SHARED_REGION_DEGRADED_* a process could not honour (atomic OR) */
        union {
                pthread_mutex_t lock;
                char lock_space[64];
        };
        SharedRegionDevice devices[SHARED_REGION_DEVICES_MAX];
} __attribute__((aligned(64))) SharedRegionHeader;

_Static_assert(sizeof(pthread_mutex_t) <= 64, "pthread_mutex_t does not fit its space");

static inline size_t shared_region_file_size(uint32_t n_slots) {
        return sizeof(SharedRegionHeader) + (size_t) n_slots * sizeof(SharedRegionSlot);
}

static inline off_t shared_region_slot_offset(uint32_t slot) {
        return (off_t) (sizeof(SharedRegionHeader) + (size_t) slot * sizeof(SharedRegionSlot));
}

/*
 * The beacon of slot `slot`: one byte past the end of the file on which its owner holds
 * a classic POSIX read lock (F_SETLK) for as long as it holds the slot. Unlike the OFD
 * lock, /proc/locks names a POSIX lock's owner, by its PID in the reader's PID namespace:
 * the host's daemon learns each slot's host PID from it, which NVML's per-process
 * accounting speaks in. Past the end of the file so it never meets the OFD locks.
 */
static inline off_t shared_region_beacon_offset(uint32_t n_slots, uint32_t slot) {
        return (off_t) (shared_region_file_size(n_slots) + slot);
}

/* Create the file at path (which must not exist) atomically, readable and writable per
 * mode, with a valid header. limits/sm_limits may be NULL (nothing recorded). */
int shared_region_create(const char *path, uint32_t n_devices, uint32_t n_slots,
                         const uint64_t *limits, const uint32_t *sm_limits, mode_t mode);

/*
 * The same at name relative to dir_fd, created in place (O_EXCL), not built aside and
 * linked: for a directory that no reader can reach until the file is complete (the
 * daemon's fresh claim directory, bind-mounted only after prepare returns).
 */
int shared_region_create_at(int dir_fd, const char *name, uint32_t n_devices, uint32_t n_slots,
                            const uint64_t *limits, const uint32_t *sm_limits, mode_t mode);

/* Validate a copy of a region: size, magic, version, sizes, counts. 0 or -EBADMSG
 * (not a region), -EPROTONOSUPPORT (other version). Pure: fuzzers call it. */
int shared_region_validate(const void *data, size_t size);

/* The same for a copy of the header and of the slots below its slot_hwm only (what the
 * reader copies); size may then be less than file_size. */
int shared_region_validate_prefix(const void *data, size_t size);

typedef struct SharedRegionUsage {
        uint32_t n_devices;
        uint32_t n_slots;
        uint32_t n_active;                               /* live slots counted */
        uint64_t used[SHARED_REGION_DEVICES_MAX];        /* sum over counted slots, saturating */
        uint64_t limit[SHARED_REGION_DEVICES_MAX];
        uint32_t sm_limit[SHARED_REGION_DEVICES_MAX];
        uint32_t degraded;                               /* SHARED_REGION_DEGRADED_* */
        /* What the node's usage monitor last wrote (the daemon's own measurements, but in a
         * file the container can write: the container's word, to be shown, never trusted). */
        uint64_t footprint_extra[SHARED_REGION_DEVICES_MAX]; /* driver bytes beyond used[] */
        uint32_t measured_sm[SHARED_REGION_DEVICES_MAX];     /* permille of the GPU, <= 1000 */
        uint32_t measured_procs[SHARED_REGION_DEVICES_MAX];  /* processes in that window */
        uint64_t measured_seq[SHARED_REGION_DEVICES_MAX];    /* 0: never measured */
} SharedRegionUsage;

/* Sum the usage of a copy (checked with shared_region_validate_prefix()). With lock_fd >= 0 (the region file), only slots
 * whose OFD lock is held by someone count (dead processes' leftovers do not); with -1
 * every ACTIVE slot counts. Pure apart from F_OFD_GETLK. */
int shared_region_parse_usage(const void *data, size_t size, int lock_fd, SharedRegionUsage *ret);

/* The daemon's reader: open path without following symlinks or blocking, copy at most
 * the maximal region size, validate and sum. Takes no lock, never maps the file. */
int shared_region_read_usage(const char *path, SharedRegionUsage *ret);

/* The same, also calling slot_cb for every live slot (index and a validated-header copy
 * of it: its fields are still the container's word) and returning the file's identity. */
typedef void (*SharedRegionSlotCallback)(uint32_t slot, const SharedRegionSlot *copy, void *userdata);
int shared_region_read_usage_slots(const char *path, SharedRegionUsage *ret, struct stat *ret_st,
                                   SharedRegionSlotCallback slot_cb, void *userdata);

/* What the usage monitor measured for one device of a region. */
typedef struct SharedRegionMeasurement {
        uint64_t footprint_extra;
        uint64_t context_bytes;
        uint32_t measured_sm;
        uint32_t measured_procs;
        uint64_t phase_ns;        /* the container's slot on the GPU; 0: none (leave it) */
        uint32_t unowned;         /* permille of the GPU busy with nobody's kernels */
        uint32_t target_permille; /* of the limit to aim at; 0: leave it */
        bool measured;            /* false: nothing is known, the device is left alone */
} SharedRegionMeasurement;

/* Write m[0..n) (devices 0..n-1, those with `measured` set) into the region at path,
 * then bump each written device's measured_seq. The file must still be the one `expect` describes (dev and inode), a
 * regular file with a valid header; nothing else in it is touched. */
int shared_region_write_measurements(const char *path, const struct stat *expect,
                                     const SharedRegionMeasurement *m, uint32_t n);

/*
 * The daemon's guard against a container filling the disk through its region: the file
 * (path relative to dir_fd, not followed) is writable by every process of the claim, and
 * Linux has no unprivileged way to stop a writer from growing a file. Cut it back to the
 * largest region (shared_region_file_size(SHARED_REGION_SLOTS_MAX)), and free blocks
 * allocated past that. 1 when something was cut (*ret_excess: how many bytes), 0 when not,
 * or a negative errno (-EBADFD: not a regular file).
 */
int shared_region_trim_at(int dir_fd, const char *path, uint64_t *ret_excess);

/* The same, for callers that want an array: used[i] for i < n (0 past n_devices).
 * 0 or negative errno. */
int shared_region_read_used(const char *path, uint64_t *ret_used_per_device, size_t n);

/*
 * The writer side, used by libvgpu.so (and by tests). One SharedRegion per process.
 */
typedef struct SharedRegion {
        SharedRegionHeader *header;   /* the mapping */
        size_t size;
        int lock_fd;                  /* carries our slot's OFD lock */
        uint32_t slot;
        SharedRegionSlot *self;
        bool private_mapping;         /* anonymous: no file was given */
        char *path;                   /* for re-attaching in a forked child */
} SharedRegion;

/* Map an existing region file (validated) or, with path NULL, a private anonymous
 * region for n_devices. Then claim a slot. */
int shared_region_attach(SharedRegion *r, const char *path, uint32_t n_devices);
void shared_region_detach(SharedRegion *r);

/* In a forked child: the parent's slot is not ours; take a fresh lock fd and slot. */
int shared_region_reattach_after_fork(SharedRegion *r);

/* Reserve size bytes on device dev against limit (0: none). -ENOMEM if it does not fit
 * even after reclaiming dead slots; -EINVAL for a bad device. */
int shared_region_reserve(SharedRegion *r, uint32_t dev, uint64_t size, uint64_t limit);
/* Give back what shared_region_reserve() took (after a failed allocation or a free). */
void shared_region_release(SharedRegion *r, uint32_t dev, uint64_t size);
/* The container's usage on device dev (0 for a bad device). */
uint64_t shared_region_used(SharedRegion *r, uint32_t dev);
/* Its footprint: usage plus what the driver holds beyond it (the monitor's word). */
uint64_t shared_region_footprint(SharedRegion *r, uint32_t dev);
/* Reserve a context's expected cost on dev (like shared_region_reserve, recorded in our
 * slot's context_mib so the monitor tells it from allocations). */
int shared_region_reserve_context(SharedRegion *r, uint32_t dev, uint64_t bytes, uint64_t limit);
/* Reclaim every ACTIVE slot whose owner died. Returns how many. */
int shared_region_reclaim_dead(SharedRegion *r);
