// SPDX-License-Identifier: Apache-2.0
//
// overhead: what one driver call costs the host, for bench/gpu/run.sh, which runs it
// without libvgpu.so and under it (no limits, then with limits).
//
//   launch: ns per cuLaunchKernel of an empty kernel (1 block, 32 threads), each call
//           timed alone; the stream is drained every 256 launches, outside the timing,
//           so the queue never fills (a full queue would time the GPU, not the call).
//   alloc:  ns per cuMemAlloc(4 KiB) + cuMemFree pair, each pair timed alone.
//
// Before the launch timing it launches (untimed) for --warm seconds, so that an SM
// limiter has settled its rate. Output: OVERHEAD label=L what=launch|alloc n=N
// median_ns=... p99_ns=... mean_ns=... max_ns=...

#include <cuda.h>
#include <cuda_runtime.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


#include "probe.cuh"

__global__ void empty_kernel(void) {
}

static int64_t mono_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp64(const void *a, const void *b) {
        int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
        return x < y ? -1 : x > y;
}

static void report(const char *what, int64_t *v, size_t n) {
        double sum = 0;
        for (size_t i = 0; i < n; i++)
                sum += (double) v[i];
        qsort(v, n, sizeof *v, cmp64);
        size_t p99 = (size_t) ((double) (n - 1) * 0.99);
        printf("OVERHEAD label=%s what=%s n=%zu median_ns=%lld p99_ns=%lld mean_ns=%.0f max_ns=%lld\n", probe_label, what,
               n, (long long) v[n / 2], (long long) v[p99], sum / (double) n, (long long) v[n - 1]);
        fflush(stdout);
}

int main(int argc, char **argv) {
        probe_name = "OVERHEAD";
        probe_label = "overhead";
        size_t launches = 20000, allocs = 5000;
        double warm = 1.0, max_secs = 5.0;

        for (int i = 1; i + 1 < argc; i += 2) {
                if (!strcmp(argv[i], "--launches"))
                        launches = strtoul(argv[i + 1], NULL, 10);
                else if (!strcmp(argv[i], "--allocs"))
                        allocs = strtoul(argv[i + 1], NULL, 10);
                else if (!strcmp(argv[i], "--warm"))
                        warm = atof(argv[i + 1]);
                else if (!strcmp(argv[i], "--max-secs"))
                        max_secs = atof(argv[i + 1]);
                else if (!strcmp(argv[i], "--label"))
                        probe_label = argv[i + 1];
                else {
                        fprintf(stderr, "usage: overhead [--launches N] [--allocs N] [--warm S] [--max-secs S] [--label L]\n");
                        return 1;
                }
        }
        if (launches < 1 || allocs < 1) {
                fprintf(stderr, "overhead: --launches and --allocs must be at least 1\n");
                return 1;
        }

        CR(cudaSetDevice(0));
        CR(cudaFree(0));
        cudaFunction_t rf;
        CR(cudaGetFuncBySymbol(&rf, (const void *) empty_kernel));
        CUfunction f = (CUfunction) rf;
        CUstream stream;
        CU(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));

        // Warm-up: the module, the clocks, and an SM limiter's rate.
        int64_t until = mono_ns() + (int64_t) (warm * 1e9);
        size_t warmed = 0;
        do {
                CU(cuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 0, stream, NULL, NULL));
                if (++warmed % 256 == 0)
                        CU(cuStreamSynchronize(stream));
        } while (mono_ns() < until);
        CU(cuStreamSynchronize(stream));

        int64_t *v = (int64_t *) malloc((launches > allocs ? launches : allocs) * sizeof *v);
        // A limiter that throttles hard must not hold the run: stop after max_secs.
        int64_t t_all = mono_ns(), stop = t_all + (int64_t) (max_secs * 1e9);
        size_t done = 0;
        for (size_t i = 0; i < launches; i++) {
                int64_t t0 = mono_ns();
                CU(cuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 0, stream, NULL, NULL));
                int64_t t1 = mono_ns();
                v[i] = t1 - t0;
                done = i + 1;
                if ((i + 1) % 256 == 0)
                        CU(cuStreamSynchronize(stream));
                if (t1 > stop)
                        break;
        }
        CU(cuStreamSynchronize(stream));
        double launch_wall_s = (double) (mono_ns() - t_all) / 1e9;
        report("launch", v, done);
        printf("OVERHEAD_INFO label=%s warm_launches=%zu timed_launches=%zu launches_per_s=%.0f cut_short=%d\n",
               probe_label, warmed, done, (double) done / launch_wall_s, done < launches);

        for (size_t i = 0; i < 200; i++) { // warm the allocator
                CUdeviceptr p;
                CU(cuMemAlloc(&p, 4096));
                CU(cuMemFree(p));
        }
        stop = mono_ns() + (int64_t) (max_secs * 1e9);
        done = 0;
        for (size_t i = 0; i < allocs; i++) {
                CUdeviceptr p;
                int64_t t0 = mono_ns();
                CU(cuMemAlloc(&p, 4096));
                CU(cuMemFree(p));
                int64_t t1 = mono_ns();
                v[i] = t1 - t0;
                done = i + 1;
                if (t1 > stop)
                        break;
        }
        report("alloc", v, done);
        free(v);
        return 0;
}
