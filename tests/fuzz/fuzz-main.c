/* SPDX-License-Identifier: Apache-2.0 */

/*
 * Corpus replay for builds without libFuzzer (rauc's approach): every file or
 * directory named on the command line is fed to LLVMFuzzerTestOneInput once, so CI
 * runs every fuzzer's corpus as an ordinary test under ASan/UBSan.
 */

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

static int run_file(const char *path) {
        struct stat st;
        uint8_t *buf;
        ssize_t n;
        int fd;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0) {
                perror(path);
                return -1;
        }
        buf = malloc(st.st_size > 0 ? (size_t) st.st_size : 1);
        if (!buf) {
                close(fd);
                return -1;
        }
        n = read(fd, buf, (size_t) st.st_size);
        close(fd);
        if (n != st.st_size) {
                fprintf(stderr, "%s: short read\n", path);
                free(buf);
                return -1;
        }
        /* Copy into an exactly sized buffer so ASan catches reads past the end. */
        uint8_t *exact = malloc((size_t) n > 0 ? (size_t) n : 1);
        if (!exact) {
                free(buf);
                return -1;
        }
        memcpy(exact, buf, (size_t) n);
        free(buf);
        LLVMFuzzerTestOneInput(exact, (size_t) n);
        free(exact);
        return 0;
}

static int run_path(const char *path, unsigned *count) {
        struct stat st;

        if (stat(path, &st) < 0) {
                perror(path);
                return -1;
        }
        if (!S_ISDIR(st.st_mode)) {
                (*count)++;
                return run_file(path);
        }

        struct dirent **names;
        int n = scandir(path, &names, NULL, alphasort), r = 0;
        if (n < 0) {
                perror(path);
                return -1;
        }
        for (int i = 0; i < n; i++) {
                char child[4096];
                if (names[i]->d_name[0] != '.') {
                        snprintf(child, sizeof(child), "%s/%s", path, names[i]->d_name);
                        if (run_path(child, count) < 0)
                                r = -1;
                }
                free(names[i]);
        }
        free(names);
        return r;
}

int main(int argc, char *argv[]) {
        unsigned count = 0;
        int r = 0;

        for (int i = 1; i < argc; i++)
                if (run_path(argv[i], &count) < 0)
                        r = -1;
        fprintf(stderr, "replayed %u inputs\n", count);
        if (count == 0) {
                fprintf(stderr, "no corpus inputs: nothing was tested\n");
                return 1;
        }
        return r < 0 ? 1 : 0;
}
