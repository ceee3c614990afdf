/* SPDX-License-Identifier: Apache-2.0 */

#include <stdio.h>

#include "claim.h"
#include "claim-params.h"
#include "macro.h"
#include "prepare-fixture.h"
#include "tests.h"

#define DRV FIXTURE_DRIVER
#define UID "0c6a3d6e-2f8e-4c6b-9b7e-4a2a0f1c9d11"

static int decode(const char *json, ClaimAllocation *c, char *err) {
        return claim_allocation_decode(json, strlen(json), DRV, FIXTURE_NODE, c, err, 512);
}

static char *read_example(const char *name) {
        char path[1024];
        const char *data = getenv("HAMI_DRA_TEST_DATA") ?: "tests/data";
        char *buf = NULL;
        size_t size = 0;
        FILE *f;

        snprintf(path, sizeof(path), "%s/examples/%s", data, name);
        f = fopen(path, "re");
        ASSERT_NOT_NULL(f);
        ASSERT_TRUE(getdelim(&buf, &size, '\0', f) > 0);
        fclose(f);
        return buf;
}

static void test_shared_examples(void) {
        _cleanup_(claim_allocation_done) ClaimAllocation c = {};
        _cleanup_free_ char *compat = read_example("resourceclaim-compat-allocated.json"),
                            *native = read_example("resourceclaim-native-allocated.json");
        char err[512];

        ASSERT_OK(claim_allocation_decode(compat, strlen(compat), DRV, "ecs-a10-sh", &c, err, sizeof(err)));
        ASSERT_STREQ(c.uid, "8212ef37-f71c-45ca-ac4a-f94ead923eef");
        ASSERT_STREQ(c.namespace_, "default");
        ASSERT_EQ(c.n_results, 1);
        ASSERT_STREQ(c.results[0].device, "hami-gpu-0");
        ASSERT_STREQ(c.results[0].share_id, "a8dba99f-7841-41ad-9f07-5ec39ddee543");
        ASSERT_TRUE(c.results[0].has_consumed_capacity);
        ASSERT_EQ_U(c.results[0].consumed_memory, UINT64_C(10) << 30);
        ASSERT_EQ_U(c.results[0].consumed_cores, 50);
        ASSERT_NULL(c.results[0].class_parameters_json);
        ASSERT_NULL(c.results[0].claim_parameters_json);

        /* The same claim, but this node is another one. */
        claim_allocation_done(&c);
        ASSERT_ERROR(claim_allocation_decode(compat, strlen(compat), DRV, "node1", &c, err, sizeof(err)), EXDEV);
        ASSERT_TRUE(strstr(err, "allocated to another node") != NULL);

        /* The walkthrough's native claim lost its UID in the rendering: refused. */
        ASSERT_ERROR(claim_allocation_decode(native, strlen(native), DRV, "ecs-a10-sh", &c, err, sizeof(err)),
                     EBADMSG);
        ASSERT_TRUE(strstr(err, "uid") != NULL);
}

static void test_rejects(void) {
        ClaimAllocation c = {};
        char err[512];
        static const char *const bad[] = {
                "", "nope", "[]", "{}", "{\"metadata\":{}}", "{\"metadata\":[]}",
                "{\"metadata\":{\"uid\":\"-x\",\"name\":\"a\",\"namespace\":\"b\"},\"status\":{\"allocation\":{}}}",
                "{\"metadata\":{\"uid\":\"u1\",\"name\":\"A_B\",\"namespace\":\"b\"},\"status\":{\"allocation\":{}}}",
                "{\"metadata\":{\"uid\":\"u1\",\"name\":\"a\",\"namespace\":\"b\"},\"status\":{\"allocation\":[]}}",
                "{\"metadata\":{\"uid\":\"u1\",\"name\":\"a\",\"namespace\":\"b\"},\"status\":{\"allocation\":"
                "{\"devices\":{\"results\":{}}}}}",
                "{\"metadata\":{\"uid\":\"u1\",\"name\":\"a\",\"namespace\":\"b\"},\"status\":{\"allocation\":"
                "{\"devices\":{\"results\":[{\"driver\":\"" DRV "\",\"pool\":\"node1\",\"device\":\"../x\","
                "\"request\":\"gpu\"}]}}}}",
                "{\"metadata\":{\"uid\":\"u1\",\"name\":\"a\",\"namespace\":\"b\"},\"status\":{\"allocation\":"
                "{\"devices\":{\"results\":[{\"driver\":\"" DRV "\",\"pool\":\"node1\",\"device\":\"hami-gpu-0\","
                "\"request\":\"gpu\",\"shareID\":\"NOT-A-UUID\"}]}}}}",
                "{\"metadata\":{\"uid\":\"u1\",\"name\":\"a\",\"namespace\":\"b\"},\"status\":{\"allocation\":"
                "{\"devices\":{\"results\":[{\"driver\":\"" DRV "\",\"pool\":\"node1\",\"device\":\"hami-gpu-0\","
                "\"request\":\"gpu\",\"consumedCapacity\":{\"memory\":\"-1\"}}]}}}}",
                "{\"metadata\":{\"uid\":\"u1\",\"name\":\"a\",\"namespace\":\"b\"},\"status\":{\"allocation\":"
                "{\"devices\":{\"results\":[{\"driver\":\"" DRV "\",\"pool\":\"node1\",\"device\":\"hami-gpu-0\","
                "\"request\":\"gpu\",\"adminAccess\":\"yes\"}]}}}}",
                "{\"metadata\":{\"uid\":\"u1\",\"name\":\"a\",\"namespace\":\"b\"}} trailing",
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                int r = claim_allocation_decode(bad[i], strlen(bad[i]), DRV, FIXTURE_NODE, &c, err, sizeof(err));
                if (r != -EBADMSG)
                        TEST_FAIL("bad[%zu]: expected -EBADMSG, got %d (%s)", i, r, err);
                ASSERT_TRUE(err[0] != '\0');
        }

        /* Not allocated. */
        const char *unalloc = "{\"metadata\":{\"uid\":\"u1\",\"name\":\"a\",\"namespace\":\"b\"},\"status\":{}}";
        ASSERT_ERROR(decode(unalloc, &c, err), ENODATA);
        ASSERT_TRUE(strstr(err, "not allocated") != NULL);

        /* Too many results. */
        FixtureResult many[CLAIM_RESULTS_MAX + 1];
        for (size_t i = 0; i < ELEMENTSOF(many); i++)
                many[i] = (FixtureResult) { .device = "hami-gpu-0" };
        _cleanup_free_ char *big = fixture_claim(UID, "c", many, ELEMENTSOF(many), NULL);
        ASSERT_ERROR(decode(big, &c, err), E2BIG);
}

static void test_other_drivers_skipped(void) {
        _cleanup_(claim_allocation_done) ClaimAllocation c = {};
        FixtureResult r[] = {
                { .device = "gpu-0", .driver = "gpu.nvidia.com", .pool = "elsewhere" },
                { .device = "hami-gpu-1", .memory = "1Gi", .cores = "10" },
        };
        _cleanup_free_ char *json = fixture_claim(UID, "c", r, ELEMENTSOF(r), NULL);
        char err[512];

        ASSERT_OK(decode(json, &c, err));
        ASSERT_EQ(c.n_results, 1);
        ASSERT_STREQ(c.results[0].device, "hami-gpu-1");
        ASSERT_EQ_U(c.results[0].consumed_memory, UINT64_C(1) << 30);
        ASSERT_NULL(c.results[0].share_id);
}

/* status.reservedFor names the pod (metrics only): the first core-group pod, and
 * anything malformed is skipped, never an error. */
static void test_reserved_for(void) {
        static const struct {
                const char *reserved_for, *pod;
        } cases[] = {
                { "[{\"resource\":\"pods\",\"name\":\"trainer-0\",\"uid\":\"u\"}]", "trainer-0" },
                { "[{\"resource\":\"jobs\",\"apiGroup\":\"batch\",\"name\":\"j\"},"
                  "{\"resource\":\"pods\",\"apiGroup\":\"\",\"name\":\"second\"}]", "second" },
                { "[{\"resource\":\"pods\",\"apiGroup\":\"x.io\",\"name\":\"p\"}]", NULL },
                { "[{\"resource\":\"pods\",\"name\":\"Not_A_Name\"}]", NULL },
                { "[{\"resource\":\"pods\",\"name\":7}, 3, null, \"x\"]", NULL },
                { "{\"resource\":\"pods\"}", NULL },
                { "[]", NULL },
        };
        FixtureResult r[] = { { .device = "hami-gpu-1", .memory = "1Gi", .cores = "10" } };
        _cleanup_free_ char *json = fixture_claim(UID, "c", r, ELEMENTSOF(r), NULL);
        const char *status = strstr(json, "\"status\":{");

        ASSERT_NOT_NULL(status);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(claim_allocation_done) ClaimAllocation c = {};
                _cleanup_free_ char *with = NULL;
                char err[512];
                int len = (int) (status - json) + (int) strlen("\"status\":{");

                ASSERT_TRUE(asprintf(&with, "%.*s\"reservedFor\":%s,%s", len, json, cases[i].reserved_for,
                                     json + len) > 0);
                ASSERT_OK(decode(with, &c, err));
                ASSERT_EQ(c.n_results, 1);
                if (cases[i].pod)
                        ASSERT_STREQ(c.pod, cases[i].pod);
                else
                        ASSERT_NULL(c.pod);
        }
}

#define PARAMS(mem) "{\"apiVersion\":\"" CLAIM_PARAMS_API_VERSION "\",\"kind\":\"GpuConfig\",\"memoryLimitPolicy\":\"" mem "\"}"

static void test_config_precedence(void) {
        _cleanup_(claim_allocation_done) ClaimAllocation c = {};
        FixtureResult r[] = {
                { .request = "a", .device = "hami-gpu-0" },
                { .request = "b/sub1", .device = "hami-gpu-1" },
                { .request = "c", .device = "hami-gpu-2" },
        };
        /* Claim entries come after class entries whatever their order in the list. */
        const char *configs =
                "[{\"source\":\"FromClaim\",\"requests\":[\"a\"],\"opaque\":{\"driver\":\"" DRV "\",\"parameters\":" PARAMS("disabled") "}},"
                " {\"source\":\"FromClass\",\"opaque\":{\"driver\":\"" DRV "\",\"parameters\":" PARAMS("hard") "}},"
                " {\"source\":\"FromClaim\",\"requests\":[\"b\"],\"opaque\":{\"driver\":\"" DRV "\",\"parameters\":" PARAMS("disabled") "}},"
                " {\"source\":\"FromClaim\",\"opaque\":{\"driver\":\"other.example.com\",\"parameters\":{\"x\":1}}}]";
        _cleanup_free_ char *json = fixture_claim(UID, "c", r, ELEMENTSOF(r), configs);
        ClaimParams g;
        char err[512];

        ASSERT_OK(decode(json, &c, err));
        ASSERT_EQ(c.n_results, 3);
        /* The claim's entry and the class's are kept apart: limits merge them. */
        ASSERT_NOT_NULL(c.results[0].claim_parameters_json);
        ASSERT_OK(claim_params_parse(c.results[0].claim_parameters_json, strlen(c.results[0].claim_parameters_json), &g, err, 512));
        ASSERT_EQ(g.memory_limit_policy, LIMIT_POLICY_DISABLED);
        ASSERT_NOT_NULL(c.results[0].class_parameters_json);
        ASSERT_OK(claim_params_parse(c.results[0].class_parameters_json, strlen(c.results[0].class_parameters_json), &g, err, 512));
        ASSERT_EQ(g.memory_limit_policy, LIMIT_POLICY_HARD);
        /* "b" covers "b/sub1". */
        ASSERT_OK(claim_params_parse(c.results[1].claim_parameters_json, strlen(c.results[1].claim_parameters_json), &g, err, 512));
        ASSERT_EQ(g.memory_limit_policy, LIMIT_POLICY_DISABLED);
        /* Only the class entry applies to "c". */
        ASSERT_NULL(c.results[2].claim_parameters_json);
        ASSERT_OK(claim_params_parse(c.results[2].class_parameters_json, strlen(c.results[2].class_parameters_json), &g, err, 512));
        ASSERT_EQ(g.memory_limit_policy, LIMIT_POLICY_HARD);
}

static void test_malformed_opaque(void) {
        ClaimAllocation c = {};
        FixtureResult r[] = { { .device = "hami-gpu-0" } };
        static const char *const params[] = {
                "{\"apiVersion\":\"" CLAIM_PARAMS_API_VERSION "\",\"kind\":\"GpuConfig\",\"bogus\":1}",
                "{\"apiVersion\":\"gpu.project-hami.io/v9\",\"kind\":\"GpuConfig\"}",
                "{\"kind\":\"GpuConfig\"}",
                "{\"apiVersion\":\"" CLAIM_PARAMS_API_VERSION "\",\"kind\":\"GpuConfig\",\"smLimitPolicy\":\"soft\"}",
                "{\"apiVersion\":\"" CLAIM_PARAMS_API_VERSION "\",\"kind\":\"GpuConfig\",\"oversubscription\":\"yes\"}",
                "[]",
        };

        for (size_t i = 0; i < ELEMENTSOF(params); i++) {
                char configs[1024], err[512];
                snprintf(configs, sizeof(configs),
                         "[{\"source\":\"FromClaim\",\"opaque\":{\"driver\":\"" DRV "\",\"parameters\":%s}}]", params[i]);
                _cleanup_free_ char *json = fixture_claim(UID, "c", r, 1, configs);
                ASSERT_ERROR(decode(json, &c, err), EBADMSG);
                ASSERT_TRUE(strstr(err, "malformed opaque config") != NULL);
        }

        /* A full, valid object. */
        ClaimParams g;
        char err[256];
        const char *ok = "{\"apiVersion\":\"" CLAIM_PARAMS_API_VERSION "\",\"kind\":\"GpuConfig\","
                         "\"memoryLimitPolicy\":\"disabled\",\"smLimitPolicy\":\"hard\",\"oversubscription\":true}";
        ASSERT_OK(claim_params_parse(ok, strlen(ok), &g, err, sizeof(err)));
        ASSERT_EQ(g.memory_limit_policy, LIMIT_POLICY_DISABLED);
        ASSERT_EQ(g.sm_limit_policy, LIMIT_POLICY_HARD);
        ASSERT_TRUE(g.oversubscription);
}

int main(void) {
        TEST(test_shared_examples);
        TEST(test_rejects);
        TEST(test_other_drivers_skipped);
        TEST(test_reserved_for);
        TEST(test_config_precedence);
        TEST(test_malformed_opaque);
        return 0;
}
