/* SPDX-License-Identifier: Apache-2.0 */

#include "claim-limits.h"
#include "macro.h"
#include "prepare-fixture.h"
#include "tests.h"

#define UID "0c6a3d6e-2f8e-4c6b-9b7e-4a2a0f1c9d11"
#define S1 "6f1c2f1e-0000-4000-8000-000000000001"
#define S2 "6f1c2f1e-0000-4000-8000-000000000002"
#define MIB (UINT64_C(1) << 20)

static Fixture fx;

#define PARAMS_HEAD "{\"apiVersion\":\"gpu.project-hami.io/v1alpha1\",\"kind\":\"GpuConfig\","
#define SM_POLICY(p) PARAMS_HEAD "\"smLimitPolicy\":\"" p "\"}"
#define MEM_POLICY(p) PARAMS_HEAD "\"memoryLimitPolicy\":\"" p "\"}"
#define CONFIG_ENTRY(source, params) \
        "{\"source\":\"" source "\",\"opaque\":{\"driver\":\"" FIXTURE_DRIVER "\",\"parameters\":" params "}}"
#define CONFIG(source, params) "[" CONFIG_ENTRY(source, params) "]"

static int compute(const FixtureResult *r, size_t n, const char *configs, ClaimLimits *l, char *err) {
        _cleanup_(claim_allocation_done) ClaimAllocation c = {};
        _cleanup_free_ char *json = fixture_claim(UID, "c", r, n, configs);
        int k;

        k = claim_allocation_decode(json, strlen(json), FIXTURE_DRIVER, FIXTURE_NODE, &c, err, 512);
        if (k < 0)
                return k;
        return claim_limits_compute(&c, &fx.gpus, l, err, 512);
}

static void test_shares_summed(void) {
        FixtureResult r[] = {
                { .device = "hami-gpu-0", .share_id = S1, .memory = "4Gi", .cores = "20" },
                { .request = "gpu2", .device = "hami-gpu-0", .share_id = S2, .memory = "2Gi", .cores = "30" },
        };
        ClaimLimits l;
        char err[512];

        ASSERT_OK(compute(r, 2, NULL, &l, err));
        ASSERT_EQ(l.n_gpus, 1);
        ASSERT_EQ_U(l.gpus[0].memory, UINT64_C(6) << 30);
        ASSERT_EQ_U(l.gpus[0].memory_mib, 6144);
        ASSERT_EQ(l.gpus[0].cores, 50);
        ASSERT_EQ(l.results[0].gpu, 0);
        ASSERT_EQ(l.results[1].gpu, 0);
        ASSERT_EQ(l.results[0].cuda_index, 0);
}

static void test_whole_device_default(void) {
        FixtureResult r[] = { { .device = "hami-gpu-1" } };
        ClaimLimits l;
        char err[512];

        ASSERT_OK(compute(r, 1, NULL, &l, err));
        ASSERT_EQ_U(l.gpus[0].memory, FIXTURE_GPU_MEMORY);
        ASSERT_EQ_U(l.gpus[0].memory_mib, FIXTURE_GPU_MEMORY / MIB);
        ASSERT_EQ(l.gpus[0].cores, 100);
        ASSERT_EQ(l.gpus[0].memory_policy, LIMIT_POLICY_HARD);
}

static void test_several_gpus_cuda_order(void) {
        /* Fixture bus ids run backwards: hami-gpu-2 (0000:7e) < hami-gpu-1 (7f) < hami-gpu-0 (80). */
        FixtureResult r[] = {
                { .device = "hami-gpu-0", .memory = "1Gi", .cores = "10" },
                { .device = "hami-gpu-2", .memory = "2Gi", .cores = "20" },
                { .device = "hami-gpu-1", .memory = "3Gi", .cores = "30" },
        };
        ClaimLimits l;
        char err[512];

        ASSERT_OK(compute(r, 3, NULL, &l, err));
        ASSERT_EQ(l.n_gpus, 3);
        ASSERT_EQ(l.results[0].cuda_index, 2);
        ASSERT_EQ(l.results[1].cuda_index, 0);
        ASSERT_EQ(l.results[2].cuda_index, 1);
        ASSERT_EQ_U(l.gpus[l.results[2].gpu].memory_mib, 3072);
}

static void test_indices_across_requests(void) {
        /* Two main requests: each GPU keeps its one index in the claim (issue 14 item 4:
         * per-request indices put hami-gpu-0 and hami-gpu-2 both on region device 0). */
        FixtureResult r[] = {
                { .request = "a", .device = "hami-gpu-0", .memory = "1Gi", .cores = "10" },
                { .request = "b/x", .device = "hami-gpu-1", .memory = "2Gi", .cores = "20" },
                { .request = "b/x", .device = "hami-gpu-2", .memory = "3Gi", .cores = "30" },
                { .request = "c", .device = "hami-gpu-1", .memory = "1Gi", .cores = "5" },
        };
        ClaimLimits l;
        char err[512];

        ASSERT_OK(compute(r, 4, NULL, &l, err));
        ASSERT_EQ(l.n_gpus, 3);
        ASSERT_EQ(l.results[0].cuda_index, 2);
        ASSERT_EQ(l.results[1].cuda_index, 1);
        ASSERT_EQ(l.results[2].cuda_index, 0);
        ASSERT_EQ(l.results[3].cuda_index, 1);   /* another request, the same GPU */
        ASSERT_EQ_U(l.gpus[l.results[1].gpu].memory_mib, 3072);
        ASSERT_EQ(l.gpus[l.results[1].gpu].cores, 25);
        ASSERT_EQ_U(l.gpus[l.results[0].gpu].memory_mib, 1024);
}

static void test_rounding(void) {
        FixtureResult r[] = { { .device = "hami-gpu-0", .memory = "1536Ki", .cores = "1" } };
        FixtureResult tiny[] = { { .device = "hami-gpu-0", .memory = "1000Ki", .cores = "1" } };
        FixtureResult nocores[] = { { .device = "hami-gpu-0", .memory = "1Gi", .cores = "0" } };
        FixtureResult dec[] = { { .device = "hami-gpu-0", .memory = "10G", .cores = "5" } };
        ClaimLimits l;
        char err[512];

        ASSERT_OK(compute(r, 1, NULL, &l, err));
        ASSERT_EQ_U(l.gpus[0].memory_mib, 1);        /* 1.5 MiB rounds down */
        ASSERT_OK(compute(dec, 1, NULL, &l, err));
        ASSERT_EQ_U(l.gpus[0].memory_mib, 9536);     /* 10^10 / 2^20 = 9536.7 */
        ASSERT_ERROR(compute(tiny, 1, NULL, &l, err), ERANGE);
        ASSERT_ERROR(compute(nocores, 1, NULL, &l, err), ERANGE);
        /* With the SM limit disabled by the class, 0 cores is fine. */
        ASSERT_OK(compute(nocores, 1, CONFIG("FromClass", SM_POLICY("disabled")), &l, err));
        ASSERT_EQ(l.gpus[0].sm_policy, LIMIT_POLICY_DISABLED);
}

/* Issue 14 item 3: a tenant's own config never lifts a limit the class keeps. */
static void test_claim_cannot_relax(void) {
        FixtureResult nocores[] = { { .device = "hami-gpu-0", .memory = "1Gi", .cores = "0" } };
        FixtureResult some[] = { { .device = "hami-gpu-0", .memory = "1Gi", .cores = "10" } };
        ClaimLimits l;
        char err[512];

        /* cores "0" with the claim's "disabled": refused, never "no SM limit". */
        ASSERT_ERROR(compute(nocores, 1, CONFIG("FromClaim", SM_POLICY("disabled")), &l, err), EPERM);
        ASSERT_TRUE(strstr(err, "smLimitPolicy") && strstr(err, "only the DeviceClass may relax"));
        /* The class says hard explicitly, the claim disables: refused. */
        ASSERT_ERROR(compute(some, 1, "[" CONFIG_ENTRY("FromClass", SM_POLICY("hard")) ","
                                      CONFIG_ENTRY("FromClaim", SM_POLICY("disabled")) "]", &l, err), EPERM);
        ASSERT_ERROR(compute(some, 1, CONFIG("FromClaim", MEM_POLICY("disabled")), &l, err), EPERM);
        ASSERT_TRUE(strstr(err, "memoryLimitPolicy") != NULL);
        /* The claim may tighten what the class relaxed... */
        ASSERT_OK(compute(some, 1, "[" CONFIG_ENTRY("FromClass", SM_POLICY("disabled")) ","
                                   CONFIG_ENTRY("FromClaim", SM_POLICY("hard")) "]", &l, err));
        ASSERT_EQ(l.gpus[0].sm_policy, LIMIT_POLICY_HARD);
        ASSERT_EQ(l.gpus[0].cores, 10);
        /* ...and repeat a relaxation the class allows. */
        ASSERT_OK(compute(nocores, 1, "[" CONFIG_ENTRY("FromClass", SM_POLICY("disabled")) ","
                                      CONFIG_ENTRY("FromClaim", SM_POLICY("disabled")) "]", &l, err));
        ASSERT_EQ(l.gpus[0].sm_policy, LIMIT_POLICY_DISABLED);
        /* A claim's entry for another request does not matter. */
        ASSERT_OK(compute(some, 1, "[{\"source\":\"FromClaim\",\"requests\":[\"other\"],\"opaque\":{\"driver\":\""
                                   FIXTURE_DRIVER "\",\"parameters\":" SM_POLICY("disabled") "}}]", &l, err));
        ASSERT_EQ(l.gpus[0].sm_policy, LIMIT_POLICY_HARD);
}

static void test_exceeds_and_unknown(void) {
        FixtureResult mem[] = { { .device = "hami-gpu-0", .memory = "25Gi", .cores = "10" } };
        FixtureResult sum[] = {
                { .device = "hami-gpu-0", .share_id = S1, .memory = "20Gi", .cores = "10" },
                { .device = "hami-gpu-0", .share_id = S2, .memory = "5Gi", .cores = "10" },
        };
        FixtureResult cores[] = {
                { .device = "hami-gpu-0", .share_id = S1, .memory = "1Gi", .cores = "60" },
                { .device = "hami-gpu-0", .share_id = S2, .memory = "1Gi", .cores = "41" },
        };
        FixtureResult whole_and_share[] = {
                { .device = "hami-gpu-0" },
                { .device = "hami-gpu-0", .share_id = S2, .memory = "1Gi", .cores = "1" },
        };
        FixtureResult unknown[] = { { .device = "hami-gpu-9" } };
        ClaimLimits l;
        char err[512];

        ASSERT_ERROR(compute(mem, 1, NULL, &l, err), ERANGE);
        ASSERT_TRUE(strstr(err, "exceeds the device") != NULL);
        ASSERT_ERROR(compute(sum, 2, NULL, &l, err), ERANGE);
        ASSERT_ERROR(compute(cores, 2, NULL, &l, err), ERANGE);
        ASSERT_ERROR(compute(whole_and_share, 2, NULL, &l, err), ERANGE);
        ASSERT_ERROR(compute(unknown, 1, NULL, &l, err), ENODEV);
        ASSERT_TRUE(strstr(err, "hami-gpu-9") != NULL);
}

int main(void) {
        fixture_init(&fx, 3);
        TEST(test_shares_summed);
        TEST(test_whole_device_default);
        TEST(test_several_gpus_cuda_order);
        TEST(test_indices_across_requests);
        TEST(test_rounding);
        TEST(test_claim_cannot_relax);
        TEST(test_exceeds_and_unknown);
        fixture_done(&fx);
        return 0;
}
