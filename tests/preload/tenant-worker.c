/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One process of a tenant in the sharing tests (test-sharing.py): launches kernels on
 * device 0 for SECONDS, in a pattern, and prints how many it launched.
 *
 *   tenant-worker steady SECONDS        back to back
 *   tenant-worker bursts SECONDS        50 ms of launches, 50 ms idle, again
 *   tenant-worker contextonly SECONDS   a context and nothing else (a tenant's idle process)
 *
 * The kernel's length is the fake driver's FAKE_CUDA_KERNEL_US, set per process.
 */
#include <stdio.h>
#include <time.h>

#include "preload-test.h"

static double now_s(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
        double seconds, start, end;
        unsigned long launches = 0;
        CuFunction f;

        if (argc != 3) {
                fprintf(stderr, "usage: %s steady|bursts|contextonly SECONDS\n", argv[0]);
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
                bool bursts = strcmp(argv[1], "bursts") == 0;

                for (double t = start; t < end; t = now_s()) {
                        if (bursts && (unsigned long) ((t - start) * 20) % 2 == 1) {
                                nanosleep(&(struct timespec) { .tv_nsec = 5 * 1000 * 1000 }, NULL);
                                continue;
                        }
                        ASSERT_CU(cuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL));
                        launches++;
                }
        }
        printf("launches %lu in %.1f s\n", launches, now_s() - start);
        return 0;
}
