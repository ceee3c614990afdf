// SPDX-License-Identifier: Apache-2.0
// What the probes (spin.cu, overhead.cu) share: checked CUDA calls that print one
// "<PROBE>_ERROR label=... call=... err=... line=..." line and exit 2.
#pragma once

#include <stdio.h>
#include <stdlib.h>

#include <cuda.h>
#include <cuda_runtime.h>

static const char *probe_name;   // "SPIN", "OVERHEAD": set by each probe's main
static const char *probe_label;  // --label

static void probe_fail(const char *call, const char *err, int line) {
        printf("%s_ERROR label=%s call=%s err=%s line=%d\n", probe_name, probe_label, call, err ? err : "?", line);
        fflush(stdout);
        exit(2);
}

#define CU(call)                                                                                   \
        do {                                                                                       \
                CUresult r_ = (call);                                                              \
                if (r_ != CUDA_SUCCESS) {                                                          \
                        const char *s_ = NULL;                                                     \
                        cuGetErrorName(r_, &s_);                                                   \
                        probe_fail(#call, s_, __LINE__);                                           \
                }                                                                                  \
        } while (0)

#define CR(call)                                                                                   \
        do {                                                                                       \
                cudaError_t r_ = (call);                                                           \
                if (r_ != cudaSuccess)                                                             \
                        probe_fail(#call, cudaGetErrorName(r_), __LINE__);                         \
        } while (0)
