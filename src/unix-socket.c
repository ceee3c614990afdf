/* SPDX-License-Identifier: Apache-2.0 */

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "macro.h"
#include "unix-socket.h"

static int mkdir_parents(const char *path, mode_t last_mode) {
        _cleanup_free_ char *p = strdup(path);
        char *slash;

        if (!p)
                return -ENOMEM;
        slash = strrchr(p, '/');
        if (!slash || slash == p)
                return 0;
        *slash = '\0'; /* p is now the socket's directory */
        for (char *q = strchr(p + 1, '/');; q = strchr(q + 1, '/')) {
                if (q)
                        *q = '\0';
                if (mkdir(p, q ? 0755 : last_mode) < 0 && errno != EEXIST)
                        return log_error_errno(-errno, "Failed to create directory %s: %m", p);
                if (!q)
                        return 0;
                *q = '/';
        }
}

static void sockaddr_set(struct sockaddr_un *sa, const char *path) {
        *sa = (struct sockaddr_un) { .sun_family = AF_UNIX };
        strncpy(sa->sun_path, path, sizeof(sa->sun_path) - 1);
}

/* Something left at our path: only a dead socket may be replaced. lstat: never follow a symlink. */
static int socket_path_clear(const char *path) {
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_un sa;
        struct stat st;

        if (lstat(path, &st) < 0) {
                if (errno == ENOENT)
                        return 0;
                return log_error_errno(-errno, "Failed to stat %s: %m", path);
        }
        if (!S_ISSOCK(st.st_mode))
                return log_error_errno(-EEXIST, "%s exists and is not a socket, refusing to replace it.", path);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return log_error_errno(-errno, "Failed to create a socket: %m");
        sockaddr_set(&sa, path);
        /* A listener answers (or, with a full backlog, says EAGAIN); a dead socket refuses. */
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0 || errno == EAGAIN)
                return log_error_errno(-EADDRINUSE,
                                       "%s is served by another process (another hami-dra-plugin?), refusing to take it over.",
                                       path);
        if (errno != ECONNREFUSED)
                return log_error_errno(-errno, "Failed to probe %s: %m", path);

        log_info("Removing stale socket %s.", path);
        if (unlink(path) < 0 && errno != ENOENT)
                return log_error_errno(-errno, "Failed to remove stale socket %s: %m", path);
        return 0;
}

int unix_socket_listen(const char *path, mode_t dir_mode, mode_t socket_mode, UnixSocketFile *ret_file) {
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_un sa;
        struct stat st;
        int r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return log_error_errno(-ENAMETOOLONG, "Socket path %s is longer than %zu bytes.", path,
                                       sizeof(sa.sun_path) - 1);
        if (path[0] != '/')
                return log_error_errno(-EINVAL, "Socket path %s is not absolute.", path);
        r = mkdir_parents(path, dir_mode);
        if (r < 0)
                return r;
        r = socket_path_clear(path);
        if (r < 0)
                return r;

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return log_error_errno(-errno, "Failed to create a socket: %m");
        sockaddr_set(&sa, path);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return log_error_errno(-errno, "Failed to bind %s: %m", path);
        /* Nobody can connect before listen(), so setting the mode here leaves no window. */
        if (chmod(path, socket_mode) < 0 || lstat(path, &st) < 0 || listen(fd, SOMAXCONN) < 0) {
                r = log_error_errno(-errno, "Failed to set up %s: %m", path);
                (void) unlink(path);
                return r;
        }
        *ret_file = (UnixSocketFile) { .dev = st.st_dev, .ino = st.st_ino };
        return TAKE_FD(fd);
}

void unix_socket_unlink(const char *path, const UnixSocketFile *f) {
        struct stat st;

        if (path && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == f->dev && st.st_ino == f->ino)
                (void) unlink(path);
}

int unix_socket_adopt(int fd, char **ret_path) {
        struct sockaddr_un sa = {};
        socklen_t len = sizeof(sa);
        char *path = NULL;
        int flags;

        if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0)
                return -ENOTSOCK;
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
                return -errno;
        if (getsockname(fd, (struct sockaddr *) &sa, &len) == 0 && len > offsetof(struct sockaddr_un, sun_path) &&
            sa.sun_path[0] == '/') {
                path = strndup(sa.sun_path, len - offsetof(struct sockaddr_un, sun_path));
                if (!path)
                        return -ENOMEM;
        }
        *ret_path = path;
        return 0;
}
