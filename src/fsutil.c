/* SPDX-License-Identifier: Apache-2.0 */

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "fsutil.h"
#include "macro.h"

static atomic_uint_fast64_t fsync_count;

uint64_t fsutil_fsync_count(void) {
        return atomic_load(&fsync_count);
}

int fsutil_fsync(int fd) {
        atomic_fetch_add(&fsync_count, 1);
        return fsync(fd) < 0 ? negative_errno() : 0;
}

static int write_all(int fd, const void *data, size_t len) {
        const char *p = data;

        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

int open_directory(const char *path) {
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return fd < 0 ? negative_errno() : fd;
}

int write_file_atomic_at(int dfd, const char *name, const void *data, size_t len, mode_t mode,
                         WriteFlags flags) {
        _cleanup_close_ int fd = -EBADF;
        char tmp[NAME_MAX + 1];
        int r;

        if (strchr(name, '/') || strlen(name) + 6 > NAME_MAX)
                return -EINVAL;
        /*
         * One writer per name at a time (callers serialise per claim), so the temp name can
         * be fixed: a leftover from a killed writer is simply overwritten.
         */
        snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return negative_errno();
        r = write_all(fd, data, len);
        if (r >= 0 && (flags & WRITE_SYNC_FILE))
                r = fsutil_fsync(fd);
        if (r >= 0 && renameat(dfd, tmp, dfd, name) < 0)
                r = negative_errno();
        if (r < 0) {
                (void) unlinkat(dfd, tmp, 0);
                return r;
        }
        if (flags & WRITE_SYNC_DIR)
                return fsutil_fsync(dfd);
        return 0;
}

int write_file_atomic(const char *dir, const char *name, const void *data, size_t len, mode_t mode,
                      WriteFlags flags) {
        _cleanup_close_ int dfd = open_directory(dir);

        if (dfd < 0)
                return dfd;
        return write_file_atomic_at(dfd, name, data, len, mode, flags);
}

int read_file_bounded_at(int dfd, const char *path, size_t max, ReadFileFlags flags, char **ret,
                         size_t *ret_len) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t len = 0;

        fd = openat(dfd, path,
                    O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK |
                            (flags & READ_FILE_NOFOLLOW ? O_NOFOLLOW : 0));
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if ((uint64_t) st.st_size > max)
                return -EFBIG;
        buf = malloc(max + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) { /* one byte past the limit notices a file that grew meanwhile */
                ssize_t n = read(fd, buf + len, max + 1 - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len > max)
                        return -EFBIG;
        }
        buf[len] = '\0';
        *ret = TAKE_PTR(buf);
        if (ret_len)
                *ret_len = len;
        return 0;
}

int mkdir_parents(const char *path, mode_t mode) {
        char buf[PATH_MAX];
        size_t n = strlen(path);

        if (n == 0 || n >= sizeof(buf))
                return -EINVAL;
        memcpy(buf, path, n + 1);
        for (char *p = buf + 1; ; p++) {
                if (*p == '/' || *p == '\0') {
                        char saved = *p;
                        *p = '\0';
                        if (mkdir(buf, mode) < 0 && errno != EEXIST)
                                return negative_errno();
                        *p = saved;
                        if (saved == '\0')
                                break;
                }
        }
        return 0;
}

/* ---------------------------------------------------------------- rm_tree_at */

typedef struct RmTree {
        int top_fd;             /* the tree's top directory: too deep subtrees are moved here */
        dev_t dev;              /* the top's file system and mount: never left */
        uint64_t mnt_id;        /* 0: unknown (no STATX_MNT_ID) */
        bool moved;             /* this pass moved a subtree up: another pass */
        unsigned n_moved;
        int error;              /* the first error */
        char *left;
        size_t left_size;
        char path[PATH_MAX];    /* the entry in hand, relative to the caller's dir_fd */
        size_t path_len;
} RmTree;

static void rm_fail(RmTree *t, int r) {
        if (t->error < 0)
                return;
        t->error = r;
        if (t->left && t->left_size > 0)
                snprintf(t->left, t->left_size, "%s", t->path);
}

static size_t rm_path_push(RmTree *t, const char *name) {
        size_t old = t->path_len;
        int n = snprintf(t->path + old, sizeof(t->path) - old, "%s%s", old > 0 ? "/" : "", name);

        t->path_len = MIN(old + (size_t) MAX(n, 0), sizeof(t->path) - 1); /* truncated when too deep */
        return old;
}

static void rm_path_pop(RmTree *t, size_t old) {
        t->path_len = old;
        t->path[old] = '\0';
}

/*
 * An O_PATH descriptor of parent_fd/name, a directory of the tree, made u+rwx if we own
 * it. The mode is changed through the descriptor (/proc/self/fd), so a name swapped for a
 * symlink meanwhile changes nothing outside. top: it defines the tree's mount.
 */
static int rm_open_dir(RmTree *t, int parent_fd, const char *name, bool top) {
        _cleanup_close_ int fd = -EBADF;
        struct statx sx;

        fd = openat(parent_fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_MODE | STATX_UID | STATX_MNT_ID,
                  &sx) < 0)
                return negative_errno();
        if (top) {
                t->dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
                t->mnt_id = (sx.stx_mask & STATX_MNT_ID) ? sx.stx_mnt_id : 0;
        } else if (makedev(sx.stx_dev_major, sx.stx_dev_minor) != t->dev ||
                   (t->mnt_id != 0 && (sx.stx_mask & STATX_MNT_ID) && sx.stx_mnt_id != t->mnt_id))
                return -EBUSY; /* a mount point: not ours to empty */
        if (sx.stx_uid == geteuid() && (sx.stx_mode & 0700) != 0700) {
                char proc[32];
                snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
                if (chmod(proc, (sx.stx_mode & 07777) | 0700) < 0)
                        return negative_errno();
        }
        return TAKE_FD(fd);
}

static void rm_entry(RmTree *t, int parent_fd, const char *name, unsigned depth);

/* Remove what is in the open directory fd; it stays. */
static void rm_contents(RmTree *t, int fd, unsigned depth) {
        struct dirent *de;
        int dup_fd;
        DIR *d;

        dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (dup_fd < 0) {
                rm_fail(t, negative_errno());
                return;
        }
        d = fdopendir(dup_fd);
        if (!d) {
                rm_fail(t, negative_errno());
                safe_close(dup_fd);
                return;
        }
        rewinddir(d); /* the offset is shared with fd: a second pass starts at the end */
        for (;;) {
                errno = 0;
                de = readdir(d);
                if (!de) {
                        if (errno != 0)
                                rm_fail(t, negative_errno());
                        break;
                }
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                rm_entry(t, fd, de->d_name, depth + 1);
        }
        closedir(d);
}

/* Too deep to open: move the directory up into the top one, for the next pass. */
static void rm_move_up(RmTree *t, int parent_fd, const char *name) {
        for (unsigned tries = 0; tries < 1024; tries++) {
                char target[32];
                snprintf(target, sizeof(target), ".rm-tree-%u", t->n_moved++);
                if (renameat2(parent_fd, name, t->top_fd, target, RENAME_NOREPLACE) >= 0) {
                        t->moved = true;
                        return;
                }
                if (errno != EEXIST) {
                        rm_fail(t, negative_errno());
                        return;
                }
        }
        rm_fail(t, -EEXIST);
}

static void rm_dir(RmTree *t, int parent_fd, const char *name, unsigned depth) {
        _cleanup_close_ int path_fd = -EBADF, fd = -EBADF;

        path_fd = rm_open_dir(t, parent_fd, name, false);
        if (path_fd < 0) {
                if (path_fd != -ENOENT)
                        rm_fail(t, path_fd);
                return;
        }
        if (depth >= RM_TREE_OPEN_MAX) {
                rm_move_up(t, parent_fd, name);
                return;
        }
        fd = openat(path_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
                rm_fail(t, negative_errno());
                return;
        }
        /* Twice: a writer that is still at work gets one more chance to lose. */
        for (unsigned round = 0; round < 2; round++) {
                rm_contents(t, fd, depth);
                if (unlinkat(parent_fd, name, AT_REMOVEDIR) >= 0 || errno == ENOENT)
                        return;
                if (errno != ENOTEMPTY || t->error < 0)
                        break;
        }
        rm_fail(t, negative_errno());
}

static void rm_entry(RmTree *t, int parent_fd, const char *name, unsigned depth) {
        size_t saved = rm_path_push(t, name);
        struct stat st;

        if (unlinkat(parent_fd, name, 0) >= 0 || errno == ENOENT)
                ;
        else if (errno == EISDIR ||
                 (fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) >= 0 && S_ISDIR(st.st_mode)))
                rm_dir(t, parent_fd, name, depth);
        else
                rm_fail(t, negative_errno());
        rm_path_pop(t, saved);
}

int rm_tree_at(int dir_fd, const char *name, char *left, size_t left_size) {
        RmTree t = { .top_fd = -EBADF, .left = left, .left_size = left_size };
        _cleanup_close_ int path_fd = -EBADF;
        int r;

        if (left && left_size > 0)
                left[0] = '\0';
        rm_path_push(&t, name);
        if (unlinkat(dir_fd, name, 0) >= 0 || errno == ENOENT)
                return 0;
        r = -errno;
        path_fd = rm_open_dir(&t, dir_fd, name, true);
        if (path_fd == -ENOENT)
                return 0;
        if (path_fd == -ENOTDIR) { /* not a directory: the unlink's reason */
                rm_fail(&t, r);
                return t.error;
        }
        if (path_fd < 0) {
                rm_fail(&t, path_fd);
                return t.error;
        }
        t.top_fd = openat(path_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (t.top_fd < 0) {
                rm_fail(&t, negative_errno());
                return t.error;
        }
        for (unsigned pass = 1;; pass++) {
                t.moved = false;
                rm_contents(&t, t.top_fd, 0);
                if (!t.moved)
                        break;
                if (pass >= RM_TREE_PASSES_MAX) {
                        rm_fail(&t, -ELOOP);
                        break;
                }
        }
        safe_close(t.top_fd);
        if (t.error >= 0 && unlinkat(dir_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                rm_fail(&t, negative_errno());
        return t.error;
}

int rm_rf(const char *path) {
        return rm_tree_at(AT_FDCWD, path, NULL, 0);
}
