/* SPDX-License-Identifier: Apache-2.0 */

/* Socket files on paths other programs watch: what may be replaced, what must be left alone. */

#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "macro.h"
#include "tests.h"
#include "unix-socket.h"

static char root[] = "/tmp/test-unix-socket-XXXXXX";

static char *path_in_root(const char *rel) {
        char *p;
        ASSERT_TRUE(asprintf(&p, "%s/%s", root, rel) > 0);
        return p;
}

static void test_listen_creates_dirs_and_mode(void) {
        _cleanup_free_ char *p = path_in_root("a/b/plugin/dra.sock"), *d = path_in_root("a/b/plugin"),
                            *mid = path_in_root("a/b");
        UnixSocketFile f;
        struct stat st;
        int fd;

        fd = unix_socket_listen(p, 0750, 0600, &f);
        ASSERT_OK(fd);
        ASSERT_OK(lstat(p, &st));
        ASSERT_TRUE(S_ISSOCK(st.st_mode));
        ASSERT_EQ(st.st_mode & 07777, 0600);
        ASSERT_TRUE(fcntl(fd, F_GETFL) & O_NONBLOCK);
        ASSERT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        ASSERT_OK(stat(d, &st));
        ASSERT_EQ(st.st_mode & 07777, 0750);
        ASSERT_OK(stat(mid, &st));
        ASSERT_EQ(st.st_mode & 07777, 0755);

        /* A live socket is not taken over. */
        UnixSocketFile g;
        ASSERT_ERROR(unix_socket_listen(p, 0750, 0600, &g), EADDRINUSE);

        /* Adopting it (as if from systemd) tells where it is bound. */
        _cleanup_free_ char *bound = NULL;
        ASSERT_OK(unix_socket_adopt(fd, &bound));
        ASSERT_STREQ(bound, p);

        /* Another instance takes the path while we still run: our unlink leaves its socket alone. */
        ASSERT_OK(unlink(p));
        int fd2 = unix_socket_listen(p, 0750, 0600, &g);
        ASSERT_OK(fd2);
        unix_socket_unlink(p, &f);
        ASSERT_EQ(access(p, F_OK), 0);
        unix_socket_unlink(p, &g);
        ASSERT_EQ(access(p, F_OK), -1);
        close(fd2);

        /* A dead socket (nobody listening) is replaced. */
        close(fd);
        fd = unix_socket_listen(p, 0750, 0600, &g);
        ASSERT_OK(fd);
        int fd3 = unix_socket_listen(p, 0750, 0600, &f); /* fd is alive: refused */
        ASSERT_ERROR(fd3, EADDRINUSE);
        close(fd);
        fd = unix_socket_listen(p, 0750, 0600, &g);
        ASSERT_OK(fd);
        close(fd);
}

static void test_refuses_non_sockets(void) {
        _cleanup_free_ char *file = path_in_root("file.sock"), *link = path_in_root("link.sock"),
                            *target = path_in_root("target"), *dir = path_in_root("dir.sock");
        UnixSocketFile f;
        int fd;

        fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        ASSERT_OK(fd);
        ASSERT_EQ(write(fd, "precious", 8), 8);
        close(fd);
        ASSERT_ERROR(unix_socket_listen(file, 0755, 0600, &f), EEXIST);
        ASSERT_EQ(access(file, F_OK), 0);

        fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        ASSERT_OK(fd);
        close(fd);
        ASSERT_OK(symlink(target, link));
        ASSERT_ERROR(unix_socket_listen(link, 0755, 0600, &f), EEXIST);
        ASSERT_EQ(access(target, F_OK), 0);

        ASSERT_OK(mkdir(dir, 0755));
        ASSERT_ERROR(unix_socket_listen(dir, 0755, 0600, &f), EEXIST);

        /* unlink never removes what is not our socket. */
        struct stat st;
        ASSERT_OK(lstat(file, &st));
        f = (UnixSocketFile) { .dev = st.st_dev, .ino = st.st_ino };
        unix_socket_unlink(file, &f);
        ASSERT_EQ(access(file, F_OK), 0);
}

static void test_bad_paths(void) {
        char long_path[200];
        UnixSocketFile f;

        memset(long_path, 'x', sizeof(long_path) - 1);
        long_path[0] = '/';
        long_path[sizeof(long_path) - 1] = '\0';
        ASSERT_ERROR(unix_socket_listen(long_path, 0755, 0600, &f), ENAMETOOLONG);
        ASSERT_ERROR(unix_socket_listen("relative.sock", 0755, 0600, &f), EINVAL);
}

static void test_adopt_rejects(void) {
        _cleanup_free_ char *path = NULL;
        int sv[2];

        ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
        ASSERT_ERROR(unix_socket_adopt(sv[0], &path), ENOTSOCK); /* connected, not listening */
        close(sv[0]);
        close(sv[1]);
        ASSERT_ERROR(unix_socket_adopt(-1, &path), ENOTSOCK);
}

int main(void) {
        ASSERT_NOT_NULL(mkdtemp(root));
        TEST(test_listen_creates_dirs_and_mode);
        TEST(test_refuses_non_sockets);
        TEST(test_bad_paths);
        TEST(test_adopt_rejects);
        char *cmd;
        ASSERT_TRUE(asprintf(&cmd, "rm -rf '%s'", root) > 0);
        ASSERT_EQ(system(cmd), 0);
        free(cmd);
        return 0;
}
