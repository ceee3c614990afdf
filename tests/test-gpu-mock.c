/* SPDX-License-Identifier: Apache-2.0 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "gpu-backend.h"
#include "gpu-mock.h"
#include "log.h"
#include "macro.h"
#include "tests.h"

static char state_dir[] = "/tmp/test-gpu-mock-XXXXXX";

typedef struct HealthLog {
        unsigned calls;
        char gpu[GPU_NAME_MAX];
        GpuHealth health;
        char reason[GPU_HEALTH_REASON_MAX];
} HealthLog;

static Config mock_config(const char *node, unsigned n) {
        return (Config) {
                .backend = GPU_BACKEND_MOCK,
                .node_name = (char *) node,
                .state_dir = state_dir,
                .mock_gpus = n,
                .mock_model = (char *) "NVIDIA H100 80GB HBM3",
                .mock_memory = 81559ULL << 20,
        };
}

static void enumerate(const char *node, unsigned n, GpuList *ret) {
        _cleanup_(gpu_backend_freep) GpuBackend *b = NULL;
        Config c = mock_config(node, n);

        ASSERT_OK(gpu_backend_open(&c, &b));
        ASSERT_OK(gpu_backend_enumerate(b, ret));
}

static bool uuid_well_formed(const char *u) {
        static const char pattern[] = "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";

        if (strlen(u) != strlen(pattern))
                return false;
        for (size_t i = 0; pattern[i]; i++)
                if (pattern[i] == 'x' ? !strchr("0123456789abcdef", u[i]) || u[i] == '\0' : u[i] != pattern[i])
                        return false;
        return true;
}

static void test_count_and_attributes(void) {
        _cleanup_(gpu_list_done) GpuList l = {};

        enumerate("node-a", 8, &l);
        ASSERT_EQ(l.n_gpus, 8);
        ASSERT_EQ(l.n_problems, 0);
        for (unsigned i = 0; i < l.n_gpus; i++) {
                const Gpu *g = &l.gpus[i];
                char name[GPU_NAME_MAX];

                snprintf(name, sizeof(name), "hami-gpu-%u", i);
                ASSERT_STREQ(g->name, name);
                ASSERT_EQ(g->minor, i);
                ASSERT_TRUE(uuid_well_formed(g->uuid));
                ASSERT_STREQ(g->product_name, "NVIDIA H100 80GB HBM3");
                ASSERT_STREQ(g->brand, "Nvidia");
                ASSERT_STREQ(g->architecture, "Hopper");
                ASSERT_STREQ(g->cuda_compute_capability, "9.0.0");
                ASSERT_STREQ(g->driver_version, "570.86.15");
                ASSERT_STREQ(g->cuda_driver_version, "12.8.0");
                ASSERT_EQ_U(g->memory_total, 81559ULL << 20);
                ASSERT_EQ(g->cores, 100);
                ASSERT_EQ(g->health, GPU_HEALTH_HEALTHY);
                ASSERT_EQ(strlen(g->pcie_bus_id), 12);
                ASSERT_TRUE(strncmp(g->pcie_root, "pci0000:", 8) == 0);
                if (i > 0) /* ordered by bus id */
                        ASSERT_TRUE(strcmp(l.gpus[i - 1].pcie_bus_id, g->pcie_bus_id) < 0);
                for (unsigned j = 0; j < i; j++)
                        ASSERT_TRUE(strcmp(l.gpus[j].uuid, g->uuid) != 0);
        }
        ASSERT_STREQ(l.gpus[0].pcie_bus_id, "0000:18:00.0");

        _cleanup_(gpu_list_done) GpuList none = {};
        enumerate("node-a", 0, &none);
        ASSERT_EQ(none.n_gpus, 0);

        _cleanup_(gpu_list_done) GpuList many = {};
        enumerate("node-a", MOCK_GPUS_MAX, &many);
        ASSERT_EQ(many.n_gpus, MOCK_GPUS_MAX);

        _cleanup_(gpu_backend_freep) GpuBackend *b = NULL;
        Config c = mock_config("node-a", MOCK_GPUS_MAX + 1);
        ASSERT_ERROR(gpu_backend_open(&c, &b), EINVAL);
        ASSERT_NULL(b);
}

static void test_deterministic_uuids(void) {
        _cleanup_(gpu_list_done) GpuList a = {}, a2 = {}, other = {};

        enumerate("node-a", 4, &a);
        enumerate("node-a", 4, &a2);
        enumerate("node-b", 4, &other);
        ASSERT_TRUE(gpu_list_equal(&a, &a2));
        for (unsigned i = 0; i < 4; i++) {
                ASSERT_STREQ(a.gpus[i].uuid, a2.gpus[i].uuid);
                for (unsigned j = 0; j < 4; j++)
                        ASSERT_TRUE(strcmp(a.gpus[i].uuid, other.gpus[j].uuid) != 0);
        }
        ASSERT_FALSE(gpu_list_equal(&a, &other));

        char u1[GPU_STRING_MAX], u2[GPU_STRING_MAX];
        ASSERT_OK(mock_gpu_uuid("node-a", 0, u1, sizeof(u1)));
        ASSERT_OK(mock_gpu_uuid("node-a", 0, u2, sizeof(u2)));
        ASSERT_STREQ(u1, u2);
        ASSERT_STREQ(u1, a.gpus[0].uuid);
        ASSERT_ERROR(mock_gpu_uuid("node-a", 0, u1, 10), ENOBUFS);
}

static void test_model_table(void) {
        static const struct {
                const char *model, *arch, *cc;
        } cases[] = {
                { "NVIDIA A10", "Ampere", "8.6.0" },
                { "NVIDIA A100-SXM4-80GB", "Ampere", "8.0.0" },
                { "Tesla T4", "Turing", "7.5.0" },
                { "NVIDIA L40S", "Ada Lovelace", "8.9.0" },
                { "NVIDIA B200", "Blackwell", "10.0.0" },
                { "Something Else", "Ampere", "8.6.0" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(gpu_backend_freep) GpuBackend *b = NULL;
                _cleanup_(gpu_list_done) GpuList l = {};
                Config c = mock_config("node-a", 1);

                c.mock_model = (char *) cases[i].model;
                ASSERT_OK(gpu_backend_open(&c, &b));
                ASSERT_OK(gpu_backend_enumerate(b, &l));
                ASSERT_STREQ(l.gpus[0].product_name, cases[i].model);
                ASSERT_STREQ(l.gpus[0].architecture, cases[i].arch);
                ASSERT_STREQ(l.gpus[0].cuda_compute_capability, cases[i].cc);
        }
}

/* The mock example of hami-dra.conf(5), through the real configuration parser
 * (test-docs checks that the man page shows exactly this text). */
static void test_conf_man_example(void) {
        _cleanup_(gpu_backend_freep) GpuBackend *b = NULL;
        _cleanup_(gpu_list_done) GpuList l = {};
        Config c;

        ASSERT_OK(config_init(&c));
        ASSERT_OK(config_parse_text(&c,
                                    "[GPU]\n"
                                    "Backend=mock\n"
                                    "\n"
                                    "[Mock]\n"
                                    "# 0 to 64 GPUs (default 8) of this model (default \"NVIDIA A10\"),\n"
                                    "# with this much memory each (default 23028Mi, what an A10 reports)\n"
                                    "GPUs=8\n"
                                    "Model=NVIDIA H100 80GB HBM3\n"
                                    "Memory=80Gi\n",
                                    "hami-dra.conf.5.rst"));
        free(c.node_name);
        c.node_name = strdup("node-a");
        free(c.state_dir);
        c.state_dir = strdup(state_dir);
        ASSERT_TRUE(c.node_name && c.state_dir);
        ASSERT_EQ(c.backend, GPU_BACKEND_MOCK);

        ASSERT_OK(gpu_backend_open(&c, &b));
        ASSERT_OK(gpu_backend_enumerate(b, &l));
        ASSERT_EQ(l.n_gpus, 8);
        ASSERT_STREQ(l.gpus[0].product_name, "NVIDIA H100 80GB HBM3");
        ASSERT_EQ_U(l.gpus[0].memory_total, 80ULL << 30);
        ASSERT_STREQ(l.gpus[1].pcie_bus_id, "0000:1b:00.0");
        config_done(&c);

        /* And the defaults. */
        _cleanup_(gpu_backend_freep) GpuBackend *d = NULL;
        _cleanup_(gpu_list_done) GpuList dl = {};
        ASSERT_OK(config_init(&c));
        c.backend = GPU_BACKEND_MOCK;
        ASSERT_OK(gpu_backend_open(&c, &d));
        ASSERT_OK(gpu_backend_enumerate(d, &dl));
        ASSERT_EQ(dl.n_gpus, 8);
        ASSERT_STREQ(dl.gpus[0].product_name, "NVIDIA A10");
        ASSERT_EQ_U(dl.gpus[0].memory_total, 23028ULL << 20);
        config_done(&c);
}

static void test_parse(void) {
        Gpu gpus[3] = {};
        MockHealth h[3];

        for (unsigned i = 0; i < 3; i++)
                snprintf(gpus[i].name, sizeof(gpus[i].name), "hami-gpu-%u", i);

        static const char text[] =
                "# comment\n"
                "\n"
                "hami-gpu-1 unhealthy   XID 79: GPU has fallen off the bus  \r\n"
                "hami-gpu-2 unhealthy\n"
                "hami-gpu-9 unhealthy no such GPU\n"
                "hami-gpu-0 sick\n"
                "hami-gpu-0\n"
                "hami-gpu-0 unhealthy \x01 control\n"
                "   hami-gpu-0\thealthy";
        ASSERT_EQ(mock_health_parse(text, strlen(text), gpus, 3, h), 4);
        ASSERT_EQ(h[0].health, GPU_HEALTH_HEALTHY);
        ASSERT_STREQ(h[0].reason, "");
        ASSERT_EQ(h[1].health, GPU_HEALTH_UNHEALTHY);
        ASSERT_STREQ(h[1].reason, "XID 79: GPU has fallen off the bus");
        ASSERT_EQ(h[2].health, GPU_HEALTH_UNHEALTHY);
        ASSERT_STREQ(h[2].reason, MOCK_HEALTH_DEFAULT_REASON);

        /* Later lines win; NUL bytes make a line bad, not shorter. */
        static const char later[] = "hami-gpu-1 unhealthy a\nhami-gpu-1 healthy\nhami-gpu-2 unhealthy x\0y\n";
        ASSERT_EQ(mock_health_parse(later, sizeof(later) - 1, gpus, 3, h), 1);
        ASSERT_EQ(h[1].health, GPU_HEALTH_HEALTHY);
        ASSERT_EQ(h[2].health, GPU_HEALTH_HEALTHY);

        /* Reasons are cut to fit; lines and files have limits. */
        char *big = malloc(MOCK_HEALTH_FILE_MAX + 2);
        ASSERT_NOT_NULL(big);
        int n = snprintf(big, MOCK_HEALTH_FILE_MAX, "hami-gpu-0 unhealthy ");
        memset(big + n, 'r', 600);
        big[n + 600] = '\n';
        ASSERT_EQ(mock_health_parse(big, (size_t) n + 601, gpus, 3, h), 0);
        ASSERT_EQ(strlen(h[0].reason), GPU_HEALTH_REASON_MAX - 1);
        memset(big + n, 'r', MOCK_HEALTH_LINE_MAX);
        ASSERT_EQ(mock_health_parse(big, (size_t) n + MOCK_HEALTH_LINE_MAX, gpus, 3, h), 1);
        memset(big, '\n', MOCK_HEALTH_FILE_MAX + 1);
        ASSERT_ERROR(mock_health_parse(big, MOCK_HEALTH_FILE_MAX + 1, gpus, 3, h), EFBIG);
        free(big);

        ASSERT_EQ(mock_health_parse("", 0, gpus, 3, h), 0);
        ASSERT_EQ(mock_health_parse("x", 1, NULL, 0, h), 1);
}

static void on_health(GpuBackend *b, const char *gpu, GpuHealth health, const char *reason, void *userdata) {
        HealthLog *log = userdata;

        log->calls++;
        snprintf(log->gpu, sizeof(log->gpu), "%s", gpu);
        log->health = health;
        snprintf(log->reason, sizeof(log->reason), "%s", reason);
}

static void write_health_file(const char *text) {
        char tmp[256], path[256];
        int fd;

        snprintf(tmp, sizeof(tmp), "%s/.mock-health.tmp", state_dir);
        snprintf(path, sizeof(path), "%s/%s", state_dir, MOCK_HEALTH_FILE);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        ASSERT_OK(close(fd));
        ASSERT_OK(rename(tmp, path));
}

/* Run the loop until the callback fired `calls` times in total (bounded, not timed). */
static void run_until(sd_event *e, HealthLog *log, unsigned calls) {
        for (unsigned i = 0; i < 500 && log->calls < calls; i++)
                ASSERT_OK(sd_event_run(e, 10 * 1000));
        ASSERT_EQ(log->calls, calls);
}

static void test_health_flip(void) {
        _cleanup_(gpu_backend_freep) GpuBackend *b = NULL;
        _cleanup_(gpu_list_done) GpuList l = {}, l2 = {};
        Config c = mock_config("node-a", 4);
        HealthLog log = {};
        sd_event *e = NULL;
        char path[256];

        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(gpu_backend_open(&c, &b));
        ASSERT_OK(gpu_backend_watch_health(b, e, on_health, &log));
        ASSERT_EQ(log.calls, 0); /* no file: all healthy, nothing changed */

        write_health_file("hami-gpu-2 unhealthy XID 79: GPU has fallen off the bus\n");
        run_until(e, &log, 1);
        ASSERT_STREQ(log.gpu, "hami-gpu-2");
        ASSERT_EQ(log.health, GPU_HEALTH_UNHEALTHY);
        ASSERT_STREQ(log.reason, "XID 79: GPU has fallen off the bus");

        ASSERT_OK(gpu_backend_enumerate(b, &l));
        ASSERT_EQ(l.gpus[2].health, GPU_HEALTH_UNHEALTHY);
        ASSERT_STREQ(l.gpus[2].health_reason, "XID 79: GPU has fallen off the bus");
        ASSERT_EQ(l.gpus[1].health, GPU_HEALTH_HEALTHY);

        /* Garbage is skipped, the good line still counts. */
        write_health_file("garbage\n\x7f\x7f\nhami-gpu-2 healthy\n");
        run_until(e, &log, 2);
        ASSERT_STREQ(log.gpu, "hami-gpu-2");
        ASSERT_EQ(log.health, GPU_HEALTH_HEALTHY);

        write_health_file("hami-gpu-0 unhealthy\n");
        run_until(e, &log, 3);
        ASSERT_STREQ(log.gpu, "hami-gpu-0");
        ASSERT_STREQ(log.reason, MOCK_HEALTH_DEFAULT_REASON);

        /* Removing the file makes everything healthy again. */
        snprintf(path, sizeof(path), "%s/%s", state_dir, MOCK_HEALTH_FILE);
        ASSERT_OK(unlink(path));
        run_until(e, &log, 4);
        ASSERT_STREQ(log.gpu, "hami-gpu-0");
        ASSERT_EQ(log.health, GPU_HEALTH_HEALTHY);

        ASSERT_OK(gpu_backend_enumerate(b, &l2));
        for (size_t i = 0; i < l2.n_gpus; i++)
                ASSERT_EQ(l2.gpus[i].health, GPU_HEALTH_HEALTHY);

        b = gpu_backend_free(b);
        sd_event_unref(e);
}

static void test_health_state_at_start(void) {
        _cleanup_(gpu_backend_freep) GpuBackend *b = NULL;
        Config c = mock_config("node-a", 2);
        HealthLog log = {};
        sd_event *e = NULL;
        char path[256];

        /* A file that exists before the daemon starts is honoured at once. */
        write_health_file("hami-gpu-1 unhealthy from before\n");
        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(gpu_backend_open(&c, &b));
        ASSERT_OK(gpu_backend_watch_health(b, e, on_health, &log));
        ASSERT_EQ(log.calls, 1);
        ASSERT_STREQ(log.gpu, "hami-gpu-1");
        ASSERT_STREQ(log.reason, "from before");

        /* A file too large is refused as a whole; the state stays. */
        char *big = malloc(MOCK_HEALTH_FILE_MAX + 2);
        ASSERT_NOT_NULL(big);
        memset(big, '#', MOCK_HEALTH_FILE_MAX + 1);
        big[MOCK_HEALTH_FILE_MAX + 1] = '\0';
        write_health_file(big);
        free(big);
        for (unsigned i = 0; i < 20; i++)
                ASSERT_OK(sd_event_run(e, 1000));
        ASSERT_EQ(log.calls, 1);

        snprintf(path, sizeof(path), "%s/%s", state_dir, MOCK_HEALTH_FILE);
        ASSERT_OK(unlink(path));
        b = gpu_backend_free(b);
        sd_event_unref(e);
}

int main(void) {
        log_set_max_level(LOG_DEBUG);
        ASSERT_NOT_NULL(mkdtemp(state_dir));

        TEST(test_count_and_attributes);
        TEST(test_deterministic_uuids);
        TEST(test_model_table);
        TEST(test_conf_man_example);
        TEST(test_parse);
        TEST(test_health_flip);
        TEST(test_health_state_at_start);

        ASSERT_OK(rmdir(state_dir));
        return 0;
}
