/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The shared accounting region (see shared-region.h). Plain libc and pthreads only:
 * this file is compiled into libvgpu.so as well as into libhami-core.
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared-region.h"

#define REGION_SIZE_MAX shared_region_file_size(SHARED_REGION_SLOTS_MAX)
#define MIN64(a, b) ((uint64_t) (a) < (uint64_t) (b) ? (uint64_t) (a) : (uint64_t) (b))

static uint64_t add_saturating(uint64_t a, uint64_t b) {
        uint64_t s;
        return __builtin_add_overflow(a, b, &s) ? UINT64_MAX : s;
}

static uint64_t load64(const uint64_t *p) {
        return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void store64(uint64_t *p, uint64_t v) {
        __atomic_store_n(p, v, __ATOMIC_RELAXED);
}

static uint64_t sub_floor(uint64_t a, uint64_t b) {
        return a > b ? a - b : 0;
}

static void header_init(SharedRegionHeader *h, uint32_t n_devices, uint32_t n_slots,
                        const uint64_t *limits, const uint32_t *sm_limits, bool robust) {
        pthread_mutexattr_t attr;

        memcpy(h->magic, SHARED_REGION_MAGIC, sizeof(h->magic));
        h->version = SHARED_REGION_VERSION;
        h->header_size = sizeof(SharedRegionHeader);
        h->slot_size = sizeof(SharedRegionSlot);
        h->n_devices = n_devices;
        h->n_slots = n_slots;
        h->flags = 0;
        h->file_size = shared_region_file_size(n_slots);
        for (uint32_t i = 0; i < n_devices; i++) {
                h->devices[i].limit = limits ? limits[i] : 0;
                h->devices[i].sm_limit = sm_limits ? sm_limits[i] : 0;
        }

        pthread_mutexattr_init(&attr);
        pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
        if (robust)
                pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
        pthread_mutex_init(&h->lock, &attr);
        pthread_mutexattr_destroy(&attr);
}

static bool args_valid(uint32_t n_devices, uint32_t n_slots) {
        return n_devices >= 1 && n_devices <= SHARED_REGION_DEVICES_MAX && n_slots >= 1 &&
               n_slots <= SHARED_REGION_SLOTS_MAX;
}

/* Mode, size and a valid header for the new, empty file fd. */
static int region_write_new(int fd, uint32_t n_devices, uint32_t n_slots, const uint64_t *limits,
                            const uint32_t *sm_limits, mode_t mode) {
        SharedRegionHeader h;
        ssize_t n;
        int k;

        if (fchmod(fd, mode) < 0 || ftruncate(fd, (off_t) shared_region_file_size(n_slots)) < 0)
                return -errno;
        /* Every block allocated now: the containers' mappings never need the file system's
         * space later (a full disk would be a SIGBUS in the middle of an allocation). */
        k = posix_fallocate(fd, 0, (off_t) shared_region_file_size(n_slots));
        if (k != 0)
                return -k;
        /* Written, not mapped: a mapping costs a page fault, and its munmap a TLB
         * shootdown on every CPU, per claim. The mutex holds no pointer to itself. */
        memset(&h, 0, sizeof(h)); /* padding too: the file is read by other processes */
        header_init(&h, n_devices, n_slots, limits, sm_limits, true);
        n = pwrite(fd, &h, sizeof(h), 0);
        if (n < 0)
                return -errno;
        return (size_t) n == sizeof(h) ? 0 : -EIO;
}

int shared_region_create(const char *path, uint32_t n_devices, uint32_t n_slots,
                         const uint64_t *limits, const uint32_t *sm_limits, mode_t mode) {
        char tmp[PATH_MAX];
        int fd, r;

        if (!path || !args_valid(n_devices, n_slots))
                return -EINVAL;
        if ((size_t) snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= sizeof(tmp))
                return -ENAMETOOLONG;

        /* Build it under a temporary name, then link(): the name appears complete or not at
         * all, and an existing file is never replaced. */
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = region_write_new(fd, n_devices, n_slots, limits, sm_limits, mode);
        if (r >= 0 && link(tmp, path) < 0)
                r = -errno;
        unlink(tmp);
        close(fd);
        return r;
}

int shared_region_create_at(int dir_fd, const char *name, uint32_t n_devices, uint32_t n_slots,
                            const uint64_t *limits, const uint32_t *sm_limits, mode_t mode) {
        int fd, r;

        if (!name || !args_valid(n_devices, n_slots))
                return -EINVAL;
        fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        r = region_write_new(fd, n_devices, n_slots, limits, sm_limits, mode);
        if (r < 0)
                (void) unlinkat(dir_fd, name, 0);
        close(fd);
        return r;
}

static int header_check(const void *data, size_t size, SharedRegionHeader *ret) {
        SharedRegionHeader h;

        if (!data || size < sizeof(h))
                return -EBADMSG;
        memcpy(&h, data, sizeof(h));
        if (memcmp(h.magic, SHARED_REGION_MAGIC, sizeof(h.magic)) != 0)
                return -EBADMSG;
        if (h.version != SHARED_REGION_VERSION)
                return -EPROTONOSUPPORT;
        if (h.header_size != sizeof(SharedRegionHeader) || h.slot_size != sizeof(SharedRegionSlot) ||
            h.flags != 0 || !args_valid(h.n_devices, h.n_slots) ||
            h.file_size != shared_region_file_size(h.n_slots) || h.slot_hwm > h.n_slots)
                return -EBADMSG;
        *ret = h;
        return 0;
}

int shared_region_validate(const void *data, size_t size) {
        SharedRegionHeader h;
        int r;

        r = header_check(data, size, &h);
        if (r < 0)
                return r;
        return size >= h.file_size ? 0 : -EBADMSG;
}

int shared_region_validate_prefix(const void *data, size_t size) {
        SharedRegionHeader h;
        int r;

        r = header_check(data, size, &h);
        if (r < 0)
                return r;
        return size >= shared_region_file_size(h.slot_hwm) ? 0 : -EBADMSG;
}

static bool slot_lock_held(int fd, uint32_t slot) {
        struct flock fl = {
                .l_type = F_WRLCK,
                .l_whence = SEEK_SET,
                .l_start = shared_region_slot_offset(slot),
                .l_len = sizeof(SharedRegionSlot),
        };

        if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
                return true; /* cannot tell: count it rather than drop a live process */
        return fl.l_type != F_UNLCK;
}

static int parse_usage(const void *data, size_t size, int lock_fd, SharedRegionUsage *ret,
                       SharedRegionSlotCallback slot_cb, void *userdata);

int shared_region_parse_usage(const void *data, size_t size, int lock_fd, SharedRegionUsage *ret) {
        return parse_usage(data, size, lock_fd, ret, NULL, NULL);
}

static int parse_usage(const void *data, size_t size, int lock_fd, SharedRegionUsage *ret,
                       SharedRegionSlotCallback slot_cb, void *userdata) {
        SharedRegionHeader h;
        SharedRegionUsage u = {};
        int r;

        r = shared_region_validate_prefix(data, size);
        if (r < 0)
                return r;
        memcpy(&h, data, sizeof(h));

        u.n_devices = h.n_devices;
        u.n_slots = h.n_slots;
        u.degraded = h.degraded;
        for (uint32_t d = 0; d < h.n_devices; d++) {
                u.limit[d] = h.devices[d].limit;
                u.sm_limit[d] = h.devices[d].sm_limit;
                u.footprint_extra[d] = h.devices[d].footprint_extra;
                u.measured_sm[d] = h.devices[d].measured_sm > 1000 ? 1000 : h.devices[d].measured_sm;
                u.measured_procs[d] = h.devices[d].measured_procs > SHARED_REGION_SLOTS_MAX ? SHARED_REGION_SLOTS_MAX : h.devices[d].measured_procs;
                u.measured_seq[d] = h.devices[d].measured_seq;
        }
        for (uint32_t i = 0; i < h.slot_hwm; i++) {
                SharedRegionSlot s;

                memcpy(&s, (const uint8_t *) data + shared_region_slot_offset(i), sizeof(s));
                if (s.state != SHARED_REGION_SLOT_ACTIVE)
                        continue;
                if (lock_fd >= 0 && !slot_lock_held(lock_fd, i))
                        continue;
                u.n_active++;
                for (uint32_t d = 0; d < h.n_devices; d++)
                        u.used[d] = add_saturating(u.used[d], s.used[d]);
                if (slot_cb)
                        slot_cb(i, &s, userdata);
        }
        if (ret)
                *ret = u;
        return 0;
}

/* pread up to size bytes from offset into buf (which holds size). */
static int read_at(int fd, uint8_t *buf, size_t size, off_t offset, size_t *ret_n) {
        size_t n = 0;

        while (n < size) {
                ssize_t k = pread(fd, buf + n, size - n, offset + (off_t) n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        *ret_n = n;
        return 0;
}

static int read_at_most(int fd, uint8_t *buf, size_t size, size_t *ret_n) {
        return read_at(fd, buf, size, 0, ret_n);
}

int shared_region_read_usage(const char *path, SharedRegionUsage *ret) {
        return shared_region_read_usage_slots(path, ret, NULL, NULL, NULL);
}

int shared_region_read_usage_slots(const char *path, SharedRegionUsage *ret, struct stat *ret_st,
                                   SharedRegionSlotCallback slot_cb, void *userdata) {
        SharedRegionHeader h;
        uint8_t *buf = NULL;
        struct stat st;
        size_t n = 0, want;
        int fd, r;

        if (!path)
                return -EINVAL;
        /* O_NONBLOCK: a FIFO planted under the name must not hang us. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0) {
                r = -errno;
                goto finish;
        }
        if (!S_ISREG(st.st_mode)) {
                r = -EBADMSG;
                goto finish;
        }
        /* The header, then only the slots ever used (slot_hwm): a few KiB, not 200. */
        r = read_at_most(fd, (uint8_t *) &h, sizeof(h), &n);
        if (r < 0)
                goto finish;
        want = n == sizeof(h) && h.slot_hwm <= SHARED_REGION_SLOTS_MAX ? shared_region_file_size(h.slot_hwm) : n;
        buf = malloc(want > 0 ? want : 1);
        if (!buf) {
                r = -ENOMEM;
                goto finish;
        }
        r = read_at_most(fd, buf, want, &n);
        if (r < 0)
                goto finish;
        r = parse_usage(buf, n, fd, ret, slot_cb, userdata);
        if (r >= 0 && ret_st)
                *ret_st = st;
finish:
        free(buf);
        close(fd);
        return r;
}

int shared_region_read_used(const char *path, uint64_t *ret_used_per_device, size_t n) {
        SharedRegionUsage u;
        int r;

        r = shared_region_read_usage(path, &u);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                ret_used_per_device[i] = i < u.n_devices ? u.used[i] : 0;
        return 0;
}

static int write_at(int fd, const void *p, size_t size, off_t offset) {
        ssize_t k = pwrite(fd, p, size, offset);

        if (k < 0)
                return -errno;
        return (size_t) k == size ? 0 : -EIO;
}

static int write_measurement(int fd, uint32_t d, const SharedRegionMeasurement *m) {
        off_t base = (off_t) (offsetof(SharedRegionHeader, devices) + d * sizeof(SharedRegionDevice));
        uint64_t seq = 0;
        size_t n = 0;
        int r;

#define FIELD_AT(field) (base + (off_t) offsetof(SharedRegionDevice, field))
        r = write_at(fd, &m->footprint_extra, sizeof(uint64_t), FIELD_AT(footprint_extra));
        if (r >= 0)
                r = write_at(fd, &m->context_bytes, sizeof(uint64_t), FIELD_AT(context_bytes));
        if (r >= 0)
                r = write_at(fd, &m->measured_sm, sizeof(uint32_t), FIELD_AT(measured_sm));
        if (r >= 0)
                r = write_at(fd, &m->measured_procs, sizeof(uint32_t), FIELD_AT(measured_procs));
        if (r >= 0)
                r = write_at(fd, &m->unowned, sizeof(uint32_t), FIELD_AT(unowned));
        if (r >= 0)
                r = write_at(fd, &m->target_permille, sizeof(uint32_t), FIELD_AT(target_permille));
        if (r >= 0 && m->phase_ns != 0)
                r = write_at(fd, &m->phase_ns, sizeof(uint64_t), FIELD_AT(phase_ns));
        /* Last, so that a reader who sees the new sequence sees the new values. */
        if (r >= 0)
                r = read_at(fd, (uint8_t *) &seq, sizeof(seq), FIELD_AT(measured_seq), &n);
        if (r >= 0) {
                seq = n == sizeof(seq) ? seq + 1 : 1;
                r = write_at(fd, &seq, sizeof(seq), FIELD_AT(measured_seq));
        }
#undef FIELD_AT
        return r;
}

int shared_region_write_measurements(const char *path, const struct stat *expect,
                                     const SharedRegionMeasurement *m, uint32_t n) {
        SharedRegionHeader h;
        struct stat st;
        size_t got = 0;
        int fd, r = 0;

        if (!path || !expect || (!m && n > 0))
                return -EINVAL;
        fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
        if (fd < 0)
                return -errno;
        /* Written by the container: only the file we read, a regular one, with a header. */
        if (fstat(fd, &st) < 0)
                r = -errno;
        else if (!S_ISREG(st.st_mode) || st.st_dev != expect->st_dev || st.st_ino != expect->st_ino)
                r = -ESTALE;
        if (r >= 0)
                r = read_at(fd, (uint8_t *) &h, sizeof(h), 0, &got);
        if (r >= 0)
                r = header_check(&h, got, &h);
        for (uint32_t d = 0; r >= 0 && d < n && d < h.n_devices; d++)
                if (m[d].measured)
                        r = write_measurement(fd, d, &m[d]);
        close(fd);
        return r;
}

int shared_region_trim_at(int dir_fd, const char *path, uint64_t *ret_excess) {
        const uint64_t max = REGION_SIZE_MAX, slack = UINT64_C(1) << 20;
        uint64_t size, allocated, excess = 0;
        struct stat st;
        int fd, r = 0;

        if (!path)
                return -EINVAL;
        /* O_NONBLOCK: a lease the container took (it owns the file) must not stall us. */
        fd = openat(dir_fd, path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                r = -errno;
        else if (!S_ISREG(st.st_mode))
                r = -EBADFD;
        if (r < 0)
                goto finish;
        size = (uint64_t) st.st_size;
        allocated = (uint64_t) st.st_blocks * 512;
        if (size > max) {
                excess = size - max;
                if (ftruncate(fd, (off_t) max) < 0) {
                        r = -errno;
                        goto finish;
                }
        }
        /* Blocks allocated past the end (fallocate KEEP_SIZE) are not in st_size: a
         * truncation to the size frees them (ext4, XFS), or a punched hole (tmpfs), up to
         * the largest length the file system takes. */
        if (excess > 0 && fstat(fd, &st) >= 0)
                allocated = (uint64_t) st.st_blocks * 512;
        if (allocated > max + slack) {
                if (allocated - max > excess)
                        excess = allocated - max;
                if (ftruncate(fd, (off_t) MIN64(size, max)) >= 0 && fstat(fd, &st) >= 0)
                        allocated = (uint64_t) st.st_blocks * 512;
        }
        if (allocated > max + slack) {
                off_t len = INT64_MAX - (off_t) max;
                while (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t) max, len) < 0) {
                        if (errno == EFBIG && len > (off_t) slack) {
                                len /= 2;
                                continue;
                        }
                        if (errno != EOPNOTSUPP)
                                r = -errno;
                        break;
                }
                if (r < 0)
                        goto finish;
        }
        r = excess > 0;
finish:
        close(fd);
        if (ret_excess)
                *ret_excess = excess;
        return r;
}

/* ---- the writer side (libvgpu.so) ---- */

static SharedRegionSlot *region_slot(SharedRegion *r, uint32_t i) {
        return (SharedRegionSlot *) ((uint8_t *) r->header + shared_region_slot_offset(i));
}

/* The slots are the journal: rebuild the totals from them after a locker died. */
static void region_rebuild_totals(SharedRegion *r) {
        SharedRegionHeader *h = r->header;

        for (uint32_t d = 0; d < h->n_devices; d++) {
                uint64_t sum = 0;
                for (uint32_t i = 0; i < h->n_slots; i++) {
                        SharedRegionSlot *s = region_slot(r, i);
                        if (__atomic_load_n(&s->state, __ATOMIC_RELAXED) == SHARED_REGION_SLOT_ACTIVE)
                                sum = add_saturating(sum, load64(&s->used[d]));
                }
                store64(&h->devices[d].used, sum);
        }
}

static int region_lock(SharedRegion *r) {
        int k = pthread_mutex_lock(&r->header->lock);

        if (k == EOWNERDEAD) {
                region_rebuild_totals(r);
                pthread_mutex_consistent(&r->header->lock);
                return 0;
        }
        return -k;
}

static void region_unlock(SharedRegion *r) {
        pthread_mutex_unlock(&r->header->lock);
}

/* Under the lock: drop slot s's usage from the totals and free it. */
static void region_slot_clear_locked(SharedRegion *r, SharedRegionSlot *s) {
        SharedRegionHeader *h = r->header;

        for (uint32_t d = 0; d < h->n_devices; d++) {
                uint64_t u = load64(&s->used[d]);
                store64(&h->devices[d].used, sub_floor(load64(&h->devices[d].used), u));
                store64(&s->used[d], 0);
        }
        __atomic_store_n(&s->state, SHARED_REGION_SLOT_FREE, __ATOMIC_RELEASE);
}

static int slot_try_lock(int fd, uint32_t slot) {
        struct flock fl = {
                .l_type = F_WRLCK,
                .l_whence = SEEK_SET,
                .l_start = shared_region_slot_offset(slot),
                .l_len = sizeof(SharedRegionSlot),
        };

        if (fcntl(fd, F_OFD_SETLK, &fl) < 0)
                return -errno;
        return 0;
}

/* Our host PID, for the daemon's usage monitor: a POSIX read lock on the slot's beacon
 * (shared-region.h). Best effort: without it only the measurements are missing. */
static void slot_set_beacon(SharedRegion *r, uint32_t slot) {
        struct flock fl = {
                .l_type = F_RDLCK,
                .l_whence = SEEK_SET,
                .l_start = shared_region_beacon_offset(r->header->n_slots, slot),
                .l_len = 1,
        };

        if (r->lock_fd >= 0)
                (void) fcntl(r->lock_fd, F_SETLK, &fl);
}

static int region_claim_slot(SharedRegion *r) {
        uint32_t n = r->header->n_slots;
        int k;

        /* Lowest free slot first, so that slot_hwm (and what the daemon reads) stays small. */
        for (uint32_t i = 0; i < n; i++) {
                SharedRegionSlot *s = region_slot(r, i);
                uint32_t hwm;

                if (r->lock_fd >= 0 && slot_try_lock(r->lock_fd, i) < 0)
                        continue; /* a live process owns it */

                k = region_lock(r);
                if (k < 0)
                        return k;
                if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == SHARED_REGION_SLOT_ACTIVE) {
                        if (r->lock_fd < 0) { /* private region: nobody else */
                                region_unlock(r);
                                continue;
                        }
                        region_slot_clear_locked(r, s); /* its owner died */
                }
                s->pid = (int32_t) getpid();
                s->generation++;
                __atomic_store_n(&s->state, SHARED_REGION_SLOT_ACTIVE, __ATOMIC_RELEASE);
                hwm = __atomic_load_n(&r->header->slot_hwm, __ATOMIC_RELAXED);
                if (hwm < i + 1)
                        __atomic_store_n(&r->header->slot_hwm, i + 1, __ATOMIC_RELEASE); /* under the lock */
                region_unlock(r);

                r->slot = i;
                r->self = s;
                slot_set_beacon(r, i);
                return 0;
        }
        return -EUSERS;
}

static int region_open_lock_fd(const char *path) {
        int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        return fd < 0 ? -errno : fd;
}

static int region_map_file(SharedRegion *r, const char *path) {
        struct stat st;
        void *p;
        int fd, k;

        fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0) {
                k = -errno;
                close(fd);
                return k;
        }
        if (!S_ISREG(st.st_mode) || st.st_size < (off_t) sizeof(SharedRegionHeader) ||
            (uint64_t) st.st_size > REGION_SIZE_MAX) {
                close(fd);
                return -EBADMSG;
        }
        p = mmap(NULL, (size_t) st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        k = p == MAP_FAILED ? -errno : 0;
        /* The mapping keeps its own reference to this open file description; the slot lock
         * lives on a different one, so a forked child holding the mapping does not keep
         * our slot locked after we die. */
        close(fd);
        if (k < 0)
                return k;
        k = shared_region_validate(p, (size_t) st.st_size);
        if (k < 0) {
                munmap(p, (size_t) st.st_size);
                return k;
        }
        r->header = p;
        r->size = (size_t) st.st_size;
        return 0;
}

static int region_map_private(SharedRegion *r, uint32_t n_devices) {
        size_t size = shared_region_file_size(1);
        void *p;

        if (n_devices < 1 || n_devices > SHARED_REGION_DEVICES_MAX)
                return -EINVAL;
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                return -errno;
        header_init(p, n_devices, 1, NULL, NULL, false);
        r->header = p;
        r->size = size;
        r->private_mapping = true;
        return 0;
}

int shared_region_attach(SharedRegion *r, const char *path, uint32_t n_devices) {
        int k;

        *r = (SharedRegion) { .lock_fd = -1 };
        if (path) {
                r->path = strdup(path);
                if (!r->path)
                        return -ENOMEM;
                k = region_map_file(r, path);
                if (k >= 0) {
                        k = region_open_lock_fd(path);
                        if (k >= 0)
                                r->lock_fd = k;
                }
        } else
                k = region_map_private(r, n_devices);
        if (k >= 0)
                k = region_claim_slot(r);
        if (k < 0) {
                shared_region_detach(r);
                return k;
        }
        return 0;
}

void shared_region_detach(SharedRegion *r) {
        if (r->header && r->self && region_lock(r) >= 0) {
                region_slot_clear_locked(r, r->self);
                region_unlock(r);
        }
        if (r->lock_fd >= 0)
                close(r->lock_fd);
        if (r->header)
                munmap(r->header, r->size);
        free(r->path);
        *r = (SharedRegion) { .lock_fd = -1 };
}

int shared_region_reattach_after_fork(SharedRegion *r) {
        int k;

        if (!r->header)
                return 0;
        if (r->private_mapping) {
                /* A private region stays shared with the parent through the inherited
                 * anonymous mapping; the child gets a fresh private one instead. */
                uint32_t n = r->header->n_devices;
                munmap(r->header, r->size);
                *r = (SharedRegion) { .lock_fd = -1 };
                return shared_region_attach(r, NULL, n);
        }
        /* Closing our copy of the parent's lock fd does not release the parent's lock:
         * the parent still holds its own reference to that open file description. */
        if (r->lock_fd >= 0)
                close(r->lock_fd);
        r->lock_fd = -1;
        r->self = NULL;
        k = region_open_lock_fd(r->path);
        if (k < 0)
                return k;
        r->lock_fd = k;
        return region_claim_slot(r);
}

int shared_region_reclaim_dead(SharedRegion *r) {
        SharedRegionHeader *h = r->header;
        int n = 0;

        if (!h || r->lock_fd < 0)
                return 0;
        for (uint32_t i = 0; i < h->n_slots; i++) {
                SharedRegionSlot *s = region_slot(r, i);
                uint64_t gen;

                if (s == r->self ||
                    __atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != SHARED_REGION_SLOT_ACTIVE)
                        continue;
                gen = load64(&s->generation);
                if (slot_lock_held(r->lock_fd, i))
                        continue;
                if (region_lock(r) < 0)
                        return n;
                /* Re-check: a new owner may have claimed it since we looked. */
                if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == SHARED_REGION_SLOT_ACTIVE &&
                    load64(&s->generation) == gen) {
                        region_slot_clear_locked(r, s);
                        n++;
                }
                region_unlock(r);
        }
        return n;
}

static int region_try_reserve(SharedRegion *r, uint32_t dev, uint64_t size, uint64_t limit) {
        SharedRegionDevice *d = &r->header->devices[dev];
        uint64_t used;
        int k;

        k = region_lock(r);
        if (k < 0)
                return k;
        used = load64(&d->used);
        if (limit > 0 && (size > limit || used > limit - size)) {
                region_unlock(r);
                return -ENOMEM;
        }
        store64(&r->self->used[dev], add_saturating(load64(&r->self->used[dev]), size));
        store64(&d->used, add_saturating(used, size));
        region_unlock(r);
        return 0;
}

int shared_region_reserve(SharedRegion *r, uint32_t dev, uint64_t size, uint64_t limit) {
        int k;

        if (!r->header || !r->self || dev >= r->header->n_devices)
                return -EINVAL;
        k = region_try_reserve(r, dev, size, limit);
        if (k != -ENOMEM)
                return k;
        if (shared_region_reclaim_dead(r) <= 0)
                return -ENOMEM;
        return region_try_reserve(r, dev, size, limit);
}

void shared_region_release(SharedRegion *r, uint32_t dev, uint64_t size) {
        SharedRegionDevice *d;

        if (!r->header || !r->self || dev >= r->header->n_devices)
                return;
        d = &r->header->devices[dev];
        if (region_lock(r) < 0)
                return;
        store64(&r->self->used[dev], sub_floor(load64(&r->self->used[dev]), size));
        store64(&d->used, sub_floor(load64(&d->used), size));
        region_unlock(r);
}

uint64_t shared_region_used(SharedRegion *r, uint32_t dev) {
        if (!r->header || dev >= r->header->n_devices)
                return 0;
        return load64(&r->header->devices[dev].used);
}

uint64_t shared_region_footprint(SharedRegion *r, uint32_t dev) {
        if (!r->header || dev >= r->header->n_devices)
                return 0;
        return add_saturating(load64(&r->header->devices[dev].used),
                              load64(&r->header->devices[dev].footprint_extra));
}

int shared_region_reserve_context(SharedRegion *r, uint32_t dev, uint64_t bytes, uint64_t limit) {
        uint64_t mib = (bytes + (1u << 20) - 1) >> 20;
        int k;

        if (mib > UINT16_MAX)
                mib = UINT16_MAX;
        k = shared_region_reserve(r, dev, mib << 20, limit);
        if (k >= 0)
                __atomic_store_n(&r->self->context_mib[dev], (uint16_t) mib, __ATOMIC_RELAXED);
        return k;
}
