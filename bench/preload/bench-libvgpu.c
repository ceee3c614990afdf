/* SPDX-License-Identifier: Apache-2.0 */

/*
 * libvgpu.so against the fake driver, with and without the preload, in one run:
 *   - ns per cuMemAlloc+cuMemFree pair (4 KiB, 100 batches of 1000 = 100k pairs)
 *   - ns per cuLaunchKernel, no SM limit and with one (limit not binding: overhead only)
 *   - the same with 8 processes sharing one region
 *   - SM limiter accuracy at 10/30/50/90% (2 ms kernels, 2 launching processes)
 *   - start-up of 1, 50, 300 processes doing cuInit + context (100 ms) + one allocation,
 *     and the same with 30 of the 300 SIGKILLed during start-up
 *
 * Usage: bench-libvgpu LIBVGPU.so [quick]   (run from a scratch directory: it writes its
 * state files to the current directory). Each process re-executes this program as a
 * worker with the environment of its configuration.
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cuda-abi.h"

CuResult cuInit(unsigned int flags);
CuResult cuDeviceGet(CuDevice *dev, int ordinal);
CuResult cuCtxCreate_v2(CuContext *pctx, unsigned int flags, CuDevice dev);
CuResult cuMemAlloc_v2(CuDevicePtr *dptr, size_t bytesize);
CuResult cuMemFree_v2(CuDevicePtr dptr);
CuResult cuModuleLoadData(CuModule *module, const void *image);
CuResult cuModuleGetFunction(CuFunction *f, CuModule m, const char *name);
CuResult cuLaunchKernel(CuFunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned shm, CuStream s, void **params, void **extra);
NvmlReturn nvmlInit_v2(void);
NvmlReturn nvmlDeviceGetHandleByIndex_v2(unsigned int index, NvmlDevice *device);
NvmlReturn nvmlDeviceGetUtilizationRates(NvmlDevice device, NvmlUtilization *u);

extern char **environ;

#define BATCHES 100
#define BATCH 1000
#define RUNS 3

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

_Noreturn static void die(const char *what) {
        fprintf(stderr, "bench-libvgpu: %s failed\n", what);
        exit(2);
}

/* ---- workers ---- */

static CuFunction setup(void) {
        static const char image[] = "fake cubin";
        CuContext ctx;
        CuDevice dev;
        CuModule m;
        CuFunction f;

        if (cuInit(0) || cuDeviceGet(&dev, 0) || cuCtxCreate_v2(&ctx, 0, dev) || cuModuleLoadData(&m, image) ||
            cuModuleGetFunction(&f, m, "k"))
                die("setup");
        return f;
}

/* Prints "median p99" of ns per operation over BATCHES batches. */
static void report(double *ns) {
        qsort(ns, BATCHES, sizeof(double), cmp_double);
        printf("%.1f %.1f\n", ns[BATCHES / 2], ns[BATCHES * 99 / 100]);
}

static int worker_alloc(void) {
        double ns[BATCHES];
        CuDevicePtr p;

        setup();
        for (int i = 0; i < BATCH; i++)
                if (cuMemAlloc_v2(&p, 4096) || cuMemFree_v2(p))
                        die("alloc");
        for (int b = 0; b < BATCHES; b++) {
                uint64_t t = now_ns();
                for (int i = 0; i < BATCH; i++)
                        if (cuMemAlloc_v2(&p, 4096) || cuMemFree_v2(p))
                                die("alloc");
                ns[b] = (double) (now_ns() - t) / BATCH;
        }
        report(ns);
        return 0;
}

static int worker_launch(void) {
        CuFunction f = setup();
        double ns[BATCHES];
        uint64_t warm = getenv("CUDA_DEVICE_SM_LIMIT") ? 2000000000ULL : 0, t0 = now_ns();

        /* With a limit, let the limiter find that it is not binding first. */
        do
                for (int i = 0; i < BATCH; i++)
                        if (cuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL))
                                die("launch");
        while (now_ns() - t0 < warm);
        for (int b = 0; b < BATCHES; b++) {
                uint64_t t = now_ns();
                for (int i = 0; i < BATCH; i++)
                        if (cuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL))
                                die("launch");
                ns[b] = (double) (now_ns() - t) / BATCH;
        }
        report(ns);
        return 0;
}

_Noreturn static void worker_spin(void) {
        CuFunction f = setup();
        for (;;)
                if (cuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL))
                        die("launch");
}

static void sleep_ms(unsigned ms);

static int worker_sample(void) {
        unsigned sum = 0, lo = 100, hi = 0, n = 0;
        NvmlDevice d;

        sleep_ms(2000);
        if (nvmlInit_v2() || nvmlDeviceGetHandleByIndex_v2(0, &d))
                die("nvml");
        for (int k = 0; k < 8; k++) {
                NvmlUtilization u;
                sleep_ms(250);
                if (nvmlDeviceGetUtilizationRates(d, &u))
                        die("utilization");
                sum += u.gpu;
                lo = u.gpu < lo ? u.gpu : lo;
                hi = u.gpu > hi ? u.gpu : hi;
                n++;
        }
        printf("%u %u %u %u\n", sum, lo, hi, n);
        return 0;
}

static int worker_startup(void) {
        CuContext ctx;
        CuDevice dev;
        CuDevicePtr p;

        if (cuInit(0) || cuDeviceGet(&dev, 0) || cuCtxCreate_v2(&ctx, 0, dev) || cuMemAlloc_v2(&p, 1 << 20))
                return 1;
        return 0;
}

/* ---- the driver ---- */

static const char *self, *libvgpu;

typedef struct Env {
        const char *vars[16];
        size_t n;
} Env;

static void env_add(Env *e, const char *v) {
        e->vars[e->n++] = v;
}

static pid_t spawn_worker(const char *mode, const Env *e, int out_fd) {
        char *envp[256];
        size_t n = 0;
        posix_spawn_file_actions_t fa;
        char *argv[] = { (char *) self, (char *) "--worker", (char *) mode, NULL };
        pid_t pid;

        for (char **v = environ; *v && n < 200; v++)
                if (strncmp(*v, "LD_PRELOAD=", 11) != 0 && strncmp(*v, "CUDA_", 5) != 0 &&
                    strncmp(*v, "FAKE_", 5) != 0)
                        envp[n++] = *v;
        for (size_t i = 0; i < e->n; i++)
                envp[n++] = (char *) e->vars[i];
        envp[n] = NULL;
        posix_spawn_file_actions_init(&fa);
        if (out_fd >= 0)
                posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO);
        if (posix_spawn(&pid, self, &fa, NULL, argv, envp) != 0)
                die("posix_spawn");
        posix_spawn_file_actions_destroy(&fa);
        return pid;
}

static void env_base(Env *e, bool preload, const char *tag) {
        static char bufs[8][256];
        static int k;
        char *state = bufs[k++ % 8], *region = bufs[k++ % 8], *pre = bufs[k++ % 8];

        *e = (Env) {};
        snprintf(state, 256, "FAKE_CUDA_STATE=bench-%s.state", tag);
        snprintf(region, 256, "CUDA_DEVICE_MEMORY_SHARED_CACHE=bench-%s.region", tag);
        unlink(state + strlen("FAKE_CUDA_STATE="));
        unlink(region + strlen("CUDA_DEVICE_MEMORY_SHARED_CACHE="));
        env_add(e, state);
        env_add(e, "FAKE_NVML_CONFIG=" FAKE_NVML_CONFIG_DEFAULT);
        if (preload) {
                snprintf(pre, 256, "LD_PRELOAD=%s", libvgpu);
                env_add(e, pre);
                env_add(e, region);
                env_add(e, "CUDA_DEVICE_MEMORY_LIMIT=8g");
        }
}

/* Run n workers at once; median of their medians and the largest p99. */
static void run_timed(const char *mode, const Env *e, int n, double *ret_median, double *ret_p99) {
        double med[64], p99 = 0;
        pid_t pids[64];
        int fds[2];
        FILE *f;

        if (pipe(fds) < 0)
                die("pipe");
        for (int i = 0; i < n; i++)
                pids[i] = spawn_worker(mode, e, fds[1]);
        close(fds[1]);
        f = fdopen(fds[0], "r");
        for (int i = 0; i < n; i++) {
                double m, p;
                if (fscanf(f, "%lf %lf", &m, &p) != 2)
                        die("worker output");
                med[i] = m;
                if (p > p99)
                        p99 = p;
        }
        fclose(f);
        for (int i = 0; i < n; i++)
                waitpid(pids[i], NULL, 0);
        qsort(med, (size_t) n, sizeof(double), cmp_double);
        *ret_median = med[n / 2];
        *ret_p99 = p99;
}

static void table_overhead(void) {
        static const struct {
                const char *what, *mode, *sm;
        } rows[] = {
                { "cuMemAlloc+cuMemFree pair, 4 KiB", "alloc", NULL },
                { "cuLaunchKernel, no SM limit", "launch", NULL },
                { "cuLaunchKernel, SM limit 90% (not binding)", "launch", "CUDA_DEVICE_SM_LIMIT=90" },
        };

        printf("\n## Interposition overhead (ns per call: median of %d runs' medians of 100 batches of 1000;\n"
               "## p99: worst batch p99 of the runs)\n\n", RUNS);
        printf("| measure | processes | no preload median | p99 | libvgpu median | p99 | overhead | ratio |\n");
        printf("|---|---|---|---|---|---|---|---|\n");
        for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++)
                for (int procs = 1; procs <= 8; procs += 7) {
                        double bm[RUNS], bp = 0, pm[RUNS], pp = 0;

                        /* Alternate baseline and libvgpu runs; median of the runs' medians. */
                        for (int k = 0; k < RUNS; k++) {
                                double m, q;
                                Env e;

                                env_base(&e, false, "base");
                                env_add(&e, "FAKE_CUDA_KERNEL_US=0");
                                run_timed(rows[r].mode, &e, procs, &m, &q);
                                bm[k] = m;
                                bp = q > bp ? q : bp;
                                env_base(&e, true, "pre");
                                env_add(&e, "FAKE_CUDA_KERNEL_US=0");
                                if (rows[r].sm)
                                        env_add(&e, rows[r].sm);
                                run_timed(rows[r].mode, &e, procs, &m, &q);
                                pm[k] = m;
                                pp = q > pp ? q : pp;
                        }
                        qsort(bm, RUNS, sizeof(double), cmp_double);
                        qsort(pm, RUNS, sizeof(double), cmp_double);
                        printf("| %s | %d | %.1f | %.1f | %.1f | %.1f | %+.1f | %.2fx |\n", rows[r].what, procs,
                               bm[RUNS / 2], bp, pm[RUNS / 2], pp, pm[RUNS / 2] - bm[RUNS / 2], pm[RUNS / 2] / bm[RUNS / 2]);
                        fflush(stdout);
                }
}

static void sleep_ms(unsigned ms) {
        nanosleep(&(struct timespec) { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000 }, NULL);
}

static void table_accuracy(void) {
        static const char *limits[] = { "10", "30", "50", "90" };

        printf("\n## SM limiter accuracy (2 ms kernels, 2 processes launching flat out, NVML utilization)\n\n");
        printf("| limit | mean utilization, 2-4 s | min sample | max sample | error |\n|---|---|---|---|---|\n");
        for (size_t i = 0; i < 4; i++) {
                char lim[64];
                unsigned sum = 0, lo = 100, hi = 0, n = 0;
                pid_t pids[2];
                Env e;

                env_base(&e, true, "acc");
                snprintf(lim, sizeof(lim), "CUDA_DEVICE_SM_LIMIT=%s", limits[i]);
                env_add(&e, lim);
                env_add(&e, "FAKE_CUDA_KERNEL_US=2000");
                for (int k = 0; k < 2; k++)
                        pids[k] = spawn_worker("spin", &e, -1);
                /* A third process reads the utilization through the fake NVML. */
                int fds[2];
                if (pipe(fds) < 0)
                        die("pipe");
                pid_t sampler = spawn_worker("sample", &e, fds[1]);
                close(fds[1]);
                FILE *f = fdopen(fds[0], "r");
                if (fscanf(f, "%u %u %u %u", &sum, &lo, &hi, &n) != 4)
                        die("sampler output");
                fclose(f);
                waitpid(sampler, NULL, 0);
                for (int k = 0; k < 2; k++) {
                        kill(pids[k], SIGKILL);
                        waitpid(pids[k], NULL, 0);
                }
                printf("| %s%% | %.1f%% | %u%% | %u%% | %+.1f |\n", limits[i], (double) sum / n, lo, hi,
                       (double) sum / n - atoi(limits[i]));
                fflush(stdout);
        }
}

/* n processes at once; returns seconds until all exited; counts failures and hangs (not
 * done 60 s after start). With kill_some, 10% are SIGKILLed 50 ms in. */
static double run_startup(bool preload, int n, bool kill_some, int *ret_failed, int *ret_hung) {
        pid_t *pids = calloc((size_t) n, sizeof(pid_t));
        int done = 0, failed = 0, killed = 0;
        uint64_t t0, deadline;
        Env e;

        env_base(&e, preload, "start");
        env_add(&e, "FAKE_CUDA_CONTEXT_MS=100");
        t0 = now_ns();
        deadline = t0 + 60000000000ULL;
        for (int i = 0; i < n; i++)
                pids[i] = spawn_worker("startup", &e, -1);
        if (kill_some) {
                sleep_ms(50);
                for (int i = 0; i < n; i += 10) {
                        kill(pids[i], SIGKILL);
                        killed++;
                }
        }
        while (done < n && now_ns() < deadline) {
                int status;
                pid_t pid = waitpid(-1, &status, WNOHANG);
                if (pid > 0) {
                        done++;
                        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                                if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
                                        failed++;
                        }
                        continue;
                }
                sleep_ms(1);
        }
        double secs = (double) (now_ns() - t0) / 1e9;
        *ret_hung = n - done;
        for (int i = 0; i < n; i++)
                kill(pids[i], SIGKILL);
        while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
        *ret_failed = failed;
        free(pids);
        return secs;
}

static void table_startup(bool quick) {
        static const int counts[] = { 1, 50, 300 };
        int reps = quick ? 1 : 3;

        printf("\n## Start-up: N processes at once, each cuInit + context (100 ms) + one allocation\n\n");
        printf("| processes | no preload (s) | libvgpu (s) | ratio | failed | hung |\n|---|---|---|---|---|---|\n");
        for (size_t i = 0; i < 3; i++) {
                double b[3], p[3];
                int failed = 0, hung = 0;
                for (int r = 0; r < reps; r++) {
                        int f, h;
                        b[r] = run_startup(false, counts[i], false, &f, &h);
                        failed += f;
                        hung += h;
                        p[r] = run_startup(true, counts[i], false, &f, &h);
                        failed += f;
                        hung += h;
                }
                qsort(b, (size_t) reps, sizeof(double), cmp_double);
                qsort(p, (size_t) reps, sizeof(double), cmp_double);
                printf("| %d | %.2f | %.2f | %.2fx | %d | %d |\n", counts[i], b[reps / 2], p[reps / 2],
                       p[reps / 2] / b[reps / 2], failed, hung);
                fflush(stdout);
        }
        int f, h;
        double s = run_startup(true, 300, true, &f, &h);
        printf("| 300, 30 SIGKILLed 50 ms in | | %.2f | | %d | %d |\n", s, f, h);
}

int main(int argc, char **argv) {
        if (argc >= 3 && strcmp(argv[1], "--worker") == 0) {
                if (strcmp(argv[2], "alloc") == 0)
                        return worker_alloc();
                if (strcmp(argv[2], "launch") == 0)
                        return worker_launch();
                if (strcmp(argv[2], "spin") == 0)
                        worker_spin();
                if (strcmp(argv[2], "sample") == 0)
                        return worker_sample();
                if (strcmp(argv[2], "startup") == 0)
                        return worker_startup();
                return 2;
        }
        if (argc < 2) {
                fprintf(stderr, "usage: %s LIBVGPU.so [quick]\n", argv[0]);
                return 2;
        }
        self = "/proc/self/exe";
        static char exe[4096];
        ssize_t k = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (k > 0) {
                exe[k] = 0;
                self = exe;
        }
        libvgpu = argv[1];
        if (access(libvgpu, R_OK) < 0)
                die("libvgpu.so");
        printf("# libvgpu.so against the fake driver (tests/fakes/cuda), one run\n");
        table_overhead();
        table_accuracy();
        table_startup(argc >= 3 && strcmp(argv[2], "quick") == 0);
        return 0;
}
