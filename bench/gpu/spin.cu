// SPDX-License-Identifier: Apache-2.0
//
// spin: the compute-share probe of bench/gpu/run.sh.
//
// A kernel that spins for --kernel-us microseconds (clock64 cycles from the device's
// clock-rate attribute) on every SM (grid = 4 x SM count, 128 threads), launched back
// to back through the DRIVER API (cuLaunchKernel, the entry point libvgpu.so
// interposes) for --secs seconds. Block 0 of every kernel stamps %globaltimer at its
// start and end into a device array, so what ran when is read off the GPU, not guessed
// from the host. Counting happens afterwards, over the window [start + warm, start + secs]
// of CLOCK_REALTIME (mapped onto the GPU timer), so tenants started by one script share
// one window (--start-at).
//
// Modes: --mode short (20 us kernels), long (5 ms), mid (200 us), burst (200 us kernels,
// back-to-back launches for 40 to 60 ms, then idle for 40 to 60 ms, the lengths random so
// that the stretches are not in step with the limiter's 10 ms quanta);
// --kernel-us/--on-ms/--off-ms override (the mean lengths).
// Outputs one machine-readable line: SPIN key=value ...  (and SPIN_BINS, per 0.5 s).
// Never prints a figure it did not measure: fields it could not get are "na".

#include <cuda.h>
#include <cuda_runtime.h>

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_KERNELS (1u << 20)


#include "probe.cuh"

__device__ __forceinline__ unsigned long long globaltimer(void) {
        unsigned long long t;
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
        return t;
}

// Every thread spins for `cycles` SM clocks. Block 0, thread 0 stamps the GPU timer.
__global__ void spin_kernel(long long cycles, unsigned seq, unsigned long long *starts,
                            unsigned long long *ends) {
        unsigned long long t0 = 0;
        if (blockIdx.x == 0 && threadIdx.x == 0)
                t0 = globaltimer();
        long long c0 = clock64();
        while (clock64() - c0 < cycles) {
        }
        if (blockIdx.x == 0 && threadIdx.x == 0 && seq < MAX_KERNELS) {
                starts[seq] = t0;
                ends[seq] = globaltimer();
        }
}

__global__ void stamp_kernel(unsigned long long *out) {
        *out = globaltimer();
}

static int64_t realtime_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_ns(int64_t ns) {
        if (ns <= 0)
                return;
        struct timespec ts = { (time_t) (ns / 1000000000LL), (long) (ns % 1000000000LL) };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
        }
}

static void usage(void) {
        fprintf(stderr,
                "usage: spin [--mode short|mid|long|burst] [--kernel-us N] [--secs S] [--warm W]\n"
                "            [--on-ms N --off-ms N] [--start-at REALTIME_NS] [--label L] [--calibrate]\n");
        exit(1);
}

int main(int argc, char **argv) {
        probe_name = "SPIN";
        probe_label = "spin";
        const char *mode = "short";
        double kernel_us = -1, secs = 4, warm = 1.5, on_ms = -1, off_ms = -1;
        int64_t start_at = 0;
        int calibrate = 0;

        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                const char *v = i + 1 < argc ? argv[i + 1] : NULL;
                if (!strcmp(a, "--calibrate")) {
                        calibrate = 1;
                        continue;
                }
                if (!v)
                        usage();
                if (!strcmp(a, "--mode"))
                        mode = v;
                else if (!strcmp(a, "--kernel-us"))
                        kernel_us = atof(v);
                else if (!strcmp(a, "--secs"))
                        secs = atof(v);
                else if (!strcmp(a, "--warm"))
                        warm = atof(v);
                else if (!strcmp(a, "--on-ms"))
                        on_ms = atof(v);
                else if (!strcmp(a, "--off-ms"))
                        off_ms = atof(v);
                else if (!strcmp(a, "--start-at"))
                        start_at = strtoll(v, NULL, 10);
                else if (!strcmp(a, "--label"))
                        probe_label = v;
                else
                        usage();
                i++;
        }
        int burst = !strcmp(mode, "burst");
        if (kernel_us < 0)
                kernel_us = !strcmp(mode, "short") ? 20 : !strcmp(mode, "long") ? 5000 : 200;
        if (burst) {
                if (on_ms < 0)
                        on_ms = 50;
                if (off_ms < 0)
                        off_ms = 50;
        }
        if (strcmp(mode, "short") && strcmp(mode, "long") && strcmp(mode, "mid") && !burst)
                usage();
        if (secs <= warm || kernel_us <= 0)
                usage();

        // Context: the runtime's primary context (its driver calls go through
        // cuGetProcAddress, which libvgpu answers); launches below call cuLaunchKernel.
        CR(cudaSetDevice(0));
        CR(cudaFree(0));
        int sms = 0, clock_khz = 0;
        CR(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
        CR(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0));
        long long cycles = (long long) (kernel_us * (double) clock_khz / 1000.0);

        cudaFunction_t rf;
        CR(cudaGetFuncBySymbol(&rf, (const void *) spin_kernel));
        CUfunction f = (CUfunction) rf;
        CUstream stream;
        CU(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));

        unsigned long long *d_starts, *d_ends, *d_stamp;
        CR(cudaMalloc(&d_starts, MAX_KERNELS * sizeof(unsigned long long)));
        CR(cudaMalloc(&d_ends, MAX_KERNELS * sizeof(unsigned long long)));
        CR(cudaMalloc(&d_stamp, sizeof(unsigned long long)));
        CR(cudaMemset(d_starts, 0, MAX_KERNELS * sizeof(unsigned long long)));
        CR(cudaMemset(d_ends, 0, MAX_KERNELS * sizeof(unsigned long long)));

        // Map CLOCK_REALTIME onto %globaltimer: the best of 5 bracketed stamps.
        int64_t offset = 0, best = INT64_MAX;
        for (int k = 0; k < 5; k++) {
                unsigned long long g;
                // h0 after the launch returns: a throttled launch (libvgpu) sleeps before
                // it submits, and that sleep must not widen the bracket.
                stamp_kernel<<<1, 1, 0, (cudaStream_t) stream>>>(d_stamp);
                int64_t h0 = realtime_ns();
                CR(cudaStreamSynchronize((cudaStream_t) stream));
                int64_t h1 = realtime_ns();
                CR(cudaMemcpy(&g, d_stamp, sizeof g, cudaMemcpyDeviceToHost));
                if (h1 - h0 < best) {
                        best = h1 - h0;
                        offset = (int64_t) g - (h0 + (h1 - h0) / 2);
                }
        }

        // Optional: how long one kernel really takes, launched alone (events).
        double calib_us = NAN;
        if (calibrate) {
                cudaEvent_t e0, e1;
                CR(cudaEventCreate(&e0));
                CR(cudaEventCreate(&e1));
                float v[7];
                for (int k = 0; k < 7; k++) {
                        unsigned seq = MAX_KERNELS; // not stamped
                        void *args[] = { &cycles, &seq, &d_starts, &d_ends };
                        CR(cudaEventRecord(e0, (cudaStream_t) stream));
                        CU(cuLaunchKernel(f, 4 * sms, 1, 1, 128, 1, 1, 0, stream, args, NULL));
                        CR(cudaEventRecord(e1, (cudaStream_t) stream));
                        CR(cudaEventSynchronize(e1));
                        CR(cudaEventElapsedTime(&v[k], e0, e1));
                }
                // median of the last 5 (the first two warm the clocks)
                float w[5];
                memcpy(w, v + 2, sizeof w);
                for (int a = 0; a < 5; a++)
                        for (int b = a + 1; b < 5; b++)
                                if (w[b] < w[a]) {
                                        float t = w[a];
                                        w[a] = w[b];
                                        w[b] = t;
                                }
                calib_us = w[2] * 1000.0;
        }

        // Keep at most `depth` kernels queued (about 2 ms of work, at least 2), so the
        // launches the host makes are the work the GPU does, and a throttled launch is
        // felt at once. Events mark the kernels.
        int depth = (int) ceil(2000.0 / kernel_us);
        if (depth < 2)
                depth = 2;
        if (depth > 512)
                depth = 512;
        CUevent *ev = (CUevent *) calloc((size_t) depth, sizeof *ev);
        for (int k = 0; k < depth; k++)
                CU(cuEventCreate(&ev[k], CU_EVENT_DISABLE_TIMING));

        int64_t now = realtime_ns();
        if (start_at == 0)
                start_at = now;
        int64_t late_ns = now > start_at ? now - start_at : 0;
        sleep_ns(start_at - now);
        int64_t end_at = start_at + (int64_t) (secs * 1e9);
        unsigned seed = (unsigned) getpid();
        // 0.8 to 1.2 times the mean length, at random
        auto stretch_ns = [&](double mean_ms) { return (int64_t) (mean_ms * 1e6 * (0.8 + 0.4 * rand_r(&seed) / RAND_MAX)); };
        bool launching = true;
        int64_t next_switch = burst ? start_at + stretch_ns(on_ms) : 0;

        unsigned n = 0;
        for (;;) {
                now = realtime_ns();
                if (now >= end_at)
                        break;
                if (burst && now >= next_switch) {
                        launching = !launching;
                        next_switch += stretch_ns(launching ? on_ms : off_ms);
                }
                if (burst && !launching) {
                        sleep_ns((next_switch < end_at ? next_switch : end_at) - now);
                        continue;
                }
                if (n >= (unsigned) depth)
                        CU(cuEventSynchronize(ev[n % depth]));
                unsigned seq = n;
                void *args[] = { &cycles, &seq, &d_starts, &d_ends };
                CU(cuLaunchKernel(f, 4 * sms, 1, 1, 128, 1, 1, 0, stream, args, NULL));
                CU(cuEventRecord(ev[n % depth], stream));
                n++;
        }
        CU(cuStreamSynchronize(stream));

        unsigned m = n < MAX_KERNELS ? n : MAX_KERNELS;
        unsigned long long *st = (unsigned long long *) malloc((size_t) (m ? m : 1) * sizeof *st);
        unsigned long long *en = (unsigned long long *) malloc((size_t) (m ? m : 1) * sizeof *en);
        if (m) {
                CR(cudaMemcpy(st, d_starts, m * sizeof *st, cudaMemcpyDeviceToHost));
                CR(cudaMemcpy(en, d_ends, m * sizeof *en, cudaMemcpyDeviceToHost));
        }

        // The window, in GPU time.
        int64_t w0 = start_at + (int64_t) (warm * 1e9) + offset;
        int64_t w1 = end_at + offset;
        double wlen = (double) (w1 - w0);
        unsigned long long counted = 0;
        double busy = 0, dur_sum = 0;
        unsigned long long dur_n = 0;
        // Completions per 0.5 s bin over the whole run (the limiter's convergence).
        enum { BINS = 64 };
        unsigned bins[BINS] = { 0 };
        int64_t g0 = start_at + offset;
        int nbins = (int) ceil(secs / 0.5);
        if (nbins > BINS)
                nbins = BINS;
        for (unsigned k = 0; k < m; k++) {
                if (!en[k])
                        continue;
                int64_t s = (int64_t) st[k], e = (int64_t) en[k];
                dur_sum += (double) (e - s);
                dur_n++;
                if (e >= w0 && e < w1)
                        counted++;
                int64_t a = s > w0 ? s : w0, b = e < w1 ? e : w1;
                if (b > a)
                        busy += (double) (b - a);
                int64_t bi = (e - g0) / 500000000LL;
                if (e >= g0 && bi < nbins)
                        bins[bi]++;
        }
        char calib_s[32] = "na";
        if (!isnan(calib_us))
                snprintf(calib_s, sizeof calib_s, "%.2f", calib_us);
        // Our pid as the host sees it (NVML reports host pids): /proc is the host's
        // mount when the probe runs under `unshare --pid --fork` without --mount-proc.
        char self[32] = "";
        ssize_t sl = readlink("/proc/self", self, sizeof self - 1);
        self[sl > 0 ? sl : 0] = 0;
        printf("SPIN label=%s mode=%s kernel_us=%.0f cycles=%lld clock_khz=%d sms=%d grid=%d depth=%d "
               "secs=%.2f warm=%.2f measured_s=%.3f launched=%u stamped=%llu counted=%llu kps=%.2f "
               "busy_pct=%.2f mean_kernel_us=%.2f calib_us=%s late_ms=%.1f sync_err_us=%.1f pid=%d hostpid=%s overflow=%d\n",
               probe_label, mode, kernel_us, cycles, clock_khz, sms, 4 * sms, depth, secs, warm, wlen / 1e9, n,
               dur_n, counted, wlen > 0 ? counted / (wlen / 1e9) : 0.0, wlen > 0 ? 100.0 * busy / wlen : 0.0,
               dur_n ? dur_sum / dur_n / 1000.0 : 0.0,
               calib_s, (double) late_ns / 1e6,
               (double) best / 2000.0, (int) getpid(), self[0] ? self : "na", n > MAX_KERNELS);
        printf("SPIN_BINS label=%s bin_s=0.5 completions=", probe_label);
        for (int b = 0; b < nbins; b++)
                printf("%s%u", b ? "," : "", bins[b]);
        printf("\n");
        fflush(stdout);
        return 0;
}
