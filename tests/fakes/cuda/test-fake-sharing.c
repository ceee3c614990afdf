/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fake driver and NVML model processes sharing one GPU (fake-cuda-state.h), as an
 * H200 showed (docs/gpu-observed.md): per-process memory with each context's
 * share, host PIDs, dead processes reclaimed, kernels of two processes time-sliced on
 * one timeline with the switches belonging to nobody, and per-process utilization
 * samples every 200 ms, with NVML's size-query protocols.
 */
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>

#include "fake-cuda-state.h"
#include "nvml-process-abi.h"
#include "preload-test.h"

NvmlReturn nvmlInit_v2(void);
NvmlReturn nvmlDeviceGetHandleByIndex_v2(unsigned int index, NvmlDevice *device);
NvmlReturn nvmlDeviceGetUtilizationRates(NvmlDevice device, NvmlUtilization *u);

#define CTX_MEMORY (520 * MiB)
#define KERNEL_US 200
#define PERIOD_US 200000ULL /* FAKE_NVML_SAMPLE_MS */
#define MAX_SAMPLES 64

static nvmlDevice_t gpu0, gpu1;

static void sleep_ms(unsigned ms) {
        nanosleep(&(struct timespec) { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000 }, NULL);
}

static uint64_t realtime_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

/* ---- children: a pipe tells the parent they are ready, then they wait to die ---- */

static void tell(int fd, uint32_t v) {
        if (write(fd, &v, sizeof(v)) != sizeof(v))
                _exit(3);
}

static uint32_t hear(int fd) {
        uint32_t v = 0;
        ASSERT_EQ(read(fd, &v, sizeof(v)), sizeof(v));
        return v;
}

/* A failed assertion in the parent must not leave children running. */
static void die_with_parent(void) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() == 1)
                _exit(4);
}

/* A context on device 0 and `bytes` allocated; then `kernels` launched (-1: forever). */
static void hold(uint64_t bytes, int kernels, int ready) {
        CuFunction f;
        CuDevicePtr p;

        test_context(0);
        if (bytes)
                ASSERT_CU(cuMemAlloc_v2(&p, bytes));
        f = test_kernel();
        tell(ready, (uint32_t) getpid());
        for (int i = 0; kernels < 0 || i < kernels; i++)
                ASSERT_CU(cuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL));
        for (;;)
                pause();
}

static pid_t spawn(uint64_t bytes, int kernels) {
        int fds[2];
        pid_t pid;

        ASSERT_OK(pipe2(fds, O_CLOEXEC));
        pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                close(fds[0]);
                die_with_parent();
                hold(bytes, kernels, fds[1]);
        }
        close(fds[1]);
        ASSERT_EQ(hear(fds[0]), pid);
        close(fds[0]);
        return pid;
}

static void reap(pid_t pid) {
        ASSERT_OK(kill(pid, SIGKILL));
        ASSERT_EQ(waitpid(pid, NULL, 0), pid);
}

/* ---- NVML ---- */

static unsigned running(nvmlDevice_t d, nvmlProcessInfo_t *out, unsigned max) {
        unsigned n = max;
        ASSERT_EQ(nvmlDeviceGetComputeRunningProcesses_v3(d, &n, out), NVML_SUCCESS);
        return n;
}

static const nvmlProcessInfo_t *find_pid(const nvmlProcessInfo_t *list, unsigned n, uint32_t pid) {
        for (unsigned i = 0; i < n; i++)
                if (list[i].pid == pid)
                        return &list[i];
        return NULL;
}

static uint64_t nvml_used(nvmlDevice_t d) {
        NvmlMemory m;
        ASSERT_EQ(nvmlDeviceGetMemoryInfo((NvmlDevice) d, &m), VG_NVML_SUCCESS);
        ASSERT_EQ_U(m.used + m.free, m.total);
        return m.used;
}

static unsigned process_samples(nvmlDevice_t d, uint64_t last_seen, nvmlProcessUtilizationSample_t *out) {
        unsigned n = MAX_SAMPLES;
        nvmlReturn_t r = nvmlDeviceGetProcessUtilization(d, out, &n, last_seen);

        if (r == NVML_ERROR_NOT_FOUND)
                return 0;
        ASSERT_EQ(r, NVML_SUCCESS);
        return n;
}

/* ---- the tests ---- */

/* Running processes: context memory counted, the size-query protocol, a SIGKILLed
 * process's memory and entry reclaimed, and allocation past the device refused. */
static void test_memory(void) {
        nvmlProcessInfo_t list[8];
        nvmlProcessInfo_v2_t v2[8];
        nvmlProcessInfo_v1_t v1[8];
        CuContext ctx;
        CuDevicePtr p;
        unsigned n;
        pid_t child;

        n = 0;
        ASSERT_EQ(nvmlDeviceGetComputeRunningProcesses_v3(gpu0, &n, NULL), NVML_SUCCESS);
        ASSERT_EQ(n, 0);
        ASSERT_EQ_U(nvml_used(gpu0), 0);

        child = spawn(1024 * MiB, 0);
        ASSERT_EQ(nvmlDeviceGetComputeRunningProcesses_v3(gpu0, NULL, list), NVML_ERROR_INVALID_ARGUMENT);
        n = 0;
        ASSERT_EQ(nvmlDeviceGetComputeRunningProcesses_v3(gpu0, &n, NULL), NVML_ERROR_INSUFFICIENT_SIZE);
        ASSERT_EQ(n, 1);
        ASSERT_EQ(running(gpu0, list, 8), 1);
        ASSERT_EQ(list[0].pid, child);
        ASSERT_EQ_U(list[0].usedGpuMemory, CTX_MEMORY + 1024 * MiB); /* 1,544 MiB as on the H200 */
        ASSERT_EQ_U(list[0].gpuInstanceId, 0xFFFFFFFFu);
        n = 8;
        ASSERT_EQ(nvmlDeviceGetComputeRunningProcesses_v2(gpu0, &n, v2), NVML_SUCCESS);
        ASSERT_TRUE(n == 1 && v2[0].pid == (unsigned) child && v2[0].usedGpuMemory == CTX_MEMORY + 1024 * MiB);
        n = 8;
        ASSERT_EQ(nvmlDeviceGetComputeRunningProcesses(gpu0, &n, v1), NVML_SUCCESS);
        ASSERT_TRUE(n == 1 && v1[0].pid == (unsigned) child && v1[0].usedGpuMemory == CTX_MEMORY + 1024 * MiB);
        ASSERT_EQ(running(gpu1, list, 8), 0);
        ASSERT_EQ_U(nvml_used(gpu0), CTX_MEMORY + 1024 * MiB);

        /* This process too: two, and a buffer of one is too small. */
        ctx = test_context(0);
        n = 1;
        ASSERT_EQ(nvmlDeviceGetComputeRunningProcesses_v3(gpu0, &n, list), NVML_ERROR_INSUFFICIENT_SIZE);
        ASSERT_EQ(n, 2);
        ASSERT_EQ(running(gpu0, list, 8), 2);
        ASSERT_TRUE(find_pid(list, 2, (uint32_t) getpid()) && find_pid(list, 2, (uint32_t) child));
        ASSERT_EQ_U(find_pid(list, 2, (uint32_t) getpid())->usedGpuMemory, CTX_MEMORY);
        ASSERT_EQ_U(nvml_used(gpu0), 2 * CTX_MEMORY + 1024 * MiB);
        ASSERT_EQ_U(test_free(), (16ULL << 30) - 2 * CTX_MEMORY - 1024 * MiB);

        /* Past the device: refused; all of it: granted; then no room for a context. */
        ASSERT_EQ(cuMemAlloc_v2(&p, test_free() + 1), VG_CUDA_ERROR_OUT_OF_MEMORY);
        ASSERT_CU(cuMemAlloc_v2(&p, test_free()));
        ASSERT_EQ_U(test_free(), 0);
        CuContext c2;
        CuDevice dev0;
        ASSERT_CU(cuDeviceGet(&dev0, 0));
        ASSERT_EQ(cuCtxCreate_v2(&c2, 0, dev0), VG_CUDA_ERROR_OUT_OF_MEMORY);
        ASSERT_CU(cuCtxSetCurrent(ctx));
        ASSERT_CU(cuMemFree_v2(p));

        /* SIGKILLed: gone from the list, its memory back. */
        reap(child);
        ASSERT_EQ(running(gpu0, list, 8), 1);
        ASSERT_EQ(list[0].pid, getpid());
        ASSERT_EQ_U(nvml_used(gpu0), CTX_MEMORY);
        ASSERT_EQ_U(test_free(), (16ULL << 30) - CTX_MEMORY);

        ASSERT_CU(cuCtxDestroy_v2(ctx));
        ASSERT_EQ(running(gpu0, list, 8), 0);
        ASSERT_EQ_U(nvml_used(gpu0), 0);
}

/* More processes than a table holds (64), each SIGKILLed or exiting without freeing
 * anything: every one gets an entry, and nothing stays behind. */
static void test_reclaim(void) {
        nvmlProcessInfo_t list[8];
        pid_t pid;

        for (int i = 0; i < FAKE_PROCS_MAX + 6; i++)
                reap(spawn(64 * MiB, 0));
        pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                CuDevicePtr p;
                test_context(0);
                _exit(cuMemAlloc_v2(&p, 64 * MiB) == VG_CUDA_SUCCESS ? 0 : 1);
        }
        int status;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        ASSERT_EQ(running(gpu0, list, 8), 0);
        ASSERT_EQ_U(nvml_used(gpu0), 0);
}

/* A process in its own PID namespace (PID 1 there) is reported under its host PID. */
static void test_host_pid(void) {
        nvmlProcessUtilizationSample_t s[MAX_SAMPLES];
        nvmlProcessInfo_t list[8];
        int host[2], ready[2];
        uint32_t host_pid, ns_pid;
        pid_t mid;
        bool seen = false;

        ASSERT_OK(pipe2(host, O_CLOEXEC));
        ASSERT_OK(pipe2(ready, O_CLOEXEC));
        mid = fork();
        ASSERT_TRUE(mid >= 0);
        if (mid == 0) {
                pid_t inner;
                die_with_parent();
                if (unshare(CLONE_NEWPID) < 0 && unshare(CLONE_NEWUSER | CLONE_NEWPID) < 0) {
                        tell(host[1], 0);
                        _exit(0);
                }
                inner = fork();
                if (inner == 0) {
                        die_with_parent();
                        hold(64 * MiB, 500, ready[1]); /* 100 ms of kernels */
                }
                tell(host[1], (uint32_t) inner);
                waitpid(inner, NULL, 0);
                _exit(0);
        }
        close(host[1]);
        close(ready[1]);
        host_pid = hear(host[0]);
        if (host_pid == 0) {
                fprintf(stderr, "SKIP test_host_pid: unshare(CLONE_NEWPID) not permitted here\n");
                ASSERT_EQ(waitpid(mid, NULL, 0), mid);
                return;
        }
        ns_pid = hear(ready[0]);
        ASSERT_EQ(ns_pid, 1); /* what it sees itself as */
        ASSERT_EQ(running(gpu0, list, 8), 1);
        ASSERT_EQ(list[0].pid, host_pid);
        ASSERT_EQ_U(list[0].usedGpuMemory, CTX_MEMORY + 64 * MiB);
        for (int i = 0; i < 20 && !seen; i++) {
                sleep_ms(50);
                unsigned n = process_samples(gpu0, 0, s);
                for (unsigned j = 0; j < n; j++) {
                        ASSERT_EQ(s[j].pid, host_pid);
                        seen = true;
                }
        }
        ASSERT_TRUE(seen);
        ASSERT_OK(kill((pid_t) host_pid, SIGKILL));
        ASSERT_EQ(waitpid(mid, NULL, 0), mid);
        close(host[0]);
        close(ready[0]);
}

typedef struct Series {
        uint32_t pid;
        uint64_t last_us; /* timestamp of the last sample taken */
        unsigned n, sum;
} Series;

/* Poll every 50 ms for ms, per process from its own last timestamp; returns the device
 * utilization's minimum over the polls. */
static unsigned collect(Series *series, unsigned n_series, unsigned ms) {
        nvmlProcessUtilizationSample_t s[MAX_SAMPLES];
        unsigned device_min = 100;

        for (unsigned i = 0; i < n_series; i++)
                series[i].last_us = realtime_us();
        for (unsigned t = 0; t < ms; t += 50) {
                uint64_t since = series[0].last_us;
                NvmlUtilization u;

                sleep_ms(50);
                for (unsigned i = 1; i < n_series; i++)
                        since = series[i].last_us < since ? series[i].last_us : since;
                unsigned n = process_samples(gpu0, since, s);
                for (unsigned j = 0; j < n; j++)
                        for (unsigned i = 0; i < n_series; i++) {
                                Series *x = &series[i];
                                if (s[j].pid != x->pid || s[j].timeStamp <= x->last_us)
                                        continue;
                                ASSERT_TRUE(s[j].timeStamp <= realtime_us());
                                /* Windows of 200 ms: samples come whole periods apart. */
                                if (x->n > 0)
                                        ASSERT_EQ_U((s[j].timeStamp - x->last_us) % PERIOD_US, 0);
                                ASSERT_TRUE(s[j].smUtil <= 100 && s[j].memUtil == 0);
                                x->last_us = s[j].timeStamp;
                                x->sum += s[j].smUtil;
                                x->n++;
                        }
                ASSERT_EQ(nvmlDeviceGetUtilizationRates((NvmlDevice) gpu0, &u), VG_NVML_SUCCESS);
                device_min = u.gpu < device_min ? u.gpu : device_min;
        }
        return device_min;
}

/* The protocols of the two sample queries while two processes run. */
static void test_sample_protocols(pid_t a, pid_t b) {
        nvmlProcessUtilizationInfo_v1_t info[4];
        nvmlProcessesUtilizationInfo_t q = { .version = nvmlProcessesUtilizationInfo_v1 };
        unsigned n = 0;

        ASSERT_EQ(nvmlDeviceGetProcessUtilization(gpu0, NULL, &n, 0), NVML_ERROR_INSUFFICIENT_SIZE);
        ASSERT_EQ(n, 2);
        n = 1;
        ASSERT_EQ(nvmlDeviceGetProcessUtilization(gpu0, (nvmlProcessUtilizationSample_t[1]) { { 0 } }, &n, 0),
                  NVML_ERROR_INSUFFICIENT_SIZE);
        ASSERT_EQ(n, 2);
        ASSERT_EQ(nvmlDeviceGetProcessUtilization(gpu0, NULL, NULL, 0), NVML_ERROR_INVALID_ARGUMENT);
        n = 4;
        ASSERT_EQ(nvmlDeviceGetProcessUtilization(gpu0, (nvmlProcessUtilizationSample_t[4]) { { 0 } }, &n,
                                                  realtime_us() + 10000000),
                  NVML_ERROR_NOT_FOUND);

        ASSERT_EQ(nvmlDeviceGetProcessesUtilizationInfo(gpu0, NULL), NVML_ERROR_INVALID_ARGUMENT);
        q.version = sizeof(q) | (2u << 24);
        ASSERT_EQ(nvmlDeviceGetProcessesUtilizationInfo(gpu0, &q), NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
        q.version = nvmlProcessesUtilizationInfo_v1;
        ASSERT_EQ(nvmlDeviceGetProcessesUtilizationInfo(gpu0, &q), NVML_ERROR_INSUFFICIENT_SIZE);
        ASSERT_EQ(q.processSamplesCount, 2);
        q.procUtilArray = info;
        q.processSamplesCount = 4;
        ASSERT_EQ(nvmlDeviceGetProcessesUtilizationInfo(gpu0, &q), NVML_SUCCESS);
        ASSERT_EQ(q.processSamplesCount, 2);
        ASSERT_TRUE((info[0].pid == (unsigned) a && info[1].pid == (unsigned) b) ||
                    (info[0].pid == (unsigned) b && info[1].pid == (unsigned) a));
        for (int i = 0; i < 2; i++)
                ASSERT_TRUE(info[i].smUtil >= 25 && info[i].smUtil <= 65 && info[i].timeStamp <= realtime_us());
}

/* One process alone keeps the GPU busy; two split it about evenly, less the switches,
 * while the device reads busy throughout. */
static void test_time_slicing(void) {
        nvmlProcessUtilizationSample_t s[MAX_SAMPLES];
        Series solo[1], pair[2];
        unsigned device_min, avg_a, avg_b;
        pid_t a, b;

        a = spawn(0, -1);
        sleep_ms(500);
        solo[0] = (Series) { .pid = (uint32_t) a };
        device_min = collect(solo, 1, 1000);
        fprintf(stderr, "solo: %u samples, average smUtil %u%%, device >= %u%%\n", solo[0].n, solo[0].sum / solo[0].n,
               device_min);
        ASSERT_TRUE(solo[0].n >= 4);
        ASSERT_TRUE(solo[0].sum / solo[0].n >= 95);

        b = spawn(0, -1);
        sleep_ms(600); /* a's queue (205 ms of kernels) drains, then they alternate */
        pair[0] = (Series) { .pid = (uint32_t) a };
        pair[1] = (Series) { .pid = (uint32_t) b };
        device_min = collect(pair, 2, 1600);
        ASSERT_TRUE(pair[0].n >= 6 && pair[1].n >= 6);
        avg_a = pair[0].sum / pair[0].n;
        avg_b = pair[1].sum / pair[1].n;
        fprintf(stderr, "shared: %u and %u samples, average smUtil %u%% and %u%%, device >= %u%%\n", pair[0].n, pair[1].n,
               avg_a, avg_b, device_min);
        ASSERT_TRUE(avg_a >= 38 && avg_a <= 52 && avg_b >= 38 && avg_b <= 52);
        ASSERT_TRUE(avg_a <= avg_b + 5 && avg_b <= avg_a + 5);
        ASSERT_TRUE(avg_a + avg_b <= 95); /* the switches: 200 / (200 + 30) = 87 % */
        ASSERT_TRUE(device_min >= 97);    /* and the device reads busy all along */
        /* Each process's windows have their own phase, as on the H200. */
        ASSERT_TRUE(pair[0].last_us % PERIOD_US != pair[1].last_us % PERIOD_US);

        test_sample_protocols(a, b);
        reap(a);
        reap(b);
        ASSERT_EQ(process_samples(gpu0, 0, s), 0); /* the dead are no longer sampled */
}

int main(void) {
        setenv("FAKE_CUDA_CONTEXT_MEMORY", "545259520", 1); /* 520 MiB, as on the H200 */
        setenv("FAKE_CUDA_KERNEL_US", "200", 1);             /* the H200 probe's kernels */
        unsetenv("FAKE_CUDA_SWITCH_US");                     /* the default */
        unsetenv("FAKE_NVML_SAMPLE_MS");
        test_fresh_state();
        ASSERT_CU(cuInit(0));
        ASSERT_EQ(nvmlInit_v2(), VG_NVML_SUCCESS);
        ASSERT_EQ(nvmlDeviceGetHandleByIndex_v2(0, (NvmlDevice *) &gpu0), VG_NVML_SUCCESS);
        ASSERT_EQ(nvmlDeviceGetHandleByIndex_v2(1, (NvmlDevice *) &gpu1), VG_NVML_SUCCESS);
        TEST(test_memory);
        TEST(test_reclaim);
        TEST(test_host_pid);
        TEST(test_time_slicing);
        return 0;
}
