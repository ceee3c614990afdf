/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A process of a container of test-claim-requests.py: allocations on CUDA devices, each
 * expected to succeed or to be refused, kept until exit.
 *
 *   claim-worker ORDINAL:MIB:ok|oom ...
 *
 * With CLAIM_WORKER_READY and CLAIM_WORKER_RELEASE set, it then creates the first file
 * and waits (at most 30 s) for the second before exiting, holding what it allocated.
 */
#include <stdio.h>
#include <time.h>

#include "preload-test.h"

static CuContext contexts[16];

static void use_device(int ordinal) {
        CuDevice dev;

        if (ordinal < 0 || ordinal >= 16)
                TEST_FAIL("bad ordinal %d", ordinal);
        if (!contexts[ordinal]) {
                ASSERT_CU(cuDeviceGet(&dev, ordinal));
                ASSERT_CU(cuCtxCreate_v2(&contexts[ordinal], 0, dev));
        }
        ASSERT_CU(cuCtxSetCurrent(contexts[ordinal]));
}

int main(int argc, char **argv) {
        const char *ready = getenv("CLAIM_WORKER_READY"), *release = getenv("CLAIM_WORKER_RELEASE");

        ASSERT_TRUE(preloaded());
        ASSERT_CU(cuInit(0));
        for (int i = 1; i < argc; i++) {
                int ordinal;
                unsigned long long mib;
                char expect[8];
                CuDevicePtr p;
                CuResult r;

                if (sscanf(argv[i], "%d:%llu:%7s", &ordinal, &mib, expect) != 3)
                        TEST_FAIL("bad step \"%s\"", argv[i]);
                use_device(ordinal);
                r = cuMemAlloc_v2(&p, mib * MiB);
                if (strcmp(expect, "ok") == 0 ? r != VG_CUDA_SUCCESS : r != VG_CUDA_ERROR_OUT_OF_MEMORY)
                        TEST_FAIL("device %d: %llu MiB: got CUDA error %d, expected %s", ordinal, mib, (int) r, expect);
                printf("device %d: %llu MiB: %s\n", ordinal, mib, expect);
        }
        if (ready && release) {
                FILE *f = fopen(ready, "we");
                ASSERT_NOT_NULL(f);
                fclose(f);
                for (int i = 0; i < 3000 && access(release, F_OK) < 0; i++)
                        nanosleep(&(struct timespec) { .tv_nsec = 10000000 }, NULL);
        }
        return 0;
}
