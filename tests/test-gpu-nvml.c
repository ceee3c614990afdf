/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The NVML backend against the fake libnvidia-ml.so.1 (tests/fakes/nvml/), which meson
 * puts first on LD_LIBRARY_PATH; the description files are in FAKE_NVML_DATA.
 * With --missing it runs without the fake: NVML must then fail cleanly.
 */

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpu-backend.h"
#include "log.h"
#include "macro.h"
#include "nvml-abi.h"
#include "tests.h"

static char tmp_dir[] = "/tmp/test-gpu-nvml-XXXXXX";
static char sysfs_dir[512], events_path[512];

static const Config nvml_config = { .backend = GPU_BACKEND_NVML };

static void use_description(const char *name) {
        const char *data = getenv("FAKE_NVML_DATA");
        char path[1024];

        ASSERT_NOT_NULL(data);
        snprintf(path, sizeof(path), "%s/%s", data, name);
        ASSERT_OK(access(path, R_OK));
        ASSERT_OK(setenv("FAKE_NVML_CONFIG", path, 1));
}

static void mkdir_p(const char *path) {
        char buf[1024];

        snprintf(buf, sizeof(buf), "%s", path);
        for (char *p = buf + 1; *p; p++)
                if (*p == '/') {
                        *p = '\0';
                        ASSERT_TRUE(mkdir(buf, 0755) >= 0 || errno == EEXIST);
                        *p = '/';
                }
        ASSERT_TRUE(mkdir(buf, 0755) >= 0 || errno == EEXIST);
}

/* <sysfs>/devices/<root>/<root bridge>/<bus id>, and the bus/pci/devices symlink to it. */
static void sysfs_add(const char *bus_id, const char *root) {
        char dev[1024], link[1024], target[1024];

        snprintf(dev, sizeof(dev), "%s/devices/%s/%.4s:%.2s:00.0/%s", sysfs_dir, root, root + 3,
                 root + 8, bus_id);
        mkdir_p(dev);
        snprintf(link, sizeof(link), "%s/bus/pci/devices", sysfs_dir);
        mkdir_p(link);
        snprintf(link, sizeof(link), "%s/bus/pci/devices/%s", sysfs_dir, bus_id);
        snprintf(target, sizeof(target), "../../../devices/%s/%.4s:%.2s:00.0/%s", root, root + 3, root + 8, bus_id);
        ASSERT_TRUE(symlink(target, link) >= 0 || errno == EEXIST);
}

static void enumerate(const char *description, GpuList *ret) {
        _cleanup_(gpu_backend_freep) GpuBackend *b = NULL;

        use_description(description);
        ASSERT_OK(gpu_backend_open(&nvml_config, &b));
        ASSERT_OK(gpu_backend_enumerate(b, ret));
}

static void test_one_gpu_every_attribute(void) {
        _cleanup_(gpu_list_done) GpuList l = {};

        sysfs_add("0000:65:01.0", "pci0000:64");
        enumerate("one-a10.conf", &l);
        ASSERT_EQ(l.n_gpus, 1);
        ASSERT_EQ(l.n_problems, 0);

        const Gpu *g = &l.gpus[0];
        ASSERT_STREQ(g->name, "hami-gpu-0");
        ASSERT_STREQ(g->uuid, "GPU-f1c7d08c-ae21-13e7-0de0-9eb14ff71eaf");
        ASSERT_STREQ(g->product_name, "NVIDIA A10");
        ASSERT_STREQ(g->brand, "Nvidia");
        ASSERT_STREQ(g->architecture, "Ampere");
        ASSERT_STREQ(g->cuda_compute_capability, "8.6.0");
        ASSERT_STREQ(g->driver_version, "550.144.3");
        ASSERT_STREQ(g->cuda_driver_version, "12.4.0");
        ASSERT_EQ(g->minor, 0);
        ASSERT_STREQ(g->pcie_bus_id, "0000:65:01.0");
        ASSERT_STREQ(g->pcie_root, "pci0000:64");
        ASSERT_EQ_U(g->memory_total, 23028ULL << 20);
        ASSERT_EQ(g->cores, 100);
        ASSERT_EQ(g->health, GPU_HEALTH_HEALTHY);
        ASSERT_STREQ(g->health_reason, "");
        ASSERT_NOT_NULL(gpu_list_find(&l, "hami-gpu-0"));
}

static void test_eight_sorted_by_bus(void) {
        static const struct {
                const char *bus, *model, *brand, *arch, *cc;
        } expected[] = {
                { "0000:18:00.0", "NVIDIA H100 80GB HBM3", "Nvidia", "Hopper", "9.0.0" },
                { "0000:2a:00.0", "NVIDIA A100-SXM4-80GB", "Nvidia", "Ampere", "8.0.0" },
                { "0000:3d:00.0", "NVIDIA L40S", "Nvidia", "Ada Lovelace", "8.9.0" },
                { "0000:4e:00.0", "NVIDIA GeForce RTX 4090", "GeForceRTX", "Ada Lovelace", "8.9.0" },
                { "0000:9a:00.0", "NVIDIA A100-SXM4-80GB", "Nvidia", "Ampere", "8.0.0" },
                { "0000:ba:00.0", "NVIDIA L40S", "Nvidia", "Ada Lovelace", "8.9.0" },
                { "0000:cb:00.0", "NVIDIA H100 80GB HBM3", "Nvidia", "Hopper", "9.0.0" },
                { "0000:db:00.0", "Tesla T4", "Tesla", "Turing", "7.5.0" },
        };
        _cleanup_(gpu_list_done) GpuList l = {}, again = {};

        /* The last GPU sits on a bus that is not PCI at the top (as in some VMs): no root. */
        char vm[1024], link[1024];
        snprintf(vm, sizeof(vm), "%s/devices/LNXSYSTM:00/VMBUS:00/0000:db:00.0", sysfs_dir);
        mkdir_p(vm);
        snprintf(link, sizeof(link), "%s/bus/pci/devices", sysfs_dir);
        mkdir_p(link);
        snprintf(link, sizeof(link), "%s/bus/pci/devices/0000:db:00.0", sysfs_dir);
        ASSERT_OK(symlink(vm, link));

        sysfs_add("0000:18:00.0", "pci0000:17");
        sysfs_add("0000:2a:00.0", "pci0000:17");
        sysfs_add("0000:3d:00.0", "pci0000:3a");
        sysfs_add("0000:4e:00.0", "pci0000:3a");
        sysfs_add("0000:9a:00.0", "pci0000:97");
        sysfs_add("0000:ba:00.0", "pci0000:b7");
        sysfs_add("0000:cb:00.0", "pci0000:c9");

        enumerate("eight-mixed.conf", &l);
        ASSERT_EQ(l.n_gpus, 8);
        ASSERT_EQ(l.n_problems, 0);
        for (unsigned i = 0; i < 8; i++) {
                const Gpu *g = &l.gpus[i];
                char name[GPU_NAME_MAX];

                snprintf(name, sizeof(name), "hami-gpu-%u", i);
                ASSERT_STREQ(g->name, name);
                ASSERT_EQ(g->minor, i);
                ASSERT_STREQ(g->pcie_bus_id, expected[i].bus);
                ASSERT_STREQ(g->product_name, expected[i].model);
                ASSERT_STREQ(g->brand, expected[i].brand);
                ASSERT_STREQ(g->architecture, expected[i].arch);
                ASSERT_STREQ(g->cuda_compute_capability, expected[i].cc);
                ASSERT_STREQ(g->driver_version, "535.104.5");
                ASSERT_STREQ(g->cuda_driver_version, "12.2.0");
        }
        ASSERT_STREQ(l.gpus[0].pcie_root, "pci0000:17");
        ASSERT_STREQ(l.gpus[3].pcie_root, "pci0000:3a");
        ASSERT_STREQ(l.gpus[7].pcie_root, "");
        ASSERT_EQ_U(l.gpus[7].memory_total, 15360ULL << 20);

        /* Enumerating again gives the same list. */
        enumerate("eight-mixed.conf", &again);
        ASSERT_TRUE(gpu_list_equal(&l, &again));
}

static void test_sixteen(void) {
        _cleanup_(gpu_list_done) GpuList l = {};

        enumerate("sixteen.conf", &l);
        ASSERT_EQ(l.n_gpus, 16);
        ASSERT_EQ(l.n_problems, 0);
        for (unsigned i = 0; i < 16; i++) {
                ASSERT_EQ(l.gpus[i].minor, i);
                ASSERT_STREQ(l.gpus[i].architecture, i % 2 == 1 ? "Hopper" : "Ampere");
                if (i > 0)
                        ASSERT_TRUE(strcmp(l.gpus[i - 1].pcie_bus_id, l.gpus[i].pcie_bus_id) < 0);
                for (unsigned j = 0; j < i; j++)
                        ASSERT_TRUE(strcmp(l.gpus[i].uuid, l.gpus[j].uuid) != 0);
        }
        ASSERT_STREQ(l.gpus[0].pcie_bus_id, "0000:10:00.0");
        ASSERT_STREQ(l.gpus[15].pcie_bus_id, "0000:c4:00.0");
        ASSERT_STREQ(l.gpus[0].driver_version, "570.86.15");
        ASSERT_STREQ(l.gpus[0].cuda_driver_version, "12.8.0");
}

static void test_errors_reported_not_dropped(void) {
        _cleanup_(gpu_list_done) GpuList l = {};

        enumerate("errors.conf", &l);
        ASSERT_EQ(l.n_gpus, 3);
        ASSERT_EQ(l.n_problems, 2);
        ASSERT_STREQ(l.gpus[0].name, "hami-gpu-0");
        ASSERT_STREQ(l.gpus[1].name, "hami-gpu-2");
        ASSERT_STREQ(l.gpus[2].name, "hami-gpu-4");

        /* Optional attributes the GPU does not support are left out, the GPU stays. */
        ASSERT_STREQ(l.gpus[1].brand, "");
        ASSERT_STREQ(l.gpus[1].architecture, "");
        ASSERT_STREQ(l.gpus[1].cuda_compute_capability, "8.6.0");
        ASSERT_STREQ(l.gpus[0].brand, "Nvidia");

        ASSERT_EQ(l.problems[0].index, 1);
        ASSERT_STREQ(l.problems[0].what, "nvmlDeviceGetUUID: GPU is lost");
        ASSERT_EQ(l.problems[1].index, 3);
        ASSERT_STREQ(l.problems[1].what, "nvmlDeviceGetHandleByIndex_v2: GPU is lost");

        /* nvmlSystemGetCudaDriverVersion_v2 missing: the old call answered. */
        ASSERT_STREQ(l.gpus[0].cuda_driver_version, "12.4.0");
        ASSERT_STREQ(l.gpus[0].driver_version, "550.54.15");
}

static void test_init_fails(void) {
        _cleanup_(gpu_backend_freep) GpuBackend *b = NULL;

        use_description("init-fails.conf");
        ASSERT_ERROR(gpu_backend_open(&nvml_config, &b), ENXIO);
        ASSERT_NULL(b);

        /* A description the fake cannot read: nvmlInit_v2 fails with "Unknown Error". */
        ASSERT_OK(setenv("FAKE_NVML_CONFIG", "/nonexistent/fake-nvml.conf", 1));
        ASSERT_ERROR(gpu_backend_open(&nvml_config, &b), EIO);
        ASSERT_NULL(b);
}

typedef struct HealthLog {
        unsigned calls;
        char gpu[8][GPU_NAME_MAX];
        GpuHealth health[8];
        char reason[8][GPU_HEALTH_REASON_MAX];
} HealthLog;

static void on_health(GpuBackend *b, const char *gpu, GpuHealth health, const char *reason, void *userdata) {
        HealthLog *log = userdata;
        unsigned i = log->calls++;

        ASSERT_TRUE(i < 8);
        snprintf(log->gpu[i], sizeof(log->gpu[i]), "%s", gpu);
        log->health[i] = health;
        snprintf(log->reason[i], sizeof(log->reason[i]), "%s", reason);
}

static void inject_events(const char *text) {
        char tmp[600];
        int fd;

        snprintf(tmp, sizeof(tmp), "%s.tmp", events_path);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        ASSERT_OK(close(fd));
        ASSERT_OK(rename(tmp, events_path));
}

/* Run the loop until the file was consumed and `calls` callbacks came (bounded, not timed). */
static void run_until(sd_event *e, HealthLog *log, unsigned calls) {
        for (unsigned i = 0; i < 1000 && (log->calls < calls || access(events_path, F_OK) >= 0); i++)
                ASSERT_OK(sd_event_run(e, 10 * 1000));
        ASSERT_EQ(log->calls, calls);
}

static void test_health_events(void) {
        _cleanup_(gpu_backend_freep) GpuBackend *b = NULL;
        _cleanup_(gpu_list_done) GpuList l = {};
        HealthLog log = {};
        sd_event *e = NULL;

        use_description("health.conf");
        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(gpu_backend_open(&nvml_config, &b));
        ASSERT_OK(gpu_backend_watch_health(b, e, on_health, &log));
        ASSERT_EQ(log.calls, 0);

        /* Application XIDs and corrected ECC errors are logged, not fatal; the DBE is. */
        inject_events("0 xid 43\n0 xid 13\n1 xid 109\n0 sbe\n2 dbe\n");
        run_until(e, &log, 1);
        ASSERT_STREQ(log.gpu[0], "hami-gpu-2");
        ASSERT_EQ(log.health[0], GPU_HEALTH_UNHEALTHY);
        ASSERT_STREQ(log.reason[0], "double-bit ECC error");

        inject_events("1 xid 79\n1 xid 48\n");
        run_until(e, &log, 2); /* the second XID on a sick GPU changes nothing */
        ASSERT_STREQ(log.gpu[1], "hami-gpu-1");
        ASSERT_STREQ(log.reason[1], "XID 79: GPU has fallen off the bus");

        /* The GPU that cannot deliver events never had any registered: the fake drops them. */
        inject_events("3 xid 79\n");
        run_until(e, &log, 2);

        ASSERT_OK(gpu_backend_enumerate(b, &l));
        ASSERT_EQ(l.n_gpus, 4);
        ASSERT_EQ(l.gpus[0].health, GPU_HEALTH_HEALTHY);
        ASSERT_EQ(l.gpus[1].health, GPU_HEALTH_UNHEALTHY);
        ASSERT_STREQ(l.gpus[1].health_reason, "XID 79: GPU has fallen off the bus");
        ASSERT_EQ(l.gpus[2].health, GPU_HEALTH_UNHEALTHY);
        ASSERT_EQ(l.gpus[3].health, GPU_HEALTH_HEALTHY);

        /* When waiting itself fails, nobody vouches for the GPUs any more. */
        inject_events("wait-error GPU_IS_LOST\n");
        run_until(e, &log, 4);
        ASSERT_STREQ(log.gpu[2], "hami-gpu-0");
        ASSERT_STREQ(log.gpu[3], "hami-gpu-3");
        ASSERT_STREQ(log.reason[2], "nvmlEventSetWait_v2: GPU is lost");

        b = gpu_backend_free(b); /* stops and joins the thread */
        sd_event_unref(e);
}

/* The fake rejects what the real library rejects; otherwise the tests above prove little. */
static void test_fake_is_strict(void) {
        void *dl = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
        nvmlReturn_t (*init)(void), (*shutdown)(void), (*count)(unsigned *);
        nvmlReturn_t (*handle)(unsigned, nvmlDevice_t *), (*uuid)(nvmlDevice_t, char *, unsigned);
        nvmlReturn_t (*pci)(nvmlDevice_t, nvmlPciInfo_t *);
        nvmlDevice_t d = NULL;
        char buf[NVML_DEVICE_UUID_V2_BUFFER_SIZE];
        unsigned n;

        ASSERT_NOT_NULL(dl);
        *(void **) &init = dlsym(dl, "nvmlInit_v2");
        *(void **) &shutdown = dlsym(dl, "nvmlShutdown");
        *(void **) &count = dlsym(dl, "nvmlDeviceGetCount_v2");
        *(void **) &handle = dlsym(dl, "nvmlDeviceGetHandleByIndex_v2");
        *(void **) &uuid = dlsym(dl, "nvmlDeviceGetUUID");
        *(void **) &pci = dlsym(dl, "nvmlDeviceGetPciInfo_v3");
        ASSERT_TRUE(init && shutdown && count && handle && uuid && pci);
        ASSERT_NULL(dlsym(dl, "fake_nvml_enter")); /* only NVML's names are exported */

        use_description("one-a10.conf");
        ASSERT_EQ(count(&n), NVML_ERROR_UNINITIALIZED);
        ASSERT_EQ(shutdown(), NVML_ERROR_UNINITIALIZED);
        ASSERT_EQ(init(), NVML_SUCCESS);
        ASSERT_EQ(count(NULL), NVML_ERROR_INVALID_ARGUMENT);
        ASSERT_EQ(count(&n), NVML_SUCCESS);
        ASSERT_EQ(n, 1);
        ASSERT_EQ(handle(1, &d), NVML_ERROR_INVALID_ARGUMENT);
        ASSERT_EQ(handle(0, NULL), NVML_ERROR_INVALID_ARGUMENT);
        ASSERT_EQ(handle(0, &d), NVML_SUCCESS);
        ASSERT_EQ(uuid((nvmlDevice_t) (void *) buf, buf, sizeof(buf)), NVML_ERROR_INVALID_ARGUMENT);
        ASSERT_EQ(uuid(NULL, buf, sizeof(buf)), NVML_ERROR_INVALID_ARGUMENT);
        ASSERT_EQ(uuid(d, NULL, sizeof(buf)), NVML_ERROR_INVALID_ARGUMENT);
        ASSERT_EQ(uuid(d, buf, 10), NVML_ERROR_INSUFFICIENT_SIZE);
        ASSERT_EQ(uuid(d, buf, sizeof(buf)), NVML_SUCCESS);
        ASSERT_EQ(pci(d, NULL), NVML_ERROR_INVALID_ARGUMENT);
        ASSERT_EQ(shutdown(), NVML_SUCCESS);
        ASSERT_EQ(uuid(d, buf, sizeof(buf)), NVML_ERROR_UNINITIALIZED);
        dlclose(dl);
}

static int run_missing(void) {
        _cleanup_(gpu_backend_freep) GpuBackend *b = NULL;
        void *dl = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);

        if (dl) {
                dlclose(dl);
                fprintf(stderr, "libnvidia-ml.so.1 is installed here: nothing to test.\n");
                return 77;
        }
        ASSERT_ERROR(gpu_backend_open(&nvml_config, &b), ENOENT);
        ASSERT_NULL(b);
        return 0;
}

static void rm_rf(const char *path) {
        char cmd[1200];

        /* Our own mkdtemp() directory only. */
        ASSERT_TRUE(strncmp(path, "/tmp/test-gpu-nvml-", 19) == 0);
        snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", path);
        ASSERT_EQ(system(cmd), 0);
}

int main(int argc, char *argv[]) {
        log_set_max_level(LOG_DEBUG);
        if (argc > 1 && streq(argv[1], "--missing"))
                return run_missing();

        ASSERT_NOT_NULL(mkdtemp(tmp_dir));
        snprintf(sysfs_dir, sizeof(sysfs_dir), "%s/sys", tmp_dir);
        snprintf(events_path, sizeof(events_path), "%s/events", tmp_dir);
        mkdir_p(sysfs_dir);
        /* Set before any thread starts: setenv() and getenv() do not mix across threads. */
        ASSERT_OK(setenv("HAMI_DRA_SYSFS_ROOT", sysfs_dir, 1));
        ASSERT_OK(setenv("FAKE_NVML_EVENTS", events_path, 1));

        TEST(test_fake_is_strict);
        TEST(test_one_gpu_every_attribute);
        TEST(test_eight_sorted_by_bus);
        TEST(test_sixteen);
        TEST(test_errors_reported_not_dropped);
        TEST(test_init_fails);
        TEST(test_health_events);

        rm_rf(tmp_dir);
        return 0;
}
