/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The fake NVML's per-process queries, from the fake CUDA driver's process table
 * (tests/fakes/cuda/fake-cuda-state.h; without FAKE_CUDA_STATE a GPU has no processes):
 *
 * nvmlDeviceGetComputeRunningProcesses (v1 struct), _v2, _v3: the live processes with a
 * context or memory on the GPU. PIDs are host PIDs, as the kernel driver records them,
 * whatever PID namespace the process or the caller is in; usedGpuMemory counts the
 * contexts' memory. *infoCount smaller than the count: NVML_ERROR_INSUFFICIENT_SIZE and
 * the count in *infoCount (so *infoCount = 0 with infos NULL asks the count; none
 * running: NVML_SUCCESS and 0).
 *
 * nvmlDeviceGetProcessUtilization, nvmlDeviceGetProcessesUtilizationInfo: the driver
 * samples each process every FAKE_NVML_SAMPLE_MS (200, what an H200 showed), each
 * process in its own phase; smUtil is the integer percent of that window its kernels
 * kept the GPU busy (context switches belong to nobody); memUtil and the rest are 0.
 * Each call returns, per process, its most recent complete window that ended after
 * lastSeenTimeStamp and in which it ran at all (an idle process is missing), over the
 * last ~4 s. timeStamp: the window's end in CLOCK_REALTIME microseconds (as
 * gettimeofday() tells; derived from CLOCK_MONOTONIC with the offset recorded when the
 * state was created, so a sample keeps its timestamp from call to call). No sample:
 * NVML_ERROR_NOT_FOUND. A NULL array or a count too small: NVML_ERROR_INSUFFICIENT_SIZE
 * with the number of samples there are now.
 */

#include <stdlib.h>

#include "fake-cuda-state.h"
#include "fake-nvml.h"
#include "nvml-process-abi.h"

#define EXPORT __attribute__((visibility("default")))

typedef void (*WriteInfo)(void *infos, unsigned i, const FakeProcessInfo *p);

static void write_v1(void *infos, unsigned i, const FakeProcessInfo *p) {
        ((nvmlProcessInfo_v1_t *) infos)[i] = (nvmlProcessInfo_v1_t) { .pid = p->pid, .usedGpuMemory = p->memory };
}

static void write_v2(void *infos, unsigned i, const FakeProcessInfo *p) {
        ((nvmlProcessInfo_v2_t *) infos)[i] = (nvmlProcessInfo_v2_t) {
                .pid = p->pid,
                .usedGpuMemory = p->memory,
                .gpuInstanceId = NVML_VALUE_NOT_AVAILABLE_UINT,
                .computeInstanceId = NVML_VALUE_NOT_AVAILABLE_UINT,
        };
}

static nvmlReturn_t running(const char *function, nvmlDevice_t device, unsigned *count, void *infos, WriteInfo w) {
        FakeProcessInfo list[FAKE_PROCS_MAX];
        struct FakeDevice *d;
        unsigned n;
        FakeGpu *g;
        nvmlReturn_t r = fake_nvml_enter(function, device, true, &g);

        if (r != NVML_SUCCESS)
                return r;
        d = fake_nvml_cuda_device(g);
        n = d ? fake_state_processes(d, list, FAKE_PROCS_MAX) : 0;
        if (!count)
                r = NVML_ERROR_INVALID_ARGUMENT;
        else if (*count < n) {
                *count = n;
                r = NVML_ERROR_INSUFFICIENT_SIZE;
        } else if (n > 0 && !infos)
                r = NVML_ERROR_INVALID_ARGUMENT;
        else {
                for (unsigned i = 0; i < n; i++)
                        w(infos, i, &list[i]);
                *count = n;
        }
        fake_nvml_leave();
        return r;
}

EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t device, unsigned int *infoCount,
                                                         nvmlProcessInfo_v1_t *infos) {
        return running(__func__, device, infoCount, infos, write_v1);
}

EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t device, unsigned int *infoCount,
                                                            nvmlProcessInfo_v2_t *infos) {
        return running(__func__, device, infoCount, infos, write_v2);
}

EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *infoCount,
                                                            nvmlProcessInfo_t *infos) {
        return running(__func__, device, infoCount, infos, write_v2);
}

/* ---- utilization samples ---- */

static uint64_t sample_period_ms(void) {
        const char *v = getenv("FAKE_NVML_SAMPLE_MS");
        uint64_t ms = v && *v ? strtoull(v, NULL, 10) : 200;
        return ms ? ms : 200;
}

/* Lock held: the samples of g newer than last_seen_us, up to max; how many there are. */
static unsigned samples(const FakeGpu *g, unsigned long long last_seen_us, FakeSample *out, unsigned max) {
        struct FakeDevice *d = fake_nvml_cuda_device(g);

        return d ? fake_state_samples(fake_state_get(), d, sample_period_ms(), last_seen_us, out, max) : 0;
}

/* The protocol both functions share: NOT_FOUND without samples, INSUFFICIENT_SIZE and
 * the count for a missing or short array. */
static nvmlReturn_t samples_fit(unsigned n, bool have_array, unsigned *count) {
        if (n == 0)
                return NVML_ERROR_NOT_FOUND;
        if (!have_array || *count < n) {
                *count = n;
                return NVML_ERROR_INSUFFICIENT_SIZE;
        }
        *count = n;
        return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t device, nvmlProcessUtilizationSample_t *utilization,
                                                    unsigned int *processSamplesCount,
                                                    unsigned long long lastSeenTimeStamp) {
        FakeSample list[FAKE_PROCS_MAX];
        unsigned n;
        FakeGpu *g;
        nvmlReturn_t r = fake_nvml_enter(__func__, device, true, &g);

        if (r != NVML_SUCCESS)
                return r;
        if (!processSamplesCount) {
                fake_nvml_leave();
                return NVML_ERROR_INVALID_ARGUMENT;
        }
        n = samples(g, lastSeenTimeStamp, list, FAKE_PROCS_MAX);
        r = samples_fit(n, utilization != NULL, processSamplesCount);
        for (unsigned i = 0; r == NVML_SUCCESS && i < n; i++)
                utilization[i] = (nvmlProcessUtilizationSample_t) {
                        .pid = list[i].pid, .timeStamp = list[i].timestamp_us, .smUtil = list[i].sm_util
                };
        fake_nvml_leave();
        return r;
}

EXPORT nvmlReturn_t nvmlDeviceGetProcessesUtilizationInfo(nvmlDevice_t device, nvmlProcessesUtilizationInfo_t *info) {
        FakeSample list[FAKE_PROCS_MAX];
        unsigned n;
        FakeGpu *g;
        nvmlReturn_t r = fake_nvml_enter(__func__, device, true, &g);

        if (r != NVML_SUCCESS)
                return r;
        if (!info) {
                fake_nvml_leave();
                return NVML_ERROR_INVALID_ARGUMENT;
        }
        if (info->version != nvmlProcessesUtilizationInfo_v1) {
                fake_nvml_leave();
                return (nvmlReturn_t) NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
        }
        n = samples(g, info->lastSeenTimeStamp, list, FAKE_PROCS_MAX);
        r = samples_fit(n, info->procUtilArray != NULL, &info->processSamplesCount);
        for (unsigned i = 0; r == NVML_SUCCESS && i < n; i++)
                info->procUtilArray[i] = (nvmlProcessUtilizationInfo_v1_t) {
                        .timeStamp = list[i].timestamp_us, .pid = list[i].pid, .smUtil = list[i].sm_util
                };
        fake_nvml_leave();
        return r;
}
