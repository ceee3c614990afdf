/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * NVML's per-process queries, beyond the subset hami-dra itself uses (src/nvml-abi.h):
 * layouts as nvml.h declares them (NVML API reference, R535-R590), for the fake
 * libnvidia-ml.so.1 and the tests of the limiter against it.
 */

#include "nvml-abi.h"

/* The types are in src/nvml-abi.h (the usage monitor reads them too). */

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t device, unsigned int *infoCount,
                                                  nvmlProcessInfo_v1_t *infos);
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t device, unsigned int *infoCount,
                                                     nvmlProcessInfo_v2_t *infos);
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *infoCount,
                                                     nvmlProcessInfo_t *infos);
nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t device, nvmlProcessUtilizationSample_t *utilization,
                                             unsigned int *processSamplesCount, unsigned long long lastSeenTimeStamp);
nvmlReturn_t nvmlDeviceGetProcessesUtilizationInfo(nvmlDevice_t device, nvmlProcessesUtilizationInfo_t *procesesUtilInfo);
