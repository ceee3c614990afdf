/* SPDX-License-Identifier: Apache-2.0 */

/* The one bounded file reader: what every configuration, credential and state file goes through. */

#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "fsutil.h"
#include "macro.h"
#include "tests.h"

static char dir[] = "/tmp/test-fsutil-XXXXXX";

static void put(const char *name, const char *text) {
        char path[256];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "we");
        ASSERT_NOT_NULL(f);
        fputs(text, f);
        ASSERT_EQ(fclose(f), 0);
}

static void test_read_file_bounded(void) {
        _cleanup_close_ int dfd = open_directory(dir);
        char *buf = NULL, path[256];
        size_t n = 0;

        ASSERT_TRUE(dfd >= 0);
        put("ten", "0123456789");

        ASSERT_OK(read_file_bounded_at(dfd, "ten", 10, 0, &buf, &n));
        ASSERT_EQ_U(n, 10);
        ASSERT_STREQ(buf, "0123456789"); /* NUL-terminated */
        free(buf);
        ASSERT_OK(read_file_bounded_at(dfd, "ten", 10, 0, &buf, NULL));
        free(buf);

        buf = (char *) "untouched";
        ASSERT_ERROR(read_file_bounded_at(dfd, "ten", 9, 0, &buf, &n), EFBIG);
        ASSERT_STREQ(buf, "untouched");
        ASSERT_ERROR(read_file_bounded_at(dfd, "missing", 10, 0, &buf, &n), ENOENT);

        /* Not a regular file: a directory, and a FIFO that must not block us. */
        ASSERT_EQ(mkdirat(dfd, "sub", 0755), 0);
        ASSERT_ERROR(read_file_bounded_at(dfd, "sub", 10, 0, &buf, &n), EBADFD);
        ASSERT_EQ(mkfifoat(dfd, "fifo", 0600), 0);
        ASSERT_ERROR(read_file_bounded_at(dfd, "fifo", 10, 0, &buf, &n), EBADFD);

        /* Symlinks: followed for what an administrator names (kubelet-client-current.pem is
         * one), refused for our own state. */
        ASSERT_EQ(symlinkat("ten", dfd, "link"), 0);
        ASSERT_OK(read_file_bounded_at(dfd, "link", 10, 0, &buf, &n));
        free(buf);
        ASSERT_ERROR(read_file_bounded_at(dfd, "link", 10, READ_FILE_NOFOLLOW, &buf, &n), ELOOP);

        snprintf(path, sizeof(path), "%s/link", dir);
        ASSERT_OK(read_file_bounded(path, 10, &buf, &n));
        ASSERT_STREQ(buf, "0123456789");
        free(buf);

        put("empty", "");
        ASSERT_OK(read_file_bounded_at(dfd, "empty", 0, 0, &buf, &n));
        ASSERT_EQ_U(n, 0);
        ASSERT_STREQ(buf, "");
        free(buf);
}

static bool exists_at(int dfd, const char *path) {
        struct stat st;
        return fstatat(dfd, path, &st, AT_SYMLINK_NOFOLLOW) >= 0;
}

/* n nested directories "d" under dfd/path, each with a file. */
static void nest(int dfd, const char *path, unsigned n) {
        int fd = openat(dfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        ASSERT_TRUE(fd >= 0);
        for (unsigned i = 0; i < n; i++) {
                int sub;
                ASSERT_EQ(mkdirat(fd, "d", 0755), 0);
                sub = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                ASSERT_TRUE(sub >= 0);
                close(openat(sub, "f", O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
                close(fd);
                fd = sub;
        }
        close(fd);
}

static void test_rm_tree(void) {
        _cleanup_close_ int dfd = open_directory(dir);
        char left[256];

        ASSERT_TRUE(dfd >= 0);
        ASSERT_EQ(mkdirat(dfd, "keep", 0755), 0);
        put("keep/file", "mine");

        /* Unreadable and read-only directories of ours, a symlink out, a deep tree. */
        ASSERT_EQ(mkdirat(dfd, "t", 0755), 0);
        ASSERT_EQ(mkdirat(dfd, "t/closed", 0755), 0);
        put("t/closed/f", "x");
        ASSERT_EQ(fchmodat(dfd, "t/closed", 0000, 0), 0);
        ASSERT_EQ(symlinkat("../keep", dfd, "t/out"), 0);
        ASSERT_EQ(mkdirat(dfd, "t/deep", 0755), 0);
        nest(dfd, "t/deep", 3 * RM_TREE_OPEN_MAX + 7);
        ASSERT_EQ(fchmodat(dfd, "t", 0555, 0), 0);
        ASSERT_OK(rm_tree_at(dfd, "t", left, sizeof(left)));
        ASSERT_STREQ(left, "");
        ASSERT_FALSE(exists_at(dfd, "t"));
        ASSERT_TRUE(exists_at(dfd, "keep/file")); /* the symlink went, not what it names */

        /* Nothing there, a file, a symlink at the top. */
        ASSERT_OK(rm_tree_at(dfd, "t", left, sizeof(left)));
        put("plain", "x");
        ASSERT_OK(rm_tree_at(dfd, "plain", NULL, 0));
        ASSERT_FALSE(exists_at(dfd, "plain"));
        ASSERT_EQ(symlinkat("keep", dfd, "top-link"), 0);
        ASSERT_OK(rm_tree_at(dfd, "top-link", NULL, 0));
        ASSERT_FALSE(exists_at(dfd, "top-link"));
        ASSERT_TRUE(exists_at(dfd, "keep/file"));
}

/* Another mount inside the tree is never entered: -EBUSY, and what is in it stays. */
static void test_rm_tree_mount_point(void) {
        int status = 0;
        pid_t pid;

        if (geteuid() != 0) {
                fprintf(stderr, "skipped: needs root for a mount namespace\n");
                return;
        }
        fflush(NULL);
        pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                char path[256], left[256];
                int dfd;

                ASSERT_OK(unshare(CLONE_NEWNS) < 0 ? -errno : 0);
                ASSERT_OK(mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0 ? -errno : 0);
                dfd = open_directory(dir); /* in this namespace's tree */
                ASSERT_TRUE(dfd >= 0);
                ASSERT_EQ(mkdirat(dfd, "m", 0755), 0);
                ASSERT_EQ(mkdirat(dfd, "m/mnt", 0755), 0);
                put("m/other", "x");
                snprintf(path, sizeof(path), "%s/m/mnt", dir);
                ASSERT_OK(mount("test", path, "tmpfs", 0, "size=1m") < 0 ? -errno : 0);
                put("m/mnt/inside", "not ours");
                ASSERT_ERROR(rm_tree_at(dfd, "m", left, sizeof(left)), EBUSY);
                ASSERT_STREQ(left, "m/mnt");
                ASSERT_TRUE(exists_at(dfd, "m/mnt/inside"));
                ASSERT_FALSE(exists_at(dfd, "m/other"));
                ASSERT_OK(umount(path) < 0 ? -errno : 0);
                ASSERT_OK(rm_tree_at(dfd, "m", left, sizeof(left)));
                close(dfd);
                fflush(NULL);
                _exit(0);
        }
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static int rm_cb(const char *p, const struct stat *s, int f, struct FTW *ftw) {
        return remove(p);
}

int main(void) {
        ASSERT_NOT_NULL(mkdtemp(dir));
        TEST(test_read_file_bounded);
        TEST(test_rm_tree);
        TEST(test_rm_tree_mount_point);
        nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        return 0;
}
