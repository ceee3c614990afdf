/* SPDX-License-Identifier: Apache-2.0 */

#include <json-c/json.h>
#include <stdio.h>
#include <sys/wait.h>

#include "cdi.h"
#include "claim-limits.h"
#include "fsutil.h"
#include "macro.h"
#include "prepare-fixture.h"
#include "tests.h"

#define UID "0c6a3d6e-2f8e-4c6b-9b7e-4a2a0f1c9d11"
#define UID_LETTER "ac6a3d6e-2f8e-4c6b-9b7e-4a2a0f1c9d11"
#define S1 "6f1c2f1e-0000-4000-8000-000000000001"

static Fixture fx;
static HostDriver host;

typedef struct Built {
        char *json;
        char version[16];
} Built;

static void build(const char *uid, const FixtureResult *r, size_t n, const char *configs, bool host_paths,
                  bool from_runtime, Built *ret) {
        _cleanup_(claim_allocation_done) ClaimAllocation c = {};
        _cleanup_free_ char *json = fixture_claim(uid, "c", r, n, configs);
        HostDeviceNode nodes[CLAIM_RESULTS_MAX];
        ClaimLimits l;
        char err[512], dir[512];
        json_object *root, *v;

        ASSERT_OK(claim_allocation_decode(json, strlen(json), FIXTURE_DRIVER, FIXTURE_NODE, &c, err, sizeof(err)));
        ASSERT_OK(claim_limits_compute(&c, &fx.gpus, &l, err, sizeof(err)));
        for (size_t g = 0; g < l.n_gpus; g++) {
                ASSERT_OK(host_gpu_node(fx.dev_root, l.gpus[g].gpu->minor, &nodes[g]));
                if (!host_paths)
                        strcpy(nodes[g].host_path, nodes[g].path);
        }
        HostDriver h = host;
        if (!host_paths)
                for (size_t i = 0; i < h.n_control; i++)
                        strcpy(h.control[i].host_path, h.control[i].path);
        if (from_runtime)
                h.n_files = 0;
        snprintf(dir, sizeof(dir), "%s/claims/%s", fx.state_dir, uid);
        CdiClaimSpec in = {
                .driver_name = FIXTURE_DRIVER,
                .claim = &c,
                .limits = &l,
                .host = &h,
                .gpu_nodes = nodes,
                .claim_dir = dir,
                .preload_library = fx.preload,
                .ld_so_preload = "/var/lib/hami-dra/ld.so.preload",
                .driver_from_runtime = from_runtime,
        };
        ASSERT_OK(cdi_spec_build(&in, &ret->json));
        ASSERT_OK(cdi_spec_write(fx.cdi_dir, FIXTURE_DRIVER, uid, ret->json));

        root = json_tokener_parse(ret->json);
        ASSERT_NOT_NULL(root);
        ASSERT_TRUE(json_object_object_get_ex(root, "cdiVersion", &v));
        snprintf(ret->version, sizeof(ret->version), "%s", json_object_get_string(v));
        ASSERT_TRUE(json_object_object_get_ex(root, "kind", &v));
        ASSERT_STREQ(json_object_get_string(v), "k8s." FIXTURE_DRIVER "/claim");
        json_object_put(root);
}

static bool has(const Built *b, const char *needle) {
        char quoted[512];
        snprintf(quoted, sizeof(quoted), "\"%s\"", needle);
        return strstr(b->json, quoted) != NULL;
}

/* Whether the device whose name ends in suffix carries env entry needle. */
static bool device_has(const Built *b, const char *suffix, const char *needle) {
        json_object *root = json_tokener_parse(b->json), *devices, *v;
        bool found = false;

        ASSERT_NOT_NULL(root);
        ASSERT_TRUE(json_object_object_get_ex(root, "devices", &devices));
        for (size_t i = 0; i < json_object_array_length(devices); i++) {
                json_object *d = json_object_array_get_idx(devices, i), *edits, *env;
                const char *name;

                ASSERT_TRUE(json_object_object_get_ex(d, "name", &v));
                name = json_object_get_string(v);
                if (strlen(name) < strlen(suffix) || !streq(name + strlen(name) - strlen(suffix), suffix))
                        continue;
                if (!json_object_object_get_ex(d, "containerEdits", &edits) ||
                    !json_object_object_get_ex(edits, "env", &env))
                        continue;
                for (size_t k = 0; k < json_object_array_length(env); k++)
                        found = found || streq(json_object_get_string(json_object_array_get_idx(env, k)), needle);
        }
        json_object_put(root);
        return found;
}

static void test_names(void) {
        char buf[CDI_NAME_MAX];
        _cleanup_free_ char *id = NULL;
        char uid[CLAIM_UID_MAX + 1];

        ASSERT_OK(cdi_device_name(UID, "hami-gpu-0", S1, buf, sizeof(buf)));
        ASSERT_STREQ(buf, UID "-hami-gpu-0-" S1);
        ASSERT_OK(cdi_device_name(UID, "hami-gpu-0", NULL, buf, sizeof(buf)));
        ASSERT_STREQ(buf, UID "-hami-gpu-0");
        id = cdi_device_id(FIXTURE_DRIVER, buf);
        ASSERT_STREQ(id, "k8s." FIXTURE_DRIVER "/claim=" UID "-hami-gpu-0");
        ASSERT_ERROR(cdi_device_name(UID, "x/y", NULL, buf, sizeof(buf)), EINVAL);
        ASSERT_FALSE(cdi_name_is_valid("-a"));
        ASSERT_FALSE(cdi_name_is_valid("a-"));
        ASSERT_TRUE(cdi_name_is_valid("0:a.b_c-1"));
        ASSERT_OK(cdi_spec_file_name(FIXTURE_DRIVER, UID, buf, sizeof(buf)));
        ASSERT_STREQ(buf, "k8s." FIXTURE_DRIVER "-claim_" UID ".json");
        ASSERT_TRUE(cdi_spec_file_parse(FIXTURE_DRIVER, buf, uid, sizeof(uid)));
        ASSERT_STREQ(uid, UID);
        ASSERT_FALSE(cdi_spec_file_parse(FIXTURE_DRIVER, "k8s.other.io-claim_" UID ".json", uid, sizeof(uid)));
        ASSERT_FALSE(cdi_spec_file_parse(FIXTURE_DRIVER, "k8s." FIXTURE_DRIVER "-claim_../x.json", uid, sizeof(uid)));
}

static void test_single_share(void) {
        FixtureResult r[] = { { .device = "hami-gpu-0", .share_id = S1, .memory = "10Gi", .cores = "50" } };
        Built b;

        build(UID, r, 1, NULL, true, false, &b);
        ASSERT_STREQ(b.version, "0.5.0");   /* the name starts with a digit; hostPath */
        ASSERT_TRUE(has(&b, UID "-hami-gpu-0-" S1));
        ASSERT_TRUE(has(&b, "CUDA_DEVICE_MEMORY_LIMIT_0=10240m"));
        ASSERT_TRUE(has(&b, "CUDA_DEVICE_MEMORY_LIMIT=10240m"));
        ASSERT_TRUE(has(&b, "CUDA_DEVICE_SM_LIMIT_0=50"));
        ASSERT_TRUE(has(&b, "CUDA_DEVICE_SM_LIMIT=50"));
        ASSERT_TRUE(has(&b, "CUDA_DEVICE_MEMORY_SHARED_CACHE=/run/hami-dra/vgpu.cache"));
        /* The region file is mounted, not its directory: nothing a container does adds a
         * file on the host. */
        ASSERT_TRUE(has(&b, "/run/hami-dra/vgpu.cache"));
        ASSERT_FALSE(has(&b, "/run/hami-dra"));
        ASSERT_TRUE(strstr(b.json, "/vgpu/vgpu.cache\"") != NULL);
        ASSERT_TRUE(has(&b, "/dev/nvidia0"));
        ASSERT_TRUE(has(&b, "/dev/nvidiactl"));
        ASSERT_TRUE(has(&b, "/dev/nvidia-uvm"));
        ASSERT_TRUE(has(&b, "/dev/nvidia-uvm-tools"));
        ASSERT_TRUE(has(&b, "/etc/ld.so.preload"));
        ASSERT_TRUE(has(&b, "/usr/lib/x86_64-linux-gnu/libcuda.so.1"));
        ASSERT_TRUE(strstr(b.json, "libcuda.so.570.86.15\"") != NULL);  /* the resolved file is mounted */
        ASSERT_TRUE(has(&b, "/usr/bin/nvidia-smi"));
        ASSERT_FALSE(strstr(b.json, "NVIDIA_VISIBLE_DEVICES") != NULL);
        free(b.json);
}

static void test_letter_uid_lowest_version(void) {
        FixtureResult r[] = { { .device = "hami-gpu-1" } };
        Built b;

        build(UID_LETTER, r, 1, NULL, false, false, &b);
        ASSERT_STREQ(b.version, "0.4.0");   /* only mounts[].type */
        ASSERT_FALSE(strstr(b.json, "\"hostPath\":\"/dev") != NULL);
        /* Whole device: 24 GiB, 100 cores. */
        ASSERT_TRUE(has(&b, "CUDA_DEVICE_MEMORY_LIMIT_0=24576m"));
        ASSERT_TRUE(has(&b, "CUDA_DEVICE_SM_LIMIT_0=100"));
        free(b.json);
}

static void test_several_gpus(void) {
        FixtureResult r[] = {
                { .device = "hami-gpu-0", .memory = "1Gi", .cores = "10" },
                { .device = "hami-gpu-2", .memory = "2Gi", .cores = "20" },
                { .device = "hami-gpu-1", .memory = "3Gi", .cores = "30" },
        };
        Built b;

        build("b1b2c3d4-0000-4000-8000-00000000000a", r, 3, NULL, true, false, &b);
        ASSERT_TRUE(has(&b, "CUDA_DEVICE_MEMORY_LIMIT_2=1024m"));
        ASSERT_TRUE(has(&b, "CUDA_DEVICE_MEMORY_LIMIT_0=2048m"));
        ASSERT_TRUE(has(&b, "CUDA_DEVICE_MEMORY_LIMIT_1=3072m"));
        ASSERT_TRUE(has(&b, "CUDA_DEVICE_SM_LIMIT_1=30"));
        ASSERT_FALSE(strstr(b.json, "\"CUDA_DEVICE_MEMORY_LIMIT=") != NULL);
        free(b.json);
}

/* Issue 14 item 4: two requests on two GPUs, each GPU its own index, UUID and limits. */
static void test_two_requests(void) {
        FixtureResult r[] = {
                { .request = "a", .device = "hami-gpu-0", .memory = "2Gi", .cores = "20" },
                { .request = "b", .device = "hami-gpu-1", .memory = "1Gi", .cores = "10" },
        };
        Built b;

        build("d1b2c3d4-0000-4000-8000-00000000000c", r, 2, NULL, true, false, &b);
        /* PCI order: hami-gpu-1 (0000:7f) is index 0, hami-gpu-0 (0000:80) index 1. */
        ASSERT_TRUE(device_has(&b, "-hami-gpu-0", "CUDA_DEVICE_UUID_1=GPU-00000000-0000-0000-0000-000000000000"));
        ASSERT_TRUE(device_has(&b, "-hami-gpu-0", "CUDA_DEVICE_MEMORY_LIMIT_1=2048m"));
        ASSERT_TRUE(device_has(&b, "-hami-gpu-0", "CUDA_DEVICE_SM_LIMIT_1=20"));
        ASSERT_TRUE(device_has(&b, "-hami-gpu-1", "CUDA_DEVICE_UUID_0=GPU-00000000-0000-0000-0000-000000000001"));
        ASSERT_TRUE(device_has(&b, "-hami-gpu-1", "CUDA_DEVICE_MEMORY_LIMIT_0=1024m"));
        ASSERT_TRUE(device_has(&b, "-hami-gpu-1", "CUDA_DEVICE_SM_LIMIT_0=10"));
        /* Nothing that would apply one GPU's limit to the other. */
        ASSERT_FALSE(device_has(&b, "-hami-gpu-0", "CUDA_DEVICE_MEMORY_LIMIT_0=2048m"));
        ASSERT_FALSE(strstr(b.json, "\"CUDA_DEVICE_MEMORY_LIMIT=") != NULL);
        ASSERT_FALSE(strstr(b.json, "\"CUDA_DEVICE_SM_LIMIT=") != NULL);
        free(b.json);
}

static void test_runtime_and_policies(void) {
        FixtureResult r[] = {
                { .device = "hami-gpu-0", .memory = "1Gi", .cores = "10" },
                { .device = "hami-gpu-1", .memory = "1Gi", .cores = "10" },
        };
        const char *configs =
                "[{\"source\":\"FromClass\",\"opaque\":{\"driver\":\"" FIXTURE_DRIVER "\",\"parameters\":"
                "{\"apiVersion\":\"gpu.project-hami.io/v1alpha1\",\"kind\":\"GpuConfig\",\"memoryLimitPolicy\":\"disabled\","
                "\"oversubscription\":true}}}]";
        Built b;

        build("c1b2c3d4-0000-4000-8000-00000000000b", r, 2, configs, true, true, &b);
        ASSERT_TRUE(has(&b, "NVIDIA_VISIBLE_DEVICES=GPU-00000000-0000-0000-0000-000000000001,"
                            "GPU-00000000-0000-0000-0000-000000000000"));
        ASSERT_FALSE(strstr(b.json, "libcuda") != NULL);
        ASSERT_FALSE(strstr(b.json, "CUDA_DEVICE_MEMORY_LIMIT") != NULL);
        ASSERT_TRUE(has(&b, "CUDA_DEVICE_SM_LIMIT_0=10"));
        ASSERT_TRUE(has(&b, "CUDA_OVERSUBSCRIBE=true"));
        free(b.json);
}

/* A driver upgrade: the spec's driver files and control nodes follow the host, nothing else changes. */
static void test_update_host(void) {
        FixtureResult r[] = { { .device = "hami-gpu-0", .share_id = S1, .memory = "10Gi", .cores = "50" } };
        char path[1024], target[1024], aside[1024], err[256], *out = NULL;
        FILE *f;
        HostDriver now;
        _cleanup_(cdi_host_edits_freep) CdiHostEdits *before = NULL, *after = NULL;
        Built b;

        build(UID, r, 1, NULL, true, false, &b);
        /* Nothing changed: nothing to write. */
        ASSERT_OK(cdi_host_edits_new(&host, &before));
        ASSERT_EQ(cdi_spec_update_host(b.json, before, &out), 0);
        ASSERT_NULL(out);

        /* libcuda.so.1 -> libcuda.so.580.1.2; nvidia-smi gone; nvidia-uvm-tools gone. */
        snprintf(target, sizeof(target), "%s/usr/lib/x86_64-linux-gnu/libcuda.so.580.1.2", fx.driver_root);
        f = fopen(target, "we");
        ASSERT_NOT_NULL(f);
        fputs("newer\n", f);
        fclose(f);
        snprintf(path, sizeof(path), "%s/usr/lib/x86_64-linux-gnu/libcuda.so.1", fx.driver_root);
        ASSERT_OK(unlink(path) < 0 ? -errno : 0);
        ASSERT_OK(symlink("libcuda.so.580.1.2", path) < 0 ? -errno : 0);
        snprintf(path, sizeof(path), "%s/usr/bin/nvidia-smi", fx.driver_root);
        snprintf(aside, sizeof(aside), "%s/nvidia-smi.aside", fx.root);
        ASSERT_OK(rename(path, aside) < 0 ? -errno : 0);   /* out of the way, kept for the restore */
        ASSERT_OK(host_driver_discover(fx.dev_root, fx.driver_root, false, &now, err, sizeof(err)));
        ASSERT_FALSE(host_driver_equal(&host, &now));
        now.n_control = 2;
        ASSERT_OK(cdi_host_edits_new(&now, &after));

        ASSERT_EQ(cdi_spec_update_host(b.json, after, &out), 1);
        ASSERT_NOT_NULL(out);
        ASSERT_TRUE(strstr(out, "libcuda.so.580.1.2\"") != NULL);
        ASSERT_NULL(strstr(out, "libcuda.so.570.86.15"));
        ASSERT_NULL(strstr(out, "nvidia-smi"));
        ASSERT_NULL(strstr(out, "nvidia-uvm-tools"));
        ASSERT_TRUE(strstr(out, "\"/dev/nvidia-uvm\"") != NULL);
        /* Kept: the region, the preload, ld.so.preload, the device and its limits. */
        ASSERT_TRUE(strstr(out, "\"/run/hami-dra/vgpu.cache\"") != NULL);
        ASSERT_TRUE(strstr(out, "\"/etc/ld.so.preload\"") != NULL);
        ASSERT_TRUE(strstr(out, fx.preload) != NULL);
        ASSERT_TRUE(strstr(out, "CUDA_DEVICE_MEMORY_LIMIT_0=10240m") != NULL);
        ASSERT_TRUE(strstr(out, UID "-hami-gpu-0-" S1) != NULL);
        /* Idempotent: the rewritten spec is up to date. */
        char *again = NULL;
        ASSERT_EQ(cdi_spec_update_host(out, after, &again), 0);
        ASSERT_OK(cdi_spec_write(fx.cdi_dir, FIXTURE_DRIVER, UID_LETTER, out));  /* test_schema validates it */

        /* Not a spec: refused, never a crash. */
        ASSERT_EQ(cdi_spec_update_host("{\"kind\":\"x\"}", after, &again), -EBADMSG);
        ASSERT_EQ(cdi_spec_update_host("[1,2", after, &again), -EBADMSG);
        ASSERT_EQ(cdi_spec_update_host("{\"containerEdits\":{\"mounts\":{}}}", after, &again), -EBADMSG);
        ASSERT_EQ(cdi_spec_update_host("{\"containerEdits\":{\"mounts\":[1]}}", after, &again), -EBADMSG);
        ASSERT_NULL(again);

        ASSERT_TRUE(host_driver_is_file_path("/usr/lib/x86_64-linux-gnu/libcuda.so.1"));
        ASSERT_TRUE(host_driver_is_file_path("/usr/bin/nvidia-smi"));
        ASSERT_FALSE(host_driver_is_file_path("/etc/ld.so.preload"));
        ASSERT_FALSE(host_driver_is_file_path("/usr/lib/x86_64-linux-gnu/libc.so.6"));
        ASSERT_FALSE(host_driver_is_file_path("/usr/lib/libcuda.so.1/x"));
        ASSERT_FALSE(host_driver_is_file_path("libcuda.so.1"));

        /* Put the fixture back for the tests after this one. */
        snprintf(path, sizeof(path), "%s/usr/bin/nvidia-smi", fx.driver_root);
        ASSERT_OK(rename(aside, path) < 0 ? -errno : 0);
        snprintf(path, sizeof(path), "%s/usr/lib/x86_64-linux-gnu/libcuda.so.1", fx.driver_root);
        ASSERT_OK(unlink(path) < 0 ? -errno : 0);
        ASSERT_OK(symlink("libcuda.so.570.86.15", path) < 0 ? -errno : 0);
        free(out);
        free(b.json);
}

static void test_schema(void) {
        char cmd[2048];
        const char *src = getenv("HAMI_DRA_SOURCE_ROOT") ?: ".";
        int status;

        /* Every spec the tests above wrote, through JSON Schema and the Go loader's rules. */
        snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/tests/cdi-validate.py --exact-minimum %s/*.json", src,
                 fx.cdi_dir);
        status = system(cmd);
        ASSERT_TRUE(WIFEXITED(status));
        ASSERT_EQ(WEXITSTATUS(status), 0);
}

int main(void) {
        char err[256];

        fixture_init(&fx, 3);
        ASSERT_OK(mkdir_parents(fx.cdi_dir, 0755));
        ASSERT_OK(host_driver_discover(fx.dev_root, fx.driver_root, false, &host, err, sizeof(err)));
        ASSERT_EQ(host.n_control, 3);
        ASSERT_EQ(host.n_files, 3);
        TEST(test_names);
        TEST(test_single_share);
        TEST(test_letter_uid_lowest_version);
        TEST(test_several_gpus);
        TEST(test_two_requests);
        TEST(test_runtime_and_policies);
        TEST(test_update_host);
        TEST(test_schema);
        fixture_done(&fx);
        return 0;
}
