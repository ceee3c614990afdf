/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <fcntl.h>

/* Small file-system helpers for the crash-safe writers (CDI specs, checkpoints). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum WriteFlags {
        WRITE_SYNC_FILE = 1 << 0, /* fsync the data before the rename */
        WRITE_SYNC_DIR = 1 << 1,  /* fsync the directory after it: the rename survives a power cut */
        WRITE_DURABLE = WRITE_SYNC_FILE | WRITE_SYNC_DIR,
} WriteFlags;

/*
 * Write data to dir/name atomically: a temporary ".name.XXXXXX.tmp" in the same dir,
 * then rename over name, so readers and a SIGKILLed writer never leave a partial file.
 * Without WRITE_SYNC_FILE the content may be lost on a power cut (not on a crash of
 * the process): for files that recovery rebuilds after a reboot anyway.
 */
int write_file_atomic(const char *dir, const char *name, const void *data, size_t len, mode_t mode,
                      WriteFlags flags);

/* The same relative to an open directory. */
int write_file_atomic_at(int dir_fd, const char *name, const void *data, size_t len, mode_t mode,
                         WriteFlags flags);

typedef enum ReadFileFlags {
        READ_FILE_NOFOLLOW = 1 << 0, /* our own state: a symlink there is not ours */
} ReadFileFlags;

/*
 * The whole of a regular file of at most max bytes, NUL-terminated (*ret_len excludes the
 * NUL; ret_len may be NULL). -EFBIG when larger, -EBADFD when not a regular file (a FIFO
 * cannot block us: it is opened O_NONBLOCK and refused). The one bounded reader of the tree.
 */
int read_file_bounded_at(int dir_fd, const char *path, size_t max, ReadFileFlags flags, char **ret,
                         size_t *ret_len);

/* Configuration and credentials named by the administrator: symlinks are followed. */
static inline int read_file_bounded(const char *path, size_t max, char **ret, size_t *ret_len) {
        return read_file_bounded_at(AT_FDCWD, path, max, 0, ret, ret_len);
}

/* open(path, O_RDONLY|O_DIRECTORY|O_CLOEXEC) or a negative errno. */
int open_directory(const char *path);

/* mkdir -p with mode for every created component. */
int mkdir_parents(const char *path, mode_t mode);

/*
 * Remove name (relative to dir_fd) and everything below it, however deep, without any
 * capability: what a hostile writer (a container root in a claim directory) may leave.
 *  - Never follows a symlink (it is removed, not its target) and never leaves the tree:
 *    every step is relative to an open directory, and a directory of another mount (or
 *    file system) is not entered: -EBUSY.
 *  - A directory we own but cannot read, search or write (0555, 0000, sticky) is made
 *    u+rwx first (on an O_PATH descriptor, never by name). One we do not own and cannot
 *    use is left: -EACCES. An immutable or append-only file: -EPERM.
 *  - At most RM_TREE_OPEN_MAX directories are open at a time; a subtree below that is
 *    moved up into the top directory and removed from there, so depth costs passes, not
 *    descriptors (up to RM_TREE_PASSES_MAX passes, then -ELOOP).
 * Removes whatever it can even after a failure. 0 when nothing is left (also when name did
 * not exist); otherwise the first error, with the path (relative to dir_fd) of the first
 * thing left behind in left[left_size] (may be NULL).
 */
#define RM_TREE_OPEN_MAX 32u
#define RM_TREE_PASSES_MAX 8192u
int rm_tree_at(int dir_fd, const char *name, char *left, size_t left_size);

/* The same for a path (tests and tools). */
int rm_rf(const char *path);

/* How many fsync()s this process made through these helpers (benchmarks count them). */
uint64_t fsutil_fsync_count(void);
int fsutil_fsync(int fd);
