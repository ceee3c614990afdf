/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Listening AF_UNIX stream sockets on paths that other programs watch (the kubelet's
 * plugin registry): bound by us when started by hand, or adopted from systemd.
 */

#include <sys/types.h>

/* Identifies the socket file we created, so we never remove a successor's. */
typedef struct UnixSocketFile {
        dev_t dev;
        ino_t ino;
} UnixSocketFile;

/*
 * Creates missing parent directories (0755, the socket's own directory dir_mode), replaces
 * a dead socket left at path, and refuses anything else there: -EEXIST for a file, a
 * symlink or a directory, -EADDRINUSE for a socket some process still accepts on.
 * Returns a non-blocking, close-on-exec listening fd; the file gets socket_mode.
 */
int unix_socket_listen(const char *path, mode_t dir_mode, mode_t socket_mode, UnixSocketFile *ret_file);

/* Removes path only if it is still the socket file `f` describes. */
void unix_socket_unlink(const char *path, const UnixSocketFile *f);

/*
 * Checks that fd (e.g. from sd_listen_fds) is a listening AF_UNIX stream socket, makes it
 * non-blocking and close-on-exec, and returns the path it is bound to (NULL if unnamed
 * or abstract).
 */
int unix_socket_adopt(int fd, char **ret_path);
