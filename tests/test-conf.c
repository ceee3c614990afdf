/* SPDX-License-Identifier: Apache-2.0 */

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>

#include "conf.h"
#include "log.h"
#include "tests.h"

static char tmpdir[] = "/tmp/test-conf-XXXXXX";

static void write_file(const char *rel, const char *text) {
        char path[512];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
        f = fopen(path, "we");
        ASSERT_NOT_NULL(f);
        fputs(text, f);
        ASSERT_EQ(fclose(f), 0);
}

static int parse_args(Config *c, const char *first, ...) {
        char *argv[32] = { (char *) "hami-dra-plugin" };
        int argc = 1;
        va_list ap;

        va_start(ap, first);
        for (const char *a = first; a; a = va_arg(ap, const char *))
                argv[argc++] = (char *) a;
        va_end(ap);
        argv[argc] = NULL;
        return config_parse_argv(c, argc, argv);
}

static char *conf_arg(const char *rel) {
        static char buf[600];
        snprintf(buf, sizeof(buf), "--config=%s/%s", tmpdir, rel);
        return buf;
}

static void test_defaults(void) {
        Config c;
        ASSERT_OK(config_init(&c));
        ASSERT_OK(parse_args(&c, "--config=", "--node-name=node1", NULL));
        ASSERT_STREQ(c.driver_name, "hami-core-gpu.project-hami.io");
        ASSERT_STREQ(c.node_name, "node1");
        ASSERT_STREQ(c.registry_dir, "/var/lib/kubelet/plugins_registry");
        ASSERT_STREQ(c.plugins_dir, "/var/lib/kubelet/plugins");
        ASSERT_STREQ(c.cdi_dir, "/var/run/cdi");
        ASSERT_STREQ(c.state_dir, "/var/lib/hami-dra");
        ASSERT_STREQ(c.kubeconfig, "/etc/kubernetes/kubelet.conf");
        ASSERT_EQ(c.backend, GPU_BACKEND_NVML);
        ASSERT_TRUE(c.sandbox);
        ASSERT_NULL(c.config_file);
        ASSERT_EQ(c.reconcile_interval_sec, 300);

        char *reg = config_registration_socket(&c), *dra = config_dra_socket(&c);
        ASSERT_STREQ(reg, "/var/lib/kubelet/plugins_registry/hami-core-gpu.project-hami.io-reg.sock");
        ASSERT_STREQ(dra, "/var/lib/kubelet/plugins/hami-core-gpu.project-hami.io/dra.sock");
        free(reg);
        free(dra);
        config_done(&c);
}

static void test_file_dropins_flags(void) {
        Config c;

        write_file("main.conf",
                   "# comment\n"
                   "; another\n"
                   "\n"
                   "[Plugin]\n"
                   "NodeName = node-from-file\n"
                   "StateDirectory=/srv/state\n"
                   "CDIDirectory=/etc/cdi\n"
                   "LogLevel=debug\n"
                   "ReconcileIntervalSec=1\n"
                   "[GPU]\n"
                   "Backend=mock\n"
                   "[Mock]\n"
                   "GPUs=4\n"
                   "Model=NVIDIA H100 80GB HBM3\n"
                   "Memory=80GiB\n"
                   "[Container]\n"
                   "DriverFromRuntime=yes\n"
                   "[Sandbox]\n"
                   "Seccomp=kill\n");
        ASSERT_EQ(mkdir(strcat(strcpy((char[600]){}, tmpdir), "/main.conf.d"), 0755), 0);
        write_file("main.conf.d/10-gpus.conf", "[Mock]\nGPUs=6\n");
        write_file("main.conf.d/20-gpus.conf", "[Mock]\nGPUs=7\nMemory=23028Mi\n");
        write_file("main.conf.d/30-ignored.txt", "[Mock]\nGPUs=1\n");
        write_file("main.conf.d/.40-hidden.conf", "[Mock]\nGPUs=2\n");

        ASSERT_OK(config_init(&c));
        ASSERT_OK(parse_args(&c, conf_arg("main.conf"), NULL));
        ASSERT_STREQ(c.node_name, "node-from-file");
        ASSERT_STREQ(c.state_dir, "/srv/state");
        ASSERT_STREQ(c.cdi_dir, "/etc/cdi");
        ASSERT_EQ(c.backend, GPU_BACKEND_MOCK);
        ASSERT_EQ(c.mock_gpus, 7);                     /* later drop-in wins */
        ASSERT_EQ_U(c.mock_memory, 23028ULL << 20);
        ASSERT_STREQ(c.mock_model, "NVIDIA H100 80GB HBM3");
        ASSERT_TRUE(c.driver_from_runtime);
        ASSERT_EQ(c.seccomp_action, SECCOMP_ACTION_KILL);
        ASSERT_EQ(c.log_level, LOG_DEBUG);
        ASSERT_EQ(c.reconcile_interval_sec, 1);
        config_done(&c);

        /* Flags override the file, wherever they stand relative to --config. */
        ASSERT_OK(config_init(&c));
        ASSERT_OK(parse_args(&c, "--mock-gpus=3", conf_arg("main.conf"), "--node-name=n2", "--backend=nvml",
                             "--no-sandbox", "--state-dir=/x", NULL));
        ASSERT_EQ(c.mock_gpus, 3);
        ASSERT_STREQ(c.node_name, "n2");
        ASSERT_EQ(c.backend, GPU_BACKEND_NVML);
        ASSERT_FALSE(c.sandbox);
        ASSERT_STREQ(c.state_dir, "/x");
        config_done(&c);
}

static void test_missing_file_is_fine(void) {
        Config c;
        ASSERT_OK(config_init(&c));
        ASSERT_OK(parse_args(&c, conf_arg("does-not-exist.conf"), "--node-name=a", NULL));
        config_done(&c);
}

static void expect_bad_text(const char *text) {
        Config c;
        ASSERT_OK(config_init(&c));
        if (config_parse_text(&c, text, "test") >= 0)
                TEST_FAIL("accepted: %s", text);
        config_done(&c);
}

static void test_bad_values(void) {
        expect_bad_text("[Mock]\nGPUs=65\n");
        expect_bad_text("[Mock]\nGPUs=-1\n");
        expect_bad_text("[Mock]\nGPUs=eight\n");
        expect_bad_text("[Mock]\nMemory=12\n");       /* less than 1 MiB */
        expect_bad_text("[Mock]\nMemory=lots\n");
        expect_bad_text("[GPU]\nBackend=cuda\n");
        expect_bad_text("[Plugin]\nStateDirectory=relative/path\n");
        expect_bad_text("[Plugin]\nCDIDirectory=/a/../b\n");
        expect_bad_text("[Plugin]\nDriverName=Not_A_DNS_Name\n");
        expect_bad_text("[Plugin]\nNodeName=-node\n");
        expect_bad_text("[Plugin]\nLogLevel=loud\n");
        expect_bad_text("[Plugin]\nReconcileIntervalSec=86401\n");
        expect_bad_text("[Plugin]\nReconcileIntervalSec=-1\n");
        expect_bad_text("[Plugin]\nReconcileIntervalSec=5min\n");
        expect_bad_text("[Sandbox]\nEnabled=maybe\n");
        expect_bad_text("[Sandbox]\nSeccomp=trap\n");
        expect_bad_text("GPUs=1\n");                   /* outside of a section */
        expect_bad_text("[Mock\nGPUs=1\n");
        expect_bad_text("[Mock]\njust words\n");
        expect_bad_text("[]\n");

        /* A bad value leaves the earlier good one in place. */
        Config c;
        ASSERT_OK(config_init(&c));
        ASSERT_OK(config_parse_text(&c, "[Mock]\nGPUs=5\n", "good"));
        ASSERT_TRUE(config_parse_text(&c, "[Mock]\nGPUs=500\n", "bad") < 0);
        ASSERT_EQ(c.mock_gpus, 5);

        /* Unknown sections and keys are warnings, not errors. */
        ASSERT_OK(config_parse_text(&c, "[Future]\nThing=1\n[Mock]\nFutureKey=2\n", "unknown"));
        config_done(&c);
}

static void test_bad_flags(void) {
        Config c;

        ASSERT_OK(config_init(&c));
        ASSERT_TRUE(parse_args(&c, "--config=", "--mock-gpus=1000", NULL) < 0);
        config_done(&c);
        ASSERT_OK(config_init(&c));
        ASSERT_TRUE(parse_args(&c, "--config=", "--no-such-flag", NULL) < 0);
        config_done(&c);
        ASSERT_OK(config_init(&c));
        ASSERT_TRUE(parse_args(&c, "--config=", "stray-argument", NULL) < 0);
        config_done(&c);
        /* A socket path longer than sun_path is refused up front. */
        ASSERT_OK(config_init(&c));
        ASSERT_ERROR(parse_args(&c, "--config=", "--node-name=a",
                                "--registry-dir=/very/long/path/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                NULL),
                     ENAMETOOLONG);
        config_done(&c);
        /* A file with a bad value makes start-up fail with an error, not a crash. */
        write_file("bad.conf", "[Mock]\nGPUs=100000\n");
        ASSERT_OK(config_init(&c));
        ASSERT_TRUE(parse_args(&c, conf_arg("bad.conf"), NULL) < 0);
        config_done(&c);
        /* Binary garbage. */
        int fd = open(strcat(strcpy((char[600]){}, tmpdir), "/nul.conf"), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(write(fd, "[Mock]\0GPUs=1\n", 14), 14);
        close(fd);
        ASSERT_OK(config_init(&c));
        ASSERT_ERROR(parse_args(&c, conf_arg("nul.conf"), NULL), EBADMSG);
        config_done(&c);
        /* A directory where the file should be. */
        ASSERT_OK(config_init(&c));
        ASSERT_ERROR(parse_args(&c, conf_arg("main.conf.d"), NULL), EBADFD);
        config_done(&c);
}

static void test_help_version(void) {
        Config c;
        ASSERT_OK(config_init(&c));
        ASSERT_EQ(parse_args(&c, "--help", NULL), 1);
        config_done(&c);
        ASSERT_OK(config_init(&c));
        ASSERT_EQ(parse_args(&c, "--version", NULL), 1);
        config_done(&c);
}

static void test_parse_size(void) {
        uint64_t v;
        ASSERT_OK(parse_size("24GiB", &v));
        ASSERT_EQ_U(v, 24ULL << 30);
        ASSERT_OK(parse_size("24G", &v));
        ASSERT_EQ_U(v, 24ULL << 30);
        ASSERT_OK(parse_size("24GB", &v));
        ASSERT_EQ_U(v, 24ULL << 30);
        ASSERT_OK(parse_size("512M", &v));
        ASSERT_EQ_U(v, 512ULL << 20);
        ASSERT_OK(parse_size("23028Mi", &v));
        ASSERT_EQ_U(v, 23028ULL << 20);
        ASSERT_OK(parse_size("4096", &v));
        ASSERT_EQ_U(v, 4096);
        ASSERT_ERROR(parse_size("", &v), EINVAL);
        ASSERT_ERROR(parse_size("G", &v), EINVAL);
        ASSERT_ERROR(parse_size("99999999999999999999G", &v), ERANGE);
}

/* What fuzz-conf found: 62 digits and "G" wrote past a 64-byte stack buffer. */
static void test_parse_size_too_long(void) {
        char digits[80], text[128];
        uint64_t v = 7;
        Config c;

        memset(digits, '9', 62);
        memcpy(digits + 62, "G", 2);
        ASSERT_ERROR(parse_size(digits, &v), ERANGE);
        for (size_t n = 60; n <= 66; n++) {
                memset(digits, '9', n);
                digits[n] = '\0';
                for (const char *const *unit = (const char *const[]) { "G", "M", "GB", "GiB", "", NULL }; *unit; unit++) {
                        snprintf(text, sizeof(text), "%s%s", digits, *unit);
                        ASSERT_ERROR(parse_size(text, &v), ERANGE);
                        ASSERT_EQ_U(v, 7);
                }
        }
        memset(digits, '9', 62);
        digits[62] = '\0';
        snprintf(text, sizeof(text), "[Mock]\nMemory=%sG\n", digits);
        ASSERT_OK(config_init(&c));
        ASSERT_ERROR(config_parse_text(&c, text, "test"), ERANGE);
        config_done(&c);
}

static int rm_cb(const char *p, const struct stat *s, int f, struct FTW *ftw) {
        return remove(p);
}

int main(void) {
        log_set_target(LOG_TARGET_CONSOLE);
        ASSERT_NOT_NULL(mkdtemp(tmpdir));
        TEST(test_defaults);
        TEST(test_file_dropins_flags);
        TEST(test_missing_file_is_fine);
        TEST(test_bad_values);
        TEST(test_bad_flags);
        TEST(test_help_version);
        TEST(test_parse_size);
        TEST(test_parse_size_too_long);
        nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        return 0;
}
