/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A limit libvgpu.so cannot enforce must not stop the program, and must be said: once
 * per process on stderr, whatever LIBCUDA_LOG_LEVEL says, and as a bit in the region
 * for the daemon. Run with an unreadable CUDA_DEVICE_MEMORY_LIMIT and SM limit, and a
 * fresh region that records no limit (tests/preload/meson.build). Plain, nothing is
 * preloaded and nothing is said.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/wait.h>

#include "preload-test.h"
#include "../src/shared-region.h"

static char *slurp(int fd) {
        static char buf[8192];
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

        ASSERT_TRUE(n >= 0);
        buf[n] = 0;
        return buf;
}

static unsigned count(const char *hay, const char *needle) {
        unsigned n = 0;

        for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
                n++;
        return n;
}

static uint32_t region_degraded(void) {
        const char *path = getenv("CUDA_DEVICE_MEMORY_SHARED_CACHE");
        uint32_t v = 0;
        int fd;

        ASSERT_NOT_NULL(path);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(pread(fd, &v, sizeof(v), offsetof(SharedRegionHeader, degraded)), (ssize_t) sizeof(v));
        close(fd);
        return v;
}

int main(void) {
        char log_path[] = "/tmp/test-degraded-XXXXXX";
        int log_fd, saved;
        CuDevicePtr p;
        const char *said;

        test_fresh_state();
        log_fd = mkostemp(log_path, O_CLOEXEC);
        ASSERT_TRUE(log_fd >= 0);
        unlink(log_path);
        saved = dup(STDERR_FILENO);
        ASSERT_TRUE(dup2(log_fd, STDERR_FILENO) == STDERR_FILENO);

        /* The program works: it allocates past what the unreadable limit meant. */
        test_context(0);
        ASSERT_CU(cuMemAlloc_v2(&p, 512 * MiB));
        ASSERT_CU(cuMemFree_v2(p));
        ASSERT_CU(cuMemAlloc_v2(&p, 16 * MiB));

        ASSERT_TRUE(dup2(saved, STDERR_FILENO) == STDERR_FILENO);
        said = slurp(log_fd);
        fprintf(stderr, "stderr of the program:\n%s", said);
        if (!preloaded()) {
                ASSERT_EQ(count(said, "LIMIT NOT ENFORCED"), 0u);
                return 0;
        }
        ASSERT_EQ(count(said, "LIMIT NOT ENFORCED: device 0: the memory limit is unreadable"), 1u);
        ASSERT_EQ(count(said, "LIMIT NOT ENFORCED: device 0: the SM limit is unreadable"), 1u);
        ASSERT_EQ(count(said, "LIMIT NOT ENFORCED"), 2u); /* once per kind, not per device or call */
        ASSERT_EQ(region_degraded(), SHARED_REGION_DEGRADED_MEMORY_LIMIT | SHARED_REGION_DEGRADED_SM_LIMIT);
        return 0;
}
