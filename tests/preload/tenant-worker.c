/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One process of a tenant in the sharing tests (test-sharing.py): launches kernels on
 * device 0 for SECONDS, in a pattern, and prints how many it launched.
 *
 *   tenant-worker steady SECONDS        back to back
 *   tenant-worker bursts SECONDS        launches for 40 to 60 ms, idle for 40 to 60 ms,
 *                                       again (half the time busy; the lengths are random so
 *                                       that the bursts are not in step with the limiter's
 *                                       10 ms quanta, which a real workload never is)
 *   tenant-worker contextonly SECONDS   a context and nothing else (a tenant's idle process)
 *   tenant-worker fill CHUNK_MIB SECONDS   a context, then CHUNK_MIB allocations until the
 *                                       limit refuses one, hold them SECONDS
 *   tenant-worker context               only try to create a context, print its result
 *
 * The kernel's length is the fake driver's FAKE_CUDA_KERNEL_US, set per process.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "preload-test.h"

static double now_s(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void sleep_ms(unsigned ms) {
        nanosleep(&(struct timespec) { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000 }, NULL);
}

/* Allocate chunk MiB at a time until refused; report what the process was told. */
static int fill(unsigned long chunk_mib, double seconds) {
        unsigned long n = 0;
        size_t f0 = 0, t0 = 0, f = 0, t = 0;
        CuDevicePtr p;
        CuResult r;

        test_context(0);
        sleep_ms(600); /* the monitor sees the context */
        ASSERT_CU(cuMemGetInfo_v2(&f0, &t0));
        while ((r = cuMemAlloc_v2(&p, chunk_mib * MiB)) == VG_CUDA_SUCCESS)
                n++;
        ASSERT_EQ(r, VG_CUDA_ERROR_OUT_OF_MEMORY);
        sleep_ms(600); /* the monitor sees the allocations */
        ASSERT_CU(cuMemGetInfo_v2(&f, &t));
        printf("fill: free at start %llu MiB of %llu; allocated %lu MiB; then free %llu MiB of %llu\n", f0 / MiB,
               t0 / MiB, n * chunk_mib, f / MiB, t / MiB);
        fflush(stdout);
        sleep_ms((unsigned) (seconds * 1000));
        return 0;
}

int main(int argc, char **argv) {
        double seconds, start, end;
        unsigned long launches = 0;
        CuFunction f;

        if (argc == 4 && strcmp(argv[1], "fill") == 0)
                return fill(strtoul(argv[2], NULL, 10), atof(argv[3]));
        if (argc == 2 && strcmp(argv[1], "context") == 0) {
                CuContext ctx;
                CuDevice dev;
                ASSERT_CU(cuInit(0));
                ASSERT_CU(cuDeviceGet(&dev, 0));
                printf("context: %d\n", (int) cuCtxCreate_v2(&ctx, 0, dev));
                return 0;
        }
        if (argc != 3) {
                fprintf(stderr, "usage: %s steady|bursts|contextonly SECONDS | fill CHUNK_MIB SECONDS | context\n",
                        argv[0]);
                return 2;
        }
        seconds = atof(argv[2]);
        test_context(0);
        f = test_kernel();
        start = now_s();
        end = start + seconds;
        if (strcmp(argv[1], "contextonly") == 0) {
                while (now_s() < end)
                        nanosleep(&(struct timespec) { .tv_nsec = 50 * 1000 * 1000 }, NULL);
        } else {
                bool bursts = strcmp(argv[1], "bursts") == 0, busy = true;
                unsigned seed = (unsigned) getpid();
                double next_switch = start + 0.04 + 0.02 * rand_r(&seed) / RAND_MAX;

                for (double t = start; t < end; t = now_s()) {
                        if (bursts && t >= next_switch) {
                                busy = !busy;
                                next_switch += 0.04 + 0.02 * rand_r(&seed) / RAND_MAX;
                        }
                        if (bursts && !busy) {
                                nanosleep(&(struct timespec) { .tv_nsec = 1000 * 1000 }, NULL);
                                continue;
                        }
                        ASSERT_CU(cuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL));
                        launches++;
                }
        }
        printf("launches %lu in %.1f s\n", launches, now_s() - start);
        return 0;
}
