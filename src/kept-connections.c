/* SPDX-License-Identifier: Apache-2.0 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "kept-connections.h"
#include "macro.h"

#define KEPT_MAX 1024           /* more connections than that are shut down as gRPC wants */
#define LISTEN_MAX 4
#define FDS_PER_MESSAGE 250     /* SCM_RIGHTS carries at most 253 */

typedef struct Kept {
        int fd;
        ino_t ino;
} Kept;

static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool keeping;
static struct sockaddr_un listen_addr[LISTEN_MAX];
static socklen_t listen_addr_len[LISTEN_MAX];
static size_t n_listen;
static Kept kept[KEPT_MAX];
static size_t n_kept;
static atomic_size_t n_kept_total;

#define EPOLL_SETS_MAX 16

static int epoll_sets[EPOLL_SETS_MAX];
static size_t n_epoll_sets;

/* The process's epoll sets (gRPC's among them), found once when keeping begins. */
static void epoll_sets_find(void) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;

        n_epoll_sets = 0;
        if (!d)
                return;
        while ((de = readdir(d)) && n_epoll_sets < EPOLL_SETS_MAX) {
                char path[64], target[32];
                ssize_t n;
                int fd;

                if (de->d_name[0] == '.')
                        continue;
                fd = atoi(de->d_name);
                if (fd == dirfd(d))
                        continue;
                snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
                n = readlink(path, target, sizeof(target) - 1);
                if (n <= 0)
                        continue;
                target[n] = 0;
                if (streq(target, "anon_inode:[eventpoll]"))
                        epoll_sets[n_epoll_sets++] = fd;
        }
        closedir(d);
}

/* gRPC's poller never hears of the socket again: its descriptor is about to be closed,
 * and the socket itself lives on in our copy (an epoll set forgets a descriptor on close
 * only when nothing else holds its socket). */
static void epoll_sets_forget(int fd) {
        for (size_t i = 0; i < n_epoll_sets; i++)
                (void) epoll_ctl(epoll_sets[i], EPOLL_CTL_DEL, fd, NULL);
}

int kept_connections_begin(const int *listen_fds, size_t n_listen_fds) {
        pthread_mutex_lock(&kept_lock);
        n_listen = 0;
        for (size_t i = 0; i < n_listen_fds && n_listen < LISTEN_MAX; i++) {
                socklen_t len = sizeof(listen_addr[n_listen]);

                if (listen_fds[i] < 0 ||
                    getsockname(listen_fds[i], (struct sockaddr *) &listen_addr[n_listen], &len) < 0 ||
                    listen_addr[n_listen].sun_family != AF_UNIX || len <= offsetof(struct sockaddr_un, sun_path))
                        continue;
                listen_addr_len[n_listen++] = len;
        }
        atomic_store(&n_kept_total, 0);
        if (n_listen > 0)
                epoll_sets_find();
        atomic_store(&keeping, n_listen > 0);
        pthread_mutex_unlock(&kept_lock);
        return n_listen > 0 ? 0 : -ENOTSOCK;
}

/* A connection accepted on one of our listening sockets: it has their address. */
static bool is_our_connection(int fd) {
        struct sockaddr_un a;
        socklen_t len = sizeof(a);
        int listening = 0;
        socklen_t l = sizeof(listening);

        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &l) < 0 || listening)
                return false;
        if (getsockname(fd, (struct sockaddr *) &a, &len) < 0 || a.sun_family != AF_UNIX)
                return false;
        for (size_t i = 0; i < n_listen; i++)
                if (len == listen_addr_len[i] && memcmp(&a, &listen_addr[i], len) == 0)
                        return true;
        return false;
}

/* Under kept_lock. */
static bool keep(int fd) {
        struct stat st;
        int copy;

        if (fstat(fd, &st) < 0)
                return false;
        for (size_t i = 0; i < n_kept; i++)
                if (kept[i].ino == st.st_ino)
                        return true; /* shut down twice: kept once */
        if (n_kept >= KEPT_MAX)
                return false;
        copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0)
                return false;
        epoll_sets_forget(fd);
        kept[n_kept++] = (Kept) { .fd = copy, .ino = st.st_ino };
        atomic_fetch_add(&n_kept_total, 1);
        return true;
}

/*
 * Interposed on the C library's shutdown(2): gRPC's calls to it resolve to this one.
 * Outside a graceful stop, and for every other socket, it is shutdown(2).
 */
int shutdown(int fd, int how) {
        bool kept_it = false;

        if (atomic_load(&keeping)) {
                pthread_mutex_lock(&kept_lock);
                kept_it = atomic_load(&keeping) && is_our_connection(fd) && keep(fd);
                pthread_mutex_unlock(&kept_lock);
        }
        if (kept_it)
                return 0;
        return (int) syscall(SYS_shutdown, fd, how);
}

size_t kept_connections_total(void) {
        return atomic_load(&n_kept_total);
}

size_t kept_connections_reap(void) {
        size_t left = 0;

        pthread_mutex_lock(&kept_lock);
        for (size_t i = 0; i < n_kept; i++) {
                struct pollfd p = { .fd = kept[i].fd, .events = POLLRDHUP };

                if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
                        close(kept[i].fd);
                else
                        kept[left++] = kept[i];
        }
        n_kept = left;
        pthread_mutex_unlock(&kept_lock);
        return left;
}

int kept_connections_end(void) {
        int fds[FDS_PER_MESSAGE], handed = 0, r = 0;

        atomic_store(&keeping, false);
        kept_connections_reap();
        pthread_mutex_lock(&kept_lock);
        for (size_t i = 0; i < n_kept && r >= 0; i += FDS_PER_MESSAGE) {
                size_t n = MIN(n_kept - i, (size_t) FDS_PER_MESSAGE);

                for (size_t j = 0; j < n; j++)
                        fds[j] = kept[i + j].fd;
                r = sd_pid_notify_with_fds(0, false, "FDSTORE=1\nFDNAME=connection", fds, (unsigned) n);
                if (r > 0)
                        handed += (int) n;
        }
        for (size_t i = 0; i < n_kept; i++)
                close(kept[i].fd);
        n_kept = 0;
        pthread_mutex_unlock(&kept_lock);
        return r < 0 ? r : handed;
}

bool kept_connection_is_ours(const char *fd_name) {
        return fd_name && streq(fd_name, "connection");
}
