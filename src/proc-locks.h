/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * /proc/locks: every file lock on the system, one per line,
 *
 *   1: POSIX  ADVISORY  READ 21165 fe:00:10952785 5000 5000
 *   2: -> POSIX  ADVISORY  WRITE 2117 fe:00:10952785 0 EOF      (a waiter)
 *   3: OFDLCK ADVISORY  WRITE -1 fe:00:10952785 2048 2239
 *
 * with POSIX lock owners named by their PID in the reading process's PID namespace (0
 * when not visible there). The usage monitor learns container processes' host PIDs
 * from the beacons libvgpu.so holds (shared-region.h). The text is the kernel's, but
 * parsing it is pure and fuzzed all the same.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct ProcLock {
        pid_t pid;          /* > 0 */
        dev_t dev;          /* makedev(major, minor) of the file's file system */
        uint64_t ino;
        uint64_t start;     /* first byte */
        uint64_t end;       /* last byte; UINT64_MAX for EOF */
        bool write;
} ProcLock;

/* Granted POSIX locks with a visible owner, in order; other lines are skipped. Returns
 * how many went to cb, or the first negative value cb returned. */
typedef int (*ProcLockCallback)(const ProcLock *l, void *userdata);
int proc_locks_parse(const char *text, size_t size, ProcLockCallback cb, void *userdata);

/* Read the whole of path (normally "/proc/locks"), at most max bytes; NUL-terminated. */
int proc_locks_read(const char *path, size_t max, char **ret_text, size_t *ret_size);
