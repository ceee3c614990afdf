/* SPDX-License-Identifier: Apache-2.0 */
/* A library built the ordinary way against today's glibc: check-glibc-floor.py must
 * refuse it (fstat64@GLIBC_2.33, dlopen@GLIBC_2.34), or the check proves nothing. */
#include <dlfcn.h>
#include <sys/stat.h>

int glibc_new_probe(const char *path, int fd);
int glibc_new_probe(const char *path, int fd) {
        struct stat st;
        void *h = dlopen(path, RTLD_NOW);

        if (h)
                dlclose(h);
        return fstat(fd, &st);
}
