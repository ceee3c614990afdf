/* SPDX-License-Identifier: Apache-2.0 */

/* The one bounded file reader: what every configuration, credential and state file goes through. */

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>

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

static int rm_cb(const char *p, const struct stat *s, int f, struct FTW *ftw) {
        return remove(p);
}

int main(void) {
        ASSERT_NOT_NULL(mkdtemp(dir));
        TEST(test_read_file_bounded);
        nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        return 0;
}
