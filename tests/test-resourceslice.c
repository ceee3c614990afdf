/* SPDX-License-Identifier: Apache-2.0 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quantity.h"
#include "resourceslice.h"
#include "tests.h"

#define DRIVER "hami-core-gpu.project-hami.io"
#define NODE "node1"
#define MIB (UINT64_C(1) << 20)

static void gpu_fill(Gpu *g, unsigned minor) {
        *g = (Gpu) { .minor = minor, .memory_total = 23028 * MIB + 5000, .cores = GPU_CORES_TOTAL,
                     .health = GPU_HEALTH_HEALTHY };
        snprintf(g->name, sizeof(g->name), "hami-gpu-%u", minor);
        snprintf(g->uuid, sizeof(g->uuid), "GPU-f1c7d08c-ae21-13e7-0de0-%012x", minor);
        strcpy(g->product_name, "NVIDIA A10");
        strcpy(g->brand, "Nvidia");
        strcpy(g->architecture, "Ampere");
        strcpy(g->cuda_compute_capability, "8.6.0");
        strcpy(g->driver_version, "550.144.03");
        strcpy(g->cuda_driver_version, "12.4");
        snprintf(g->pcie_bus_id, sizeof(g->pcie_bus_id), "0000:%02x:00.0", minor & 0xff);
        strcpy(g->pcie_root, "pci0000:64");
}

static GpuList gpus_make(size_t n) {
        GpuList l = { .gpus = calloc(n ?: 1, sizeof(Gpu)), .n_gpus = n };
        ASSERT_NOT_NULL(l.gpus);
        for (size_t i = 0; i < n; i++)
                gpu_fill(&l.gpus[i], (unsigned) i);
        return l;
}

static json_object *pool_build(const GpuList *l, char **maintenance) {
        SlicePoolParams p = { .driver = DRIVER, .node = NODE, .node_uid = "76c7db94-fe0b-44ea-9b07-8bdb6132888b",
                              .generation = 1, .maintenance = maintenance };
        json_object *a = NULL;
        ASSERT_OK(resourceslice_pool_build(l, &p, &a));
        return a;
}

static uint64_t q(json_object *o, const char *path) {
        uint64_t v;
        const char *s = json_get_string(o, path);
        ASSERT_NOT_NULL(s);
        ASSERT_OK(quantity_parse(s, &v));
        return v;
}

/* The API server's validRange rules (kubernetes pkg/apis/resource/validation). */
static void assert_request_policy_valid(json_object *cap) {
        uint64_t value = q(cap, "value"), def = q(cap, "requestPolicy.default"),
                 min = q(cap, "requestPolicy.validRange.min"), max = q(cap, "requestPolicy.validRange.max"),
                 step = q(cap, "requestPolicy.validRange.step");
        ASSERT_TRUE(min <= value);
        ASSERT_TRUE(def >= min);
        ASSERT_TRUE(max <= value);
        ASSERT_TRUE(min <= max);
        ASSERT_TRUE(def <= max);
        ASSERT_TRUE(step > 0 && min + step <= value);
        ASSERT_EQ_U((def - min) % step, 0);
        ASSERT_EQ_U((max - min) % step, 0);
}

static void test_device(void) {
        GpuList l = gpus_make(1);
        json_object *pool = pool_build(&l, NULL), *s = json_object_array_get_idx(pool, 0),
                    *d = json_object_array_get_idx(json_get(s, "spec.devices"), 0);

        ASSERT_EQ(json_object_array_length(pool), 1);
        ASSERT_STREQ(json_get_string(s, "apiVersion"), "resource.k8s.io/v1");
        ASSERT_STREQ(json_get_string(s, "metadata.generateName"), "00000-" DRIVER "-" NODE "-");
        json_object *owner = json_object_array_get_idx(json_get(s, "metadata.ownerReferences"), 0);
        ASSERT_STREQ(json_get_string(owner, "kind"), "Node");
        ASSERT_STREQ(json_get_string(owner, "name"), NODE);
        ASSERT_STREQ(json_get_string(owner, "uid"), "76c7db94-fe0b-44ea-9b07-8bdb6132888b");
        ASSERT_TRUE(json_object_get_boolean(json_get(owner, "controller")));
        ASSERT_STREQ(json_get_string(s, "spec.driver"), DRIVER);
        ASSERT_STREQ(json_get_string(s, "spec.nodeName"), NODE);
        ASSERT_STREQ(json_get_string(s, "spec.pool.name"), NODE);
        ASSERT_EQ(json_object_get_int64(json_get(s, "spec.pool.resourceSliceCount")), 1);
        ASSERT_EQ(json_object_get_int64(json_get(s, "spec.pool.generation")), 1);

        ASSERT_STREQ(json_get_string(d, "name"), "hami-gpu-0");
        ASSERT_STREQ(json_get_string(d, "attributes.type.string"), "hami-gpu");
        ASSERT_STREQ(json_get_string(d, "attributes.productName.string"), "NVIDIA A10");
        ASSERT_STREQ(json_get_string(d, "attributes.cudaComputeCapability.version"), "8.6.0");
        ASSERT_STREQ(json_get_string(d, "attributes.driverVersion.version"), "550.144.3");
        ASSERT_STREQ(json_get_string(d, "attributes.cudaDriverVersion.version"), "12.4.0");
        ASSERT_STREQ(json_get_string(d, "attributes.pcieBusID.string"), "0000:00:00.0");
        ASSERT_EQ(json_object_get_int(json_get(d, "attributes.minor.int")), 0);
        json_object *root = NULL;
        ASSERT_TRUE(json_object_object_get_ex(json_get(d, "attributes"), "resource.kubernetes.io/pcieRoot", &root));
        ASSERT_STREQ(json_get_string(root, "string"), "pci0000:64");
        ASSERT_TRUE(json_object_object_length(json_get(d, "attributes")) + json_object_object_length(json_get(d, "capacity")) <= 32);

        ASSERT_TRUE(json_object_get_boolean(json_get(d, "allowMultipleAllocations")));
        ASSERT_STREQ(json_get_string(d, "capacity.cores.value"), "100");
        ASSERT_EQ_U(q(d, "capacity.cores.requestPolicy.default"), 100);
        ASSERT_EQ_U(q(d, "capacity.cores.requestPolicy.validRange.min"), 1);
        ASSERT_EQ_U(q(d, "capacity.cores.requestPolicy.validRange.step"), 1);
        ASSERT_STREQ(json_get_string(d, "capacity.memory.value"), "23028Mi");   /* rounded down */
        ASSERT_STREQ(json_get_string(d, "capacity.memory.requestPolicy.default"), "23028Mi");
        ASSERT_STREQ(json_get_string(d, "capacity.memory.requestPolicy.validRange.min"), "1Mi");
        assert_request_policy_valid(json_get(d, "capacity.cores"));
        assert_request_policy_valid(json_get(d, "capacity.memory"));
        ASSERT_NULL(json_get(d, "taints"));

        json_object_put(pool);
        free(l.gpus);
}

static void test_attribute_limits(void) {
        GpuList l = gpus_make(1);
        json_object *d;

        memset(l.gpus[0].product_name, 'x', 80);
        l.gpus[0].product_name[80] = '\0';
        memset(l.gpus[0].uuid, 'u', 80);
        l.gpus[0].uuid[80] = '\0';
        l.gpus[0].pcie_root[0] = '\0';
        strcpy(l.gpus[0].driver_version, "not a version");
        l.gpus[0].memory_total = 24 * 1024 * MIB;
        ASSERT_OK(resourceslice_device_build(&l.gpus[0], DRIVER, false, &d));
        ASSERT_EQ(strlen(json_get_string(d, "attributes.productName.string")), 64);
        ASSERT_NULL(json_get(d, "attributes.uuid"));
        ASSERT_NULL(json_get(d, "attributes.driverVersion"));
        json_object *root = NULL;
        ASSERT_FALSE(json_object_object_get_ex(json_get(d, "attributes"), "resource.kubernetes.io/pcieRoot", &root));
        ASSERT_STREQ(json_get_string(d, "capacity.memory.value"), "24Gi");
        json_object_put(d);

        /* Not a DNS label, or too little memory: not published. */
        strcpy(l.gpus[0].name, "GPU_0");
        ASSERT_ERROR(resourceslice_device_build(&l.gpus[0], DRIVER, false, &d), EINVAL);
        strcpy(l.gpus[0].name, "hami-gpu-0");
        l.gpus[0].memory_total = MIB;
        ASSERT_ERROR(resourceslice_device_build(&l.gpus[0], DRIVER, false, &d), EINVAL);
        free(l.gpus);
}

static void check_split(size_t n_gpus, size_t tainted, const size_t *expect, size_t n_expect) {
        GpuList l = gpus_make(n_gpus);
        json_object *pool;

        for (size_t i = 0; i < tainted; i++) {
                l.gpus[i].health = GPU_HEALTH_UNHEALTHY;
                strcpy(l.gpus[i].health_reason, "XID 79");
        }
        pool = pool_build(&l, NULL);
        ASSERT_EQ(json_object_array_length(pool), n_expect);
        size_t minor = 0;
        for (size_t i = 0; i < n_expect; i++) {
                json_object *s = json_object_array_get_idx(pool, i), *devs = json_get(s, "spec.devices");
                char prefix[64];
                unsigned idx;

                ASSERT_EQ(json_object_array_length(devs), expect[i]);
                ASSERT_EQ(json_object_get_int64(json_get(s, "spec.pool.resourceSliceCount")), n_expect);
                snprintf(prefix, sizeof(prefix), "%05zx-" DRIVER "-" NODE "-", i);
                ASSERT_STREQ(json_get_string(s, "metadata.generateName"), prefix);
                ASSERT_OK(resourceslice_name_index(prefix, &idx));
                ASSERT_EQ(idx, i);
                for (size_t j = 0; j < expect[i]; j++, minor++)
                        ASSERT_EQ(json_object_get_int(json_get(json_object_array_get_idx(devs, j), "attributes.minor.int")),
                                  (int) minor);
        }
        ASSERT_EQ(minor, n_gpus);
        json_object_put(pool);
        free(l.gpus);
}

static void test_split(void) {
        check_split(1, 0, (size_t[]) { 1 }, 1);
        check_split(128, 0, (size_t[]) { 128 }, 1);
        check_split(129, 0, (size_t[]) { 128, 1 }, 2);
        check_split(300, 0, (size_t[]) { 128, 128, 44 }, 3);
        check_split(129, 1, (size_t[]) { 64, 64, 1 }, 3);
        check_split(0, 0, (size_t[]) { 0 }, 1);
}

static void test_taints(void) {
        GpuList l = gpus_make(2);
        char *maint[] = { (char *) "hami-gpu-1", NULL };
        json_object *pool, *devs, *t;

        l.gpus[0].health = GPU_HEALTH_UNHEALTHY;
        strcpy(l.gpus[0].health_reason, "XID 79: GPU has fallen off the bus");
        pool = pool_build(&l, maint);
        devs = json_get(json_object_array_get_idx(pool, 0), "spec.devices");
        t = json_object_array_get_idx(json_get(json_object_array_get_idx(devs, 0), "taints"), 0);
        ASSERT_STREQ(json_get_string(t, "key"), DRIVER "/unhealthy");
        ASSERT_STREQ(json_get_string(t, "value"), "XID-79-GPU-has-fallen-off-the-bus");
        ASSERT_STREQ(json_get_string(t, "effect"), "NoSchedule");
        t = json_object_array_get_idx(json_get(json_object_array_get_idx(devs, 1), "taints"), 0);
        ASSERT_STREQ(json_get_string(t, "key"), DRIVER "/maintenance");
        json_object_put(pool);
        free(l.gpus);

        char v[64];
        char longreason[300];
        memset(longreason, 'a', sizeof(longreason) - 1);
        longreason[sizeof(longreason) - 1] = '\0';
        slice_taint_value_sanitize(longreason, v, sizeof(v));
        ASSERT_EQ(strlen(v), 63);
        slice_taint_value_sanitize("  --x y!!", v, sizeof(v));
        ASSERT_STREQ(v, "x-y");
}

static void test_equal_and_dropped(void) {
        GpuList l = gpus_make(2);
        json_object *a = pool_build(&l, NULL), *b = pool_build(&l, NULL), *sa, *sb, *cap, *merged;

        sa = json_get(json_object_array_get_idx(a, 0), "spec");
        sb = json_get(json_object_array_get_idx(b, 0), "spec");
        ASSERT_TRUE(resourceslice_spec_equal(sa, sb, 0));

        /* The server canonicalises: same number, other text. */
        cap = json_get(json_object_array_get_idx(json_get(sb, "devices"), 0), "capacity.memory");
        json_object_object_add(cap, "value", json_object_new_string("24146608128"));
        json_object_object_add(json_get(cap, "requestPolicy.validRange"), "min", json_object_new_string("1048576"));
        ASSERT_TRUE(resourceslice_spec_equal(sa, sb, 0));
        ASSERT_TRUE(quantity_equal("1048576", "1Mi"));
        ASSERT_TRUE(quantity_equal("1000m", "1"));
        ASSERT_FALSE(quantity_equal("1Mi", "1M"));
        ASSERT_FALSE(quantity_equal("x", "x"));

        /* A real difference. */
        json_object_object_add(json_get(json_object_array_get_idx(json_get(sb, "devices"), 1), "attributes.minor"), "int",
                               json_object_new_int(7));
        ASSERT_FALSE(resourceslice_spec_equal(sa, sb, 0));
        json_object_put(b);

        /* Feature gate off: allowMultipleAllocations and requestPolicy dropped. */
        b = pool_build(&l, NULL);
        sb = json_get(json_object_array_get_idx(b, 0), "spec");
        resourceslice_spec_strip(sb, SLICE_DROPPED_CONSUMABLE);
        ASSERT_NULL(json_get(json_object_array_get_idx(json_get(sb, "devices"), 0), "allowMultipleAllocations"));
        ASSERT_NULL(json_get(json_object_array_get_idx(json_get(sb, "devices"), 0), "capacity.cores.requestPolicy"));
        ASSERT_EQ(resourceslice_dropped_fields(sa, sb), SLICE_DROPPED_CONSUMABLE);
        ASSERT_EQ(resourceslice_dropped_fields(sa, sa), 0);
        ASSERT_FALSE(resourceslice_spec_equal(sa, sb, 0));
        ASSERT_TRUE(resourceslice_spec_equal(sa, sb, SLICE_DROPPED_CONSUMABLE));
        ASSERT_TRUE(strstr(SLICE_CONSUMABLE_FIX, "kube-apiserver, kube-scheduler and kubelet") != NULL);
        json_object_put(a);
        json_object_put(b);

        /* Taints: the server adds timeAdded; PUT keeps it. */
        l.gpus[0].health = GPU_HEALTH_UNHEALTHY;
        a = pool_build(&l, NULL);
        b = pool_build(&l, NULL);
        sa = json_get(json_object_array_get_idx(a, 0), "spec");
        sb = json_get(json_object_array_get_idx(b, 0), "spec");
        json_object *tb = json_object_array_get_idx(json_get(json_object_array_get_idx(json_get(sb, "devices"), 0), "taints"), 0);
        json_object_object_add(tb, "timeAdded", json_object_new_string("2026-11-23T10:00:00Z"));
        ASSERT_TRUE(resourceslice_spec_equal(sa, sb, 0));
        json_object *stored = json_object_array_get_idx(b, 0);
        json_object_object_add(json_get(stored, "metadata"), "resourceVersion", json_object_new_string("42"));
        ASSERT_OK(resourceslice_merge_for_update(stored, json_object_array_get_idx(a, 0), &merged));
        ASSERT_STREQ(json_get_string(merged, "metadata.resourceVersion"), "42");
        json_object *tm = json_object_array_get_idx(json_get(json_object_array_get_idx(json_get(merged, "spec.devices"), 0), "taints"), 0);
        ASSERT_STREQ(json_get_string(tm, "timeAdded"), "2026-11-23T10:00:00Z");
        json_object_object_add(tm, "timeAdded", json_object_new_string("2026-11-23T10:00:01Z"));
        ASSERT_TRUE(resourceslice_spec_equal(json_get(merged, "spec"), sb, 0));
        json_object_object_add(tm, "timeAdded", json_object_new_string("2026-11-23T10:00:05Z"));
        ASSERT_FALSE(resourceslice_spec_equal(json_get(merged, "spec"), sb, 0));
        json_object_put(merged);

        /* DRADeviceTaints off: taints dropped. */
        resourceslice_spec_strip(sb, SLICE_DROPPED_TAINTS);
        ASSERT_EQ(resourceslice_dropped_fields(sa, sb), SLICE_DROPPED_TAINTS);
        ASSERT_TRUE(resourceslice_spec_equal(sa, sb, SLICE_DROPPED_TAINTS));
        json_object_put(a);
        json_object_put(b);

        /* Garbage from the server compares unequal, never crashes. */
        json_object *junk = json_tokener_parse("{\"devices\": 5, \"pool\": []}"),
                    *junk2 = json_tokener_parse("{\"devices\": [{\"capacity\": 3, \"taints\": {}}], \"pool\": 1}");
        ASSERT_FALSE(resourceslice_spec_equal(junk, junk2, 0));
        ASSERT_FALSE(resourceslice_spec_equal(junk2, junk, 0));
        ASSERT_EQ(resourceslice_dropped_fields(junk2, junk), 0);
        json_object_put(junk);
        json_object_put(junk2);
        /* Devices and capacities that are no objects are left alone when stripping (json-c
         * aborts on deleting from them; found by fuzz-resourceslice). */
        junk = json_tokener_parse("{\"devices\": [\"1\", 7, null, {\"taints\": [], \"capacity\": "
                                  "{\"cores\": \"x\", \"memory\": {\"requestPolicy\": {}}}}]}");
        ASSERT_NOT_NULL(junk);
        resourceslice_spec_strip(junk, SLICE_DROPPED_CONSUMABLE | SLICE_DROPPED_TAINTS);
        ASSERT_STREQ(json_object_to_json_string_ext(junk, JSON_C_TO_STRING_PLAIN),
                     "{\"devices\":[\"1\",7,null,{\"capacity\":{\"cores\":\"x\",\"memory\":{}}}]}");
        json_object_put(junk);
        free(l.gpus);
}

static void test_versions_and_names(void) {
        char v[64];
        unsigned idx;

        ASSERT_OK(slice_version_normalize("535.104.05", v, sizeof(v)));
        ASSERT_STREQ(v, "535.104.5");
        ASSERT_OK(slice_version_normalize("12.4", v, sizeof(v)));
        ASSERT_STREQ(v, "12.4.0");
        ASSERT_OK(slice_version_normalize("9", v, sizeof(v)));
        ASSERT_STREQ(v, "9.0.0");
        ASSERT_OK(slice_version_normalize("1.2.3-rc.1+build.5", v, sizeof(v)));
        ASSERT_STREQ(v, "1.2.3-rc.1+build.5");
        ASSERT_ERROR(slice_version_normalize("1.2.3.4", v, sizeof(v)), EINVAL);
        ASSERT_ERROR(slice_version_normalize("v1", v, sizeof(v)), EINVAL);
        ASSERT_ERROR(slice_version_normalize("", v, sizeof(v)), EINVAL);

        ASSERT_OK(resourceslice_name_index("0000a-" DRIVER "-" NODE "-x7k2p", &idx));
        ASSERT_EQ(idx, 10);
        ASSERT_ERROR(resourceslice_name_index(NODE "-" DRIVER "-x7k2p", &idx), EINVAL);
        ASSERT_ERROR(resourceslice_name_index("0000-x", &idx), EINVAL);
}

int main(void) {
        TEST(test_device);
        TEST(test_attribute_limits);
        TEST(test_split);
        TEST(test_taints);
        TEST(test_equal_and_dropped);
        TEST(test_versions_and_names);
        return 0;
}
