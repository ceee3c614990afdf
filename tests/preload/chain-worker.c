/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The program test-container-chain.py runs inside a podman container whose GPU, limits,
 * libvgpu.so, /etc/ld.so.preload, fake driver and shared region all come from the CDI
 * spec the daemon wrote. It asserts only against the claim (1 GiB, 30% SM on device 0),
 * never against the environment, so a missing CDI edit fails here.
 *
 *   chain-worker hold MIB READY RELEASE   allocate MIB, create READY, wait for RELEASE,
 *                                         exit without freeing
 *   chain-worker second HELD_MIB UID      the second process: OOM past the limit, the
 *                                         memory views, a short SM-limited launch loop
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <stdio.h>
#include <time.h>

#include "preload-test.h"

NvmlReturn nvmlInit_v2(void);
NvmlReturn nvmlDeviceGetHandleByIndex_v2(unsigned int index, NvmlDevice *device);
NvmlReturn nvmlDeviceGetUtilizationRates(NvmlDevice device, NvmlUtilization *u);

#define LIMIT (1024 * MiB)
#define DRIVER_DIR "/usr/lib/x86_64-linux-gnu/"

static void sleep_ms(unsigned ms) {
        nanosleep(&(struct timespec) { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000 }, NULL);
}

/* The library the loader found for soname is the file CDI mounted at DRIVER_DIR (on a
 * merged-/usr image the loader may name it through the /lib link). */
static void check_loaded_from(const char *soname) {
        char want[PATH_MAX], got[PATH_MAX], path[PATH_MAX];
        struct link_map *m = NULL;
        void *h;

        h = dlopen(soname, RTLD_NOW | RTLD_NOLOAD);
        ASSERT_NOT_NULL(h);
        ASSERT_OK(dlinfo(h, RTLD_DI_LINKMAP, &m));
        snprintf(path, sizeof(path), "%s%s", DRIVER_DIR, soname);
        ASSERT_NOT_NULL(realpath(path, want));
        ASSERT_NOT_NULL(realpath(m->l_name, got));
        ASSERT_STREQ(got, want);
        dlclose(h);
}

/* libvgpu.so interposes, and the driver the loader found is the one CDI mounted in. */
static void check_chain(void) {
        ASSERT_TRUE(preloaded());
        check_loaded_from("libcuda.so.1");
        check_loaded_from("libnvidia-ml.so.1");
}

static void check_memory(NvmlDevice d, uint64_t used) {
        size_t f = 0, t = 0;
        NvmlMemory m;

        ASSERT_CU(cuMemGetInfo_v2(&f, &t));
        ASSERT_EQ_U(t, LIMIT);
        ASSERT_EQ_U(f, LIMIT - used);
        ASSERT_EQ(nvmlDeviceGetMemoryInfo(d, &m), VG_NVML_SUCCESS);
        ASSERT_EQ_U(m.total, LIMIT);
        ASSERT_EQ_U(m.used, used);
        ASSERT_EQ_U(m.free, LIMIT - used);
        printf("memory: total %llu MiB, used %llu MiB (cuMemGetInfo and NVML agree)\n", (unsigned long long) (t / MiB),
               (unsigned long long) (m.used / MiB));
}

static int hold(uint64_t mib, const char *ready, const char *release) {
        CuDevicePtr p;
        int fd;

        check_chain();
        test_context(0);
        ASSERT_CU(cuMemAlloc_v2(&p, mib * MiB));
        printf("hold: uid %u allocated %llu MiB\n", (unsigned) getuid(), (unsigned long long) mib);
        fflush(stdout);
        fd = open(ready, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        ASSERT_TRUE(fd >= 0);
        close(fd);
        for (int i = 0; i < 600 && access(release, F_OK) < 0; i++)
                sleep_ms(50);
        ASSERT_OK(access(release, F_OK));
        /* Exit still holding it: the region must reclaim a dead process's usage. */
        printf("hold: exits holding %llu MiB\n", (unsigned long long) mib);
        return 0;
}

/* A short launch loop on the SM-limited device: 1 ms kernels flat out would keep the
 * fake device 100% busy; under a 30% limit the bucket holds it well below. Only a loose
 * bound, so the load of the machine cannot make it fail. */
static void check_sm_limit(NvmlDevice d) {
        CuFunction f = test_kernel();
        struct timespec start, now;
        NvmlUtilization u;
        unsigned launches = 0;

        clock_gettime(CLOCK_MONOTONIC, &start);
        do {
                ASSERT_CU(cuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL));
                launches++;
                clock_gettime(CLOCK_MONOTONIC, &now);
        } while ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 < 1000);
        ASSERT_EQ(nvmlDeviceGetUtilizationRates(d, &u), VG_NVML_SUCCESS);
        printf("sm: %u launches in 1 s, utilization %u%%\n", launches, u.gpu);
        ASSERT_TRUE(u.gpu < 70);
}

static int second(uint64_t held_mib, unsigned uid) {
        CuDevicePtr p;
        NvmlDevice d;

        check_chain();
        ASSERT_EQ(getuid(), uid);
        test_context(0);
        ASSERT_EQ(nvmlInit_v2(), VG_NVML_SUCCESS);
        ASSERT_EQ(nvmlDeviceGetHandleByIndex_v2(0, &d), VG_NVML_SUCCESS);
        check_memory(d, held_mib * MiB);
        ASSERT_EQ(cuMemAlloc_v2(&p, 400 * MiB), VG_CUDA_ERROR_OUT_OF_MEMORY);
        printf("second: uid %u: 400 MiB refused (CUDA_ERROR_OUT_OF_MEMORY)\n", uid);
        ASSERT_CU(cuMemAlloc_v2(&p, 300 * MiB));
        printf("second: uid %u: 300 MiB granted\n", uid);
        check_memory(d, (held_mib + 300) * MiB);
        check_sm_limit(d);
        ASSERT_CU(cuMemFree_v2(p));
        check_memory(d, held_mib * MiB);
        return 0;
}

int main(int argc, char **argv) {
        setvbuf(stdout, NULL, _IOLBF, 0);
        if (argc == 5 && strcmp(argv[1], "hold") == 0)
                return hold(strtoull(argv[2], NULL, 10), argv[3], argv[4]);
        if (argc == 4 && strcmp(argv[1], "second") == 0)
                return second(strtoull(argv[2], NULL, 10), (unsigned) atoi(argv[3]));
        fprintf(stderr, "usage: %s hold MIB READY RELEASE | second HELD_MIB UID\n", argv[0]);
        return 2;
}
