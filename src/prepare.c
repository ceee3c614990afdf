/* SPDX-License-Identifier: Apache-2.0 */

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <search.h>
#include <stdio.h>
#include <sys/stat.h>
#include <systemd/sd-id128.h>

#include "cdi.h"
#include "checkpoint.h"
#include "claim-limits.h"
#include "claim.h"
#include "errbuf.h"
#include "fsutil.h"
#include "host-driver.h"
#include "log.h"
#include "prepare.h"
#include "shared-region.h"
#include "time-util.h"


#define CLAIMS_DIR_NAME "claims"
#define BUSY_MAX 1024
#define PREPARER_TRIM_LOG_USEC (10 * USEC_PER_SEC)

struct Preparer {
        char *driver_name, *node_name, *cdi_dir, *state_dir, *preload_library, *dev_root, *driver_root;
        char *checkpoint_dir, *claims_dir, *ld_so_preload;
        int cdi_fd, checkpoint_fd, claims_fd;   /* the three directories, open for *at() calls */
        bool driver_from_runtime;
        uint64_t trim_logged_usec;     /* the last "cut back" warning (main loop only) */
        unsigned trim_unlogged;        /* cuts since then */
        size_t trim_cursor;            /* where the next tick's slice of claims starts */
        char boot_id[SD_ID128_STRING_MAX];

        pthread_mutex_t lock;          /* protects everything below */
        bool ld_so_preload_ok;         /* <state>/ld.so.preload is right (prepares write it until it is) */
        pthread_cond_t idle;
        pthread_rwlock_t gpus_lock;    /* plans read the GPU list, rescans replace it */
        GpuList gpus;                  /* a private copy */
        HostDriver host;
        /* < 0: control nodes missing. p->host is written while this is < 0 (under
         * host_lock) and published by a release store of a value >= 0; readers load it
         * with acquire before reading p->host, under gpus_lock (read). Once >= 0 it is
         * replaced only under gpus_lock (write): preparer_refresh_host(). The text is read
         * and written under host_lock. */
        int host_error;
        char host_error_text[256];
        pthread_mutex_t host_lock;
        char *busy[BUSY_MAX];          /* claim UIDs with a call in progress */
        size_t n_busy;
        /*
         * The prepared claims, a tsearch(3) tree of PreparedClaim * by UID: what the checkpoint
         * files say, without the CDI spec text (which stays on disk). Loaded by recovery,
         * changed only by the holder of the claim's UID lock, right after its file.
         */
        void *prepared;
        size_t n_prepared;
};

static void prepared_claim_free(void *c);

/* ---------------------------------------------------------------- set-up */

static int copy_gpus(const GpuList *src, GpuList *ret) {
        GpuList l = {};

        if (src && src->n_gpus > 0) {
                l.gpus = calloc(src->n_gpus, sizeof(Gpu));
                if (!l.gpus)
                        return -ENOMEM;
                memcpy(l.gpus, src->gpus, src->n_gpus * sizeof(Gpu));
                l.n_gpus = src->n_gpus;
        }
        *ret = l;
        return 0;
}

static int preparer_discover_host(Preparer *p) {
        p->host_error = host_driver_discover(p->dev_root, p->driver_root, p->driver_from_runtime, &p->host,
                                             p->host_error_text, sizeof(p->host_error_text));
        if (p->host_error < 0)
                log_warning("Cannot prepare claims until this is fixed: %s", p->host_error_text);
        else
                log_debug("Found %zu NVIDIA control nodes and %zu driver files to hand to containers",
                          p->host.n_control, p->host.n_files);
        return 0;
}

int preparer_host_check(Preparer *p, char *why, size_t why_size) {
        _cleanup_free_ HostDriver *h = NULL;
        char text[sizeof(p->host_error_text)];
        int e;

        e = __atomic_load_n(&p->host_error, __ATOMIC_ACQUIRE);
        if (e >= 0)
                return e;
        /* The control nodes were missing (the driver installed after start): look again. */
        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        pthread_mutex_lock(&p->host_lock);
        e = __atomic_load_n(&p->host_error, __ATOMIC_ACQUIRE);
        if (e < 0) {
                e = host_driver_discover(p->dev_root, p->driver_root, p->driver_from_runtime, h, text, sizeof(text));
                if (e >= 0) {
                        p->host = *h;
                        __atomic_store_n(&p->host_error, e, __ATOMIC_RELEASE);
                        log_info("The NVIDIA control nodes are there now: claims can be prepared");
                } else
                        snprintf(p->host_error_text, sizeof(p->host_error_text), "%s", text);
        }
        if (e < 0 && why)
                snprintf(why, why_size, "%s", p->host_error_text);
        pthread_mutex_unlock(&p->host_lock);
        return e;
}

/*
 * <state>/ld.so.preload, one file for every claim: /etc/ld.so.preload in their containers,
 * readable by every uid there. Written only when it is not already right, so that a start
 * on a full (or read-only) state file system writes nothing; atomically when it is not.
 */
static int preparer_write_ld_so_preload_locked(Preparer *p) {
        _cleanup_free_ char *text = NULL, *old = NULL;
        struct stat st;
        int r;

        if (!p->preload_library || p->ld_so_preload_ok)
                return 0;
        if (asprintf(&text, "%s\n", p->preload_library) < 0)
                return -ENOMEM;
        if (read_file_bounded_at(AT_FDCWD, p->ld_so_preload, strlen(text), READ_FILE_NOFOLLOW, &old, NULL) >= 0 &&
            streq(old, text) && stat(p->ld_so_preload, &st) >= 0 && (st.st_mode & 07777) == 0644) {
                p->ld_so_preload_ok = true;
                return 0;
        }
        r = write_file_atomic(p->state_dir, "ld.so.preload", text, strlen(text), 0644, 0);
        /* Whatever the umask (the unit's is 0077): non-root processes must read it too. */
        if (r >= 0 && chmod(p->ld_so_preload, 0644) < 0)
                r = negative_errno();
        if (r < 0)
                return log_error_errno(r, "Failed to write %s, claims cannot be prepared until it is: %m",
                                       p->ld_so_preload);
        p->ld_so_preload_ok = true;
        return 0;
}

/* Prepares of different claims run in parallel: one writer at a time (the temp name is fixed). */
static int preparer_write_ld_so_preload(Preparer *p) {
        int r;

        pthread_mutex_lock(&p->lock);
        r = preparer_write_ld_so_preload_locked(p);
        pthread_mutex_unlock(&p->lock);
        return r;
}

int preparer_new(const PrepareOptions *o, const GpuList *gpus, Preparer **ret) {
        Preparer *p;
        int r;

        if (!o->driver_name || !o->node_name || !o->cdi_dir || !o->state_dir)
                return -EINVAL;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->cdi_fd = p->checkpoint_fd = p->claims_fd = -EBADF;
        pthread_mutex_init(&p->lock, NULL);
        pthread_mutex_init(&p->host_lock, NULL);
        pthread_cond_init(&p->idle, NULL);
        pthread_rwlock_init(&p->gpus_lock, NULL);
        p->driver_name = strdup(o->driver_name);
        p->node_name = strdup(o->node_name);
        p->cdi_dir = strdup(o->cdi_dir);
        p->state_dir = strdup(o->state_dir);
        p->preload_library = o->preload_library ? strdup(o->preload_library) : NULL;
        p->dev_root = strdup(o->dev_root ?: "/");
        p->driver_root = strdup(o->driver_root ?: "/");
        p->driver_from_runtime = o->driver_from_runtime;
        if (asprintf(&p->checkpoint_dir, "%s/" CHECKPOINT_DIR_NAME, o->state_dir) < 0)
                p->checkpoint_dir = NULL;
        if (asprintf(&p->claims_dir, "%s/" CLAIMS_DIR_NAME, o->state_dir) < 0)
                p->claims_dir = NULL;
        if (asprintf(&p->ld_so_preload, "%s/ld.so.preload", o->state_dir) < 0)
                p->ld_so_preload = NULL;
        if (!p->driver_name || !p->node_name || !p->cdi_dir || !p->state_dir || !p->dev_root ||
            !p->driver_root || !p->checkpoint_dir || !p->claims_dir || !p->ld_so_preload ||
            (o->preload_library && !p->preload_library)) {
                preparer_free(p);
                return -ENOMEM;
        }

        if (o->boot_id) {
                if (strlen(o->boot_id) != 32) {
                        preparer_free(p);
                        return -EINVAL;
                }
                memcpy(p->boot_id, o->boot_id, 33);
        } else {
                sd_id128_t id;
                r = sd_id128_get_boot(&id);
                if (r < 0) {
                        preparer_free(p);
                        return r;
                }
                sd_id128_to_string(id, p->boot_id);
        }

        r = copy_gpus(gpus, &p->gpus);
        if (r >= 0)
                r = mkdir_parents(p->checkpoint_dir, 0700);
        if (r >= 0)
                r = mkdir_parents(p->claims_dir, 0700);
        /* The confinement point for the claims' shared regions (see claim_shared_region_create),
         * whatever mode an older version or the umask left. */
        if (r >= 0 && chmod(p->claims_dir, 0700) < 0)
                r = negative_errno();
        if (r >= 0)
                r = mkdir_parents(p->cdi_dir, 0755);
        if (r >= 0)
                r = p->cdi_fd = open_directory(p->cdi_dir);
        if (r >= 0)
                r = p->checkpoint_fd = open_directory(p->checkpoint_dir);
        if (r >= 0)
                r = p->claims_fd = open_directory(p->claims_dir);
        if (r < 0) {
                preparer_free(p);
                return r;
        }
        /* Not fatal: a full state file system must not stop the daemon; prepares retry it. */
        (void) preparer_write_ld_so_preload(p);
        preparer_discover_host(p);
        *ret = p;
        return 0;
}

Preparer *preparer_free(Preparer *p) {
        if (!p)
                return NULL;
        free(p->driver_name);
        free(p->node_name);
        free(p->cdi_dir);
        free(p->state_dir);
        free(p->preload_library);
        free(p->dev_root);
        free(p->driver_root);
        free(p->checkpoint_dir);
        free(p->claims_dir);
        free(p->ld_so_preload);
        safe_close(p->cdi_fd);
        safe_close(p->checkpoint_fd);
        safe_close(p->claims_fd);
        free(p->gpus.gpus);
        for (size_t i = 0; i < p->n_busy; i++)
                free(p->busy[i]);
        tdestroy(p->prepared, prepared_claim_free);
        pthread_mutex_destroy(&p->lock);
        pthread_mutex_destroy(&p->host_lock);
        pthread_cond_destroy(&p->idle);
        pthread_rwlock_destroy(&p->gpus_lock);
        free(p);
        return NULL;
}

int preparer_set_gpus(Preparer *p, const GpuList *gpus) {
        GpuList l;
        int r;

        r = copy_gpus(gpus, &l);
        if (r < 0)
                return r;
        pthread_rwlock_wrlock(&p->gpus_lock);
        free(p->gpus.gpus);
        p->gpus = l;
        pthread_rwlock_unlock(&p->gpus_lock);
        return 0;
}

size_t preparer_n_prepared(Preparer *p) {
        size_t n;

        pthread_mutex_lock(&p->lock);
        n = p->n_prepared;
        pthread_mutex_unlock(&p->lock);
        return n;
}

/* ---------------------------------------------------------------- per-UID serialisation */

static bool busy_find(Preparer *p, const char *uid, size_t *ret) {
        for (size_t i = 0; i < p->n_busy; i++)
                if (streq(p->busy[i], uid)) {
                        if (ret)
                                *ret = i;
                        return true;
                }
        return false;
}

static int uid_lock(Preparer *p, const char *uid) {
        char *copy = strdup(uid);

        if (!copy)
                return -ENOMEM;
        pthread_mutex_lock(&p->lock);
        while (busy_find(p, uid, NULL) || p->n_busy >= BUSY_MAX)
                pthread_cond_wait(&p->idle, &p->lock);
        p->busy[p->n_busy++] = copy;
        pthread_mutex_unlock(&p->lock);
        return 0;
}

static int uid_trylock(Preparer *p, const char *uid) {
        char *copy = strdup(uid);
        int r = 0;

        if (!copy)
                return -ENOMEM;
        pthread_mutex_lock(&p->lock);
        if (busy_find(p, uid, NULL) || p->n_busy >= BUSY_MAX)
                r = -EBUSY;
        else
                p->busy[p->n_busy++] = TAKE_PTR(copy);
        pthread_mutex_unlock(&p->lock);
        free(copy);
        return r;
}

static void uid_unlock(Preparer *p, const char *uid) {
        size_t i;

        pthread_mutex_lock(&p->lock);
        if (busy_find(p, uid, &i)) {
                free(p->busy[i]);
                p->busy[i] = p->busy[--p->n_busy];
        }
        pthread_cond_broadcast(&p->idle);
        pthread_mutex_unlock(&p->lock);
}

/* ---------------------------------------------------------------- the prepared claims */

static void prepared_claim_free(void *c) {
        prepared_claim_done(c);
        free(c);
}

static int prepared_claim_compare_uid(const void *a, const void *b) {
        return strcmp(((const PreparedClaim *) a)->uid, ((const PreparedClaim *) b)->uid);
}

static PreparedClaim *prepared_find_locked(Preparer *p, const char *uid) {
        PreparedClaim key = { .uid = (char *) uid };
        PreparedClaim **found = tfind(&key, &p->prepared, prepared_claim_compare_uid);

        return found ? *found : NULL;
}

/* A copy of what was just committed to disk, without the spec text; replaces an older one. */
static int prepared_add(Preparer *p, const PreparedClaim *committed) {
        PreparedClaim *c = malloc(sizeof(*c)), **slot;
        int r;

        if (!c)
                return -ENOMEM;
        r = prepared_claim_copy(committed, false, c);
        if (r < 0) {
                free(c);
                return r;
        }
        c->last_call_usec = now_usec();
        pthread_mutex_lock(&p->lock);
        slot = tsearch(c, &p->prepared, prepared_claim_compare_uid);
        if (slot && *slot != c) {
                prepared_claim_free(*slot);   /* the same UID again: the newer record wins */
                *slot = c;
        } else if (slot)
                p->n_prepared++;
        pthread_mutex_unlock(&p->lock);
        if (!slot) {
                prepared_claim_free(c);
                return -ENOMEM;
        }
        return 0;
}

/* Take the claim out of the tree; the caller frees it with prepared_claim_free(). */
static PreparedClaim *prepared_take(Preparer *p, const char *uid) {
        PreparedClaim *c;

        pthread_mutex_lock(&p->lock);
        c = prepared_find_locked(p, uid);
        if (c) {
                tdelete(c, &p->prepared, prepared_claim_compare_uid);
                p->n_prepared--;
        }
        pthread_mutex_unlock(&p->lock);
        return c;
}

/* A kubelet call for the claim came now: evidence gathered before it proves nothing. */
static void prepared_touch(Preparer *p, const char *uid) {
        PreparedClaim *c;

        pthread_mutex_lock(&p->lock);
        c = prepared_find_locked(p, uid);
        if (c)
                c->last_call_usec = now_usec();
        pthread_mutex_unlock(&p->lock);
}

/* A copy of the prepared claim's record (without the spec text): 0, -ENOENT, -ENOMEM. */
static int prepared_get(Preparer *p, const char *uid, PreparedClaim *ret) {
        PreparedClaim *c;
        int r = -ENOENT;

        pthread_mutex_lock(&p->lock);
        c = prepared_find_locked(p, uid);
        if (c)
                r = prepared_claim_copy(c, false, ret);
        pthread_mutex_unlock(&p->lock);
        return r;
}

/* ---------------------------------------------------------------- audit */

static void audit_device(int level, const char *message_id, const char *what, const PreparedClaim *c,
                         const PreparedClaimDevice *d) {
        char id[64];

        snprintf(id, sizeof(id), "MESSAGE_ID=%s", message_id);
        log_struct(level, id,
                   LOG_MESSAGE("%s claim %s/%s (%s): %s on %s, memory %" PRIu64 " MiB, cores %u%%, CDI %s", what,
                               c->namespace_, c->name, c->uid, d->device, d->gpu_uuid, d->memory_mib, d->cores,
                               d->cdi_device_id),
                   LOG_FIELD("CLAIM_UID=%s", c->uid), LOG_FIELD("CLAIM_NAMESPACE=%s", c->namespace_),
                   LOG_FIELD("CLAIM_NAME=%s", c->name), LOG_FIELD("DEVICE=%s", d->device),
                   LOG_FIELD("GPU_UUID=%s", d->gpu_uuid), LOG_FIELD("MEMORY_LIMIT_MIB=%" PRIu64, d->memory_mib),
                   LOG_FIELD("CORES_LIMIT=%u", d->cores), LOG_FIELD("SHARE_ID=%s", d->share_id ?: ""),
                   LOG_FIELD("CDI_DEVICE=%s", d->cdi_device_id), NULL);
}

static void audit_claim(int level, const char *message_id, const char *what, const PreparedClaim *c) {
        char id[64];

        if (c->n_devices > 0) {
                for (size_t i = 0; i < c->n_devices; i++)
                        audit_device(level, message_id, what, c, &c->devices[i]);
                return;
        }
        snprintf(id, sizeof(id), "MESSAGE_ID=%s", message_id);
        log_struct(level, id, LOG_MESSAGE("%s claim %s/%s (%s): no devices", what, c->namespace_, c->name, c->uid),
                   LOG_FIELD("CLAIM_UID=%s", c->uid), LOG_FIELD("CLAIM_NAMESPACE=%s", c->namespace_),
                   LOG_FIELD("CLAIM_NAME=%s", c->name), NULL);
}

static void audit_reject(const PrepareClaimRef *ref, const char *reason) {
        log_struct(LOG_WARNING, LOG_MESSAGE_ID(HAMI_MESSAGE_CLAIM_REJECTED),
                   LOG_MESSAGE("Rejected claim %s/%s (%s): %s", ref->namespace_ ?: "", ref->name ?: "", ref->uid,
                               reason),
                   LOG_FIELD("CLAIM_UID=%s", ref->uid), LOG_FIELD("CLAIM_NAMESPACE=%s", ref->namespace_ ?: ""),
                   LOG_FIELD("CLAIM_NAME=%s", ref->name ?: ""), NULL);
}

static void audit_cleanup(const char *uid, const char *ns, const char *name, const char *reason) {
        log_struct(LOG_NOTICE, LOG_MESSAGE_ID(HAMI_MESSAGE_CLAIM_CLEANED_UP),
                   LOG_MESSAGE("Cleaned up claim %s%s%s%s%s: %s", ns ?: "", ns ? "/" : "", name ?: "", ns ? " " : "",
                               uid, reason),
                   LOG_FIELD("CLAIM_UID=%s", uid), LOG_FIELD("CLAIM_NAMESPACE=%s", ns ?: ""),
                   LOG_FIELD("CLAIM_NAME=%s", name ?: ""), LOG_FIELD("CLEANUP_REASON=%s", reason), NULL);
}

/* ---------------------------------------------------------------- claim directory */

static int claim_dir_path(Preparer *p, const char *uid, char *buf, size_t size) {
        return snprintf(buf, size, "%s/%s", p->claims_dir, uid) >= (int) size ? -ENAMETOOLONG : 0;
}

/* HAMi-core's shared region: a valid header, the GPUs at their CUDA indices with their limits. */
static int claim_shared_region_create(Preparer *p, const char *name, const PreparedClaim *c) {
        uint64_t limits[SHARED_REGION_DEVICES_MAX] = {};
        uint32_t sm[SHARED_REGION_DEVICES_MAX] = {};
        uint32_t n = 1;

        for (size_t i = 0; i < c->n_devices; i++) {
                const PreparedClaimDevice *d = &c->devices[i];
                if (d->cuda_index >= SHARED_REGION_DEVICES_MAX)
                        continue;
                n = MAX(n, d->cuda_index + 1);
                limits[d->cuda_index] = d->memory_mib << 20;
                sm[d->cuda_index] = d->cores;
        }
        /*
         * Every process of the claim's containers, whatever its uid, must lock and write the
         * region, or the limit silently becomes per-process. The file is reachable only
         * through the claim's own bind mount: on the host, <state>/claims is 0700.
         */
        return shared_region_create_at(p->claims_fd, name, n, SHARED_REGION_SLOTS_DEFAULT, limits, sm, 0666);
}

/* Why rm_tree_at() left something, in words for the journal and the kubelet. */
static const char *left_reason(int r) {
        switch (r) {
        case -EACCES:
                return "owned by another user and not writable by us";
        case -EPERM:
                return "immutable, append-only or in a sticky directory";
        case -EBUSY:
                return "a mount point";
        case -ELOOP:
                return "nested too deep";
        default:
                return strerror(-r);
        }
}

/*
 * Remove <claims>/<uid>/ and whatever the claim's containers made in its vgpu/ (bind-mounted
 * read-write: container root can make anything there, of any mode, depth or owner), without
 * any capability (see rm_tree_at). 0 only when nothing is left; otherwise the reason in f,
 * and in the journal what is left.
 */
static int claim_dir_remove(Preparer *p, const char *uid, ErrBuf *f) {
        char left[PATH_MAX];
        int r;

        r = rm_tree_at(p->claims_fd, uid, left, sizeof(left));
        if (r >= 0)
                return 0;
        log_struct(LOG_WARNING, LOG_MESSAGE("Cannot remove the directory of claim %s: %s/%s is left (%s)", uid,
                                            p->claims_dir, left, left_reason(r)),
                   LOG_FIELD("CLAIM_UID=%s", uid), LOG_FIELD("ERRNO=%d", -r), NULL);
        return errbuf_fail(f, r, "cannot remove %s/%s: %s", p->claims_dir, left, left_reason(r));
}

/* Create <claims>/<uid>/vgpu/vgpu.cache from scratch. */
static int claim_dir_create(Preparer *p, const PreparedClaim *c, ErrBuf *f) {
        char path[CLAIM_UID_MAX + 64];
        int r;

        if (mkdirat(p->claims_fd, c->uid, 0755) < 0) {
                if (errno != EEXIST)
                        return negative_errno();
                /* Leftovers of an uncommitted attempt or an old boot: start afresh. */
                r = claim_dir_remove(p, c->uid, f);
                if (r < 0)
                        return r;
                if (mkdirat(p->claims_fd, c->uid, 0755) < 0)
                        return negative_errno();
        }
        snprintf(path, sizeof(path), "%s/vgpu", c->uid);
        /* Bind-mounted into the containers: searchable by any uid there (explicitly: UMask=0077). */
        if (mkdirat(p->claims_fd, path, 0755) < 0 || fchmodat(p->claims_fd, path, 0755, 0) < 0)
                return negative_errno();
        /* The claim directory is new and <claims> is 0700: nobody sees the file half-made. */
        snprintf(path, sizeof(path), "%s/vgpu/" CDI_SHARED_CACHE_NAME, c->uid);
        return claim_shared_region_create(p, path, c);
}

static bool claim_dir_complete(Preparer *p, const char *uid) {
        char path[CLAIM_UID_MAX + 64];

        snprintf(path, sizeof(path), "%s/vgpu/" CDI_SHARED_CACHE_NAME, uid);
        return faccessat(p->claims_fd, path, F_OK, AT_SYMLINK_NOFOLLOW) >= 0;
}

/* The claim's directory, then its CDI spec: 0 only when both are gone (the reason in f). */
static int claim_remove_files(Preparer *p, const char *uid, ErrBuf *f) {
        int r;

        r = claim_dir_remove(p, uid, f);
        if (r < 0)
                return r;
        r = cdi_spec_remove_at(p->cdi_fd, p->driver_name, uid);
        if (r < 0 && r != -ENOENT) {
                log_warning_errno(r, "Failed to remove the CDI spec of claim %s: %m", uid);
                return errbuf_fail(f, r, "cannot remove the CDI spec of claim %s: %s", uid, strerror(-r));
        }
        return 0;
}

/* Make a committed claim whole again: missing CDI spec or claim directory (the reason in f). */
static int claim_complete(Preparer *p, const PreparedClaim *c, bool new_boot, bool *ret_repaired, ErrBuf *f) {
        bool repaired = false;
        int r;

        if (new_boot || !claim_dir_complete(p, c->uid)) {
                r = claim_dir_create(p, c, f);
                if (r < 0)
                        return r;
                repaired = true;
        }
        /* After a reboot the spec is rewritten whatever is there: it was not fsync'd. */
        r = new_boot ? 0 : cdi_spec_exists_at(p->cdi_fd, p->driver_name, c->uid);
        if (r < 0)
                return r;
        if (r == 0) {
                /* The in-memory record has no spec text: the checkpoint file has. */
                _cleanup_(prepared_claim_done) PreparedClaim full = {};
                if (!c->cdi_spec) {
                        r = checkpoint_load_at(p->checkpoint_fd, c->uid, &full);
                        if (r < 0)
                                return r;
                }
                r = cdi_spec_write_at(p->cdi_fd, p->driver_name, c->uid, c->cdi_spec ?: full.cdi_spec);
                if (r < 0)
                        return r;
                repaired = true;
        }
        if (ret_repaired)
                *ret_repaired = repaired;
        return 0;
}

/* ---------------------------------------------------------------- prepare */

static int prepared_claim_from_plan(Preparer *p, const ClaimAllocation *a, const ClaimLimits *l, const char *spec,
                                  PreparedClaim *ret) {
        _cleanup_(prepared_claim_done) PreparedClaim c = {};

        c.uid = strdup(a->uid);
        c.namespace_ = strdup(a->namespace_);
        c.name = strdup(a->name);
        c.cdi_spec = strdup(spec);
        memcpy(c.boot_id, p->boot_id, 33);
        c.devices = calloc(MAX(a->n_results, 1u), sizeof(PreparedClaimDevice));
        if (!c.uid || !c.namespace_ || !c.name || !c.cdi_spec || !c.devices ||
            strdup_or_null(a->pod, &c.pod) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < a->n_results; i++) {
                const ClaimResult *res = &a->results[i];
                const GpuLimit *gl = &l->gpus[l->results[i].gpu];
                PreparedClaimDevice *d = &c.devices[i];
                char name[CDI_NAME_MAX];
                int r;

                c.n_devices++;
                r = cdi_device_name(a->uid, res->device, res->share_id, name, sizeof(name));
                if (r < 0)
                        return r;
                d->request = strndup(res->request, claim_request_main_len(res->request));
                d->pool = strdup(p->node_name);
                d->device = strdup(res->device);
                d->cdi_device_id = cdi_device_id(p->driver_name, name);
                d->share_id = res->share_id ? strdup(res->share_id) : NULL;
                d->gpu_uuid = strdup(gl->gpu->uuid);
                d->memory_mib = gl->memory_policy == LIMIT_POLICY_HARD ? gl->memory_mib : 0;
                d->cores = gl->sm_policy == LIMIT_POLICY_HARD ? gl->cores : 0;
                d->cuda_index = l->results[i].cuda_index;
                if (!d->request || !d->pool || !d->device || !d->cdi_device_id || !d->gpu_uuid ||
                    (res->share_id && !d->share_id))
                        return -ENOMEM;
        }
        *ret = c;
        c = (PreparedClaim) {};
        return 0;
}

/* Decode, check and plan: everything that can reject, before anything touches the disk. */
static int prepare_plan_locked(Preparer *p, const PrepareClaimRef *ref, const char *json, size_t len,
                               PreparedClaim *ret, ErrBuf *f) {
        _cleanup_(claim_allocation_done) ClaimAllocation a = {};
        _cleanup_free_ char *spec = NULL;
        HostDeviceNode nodes[CLAIM_RESULTS_MAX];
        ClaimLimits *l = NULL;
        char reason[PREPARE_ERROR_MAX] = "";
        int r;

        r = claim_allocation_decode(json, len, p->driver_name, p->node_name, &a, reason, sizeof(reason));
        if (r < 0)
                return errbuf_fail(f, r, "%s", reason);
        if (!streq(a.uid, ref->uid))
                return errbuf_fail(f, -ESTALE, "UID mismatch: claim %s/%s has UID %s, the kubelet asked for %s "
                                   "(deleted and re-created?)", a.namespace_, a.name, a.uid, ref->uid);

        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        r = claim_limits_compute(&a, &p->gpus, l, reason, sizeof(reason));
        if (r >= 0 && a.n_results > 0) {
                char why[sizeof(p->host_error_text)] = "";
                int e = preparer_host_check(p, why, sizeof(why));
                if (e < 0)
                        r = errbuf_fail(f, e, "%s", why);
        } else if (r < 0)
                errbuf_fail(f, r, "%s", reason);
        if (r < 0) {
                free(l);
                return r;
        }

        for (size_t g = 0; g < l->n_gpus; g++) {
                r = host_gpu_node(p->dev_root, l->gpus[g].gpu->minor, &nodes[g]);
                if (r < 0) {
                        int e = errbuf_fail(f, r, "device node /dev/nvidia%u of %s is missing or not a character device",
                                            l->gpus[g].gpu->minor, l->gpus[g].gpu->name);
                        free(l);
                        return e;
                }
        }
        if (p->preload_library && access(p->preload_library, R_OK) < 0) {
                free(l);
                return errbuf_fail(f, -ENOENT, "the preload library %s is missing", p->preload_library);
        }
        if (a.n_results > 0 && (r = preparer_write_ld_so_preload(p)) < 0) {
                free(l);
                return errbuf_fail(f, r, "cannot write %s: %s", p->ld_so_preload, strerror(-r));
        }

        if (a.n_results > 0) {
                char dir[PATH_MAX];
                CdiClaimSpec in = {
                        .driver_name = p->driver_name,
                        .claim = &a,
                        .limits = l,
                        .host = &p->host,
                        .gpu_nodes = nodes,
                        .claim_dir = dir,
                        .preload_library = p->preload_library,
                        .ld_so_preload = p->ld_so_preload,
                        .driver_from_runtime = p->driver_from_runtime,
                };
                claim_dir_path(p, a.uid, dir, sizeof(dir));
                r = cdi_spec_build(&in, &spec);
                if (r < 0) {
                        free(l);
                        return errbuf_fail(f, r, "cannot build the CDI spec: %s", strerror(-r));
                }
        }
        r = prepared_claim_from_plan(p, &a, l, spec ?: "", ret);
        free(l);
        return r;
}

/* The limits point into p->gpus: hold the read lock while planning. */
static int prepare_plan(Preparer *p, const PrepareClaimRef *ref, const char *json, size_t len, PreparedClaim *ret,
                        ErrBuf *f) {
        int r;

        pthread_rwlock_rdlock(&p->gpus_lock);
        r = prepare_plan_locked(p, ref, json, len, ret, f);
        pthread_rwlock_unlock(&p->gpus_lock);
        return r;
}

static int prepare_from_record(Preparer *p, const PrepareClaimRef *ref, PreparedClaim *c, ErrBuf *f) {
        char why[PREPARE_ERROR_MAX] = "";
        bool repaired = false;
        int r;

        if (c->n_devices == 0)
                return 0;
        r = claim_complete(p, c, false, &repaired, &(ErrBuf) { why, sizeof(why) });
        if (r < 0)
                return errbuf_fail(f, r, "cannot restore the files of prepared claim %s: %s", ref->uid,
                                   why[0] ? why : strerror(-r));
        if (repaired)
                audit_claim(LOG_NOTICE, HAMI_MESSAGE_CLAIM_RECOVERED, "Restored", c);
        return 0;
}

static int prepare_locked(Preparer *p, const PrepareClaimRef *ref, const char *json, size_t len, PreparedClaim *ret,
                          ErrBuf *f) {
        _cleanup_(prepared_claim_done) PreparedClaim c = {};
        char why[PREPARE_ERROR_MAX] = "";
        int r;

        r = prepared_get(p, ref->uid, &c);
        if (r >= 0) {
                prepared_touch(p, ref->uid);
                r = prepare_from_record(p, ref, &c, f);
                if (r < 0)
                        return r;
                *ret = c;
                c = (PreparedClaim) {};
                return 0;
        }
        if (r != -ENOENT)
                return r;
        if (!json)
                return errbuf_fail(f, -EAGAIN, "claim %s was unprepared meanwhile; retry", ref->uid);

        r = prepare_plan(p, ref, json, len, &c, f);
        if (r < 0)
                return r;
        if (c.n_devices == 0) {
                /* Nothing of ours in the claim: prepared, no devices, nothing to keep. */
                *ret = c;
                c = (PreparedClaim) {};
                return 0;
        }

        /* The transaction: files first, the checkpoint commits. */
        r = claim_dir_create(p, &c, &(ErrBuf) { why, sizeof(why) });
        if (r >= 0)
                r = cdi_spec_write_at(p->cdi_fd, p->driver_name, c.uid, c.cdi_spec);
        if (r >= 0)
                r = checkpoint_save_at(p->checkpoint_fd, &c);
        if (r >= 0) {
                r = prepared_add(p, &c);
                if (r < 0)
                        (void) checkpoint_remove_at(p->checkpoint_fd, c.uid);
        }
        if (r < 0) {
                (void) claim_remove_files(p, c.uid, &(ErrBuf) {}); /* what is left is in the journal */
                return errbuf_fail(f, r, "cannot write the files of claim %s: %s", c.uid, why[0] ? why : strerror(-r));
        }
        audit_claim(LOG_INFO, HAMI_MESSAGE_CLAIM_PREPARED, "Prepared", &c);
        *ret = c;
        c = (PreparedClaim) {};
        return 0;
}

int preparer_prepare(Preparer *p, const PrepareClaimRef *ref, const char *json, size_t len, PreparedClaim *ret,
                     char *error, size_t error_size) {
        char buf[PREPARE_ERROR_MAX] = "";
        ErrBuf f = { buf, sizeof(buf) };
        int r;

        if (!ref || !claim_uid_is_valid(ref->uid)) {
                snprintf(error, error_size, "invalid claim UID");
                return -EINVAL;
        }
        r = uid_lock(p, ref->uid);
        if (r < 0)
                return r;
        r = prepare_locked(p, ref, json, len, ret, &f);
        uid_unlock(p, ref->uid);
        if (r < 0) {
                if (buf[0] == '\0')
                        snprintf(buf, sizeof(buf), "%s", strerror(-r));
                audit_reject(ref, buf);
                if (error && error_size > 0)
                        snprintf(error, error_size, "%s", buf);
        }
        return r;
}

bool preparer_is_prepared(Preparer *p, const char *uid) {
        bool found;

        if (!claim_uid_is_valid(uid))
                return false;
        pthread_mutex_lock(&p->lock);
        found = prepared_find_locked(p, uid);
        pthread_mutex_unlock(&p->lock);
        return found;
}

/* ---------------------------------------------------------------- unprepare */

/*
 * Succeeds only when nothing of the claim is left. The files go first and the checkpoint
 * commits: what cannot be removed (a container may leave anything in vgpu/) fails the call
 * and keeps the claim recorded, so the kubelet retries and no start forgets it. A crash in
 * between leaves a recorded claim whose files the next start restores.
 */
static int unprepare_locked(Preparer *p, const char *uid, const char *cleanup_reason, ErrBuf *f) {
        PreparedClaim *c;
        int r;

        if (!preparer_is_prepared(p, uid)) {
                /* Nothing recorded, but an orphan directory recovery could not remove may be
                 * left: the kubelet's unprepare is where that is reported. */
                r = claim_remove_files(p, uid, f);
                if (r < 0)
                        return r;
                log_debug("Unprepare of unknown claim %s: nothing to do", uid);
                return 0;
        }

        r = claim_remove_files(p, uid, f);
        if (r < 0)
                return r;
        r = checkpoint_remove_at(p->checkpoint_fd, uid);
        if (r < 0 && r != -ENOENT)
                return errbuf_fail(f, r, "cannot remove the checkpoint of claim %s: %s", uid, strerror(-r));
        c = prepared_take(p, uid);

        if (cleanup_reason)
                audit_cleanup(uid, c->namespace_, c->name, cleanup_reason);
        else
                audit_claim(LOG_INFO, HAMI_MESSAGE_CLAIM_UNPREPARED, "Unprepared", c);
        prepared_claim_free(c);
        return 0;
}

static int unprepare_one(Preparer *p, const char *uid, const char *cleanup_reason, bool wait, char *error,
                         size_t size) {
        char buf[PREPARE_ERROR_MAX] = "";
        ErrBuf f = { buf, sizeof(buf) };
        int r;

        if (!claim_uid_is_valid(uid)) {
                if (error && size > 0)
                        snprintf(error, size, "invalid claim UID");
                return -EINVAL;
        }
        r = wait ? uid_lock(p, uid) : uid_trylock(p, uid);
        if (r < 0)
                return r;
        r = unprepare_locked(p, uid, cleanup_reason, &f);
        uid_unlock(p, uid);
        if (r < 0 && error && size > 0)
                snprintf(error, size, "%s", buf);
        return r;
}

int preparer_unprepare(Preparer *p, const char *uid, char *error, size_t error_size) {
        return unprepare_one(p, uid, NULL, true, error, error_size);
}

int preparer_try_unprepare(Preparer *p, const char *uid, char *error, size_t error_size) {
        return unprepare_one(p, uid, NULL, false, error, error_size);
}

int preparer_forget(Preparer *p, const char *uid, const char *reason) {
        return unprepare_one(p, uid, reason ?: "the claim is gone from the API server", true, NULL, 0);
}

/* ---------------------------------------------------------------- recovery */

void preparer_claims_free(PrepareClaimRef *claims, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free((char *) claims[i].namespace_);
                free((char *) claims[i].name);
                free((char *) claims[i].uid);
        }
        free(claims);
}

/* Remove "<dir>/.<anything>.tmp": writers that died between create and rename. */
static bool is_temp_name(const char *name) {
        size_t n = strlen(name);
        return name[0] == '.' && n > 4 && streq(name + n - 4, ".tmp");
}

static int recover_checkpoint(Preparer *p, const char *uid, PrepareClaimRef *claims, size_t *n_claims) {
        _cleanup_(prepared_claim_done) PreparedClaim c = {};
        bool new_boot, repaired = false;
        int r;

        r = checkpoint_load_at(p->checkpoint_fd, uid, &c);
        if (r < 0) {
                log_error_errno(r, "The checkpoint of claim %s is damaged, removing the claim: %m", uid);
                (void) checkpoint_remove_at(p->checkpoint_fd, uid);
                /* What cannot be removed is an orphan now: the journal says what, the next
                 * start and the kubelet's unprepare try again. */
                if (claim_remove_files(p, uid, &(ErrBuf) {}) >= 0)
                        audit_cleanup(uid, NULL, NULL, "damaged checkpoint");
                return 0;
        }
        new_boot = !streq(c.boot_id, p->boot_id);
        r = claim_complete(p, &c, new_boot, &repaired, &(ErrBuf) {});
        if (r < 0) {
                /*
                 * One claim's files (its directory is its containers' to write) never stop the
                 * daemon: the claim stays recorded, its prepare retries the repair and fails
                 * with the reason, its unprepare removes it.
                 */
                log_error_errno(r, "Failed to restore the files of claim %s, it stays recorded for its prepare or "
                                "unprepare to retry: %m", uid);
                new_boot = repaired = false;
        } else if (new_boot) {
                /* A fresh shared region belongs to this boot: record it. */
                memcpy(c.boot_id, p->boot_id, 33);
                r = checkpoint_save_at(p->checkpoint_fd, &c);
                if (r < 0)
                        log_warning_errno(r, "Failed to record the new boot in the checkpoint of claim %s (its region "
                                          "is made afresh again at the next start): %m", uid);
        }
        if (repaired || new_boot)
                audit_claim(LOG_NOTICE, HAMI_MESSAGE_CLAIM_RECOVERED, new_boot ? "Recovered after reboot" : "Recovered",
                            &c);
        r = prepared_add(p, &c);
        if (r < 0)
                return log_error_errno(r, "Failed to remember claim %s: %m", uid);
        if (claims) {
                PrepareClaimRef *ref = &claims[(*n_claims)++];
                ref->uid = TAKE_PTR(c.uid);
                ref->namespace_ = TAKE_PTR(c.namespace_);
                ref->name = TAKE_PTR(c.name);
        }
        return 0;
}

static size_t count_entries(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *de;
        size_t n = 0;

        if (!d)
                return 0;
        while ((de = readdir(d)))
                n++;
        closedir(d);
        return n;
}

static int recover_checkpoints(Preparer *p, PrepareClaimRef **ret_claims, size_t *ret_n) {
        PrepareClaimRef *claims = NULL;
        size_t n_claims = 0, cap;
        struct dirent *de;
        DIR *d;
        int r = 0;

        cap = count_entries(p->checkpoint_dir) + 1;
        if (ret_claims) {
                claims = calloc(cap, sizeof(PrepareClaimRef));
                if (!claims)
                        return -ENOMEM;
        }
        d = opendir(p->checkpoint_dir);
        if (!d) {
                free(claims);
                return negative_errno();
        }
        while ((de = readdir(d))) {
                char uid[CLAIM_UID_MAX + 1];
                size_t n = strlen(de->d_name), ls = strlen(CHECKPOINT_SUFFIX);

                if (de->d_name[0] == '.') {
                        if (is_temp_name(de->d_name))
                                (void) unlinkat(dirfd(d), de->d_name, 0);
                        continue;
                }
                if (n <= ls || n - ls > CLAIM_UID_MAX || !streq(de->d_name + n - ls, CHECKPOINT_SUFFIX)) {
                        log_warning("Ignoring unexpected file %s/%s", p->checkpoint_dir, de->d_name);
                        continue;
                }
                memcpy(uid, de->d_name, n - ls);
                uid[n - ls] = '\0';
                if (!claim_uid_is_valid(uid))
                        continue;
                if (claims && n_claims >= cap)
                        break;  /* the directory grew while we read it: the rest waits for the next start */
                r = recover_checkpoint(p, uid, claims, &n_claims);
                if (r < 0)
                        break;
        }
        closedir(d);
        if (r < 0) {
                preparer_claims_free(claims, n_claims);
                return r;
        }
        if (ret_claims) {
                *ret_claims = claims;
                *ret_n = n_claims;
        }
        return 0;
}

/* CDI specs and claim directories that no checkpoint owns. */
static void recover_orphans(Preparer *p) {
        struct dirent *de;
        DIR *d;

        d = opendir(p->cdi_dir);
        if (d) {
                char prefix[300];
                snprintf(prefix, sizeof(prefix), ".k8s.%s-" CDI_CLASS "_", p->driver_name);
                while ((de = readdir(d))) {
                        char uid[CLAIM_UID_MAX + 1];
                        if (is_temp_name(de->d_name) && strncmp(de->d_name, prefix, strlen(prefix)) == 0)
                                (void) unlinkat(dirfd(d), de->d_name, 0);
                        else if (cdi_spec_file_parse(p->driver_name, de->d_name, uid, sizeof(uid)) &&
                                 !preparer_is_prepared(p, uid)) {
                                (void) unlinkat(dirfd(d), de->d_name, 0);
                                audit_cleanup(uid, NULL, NULL, "CDI spec without checkpoint");
                        }
                }
                closedir(d);
        }

        d = opendir(p->claims_dir);
        if (d) {
                while ((de = readdir(d))) {
                        if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                                continue;
                        if (claim_uid_is_valid(de->d_name) && preparer_is_prepared(p, de->d_name))
                                continue;
                        /* Not removable: left for the next start (the journal says what is left). */
                        if (claim_dir_remove(p, de->d_name, &(ErrBuf) {}) >= 0 && claim_uid_is_valid(de->d_name))
                                audit_cleanup(de->d_name, NULL, NULL, "claim directory without checkpoint");
                }
                closedir(d);
        }
}

typedef struct ForeachContext {
        void (*f)(void *userdata, const PreparedClaim *c);
        void *userdata;
        int n;
} ForeachContext;

static void foreach_visit(const void *node, VISIT which, void *closure) {
        ForeachContext *ctx = closure;

        if (which != postorder && which != leaf)
                return;
        ctx->f(ctx->userdata, *(PreparedClaim *const *) node);
        ctx->n++;
}

int preparer_foreach(Preparer *p, void (*f)(void *userdata, const PreparedClaim *c), void *userdata) {
        ForeachContext ctx = { f, userdata, 0 };

        pthread_mutex_lock(&p->lock);
        twalk_r(p->prepared, foreach_visit, &ctx);
        pthread_mutex_unlock(&p->lock);
        return ctx.n;
}

typedef struct UidList {
        char (*uids)[CLAIM_UID_MAX + 1];
        size_t n, size;
} UidList;

static void uid_list_collect(void *userdata, const PreparedClaim *c) {
        UidList *l = userdata;

        if (l->n < l->size && c->n_devices > 0)
                snprintf(l->uids[l->n++], sizeof(l->uids[0]), "%s", c->uid);
}

/* The UIDs of the prepared claims that have devices (their files), at this moment. */
static int uid_list_make(Preparer *p, UidList *ret) {
        UidList l = {};

        pthread_mutex_lock(&p->lock);
        l.size = p->n_prepared;
        pthread_mutex_unlock(&p->lock);
        if (l.size > 0) {
                l.uids = calloc(l.size, sizeof(l.uids[0]));
                if (!l.uids)
                        return -ENOMEM;
                (void) preparer_foreach(p, uid_list_collect, &l);
        }
        *ret = l;
        return 0;
}

int preparer_trim_regions(Preparer *p) {
        UidList l = {};
        int n_cut = 0;

        if (uid_list_make(p, &l) < 0)
                return -ENOMEM;
        if (l.n == 0) {
                free(l.uids);
                return 0;
        }
        /* At most PREPARER_TRIM_PER_TICK claims a tick, round robin: the cost of a tick
         * stays bounded, and with more claims each is visited less often. Outside the
         * lock: a claim unprepared meanwhile is simply gone (-ENOENT). */
        for (size_t k = 0; k < MIN(l.n, (size_t) PREPARER_TRIM_PER_TICK); k++) {
                size_t i = (p->trim_cursor + k) % l.n;
                char path[CLAIM_UID_MAX + 64];
                uint64_t excess = 0;
                int r;

                snprintf(path, sizeof(path), "%s/vgpu/" CDI_SHARED_CACHE_NAME, l.uids[i]);
                r = shared_region_trim_at(p->claims_fd, path, &excess);
                if (r <= 0)
                        continue;
                n_cut++;
                /* A writer at work is cut every interval: one warning per PREPARER_TRIM_LOG_USEC. */
                if (p->trim_logged_usec != 0 && now_usec() - p->trim_logged_usec < PREPARER_TRIM_LOG_USEC) {
                        p->trim_unlogged++;
                        continue;
                }
                log_struct(LOG_WARNING,
                           LOG_MESSAGE("Claim %s: its containers wrote %" PRIu64 " bytes past the end of its %s; cut "
                                       "back to %zu bytes (and %u more cuts since the last warning)",
                                       l.uids[i], excess, CDI_SHARED_CACHE_NAME,
                                       shared_region_file_size(SHARED_REGION_SLOTS_MAX), p->trim_unlogged),
                           LOG_FIELD("CLAIM_UID=%s", l.uids[i]), NULL);
                p->trim_logged_usec = now_usec();
                p->trim_unlogged = 0;
        }
        if (l.n > 0)
                p->trim_cursor = (p->trim_cursor + MIN(l.n, (size_t) PREPARER_TRIM_PER_TICK)) % l.n;
        free(l.uids);
        return n_cut;
}

int preparer_recover(Preparer *p, PrepareClaimRef **ret_claims, size_t *ret_n) {
        int r;

        r = recover_checkpoints(p, ret_claims, ret_n);
        if (r < 0)
                return r;
        recover_orphans(p);
        log_info("Recovered %zu prepared claims", p->n_prepared);
        return 0;
}

/* ---------------------------------------------------------------- reconciliation */

int preparer_try_forget(Preparer *p, const char *uid, const char *reason, uint64_t evidence_usec, char *error,
                        size_t error_size) {
        PreparedClaim *c;
        int r;

        if (!claim_uid_is_valid(uid))
                return -EINVAL;
        r = uid_trylock(p, uid);
        if (r < 0)
                return r;
        pthread_mutex_lock(&p->lock);
        c = prepared_find_locked(p, uid);
        r = !c ? -ENOENT : c->last_call_usec >= evidence_usec ? -ESTALE : 0;
        pthread_mutex_unlock(&p->lock);
        if (r >= 0) {
                char buf[PREPARE_ERROR_MAX] = "";

                r = unprepare_locked(p, uid, reason ?: "the claim is gone from the API server",
                                     &(ErrBuf) { buf, sizeof(buf) });
                if (r < 0 && error && error_size > 0)
                        snprintf(error, error_size, "%s", buf);
        }
        uid_unlock(p, uid);
        return r;
}

const char *preparer_driver_root(Preparer *p) {
        return p->driver_root;
}

/* Rewrite one claim's spec (and its checkpoint, which holds the text) for host: 1 when it
 * was rewritten, 0 when it was right already. Under the claim's UID lock. */
static int refresh_claim_locked(Preparer *p, const char *uid, const CdiHostEdits *host, ErrBuf *f) {
        _cleanup_(prepared_claim_done) PreparedClaim c = {};
        _cleanup_free_ char *spec = NULL;
        int r;

        if (!preparer_is_prepared(p, uid))
                return 0;   /* unprepared meanwhile */
        r = checkpoint_load_at(p->checkpoint_fd, uid, &c);
        if (r < 0)
                return errbuf_fail(f, r, "cannot read its checkpoint: %s", strerror(-r));
        if (c.n_devices == 0 || isempty(c.cdi_spec))
                return 0;
        r = cdi_spec_update_host(c.cdi_spec, host, &spec);
        if (r < 0)
                return errbuf_fail(f, r, "its spec cannot be read: %s", strerror(-r));
        if (r == 0)
                return 0;
        /* The spec first, then the checkpoint: a crash in between leaves the new spec and
         * the old text, which the next start's pass compares and rewrites again. */
        r = cdi_spec_write_at(p->cdi_fd, p->driver_name, uid, spec);
        if (r < 0)
                return errbuf_fail(f, r, "cannot write the new spec: %s", strerror(-r));
        free(c.cdi_spec);
        c.cdi_spec = TAKE_PTR(spec);
        r = checkpoint_save_at(p->checkpoint_fd, &c);
        if (r < 0)
                return errbuf_fail(f, r, "the new spec is written but its checkpoint is not: %s", strerror(-r));
        log_struct(LOG_NOTICE, LOG_MESSAGE_ID(HAMI_MESSAGE_CLAIM_SPEC_UPDATED),
                   LOG_MESSAGE("Rewrote the CDI spec of claim %s/%s (%s) for the host driver as it is now",
                               c.namespace_, c.name, c.uid),
                   LOG_FIELD("CLAIM_UID=%s", c.uid), LOG_FIELD("CLAIM_NAMESPACE=%s", c.namespace_),
                   LOG_FIELD("CLAIM_NAME=%s", c.name), NULL);
        return 1;
}

static int refresh_claims(Preparer *p, const HostDriver *driver, PreparerRefresh *ret) {
        _cleanup_(cdi_host_edits_freep) CdiHostEdits *host = NULL;
        UidList l = {};
        int r;

        r = cdi_host_edits_new(driver, &host);
        if (r < 0)
                return r;
        r = uid_list_make(p, &l);
        if (r < 0)
                return r;
        for (size_t i = 0; i < l.n; i++) {
                char why[PREPARE_ERROR_MAX] = "";

                /* Never waits: a claim busy with the kubelet is counted, and done next time. */
                r = uid_trylock(p, l.uids[i]);
                if (r == -EBUSY) {
                        ret->n_busy++;
                        continue;
                }
                if (r < 0) {
                        free(l.uids);
                        return r;
                }
                r = refresh_claim_locked(p, l.uids[i], host, &(ErrBuf) { why, sizeof(why) });
                uid_unlock(p, l.uids[i]);
                if (r > 0)
                        ret->n_rewritten++;
                else if (r < 0) {
                        ret->n_failed++;
                        log_struct(LOG_WARNING,
                                   LOG_MESSAGE("The CDI spec of claim %s keeps naming the old driver files: %s",
                                               l.uids[i], why[0] ? why : strerror(-r)),
                                   LOG_FIELD("CLAIM_UID=%s", l.uids[i]), NULL);
                }
        }
        free(l.uids);
        return 0;
}

/*
 * <state>/host-driver.json: the driver files and control nodes every prepared claim's spec
 * was last brought up to date with (as the specs carry them). A start with the same host
 * driver then skips comparing every spec (a quarter of a second and more with 5,000 claims).
 */
#define HOST_RECORD_NAME "host-driver.json"
#define HOST_RECORD_MAX (256u * 1024u)

static int host_record_text(const HostDriver *h, char **ret) {
        _cleanup_free_ char *nodes = NULL, *mounts = NULL;
        int r;

        r = cdi_host_edits_build(h, &nodes, &mounts);
        if (r < 0)
                return r;
        return asprintf(ret, "{\"deviceNodes\":%s,\"mounts\":%s}\n", nodes, mounts) < 0 ? -ENOMEM : 0;
}

static bool host_record_matches(Preparer *p, const char *text) {
        _cleanup_free_ char *path = NULL, *old = NULL;

        if (asprintf(&path, "%s/" HOST_RECORD_NAME, p->state_dir) < 0)
                return false;
        return read_file_bounded_at(AT_FDCWD, path, HOST_RECORD_MAX, READ_FILE_NOFOLLOW, &old, NULL) >= 0 &&
               streq(old, text);
}

int preparer_refresh_host(Preparer *p, bool force, PreparerRefresh *ret) {
        _cleanup_free_ HostDriver *fresh = NULL;
        _cleanup_free_ char *record = NULL;
        char why[sizeof(p->host_error_text)] = "";
        bool changed;
        int r;

        *ret = (PreparerRefresh) { .on_change = ret->on_change };
        if (preparer_host_check(p, why, sizeof(why)) < 0)
                return 0;   /* no control nodes yet: nothing was ever prepared with them */
        fresh = calloc(1, sizeof(*fresh));
        ret->old = calloc(1, sizeof(*ret->old));
        if (!fresh || !ret->old)
                return -ENOMEM;
        r = host_driver_discover(p->dev_root, p->driver_root, p->driver_from_runtime, fresh, why, sizeof(why));
        if (r < 0) {
                /* The control node is gone (a driver being reinstalled): keep what the specs
                 * name until it is back, rather than write specs without it. */
                log_warning("Keeping the driver files the CDI specs name: %s", why);
                return r;
        }
        /* p->host is written only here and, while host_error < 0, by preparer_host_check(): ours to read. */
        if (fresh->n_files == 0 && !p->driver_from_runtime && p->host.n_files > 0) {
                /* Every library gone at once: an installer between removing the old driver
                 * and writing the new one. Its next change brings us back. */
                log_warning("No driver files found under %s (a driver being reinstalled?): keeping the ones the CDI "
                            "specs name until they are back", p->driver_root);
                return -ENOENT;
        }
        /* Prepares read p->host under the read lock. */
        pthread_rwlock_wrlock(&p->gpus_lock);
        *ret->old = p->host;
        changed = !host_driver_equal(&p->host, fresh);
        if (changed)
                p->host = *fresh;
        pthread_rwlock_unlock(&p->gpus_lock);
        ret->changed = changed;
        ret->new = TAKE_PTR(fresh);
        if (changed && ret->on_change)
                ret->on_change(ret->old, ret->new);
        /* A call in progress may have planned with the old files: the caller looks again. */
        pthread_mutex_lock(&p->lock);
        ret->n_busy = p->n_busy;
        pthread_mutex_unlock(&p->lock);
        if (!changed && !force)
                return 0;
        r = host_record_text(ret->new, &record);
        if (r < 0)
                return r;
        if (!changed && host_record_matches(p, record)) {
                log_debug("The driver files are those every CDI spec was last compared with");
                return 0;
        }
        r = refresh_claims(p, ret->new, ret);
        if (r < 0)
                return r;
        /* Only when every spec is known to match: a busy or failed one is compared next time. */
        if (ret->n_failed == 0 && ret->n_busy == 0 &&
            (r = write_file_atomic(p->state_dir, HOST_RECORD_NAME, record, strlen(record), 0644, 0)) < 0)
                log_debug_errno(r, "Cannot record the driver files in %s, the next start compares every spec: %m",
                                p->state_dir);
        return 0;
}

void preparer_refresh_done(PreparerRefresh *r) {
        r->old = mfree(r->old);
        r->new = mfree(r->new);
}
