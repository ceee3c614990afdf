/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SM limiter accuracy. Two processes launch 2 ms kernels as fast as they can on device
 * 0 (which would keep it 100% busy); with CUDA_DEVICE_SM_LIMIT=L the utilization the
 * fake NVML reports must settle within L +- 5 points. Measured over the last 2 s of a
 * 4 s run. Argument: the limit (the preload run sets it in the environment too).
 */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>

#include "preload-test.h"

NvmlReturn nvmlInit_v2(void);
NvmlReturn nvmlDeviceGetHandleByIndex_v2(unsigned int index, NvmlDevice *device);
NvmlReturn nvmlDeviceGetUtilizationRates(NvmlDevice device, NvmlUtilization *u);

static void worker(void) {
        CuFunction f;

        test_context(0);
        f = test_kernel();
        for (;;)
                if (cuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL) != VG_CUDA_SUCCESS)
                        _exit(1);
}

static void sleep_ms(unsigned ms) {
        nanosleep(&(struct timespec) { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000 }, NULL);
}

int main(int argc, char **argv) {
        const char *lim = getenv("CUDA_DEVICE_SM_LIMIT");
        unsigned limit = preloaded() && lim ? (unsigned) atoi(lim) : 100;
        unsigned sum = 0, samples = 0;
        NvmlDevice d;
        pid_t pids[2];

        test_fresh_state();
        ASSERT_CU(cuInit(0));
        for (int i = 0; i < 2; i++) {
                pids[i] = fork();
                ASSERT_TRUE(pids[i] >= 0);
                if (pids[i] == 0)
                        worker();
        }
        ASSERT_EQ(nvmlInit_v2(), VG_NVML_SUCCESS);
        ASSERT_EQ(nvmlDeviceGetHandleByIndex_v2(0, &d), VG_NVML_SUCCESS);
        sleep_ms(2000);
        for (int i = 0; i < 8; i++) {
                NvmlUtilization u;
                sleep_ms(250);
                ASSERT_EQ(nvmlDeviceGetUtilizationRates(d, &u), VG_NVML_SUCCESS);
                sum += u.gpu;
                samples++;
        }
        for (int i = 0; i < 2; i++) {
                kill(pids[i], SIGKILL);
                waitpid(pids[i], NULL, 0);
        }
        unsigned avg = sum / samples;
        printf("limit %u%%: measured %u%%\n", limit, avg);
        ASSERT_TRUE(avg + 5 >= limit && avg <= limit + 5);
        return 0;
}
