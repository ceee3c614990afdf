/* SPDX-License-Identifier: Apache-2.0 */

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>

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

static int rm_rf_at(int dfd, const char *name, unsigned depth) {
        _cleanup_close_ int fd = -EBADF;
        DIR *d;
        struct dirent *de;

        if (unlinkat(dfd, name, 0) >= 0 || errno == ENOENT)
                return 0;
        if (errno != EISDIR && errno != EPERM)
                return negative_errno();
        if (depth == 0)
                return -ENOTEMPTY;
        fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        d = fdopendir(fd);
        if (!d)
                return negative_errno();
        fd = -EBADF; /* owned by d */
        while ((de = readdir(d))) {
                int r;
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                r = rm_rf_at(dirfd(d), de->d_name, depth - 1);
                if (r < 0) {
                        closedir(d);
                        return r;
                }
        }
        closedir(d);
        if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                return negative_errno();
        return 0;
}

int rm_rf(const char *path, unsigned depth) {
        return rm_rf_at(AT_FDCWD, path, depth);
}
