/* SPDX-License-Identifier: Apache-2.0 */

/* The metrics renderer (src/metrics.c): escaping, exact lines for a small state,
 * histogram invariants, hostile regions, and the exposition's grouping rules. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "histogram.h"
#include "macro.h"
#include "metrics.h"
#include "tests.h"


static unsigned reads;

/* Region "good" has a process on device 0 with a measurement; "fresh" was never
 * measured; anything else is hostile. */
static int fake_reader(const char *path, SharedRegionUsage *ret) {
        reads++;
        *ret = (SharedRegionUsage) { .n_devices = 1, .n_slots = 8 };
        if (strstr(path, "good")) {
                ret->n_active = 2;
                ret->used[0] = 100;
                ret->footprint_extra[0] = 28;
                ret->measured_sm[0] = 305;
                ret->measured_seq[0] = 7;
                return 0;
        }
        if (strstr(path, "fresh")) {
                ret->used[0] = 5;
                return 0;
        }
        if (strstr(path, "gone"))
                return -ENOENT;
        return -EBADMSG;
}

static char *render(Metrics *m, const MetricsOperation *op, uint64_t now) {
        MetricsBuffer b = {};
        char *text;

        ASSERT_OK(metrics_render(m, op, now, &b));
        text = metrics_buffer_steal(&b, NULL);
        ASSERT_NOT_NULL(text);
        return text;
}

#define ASSERT_HAS(text, line)                                                                   \
        do {                                                                                     \
                if (!strstr((text), (line)))                                                     \
                        TEST_FAIL("missing line: %s\n--- in:\n%s", (line), (text));              \
        } while (0)
#define ASSERT_HASNT(text, s)                                                                    \
        do {                                                                                     \
                if (strstr((text), (s)))                                                         \
                        TEST_FAIL("unexpected: %s", (s));                                        \
        } while (0)

static char *escaped(const char *v) {
        MetricsBuffer b = {};

        ASSERT_OK(metrics_buffer_put_label_value(&b, v));
        return metrics_buffer_steal(&b, NULL);
}

static void test_escape(void) {
        static const struct {
                const char *in, *out;
        } cases[] = {
                { "plain-name.1", "plain-name.1" },
                { "a\\b", "a\\\\b" },
                { "say \"hi\"", "say \\\"hi\\\"" },
                { "two\nlines", "two\\nlines" },
                { "tab\there", "tab\xef\xbf\xbdhere" },
                { "del\x7f", "del\xef\xbf\xbd" },
                { "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80" },
                { "bad\xc3", "bad\xef\xbf\xbd" },
                { "\xff\xfe", "\xef\xbf\xbd\xef\xbf\xbd" },
                { "overlong\xc0\xaf", "overlong\xef\xbf\xbd\xef\xbf\xbd" },
                { "surrogate\xed\xa0\x80", "surrogate\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
                { "", "" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *e = escaped(cases[i].in);
                ASSERT_STREQ(e, cases[i].out);
        }
}

static void claim(PreparedClaim *c, PreparedClaimDevice *d, const char *uid, const char *ns, const char *name,
                  const char *uuid, uint64_t mib, unsigned cores) {
        *d = (PreparedClaimDevice) {
                .gpu_uuid = (char *) uuid,
                .memory_mib = mib,
                .cores = cores,
                .cuda_index = 0,
        };
        *c = (PreparedClaim) {
                .uid = (char *) uid,
                .namespace_ = (char *) ns,
                .name = (char *) name,
                .devices = d,
                .n_devices = 1,
        };
}

static Metrics *small_state(void) {
        Metrics *m = NULL;
        MetricsDevice dev[2] = {
                { .name = "hami-gpu-0", .uuid = "GPU-a", .model = "NVIDIA A10", .memory_total = 24ULL << 30,
                  .healthy = true, .schedulable = true },
                { .name = "hami-gpu-1", .uuid = "GPU-b", .model = "NVIDIA A10", .memory_total = 24ULL << 30,
                  .healthy = false, .schedulable = false },
        };
        PreparedClaim c;
        PreparedClaimDevice d;

        ASSERT_OK(metrics_new("n\"1", "drv", "1.2.3", &m));
        metrics_set_region_reader(m, fake_reader);
        ASSERT_OK(metrics_set_devices(m, dev, 2));
        claim(&c, &d, "uid-a", "ns", "a", "GPU-a", 1024, 30);
        ASSERT_OK(metrics_claim_prepared(m, &c, "/r/good"));
        claim(&c, &d, "uid-b", "ns", "b", "GPU-a", 2048, 0);
        c.pod = (char *) "pod-b";
        ASSERT_OK(metrics_claim_prepared(m, &c, "/r/fresh"));
        claim(&c, &d, "uid-c", "other", "c\nx", "GPU-b", 0, 0);
        ASSERT_OK(metrics_claim_prepared(m, &c, "/r/hostile"));
        return m;
}

#define L_A "node=\"n\\\"1\",device_uuid=\"GPU-a\",namespace=\"ns\",claim=\"a\",claim_uid=\"uid-a\",pod=\"\"}"
#define L_B "node=\"n\\\"1\",device_uuid=\"GPU-a\",namespace=\"ns\",claim=\"b\",claim_uid=\"uid-b\",pod=\"pod-b\"}"
#define L_C "node=\"n\\\"1\",device_uuid=\"GPU-b\",namespace=\"other\",claim=\"c\\nx\",claim_uid=\"uid-c\",pod=\"\"}"
#define L_GPU_A "node=\"n\\\"1\",device_uuid=\"GPU-a\",device_index=\"0\",device_name=\"hami-gpu-0\",device_type=\"NVIDIA A10\"}"
#define L_GPU_B "node=\"n\\\"1\",device_uuid=\"GPU-b\",device_index=\"1\",device_name=\"hami-gpu-1\",device_type=\"NVIDIA A10\"}"

static void test_small_state(void) {
        _cleanup_(metrics_freep) Metrics *m = small_state();
        DraServiceStats dra = { .prepare = { 3, 1 }, .unprepare = { 2, 0 } };
        KubeRequestCount api[] = { { .verb = "GET", .code = 200, .count = 5 }, { .verb = "PUT", .code = 0, .count = 1 } };
        uint64_t writes[3][2] = { { 1, 0 }, { 4, 2 }, { 0, 1 } };
        MetricsOperation op = { .dra = &dra, .grpc_in_flight = 2, .api = api, .n_api = 2, .slice_writes = writes };
        _cleanup_free_ char *t = NULL;

        reads = 0;
        t = render(m, &op, 10 * 1000 * 1000);
        ASSERT_EQ_U(reads, 3u);
        /* Live usage: used + footprint, permille as a ratio, live processes. */
        ASSERT_HAS(t, "\nhami_dra_claim_memory_used_bytes{" L_A " 128\n");
        ASSERT_HAS(t, "\nhami_dra_claim_core_used_ratio{" L_A " 0.305\n");
        ASSERT_HAS(t, "\nhami_dra_claim_processes{" L_A " 2\n");
        ASSERT_HAS(t, "\nhami_dra_claim_memory_used_bytes{" L_B " 5\n");
        ASSERT_HASNT(t, "hami_dra_claim_core_used_ratio{" L_B); /* never measured */
        ASSERT_HASNT(t, "hami_dra_claim_memory_used_bytes{" L_C); /* hostile region */
        ASSERT_HAS(t, "\nhami_dra_shared_region_errors_total{node=\"n\\\"1\"} 1\n");
        /* Limits; none means the whole GPU. */
        ASSERT_HAS(t, "\nhami_dra_claim_memory_limit_bytes{" L_A " 1073741824\n");
        ASSERT_HAS(t, "\nhami_dra_claim_core_limit_ratio{" L_A " 0.3\n");
        ASSERT_HAS(t, "\nhami_dra_claim_core_limit_ratio{" L_B " 1\n");
        ASSERT_HAS(t, "\nhami_dra_claim_memory_limit_bytes{" L_C " 25769803776\n");
        /* HAMi's device and vGPU families: allocations are the limits' sums. */
        ASSERT_HAS(t, "\nhami_dra_gpu_memory_limit_bytes{" L_GPU_A " 25769803776\n");
        ASSERT_HAS(t, "\nhami_dra_gpu_core_limit_ratio{" L_GPU_A " 1\n");
        ASSERT_HAS(t, "\nhami_dra_gpu_memory_allocated_bytes{" L_GPU_A " 3221225472\n");
        ASSERT_HAS(t, "\nhami_dra_gpu_core_allocated_ratio{" L_GPU_A " 1.3\n");
        ASSERT_HAS(t, "\nhami_dra_gpu_memory_allocated_bytes{" L_GPU_B " 25769803776\n");
        ASSERT_HAS(t, "\nhami_dra_vgpu_memory_allocated_bytes{node=\"n\\\"1\",device_uuid=\"GPU-a\",namespace=\"ns\",pod=\"\"} 1073741824\n");
        ASSERT_HAS(t, "\nhami_dra_vgpu_memory_allocated_bytes{node=\"n\\\"1\",device_uuid=\"GPU-a\",namespace=\"ns\",pod=\"pod-b\"} 2147483648\n");
        ASSERT_HAS(t, "\nhami_dra_vgpu_core_allocated_ratio{node=\"n\\\"1\",device_uuid=\"GPU-a\",namespace=\"ns\",pod=\"pod-b\"} 1\n");
        ASSERT_HAS(t, "\nhami_dra_device_healthy{node=\"n\\\"1\",device_uuid=\"GPU-a\",device_name=\"hami-gpu-0\"} 1\n");
        ASSERT_HAS(t, "\nhami_dra_device_healthy{node=\"n\\\"1\",device_uuid=\"GPU-b\",device_name=\"hami-gpu-1\"} 0\n");
        ASSERT_HAS(t, "\nhami_dra_device_schedulable{node=\"n\\\"1\",device_uuid=\"GPU-b\",device_name=\"hami-gpu-1\"} 0\n");
        /* Driver operation. */
        ASSERT_HAS(t, "\nhami_dra_prepare_total{node=\"n\\\"1\",result=\"success\"} 3\n");
        ASSERT_HAS(t, "\nhami_dra_prepare_total{node=\"n\\\"1\",result=\"error\"} 1\n");
        ASSERT_HAS(t, "\nhami_dra_unprepare_total{node=\"n\\\"1\",result=\"success\"} 2\n");
        ASSERT_HAS(t, "\nhami_dra_grpc_requests_in_flight{node=\"n\\\"1\"} 2\n");
        ASSERT_HAS(t, "\nhami_dra_apiserver_requests_total{node=\"n\\\"1\",verb=\"GET\",code=\"200\"} 5\n");
        ASSERT_HAS(t, "\nhami_dra_apiserver_requests_total{node=\"n\\\"1\",verb=\"PUT\",code=\"error\"} 1\n");
        ASSERT_HAS(t, "\nhami_dra_resourceslice_writes_total{node=\"n\\\"1\",operation=\"update\",result=\"error\"} 2\n");
        ASSERT_HAS(t, "\nhami_dra_resourceslice_writes_total{node=\"n\\\"1\",operation=\"delete\",result=\"error\"} 1\n");
        ASSERT_HAS(t, "\nhami_dra_prepared_claims{node=\"n\\\"1\"} 3\n");
        ASSERT_HAS(t, "\nhami_dra_build_info{node=\"n\\\"1\",version=\"1.2.3\",driver=\"drv\"} 1\n");
        ASSERT_HAS(t, "# TYPE hami_dra_prepare_duration_seconds histogram\n");
        ASSERT_HAS(t, "# TYPE hami_dra_shared_region_errors_total counter\n");
        ASSERT_TRUE(t[strlen(t) - 1] == '\n');
}

/* Regions are read at most once a second; a hostile one counts each read, and the
 * series come back when it is fixed (here: unprepared). */
static void test_region_age(void) {
        _cleanup_(metrics_freep) Metrics *m = small_state();
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;

        reads = 0;
        a = render(m, NULL, 10 * 1000 * 1000);
        b = render(m, NULL, 10 * 1000 * 1000 + 999999);
        ASSERT_EQ_U(reads, 3u);
        ASSERT_EQ_U(metrics_region_errors(m), 1u);
        c = render(m, NULL, 11 * 1000 * 1000);
        ASSERT_EQ_U(reads, 6u);
        ASSERT_EQ_U(metrics_region_errors(m), 2u);
        ASSERT_HAS(c, "hami_dra_shared_region_errors_total{node=\"n\\\"1\"} 2\n");

        metrics_claim_unprepared(m, "uid-a");
        metrics_claim_unprepared(m, "no-such-uid");
        ASSERT_EQ_U(metrics_n_claims(m), 2u);
        free(c);
        c = render(m, NULL, 11 * 1000 * 1000);
        ASSERT_HASNT(c, "claim_uid=\"uid-a\"");
        ASSERT_HAS(c, "\nhami_dra_gpu_memory_allocated_bytes{" L_GPU_A " 2147483648\n");
        ASSERT_HAS(c, "\nhami_dra_prepared_claims{node=\"n\\\"1\"} 2\n");
}

/* A vanished region (unprepared between the observer and the read) is no error. */
static void test_region_gone(void) {
        _cleanup_(metrics_freep) Metrics *m = NULL;
        _cleanup_free_ char *t = NULL;
        PreparedClaim c;
        PreparedClaimDevice d;

        ASSERT_OK(metrics_new("n", "drv", "1", &m));
        metrics_set_region_reader(m, fake_reader);
        claim(&c, &d, "uid-g", "ns", "g", "GPU-x", 1, 1);
        ASSERT_OK(metrics_claim_prepared(m, &c, "/r/gone"));
        /* Prepared again: replaced, not doubled. */
        ASSERT_OK(metrics_claim_prepared(m, &c, "/r/gone"));
        ASSERT_EQ_U(metrics_n_claims(m), 1u);
        t = render(m, NULL, 1);
        ASSERT_EQ_U(metrics_region_errors(m), 0u);
        ASSERT_HASNT(t, "hami_dra_claim_memory_used_bytes{");
        /* Unknown GPU: the limit is what the claim says, no allocation anywhere. */
        ASSERT_HAS(t, "hami_dra_claim_memory_limit_bytes{node=\"n\",device_uuid=\"GPU-x\",namespace=\"ns\",claim=\"g\",claim_uid=\"uid-g\",pod=\"\"} 1048576\n");
}

/* A pod's claims on one GPU are summed into one vGPU series. */
static void test_vgpu_merge(void) {
        _cleanup_(metrics_freep) Metrics *m = small_state();
        _cleanup_free_ char *t = NULL;
        PreparedClaim c;
        PreparedClaimDevice d;

        claim(&c, &d, "uid-d", "ns", "d", "GPU-a", 512, 5);
        c.pod = (char *) "pod-b";
        ASSERT_OK(metrics_claim_prepared(m, &c, "/r/fresh"));
        t = render(m, NULL, 1);
        ASSERT_HAS(t, "\nhami_dra_vgpu_memory_allocated_bytes{node=\"n\\\"1\",device_uuid=\"GPU-a\",namespace=\"ns\",pod=\"pod-b\"} 2684354560\n");
        ASSERT_HAS(t, "\nhami_dra_vgpu_core_allocated_ratio{node=\"n\\\"1\",device_uuid=\"GPU-a\",namespace=\"ns\",pod=\"pod-b\"} 1.05\n");
        ASSERT_HAS(t, "\nhami_dra_gpu_core_allocated_ratio{" L_GPU_A " 1.35\n");
}

/* The usage monitor's readings stand in for the scrape's own, at most one a second. */
static void test_monitor_feed(void) {
        _cleanup_(metrics_freep) Metrics *m = small_state();
        _cleanup_free_ char *a = NULL, *b = NULL;
        SharedRegionUsage u = { .n_devices = 1, .n_active = 4, .used = { 1000 }, .footprint_extra = { 24 },
                                .measured_sm = { 2000 }, .measured_seq = { 1 } };

        reads = 0;
        metrics_claim_usage(m, "uid-a", 0, &u, 5 * 1000 * 1000);
        metrics_claim_usage(m, "uid-b", 0, &u, 5 * 1000 * 1000);
        metrics_claim_usage(m, "uid-c", -EBADMSG, &u, 5 * 1000 * 1000);
        metrics_claim_usage(m, "no-such-uid", 0, &u, 5 * 1000 * 1000);
        a = render(m, NULL, 5 * 1000 * 1000 + 500000);
        ASSERT_EQ_U(reads, 0u);
        ASSERT_HAS(a, "\nhami_dra_claim_memory_used_bytes{" L_A " 1024\n");
        ASSERT_HAS(a, "\nhami_dra_claim_core_used_ratio{" L_A " 1\n"); /* clamped to the whole GPU */
        ASSERT_HAS(a, "\nhami_dra_claim_processes{" L_B " 4\n");
        ASSERT_EQ_U(metrics_region_errors(m), 1u);
        /* A second reading within the second is not taken. */
        u.used[0] = 0;
        metrics_claim_usage(m, "uid-a", 0, &u, 5 * 1000 * 1000 + 600000);
        metrics_claim_usage(m, "uid-c", -EBADMSG, &u, 5 * 1000 * 1000 + 600000);
        ASSERT_EQ_U(metrics_region_errors(m), 1u);
        b = render(m, NULL, 5 * 1000 * 1000 + 700000);
        ASSERT_HAS(b, "\nhami_dra_claim_memory_used_bytes{" L_A " 1024\n");
        ASSERT_EQ_U(reads, 0u);
}

static double le_value(const char *line) {
        const char *p = strstr(line, "le=\"");

        ASSERT_NOT_NULL(p);
        if (strncmp(p + 4, "+Inf", 4) == 0)
                return -1;
        return strtod(p + 4, NULL);
}

static void test_histogram(void) {
        static const uint64_t bounds[] = { HISTOGRAM_BOUNDS_USEC };
        static const uint64_t observed[] = { 0, 999, 1000, 1001, 4000, 70000, 999999, 1000000, 29000000, 31000000,
                                             UINT64_C(3600000000) };
        _cleanup_(metrics_freep) Metrics *m = NULL;
        _cleanup_free_ char *t = NULL;
        DraServiceStats dra = {};
        MetricsOperation op = { .dra = &dra };
        uint64_t sum = 0, last = 0;
        size_t n = 0;
        char *line, *save = NULL;

        for (size_t i = 0; i < ELEMENTSOF(observed); i++) {
                histogram_observe(&dra.prepare_duration, observed[i]);
                sum += observed[i];
        }
        ASSERT_OK(metrics_new("n", "drv", "1", &m));
        t = render(m, &op, 1);
        for (line = strtok_r(t, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                uint64_t v;

                if (strncmp(line, "hami_dra_prepare_duration_seconds_", 34) != 0)
                        continue;
                v = strtoull(strrchr(line, ' ') + 1, NULL, 10);
                if (strstr(line, "_bucket{")) {
                        double le = le_value(line);
                        if (n < ELEMENTSOF(bounds))
                                ASSERT_EQ_U((uint64_t) (le * 1e6 + 0.5), bounds[n]);
                        else
                                ASSERT_TRUE(le < 0); /* +Inf last */
                        ASSERT_TRUE(v >= last); /* cumulative */
                        last = v;
                        n++;
                } else if (strstr(line, "_count{"))
                        ASSERT_EQ_U(v, (uint64_t) ELEMENTSOF(observed));
                else if (strstr(line, "_sum{")) {
                        double s = strtod(strrchr(line, ' ') + 1, NULL);
                        ASSERT_TRUE(s * 1e6 > (double) sum - 1 && s * 1e6 < (double) sum + 1);
                } else
                        TEST_FAIL("unexpected %s", line);
        }
        ASSERT_EQ_U(n, (size_t) HISTOGRAM_N_BOUNDS + 1);
        ASSERT_EQ_U(last, (uint64_t) ELEMENTSOF(observed)); /* +Inf == count */
        /* 0, 999, 1000 are <= 1 ms. */
        ASSERT_EQ_U(dra.prepare_duration.buckets[0], 3u);
}

/* Each family once: HELP and TYPE, then all its samples together, every sample named
 * after the family (histograms: with their suffixes). */
static void test_grouping(void) {
        _cleanup_(metrics_freep) Metrics *m = small_state();
        _cleanup_free_ char *t = render(m, NULL, 1);
        char family[128] = "", seen[64][128];
        size_t n_seen = 0;
        char *line, *save = NULL;

        for (line = strtok_r(t, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char name[128];

                if (strncmp(line, "# HELP ", 7) == 0) {
                        ASSERT_TRUE(sscanf(line + 7, "%127s", name) == 1);
                        for (size_t i = 0; i < n_seen; i++)
                                if (streq(seen[i], name))
                                        TEST_FAIL("family %s twice", name);
                        ASSERT_TRUE(n_seen < ELEMENTSOF(seen));
                        snprintf(seen[n_seen++], sizeof(seen[0]), "%s", name);
                        snprintf(family, sizeof(family), "%s", name);
                        continue;
                }
                if (strncmp(line, "# TYPE ", 7) == 0) {
                        ASSERT_TRUE(strncmp(line + 7, family, strlen(family)) == 0);
                        continue;
                }
                ASSERT_TRUE(strncmp(line, family, strlen(family)) == 0);
                ASSERT_TRUE(strchr(line, '{') && strstr(line, "} "));
        }
        ASSERT_TRUE(n_seen == 23);
}

int main(void) {
        TEST(test_escape);
        TEST(test_small_state);
        TEST(test_region_age);
        TEST(test_region_gone);
        TEST(test_vgpu_merge);
        TEST(test_monitor_feed);
        TEST(test_histogram);
        TEST(test_grouping);
        return 0;
}
