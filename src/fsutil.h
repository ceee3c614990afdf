/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Small file-system helpers for the crash-safe writers (CDI specs, checkpoints). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Write data to dir/name atomically: a temporary "name.XXXXXX.tmp" in the same dir,
 * fsync, rename over name, and with sync_dir an fsync of the directory so the rename
 * itself survives a power cut.
 */
int write_file_atomic(const char *dir, const char *name, const void *data, size_t len, mode_t mode,
                      bool sync_dir);

/* Read at most max bytes of dir/name (O_NOFOLLOW, regular file only). -EFBIG when larger. */
int read_file_bounded(const char *dir, const char *name, size_t max, char **ret, size_t *ret_len);

/* mkdir -p with mode for every created component. */
int mkdir_parents(const char *path, mode_t mode);

/* Remove path and what is below it (at most depth levels; never follows symlinks). */
int rm_rf(const char *path, unsigned depth);

/* How many fsync()s this process made through these helpers (benchmarks count them). */
uint64_t fsutil_fsync_count(void);
int fsutil_fsync(int fd);
