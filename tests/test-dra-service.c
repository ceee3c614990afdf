/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The DRA service (src/dra-service.c) as the kubelet sees it: NodePrepareResources and
 * NodeUnprepareResources requests (a strict fake DraRequest) answered per claim, with
 * claims read through a fake API server (an asynchronous fetcher with canned JSON):
 * success, idempotence without a fetch, every reject, many concurrent requests, and
 * the start-up re-verification of recovered claims.
 */

#include <stdio.h>
#include <systemd/sd-event.h>

#include "dra-service.h"
#include "fakes/fake-dra-request.h"
#include "log.h"
#include "macro.h"
#include "manager-dbus-claim.h"
#include "prepare-fixture.h"
#include "tests.h"
#include "time-util.h"

#define UID_OK "0c6a3d6e-2f8e-4c6b-9b7e-4a2a0f1c9d11"
#define UID_MISSING "1c6a3d6e-2f8e-4c6b-9b7e-4a2a0f1c9d11"
#define UID_ELSEWHERE "2c6a3d6e-2f8e-4c6b-9b7e-4a2a0f1c9d11"
#define UID_OLD "3c6a3d6e-2f8e-4c6b-9b7e-4a2a0f1c9d11"
#define UID_NEW "4c6a3d6e-2f8e-4c6b-9b7e-4a2a0f1c9d11"
#define S1 "6f1c2f1e-0000-4000-8000-000000000001"

#define API_MAX 512

typedef struct ApiClaim {
        char name[64];
        char *json;       /* NULL: 404 with the API server's NotFound Status */
        long status;      /* > 0: answer this status ... */
        const char *body; /* ... with this body (NULL: none) instead */
} ApiClaim;

typedef struct FakeApi {
        sd_event *event;
        ApiClaim claims[API_MAX];
        size_t n;
        unsigned fetches;
        bool hold;        /* never answer: an API server that hangs */
        unsigned busy_limit;  /* > 0: -EBUSY beyond this many in flight, like the API client */
        unsigned in_flight, busy_answers;
} FakeApi;

typedef struct Reply {
        FakeApi *api;
        ClaimFetchDone done;
        void *ctx;
        const ApiClaim *claim;
        char name[254];
} Reply;

static Fixture fx;
static FakeApi api;
static unsigned completed;
static unsigned observed_prepared, observed_unprepared;

static void observer(void *userdata, const char *uid, const PreparedClaim *c) {
        if (!c) {
                observed_unprepared++;
                return;
        }
        BusClaim b = {};
        ASSERT_STREQ(c->uid, uid);
        ASSERT_OK(manager_dbus_claim_from_prepared(c, fx.state_dir, &b));
        ASSERT_OK(bus_claim_validate(&b));
        ASSERT_TRUE(b.n_devices >= 1 && b.n_devices <= c->n_devices);
        ASSERT_EQ_U(b.devices[0].memory_limit, c->devices[0].memory_mib << 20);
        bus_claim_done(&b);
        observed_prepared++;
}

static void api_put(const char *name, char *json) {
        for (size_t i = 0; i < api.n; i++)
                if (streq(api.claims[i].name, name)) {
                        free(api.claims[i].json);
                        api.claims[i].json = json;
                        return;
                }
        ASSERT_TRUE(api.n < API_MAX);
        ASSERT_TRUE(snprintf(api.claims[api.n].name, sizeof(api.claims[api.n].name), "%s", name) <
                    (int) sizeof(api.claims[api.n].name));
        api.claims[api.n++].json = json;
}

/* Only this answer from the fake proves deletion; a cut-down Status would not. */
static void api_answer(const char *name, long status, const char *body) {
        for (size_t i = 0; i < api.n; i++)
                if (streq(api.claims[i].name, name)) {
                        api.claims[i].status = status;
                        api.claims[i].body = body;
                        return;
                }
        ASSERT_TRUE(false);
}

static int on_reply(sd_event_source *s, void *userdata) {
        Reply *r = userdata;
        char notfound[1024];

        r->api->in_flight--;
        if (r->claim && r->claim->status > 0)
                r->done(r->ctx, 0, r->claim->status, r->claim->body, r->claim->body ? strlen(r->claim->body) : 0,
                        "HTTP error");
        else if (r->claim && r->claim->json)
                r->done(r->ctx, 0, 200, r->claim->json, strlen(r->claim->json), NULL);
        else {
                ASSERT_TRUE(snprintf(notfound, sizeof(notfound),
                                     "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
                                     "\"message\":\"resourceclaims.resource.k8s.io \\\"%s\\\" not found\","
                                     "\"reason\":\"NotFound\",\"details\":{\"name\":\"%s\",\"group\":\"resource.k8s.io\","
                                     "\"kind\":\"resourceclaims\"},\"code\":404}\n",
                                     r->name, r->name) < (int) sizeof(notfound));
                r->done(r->ctx, 0, 404, notfound, strlen(notfound), "HTTP 404: not found");
        }
        free(r);
        sd_event_source_disable_unref(s);
        return 0;
}

/* Answers on a later loop iteration, as the real client does. */
static int fake_fetch(void *userdata, const char *ns, const char *name, ClaimFetchDone done, void *ctx) {
        FakeApi *a = userdata;
        Reply *r = calloc(1, sizeof(*r));

        ASSERT_NOT_NULL(r);
        ASSERT_STREQ(ns, "default");
        if (a->busy_limit > 0 && a->in_flight >= a->busy_limit) {
                a->busy_answers++;
                free(r);
                return -EBUSY;
        }
        a->fetches++;
        a->in_flight++;
        if (a->hold) {
                a->in_flight--;
                free(r);
                return 0;
        }
        *r = (Reply) { .api = a, .done = done, .ctx = ctx };
        ASSERT_TRUE(snprintf(r->name, sizeof(r->name), "%s", name) < (int) sizeof(r->name));
        for (size_t i = 0; i < a->n; i++)
                if (streq(a->claims[i].name, name))
                        r->claim = &a->claims[i];
        ASSERT_OK(sd_event_add_defer(a->event, NULL, on_reply, r));
        return 0;
}

static void on_done(DraRequest *r, void *userdata) {
        completed++;
}

static DraRequest *run(DraService *s, bool prepare, const char *const *claims, size_t n) {
        DraRequest *r = fake_dra_request_new(prepare, claims, n, on_done, NULL);
        unsigned before = completed;

        if (prepare)
                dra_service_prepare(s, r);
        else
                dra_service_unprepare(s, r);
        while (completed == before)
                ASSERT_OK(sd_event_run(api.event, UINT64_MAX));
        return r;
}

static void test_prepare_answers(DraService *s) {
        const char *claims[] = {
                "default", "ok", UID_OK,
                "default", "missing", UID_MISSING,
                "default", "elsewhere", UID_ELSEWHERE,
                "default", "recreated", UID_OLD,
        };
        DraRequest *r = run(s, true, claims, 4);
        const FakeAnswer *a;

        a = fake_dra_request_answer(r, 0);
        ASSERT_EQ(a->kind, FAKE_ANSWER_DEVICES);
        ASSERT_EQ(a->n_devices, 1);
        ASSERT_STREQ(a->devices[0].pool_name, FIXTURE_NODE);
        ASSERT_STREQ(a->devices[0].device_name, "hami-gpu-0");
        ASSERT_STREQ(a->devices[0].request_names[0], "gpu");
        ASSERT_NULL(a->devices[0].request_names[1]);
        ASSERT_STREQ(a->devices[0].cdi_device_ids[0], "k8s." FIXTURE_DRIVER "/claim=" UID_OK "-hami-gpu-0-" S1);
        ASSERT_STREQ(a->devices[0].share_id, S1);

        a = fake_dra_request_answer(r, 1);
        ASSERT_EQ(a->kind, FAKE_ANSWER_ERROR);
        ASSERT_TRUE(strstr(a->error, "not found") != NULL);
        a = fake_dra_request_answer(r, 2);
        ASSERT_EQ(a->kind, FAKE_ANSWER_ERROR);
        ASSERT_TRUE(strstr(a->error, "another node") != NULL);
        a = fake_dra_request_answer(r, 3);
        ASSERT_EQ(a->kind, FAKE_ANSWER_ERROR);
        ASSERT_TRUE(strstr(a->error, "UID mismatch") != NULL);
        fake_dra_request_free(r);

        /* Idempotent, and answered from the prepared claim's record without asking the API server. */
        unsigned fetches = api.fetches;
        r = run(s, true, claims, 1);
        a = fake_dra_request_answer(r, 0);
        ASSERT_EQ(a->kind, FAKE_ANSWER_DEVICES);
        ASSERT_STREQ(a->devices[0].cdi_device_ids[0], "k8s." FIXTURE_DRIVER "/claim=" UID_OK "-hami-gpu-0-" S1);
        ASSERT_EQ(api.fetches, fetches);
        fake_dra_request_free(r);

        /* Unprepare: the prepared one and unknown ones all succeed. */
        r = run(s, false, claims, 4);
        for (size_t i = 0; i < 4; i++)
                ASSERT_EQ(fake_dra_request_answer(r, i)->kind, FAKE_ANSWER_DONE);
        fake_dra_request_free(r);
        ASSERT_FALSE(fixture_exists("%s/checkpoints/%s.ckpt", fx.state_dir, UID_OK));
        ASSERT_EQ(fixture_count(fx.cdi_dir), 0);
}

static void test_release(DraService *s) {
        const char *claims[] = { "default", "ok", UID_OK };
        unsigned before = observed_unprepared;

        fake_dra_request_free(run(s, true, claims, 1));
        ASSERT_TRUE(fixture_exists("%s/checkpoints/%s.ckpt", fx.state_dir, UID_OK));
        ASSERT_OK(dra_service_release(s, UID_OK));
        ASSERT_FALSE(fixture_exists("%s/checkpoints/%s.ckpt", fx.state_dir, UID_OK));
        ASSERT_EQ(observed_unprepared, before + 1);
        ASSERT_ERROR(dra_service_release(s, UID_OK), ENOENT);
}

/* Shut down while the API server has not answered: the kubelet still gets an answer. */
static void test_shutdown_while_fetching(void) {
        const char *claims[] = { "default", "ok", UID_OK, "default", "elsewhere", UID_ELSEWHERE };
        unsigned before = completed;
        DraService *s;
        Preparer *p;

        ASSERT_OK(preparer_new(&fx.options, &fx.gpus, &p));
        ASSERT_OK(dra_service_new(api.event, p, fake_fetch, &api, 1, &s));
        api.hold = true;
        DraRequest *r = fake_dra_request_new(true, claims, 2, on_done, NULL);
        dra_service_prepare(s, r);
        ASSERT_EQ(completed, before);
        dra_service_free(s);
        ASSERT_EQ(completed, before + 1);
        for (size_t i = 0; i < 2; i++) {
                ASSERT_EQ(fake_dra_request_answer(r, i)->kind, FAKE_ANSWER_ERROR);
                ASSERT_TRUE(strstr(fake_dra_request_answer(r, i)->error, "shutting down") != NULL);
        }
        fake_dra_request_free(r);
        api.hold = false;
        preparer_free(p);
}

static void test_many_concurrent(DraService *s) {
        enum { REQUESTS = 8, PER = 40 };
        const char *claims[REQUESTS][PER * 3];
        char uids[REQUESTS][PER][40], names[REQUESTS][PER][32];
        DraRequest *reqs[REQUESTS];
        unsigned before = completed;

        for (size_t k = 0; k < REQUESTS; k++)
                for (size_t i = 0; i < PER; i++) {
                        FixtureResult res[] = { { .device = "hami-gpu-1", .share_id = NULL, .memory = "100Mi", .cores = "1" } };
                        snprintf(uids[k][i], sizeof(uids[k][i]), "%08zx-0000-4000-8000-000000000000", k * PER + i + 16);
                        snprintf(names[k][i], sizeof(names[k][i]), "many-%zu-%zu", k, i);
                        api_put(names[k][i], fixture_claim(uids[k][i], names[k][i], res, 1, NULL));
                        claims[k][3 * i] = "default";
                        claims[k][3 * i + 1] = names[k][i];
                        claims[k][3 * i + 2] = uids[k][i];
                }
        /* All in flight at once, through an API client that takes 5 requests at a time. */
        api.busy_limit = 5;
        for (size_t k = 0; k < REQUESTS; k++) {
                reqs[k] = fake_dra_request_new(true, claims[k], PER, on_done, NULL);
                dra_service_prepare(s, reqs[k]);
        }
        while (completed < before + REQUESTS)
                ASSERT_OK(sd_event_run(api.event, UINT64_MAX));
        api.busy_limit = 0;
        ASSERT_TRUE(api.busy_answers > 0);
        for (size_t k = 0; k < REQUESTS; k++) {
                for (size_t i = 0; i < PER; i++)
                        ASSERT_EQ(fake_dra_request_answer(reqs[k], i)->kind, FAKE_ANSWER_DEVICES);
                fake_dra_request_free(reqs[k]);
        }
        ASSERT_EQ(fixture_count(fx.cdi_dir), REQUESTS * PER);
        for (size_t k = 0; k < REQUESTS; k++)
                fake_dra_request_free(run(s, false, claims[k], PER));
        ASSERT_EQ(fixture_count(fx.cdi_dir), 0);
}

static void test_verify_after_restart(void) {
        FixtureResult res[] = { { .device = "hami-gpu-0", .memory = "1Gi", .cores = "10" } };
        Preparer *p;
        DraService *s;
        PrepareClaimRef *recovered;
        size_t n;

        /* Three claims prepared; while "down", one is deleted and one re-created. */
        ASSERT_OK(preparer_new(&fx.options, &fx.gpus, &p));
        ASSERT_OK(dra_service_new(api.event, p, fake_fetch, &api, 2, &s));
        api_put("keep", fixture_claim(UID_OK, "keep", res, 1, NULL));
        api_put("deleted", fixture_claim(UID_MISSING, "deleted", res, 1, NULL));
        api_put("recreated", fixture_claim(UID_OLD, "recreated", res, 1, NULL));
        const char *claims[] = {
                "default", "keep", UID_OK,
                "default", "deleted", UID_MISSING,
                "default", "recreated", UID_OLD,
        };
        DraRequest *r = run(s, true, claims, 3);
        for (size_t i = 0; i < 3; i++)
                ASSERT_EQ(fake_dra_request_answer(r, i)->kind, FAKE_ANSWER_DEVICES);
        fake_dra_request_free(r);
        dra_service_free(s);
        preparer_free(p);

        api_put("deleted", NULL);
        api_put("recreated", fixture_claim(UID_NEW, "recreated", res, 1, NULL));

        ASSERT_OK(preparer_new(&fx.options, &fx.gpus, &p));
        ASSERT_OK(preparer_recover(p, &recovered, &n));
        ASSERT_EQ(n, 3);
        ASSERT_OK(dra_service_new(api.event, p, fake_fetch, &api, 2, &s));
        ASSERT_OK(dra_service_verify(s, recovered, n));
        while (dra_service_n_verifying(s) > 0)
                ASSERT_OK(sd_event_run(api.event, UINT64_MAX));
        ASSERT_TRUE(fixture_exists("%s/checkpoints/%s.ckpt", fx.state_dir, UID_OK));
        ASSERT_FALSE(fixture_exists("%s/checkpoints/%s.ckpt", fx.state_dir, UID_MISSING));
        ASSERT_FALSE(fixture_exists("%s/checkpoints/%s.ckpt", fx.state_dir, UID_OLD));
        ASSERT_EQ(fixture_count(fx.cdi_dir), 1);
        fake_dra_request_free(run(s, false, claims, 1));
        dra_service_free(s);
        preparer_free(p);
}

/*
 * Recovery forgets a claim only on proof: the API server's NotFound Status naming it, or
 * the claim under another UID. Every other 404 (a proxy's, an API group not served, a
 * Status about something else) and a 200 that is not this claim keep it, and it is
 * asked about again until an answer proves something.
 */
/* Run the loop until `waiting` verifications wait to ask again and none is in flight. */
static void wait_verifications(DraService *s, size_t waiting) {
        uint64_t deadline = now_usec() + 10 * USEC_PER_SEC;

        while (dra_service_n_verify_waiting(s) != waiting ||
               dra_service_n_verifying(s) > dra_service_n_verify_waiting(s)) {
                if (now_usec() > deadline)
                        log_error("still %zu verifying, %zu waiting; expected %zu waiting",
                                  dra_service_n_verifying(s), dra_service_n_verify_waiting(s), waiting);
                ASSERT_TRUE(now_usec() <= deadline);
                ASSERT_OK(sd_event_run(api.event, 100 * USEC_PER_MSEC));
        }
}

static void test_verify_needs_proof(void) {
        FixtureResult res[] = { { .device = "hami-gpu-0", .memory = "100Mi", .cores = "1" } };
        static const struct {
                const char *name;
                long status;
                const char *body;
                bool forget;
        } cases[] = {
                { "proxy-empty-object", 404, "{}", false },
                { "proxy-html", 404, "<html><body><h1>404 Not Found</h1></body></html>", false },
                { "proxy-no-body", 404, NULL, false },
                { "proxy-empty-body", 404, "", false },
                { "status-other-name", 404,
                  "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"reason\":\"NotFound\","
                  "\"details\":{\"name\":\"someone-else\",\"group\":\"resource.k8s.io\",\"kind\":\"resourceclaims\"},"
                  "\"code\":404}", false },
                { "group-not-served", 404,
                  "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
                  "\"message\":\"the server could not find the requested resource\",\"reason\":\"NotFound\","
                  "\"details\":{},\"code\":404}\n", false },
                { "status-other-kind", 404,
                  "{\"kind\":\"Status\",\"reason\":\"NotFound\",\"details\":{\"name\":\"status-other-kind\","
                  "\"kind\":\"pods\"},\"code\":404}", false },
                { "status-other-group", 404,
                  "{\"kind\":\"Status\",\"reason\":\"NotFound\",\"details\":{\"name\":\"status-other-group\","
                  "\"group\":\"example.com\",\"kind\":\"resourceclaims\"},\"code\":404}", false },
                { "status-nul-name", 404,
                  "{\"kind\":\"Status\",\"reason\":\"NotFound\",\"details\":{\"name\":\"status-nul-name\\u0000x\","
                  "\"group\":\"resource.k8s.io\",\"kind\":\"resourceclaims\"},\"code\":404}", false },
                { "not-a-status", 404,
                  "{\"kind\":\"ResourceClaim\",\"reason\":\"NotFound\",\"details\":{\"name\":\"not-a-status\","
                  "\"group\":\"resource.k8s.io\",\"kind\":\"resourceclaims\"},\"code\":404}", false },
                { "server-error", 503, "{\"kind\":\"Status\",\"code\":503}", false },
                { "ok-200-html", 200, "<html>hello</html>", false },
                { "deleted", 0, NULL, true },    /* the NotFound Status naming it */
                { "core-style-status", 404,      /* no details.group: still names it */
                  "{\"kind\":\"Status\",\"reason\":\"NotFound\",\"details\":{\"name\":\"core-style-status\","
                  "\"kind\":\"resourceclaims\"},\"code\":404}", true },
                { "recreated-other-uid", 0, NULL, true },
                { "answered-with-another-claim", 0, NULL, false },
        };
        enum { N = ELEMENTSOF(cases) };
        const char *claims[N * 3];
        char uids[N][40];
        size_t n_keep = 0;
        Preparer *p;
        DraService *s;
        PrepareClaimRef *recovered;
        size_t n;

        ASSERT_OK(preparer_new(&fx.options, &fx.gpus, &p));
        ASSERT_OK(dra_service_new(api.event, p, fake_fetch, &api, 2, &s));
        for (size_t i = 0; i < N; i++) {
                snprintf(uids[i], sizeof(uids[i]), "%08zx-1111-4000-8000-000000000000", i + 1);
                api_put(cases[i].name, fixture_claim(uids[i], cases[i].name, res, 1, NULL));
                claims[3 * i] = "default";
                claims[3 * i + 1] = cases[i].name;
                claims[3 * i + 2] = uids[i];
                n_keep += !cases[i].forget;
        }
        DraRequest *r = run(s, true, claims, N);
        for (size_t i = 0; i < N; i++)
                ASSERT_EQ(fake_dra_request_answer(r, i)->kind, FAKE_ANSWER_DEVICES);
        fake_dra_request_free(r);
        dra_service_free(s);
        preparer_free(p);

        /* While the driver was down. */
        for (size_t i = 0; i < N; i++)
                if (cases[i].status > 0)
                        api_answer(cases[i].name, cases[i].status, cases[i].body);
        api_put("deleted", NULL);
        api_put("recreated-other-uid", fixture_claim(UID_NEW, "recreated-other-uid", res, 1, NULL));
        api_put("answered-with-another-claim", fixture_claim(UID_NEW, "someone-else", res, 1, NULL));

        ASSERT_OK(preparer_new(&fx.options, &fx.gpus, &p));
        ASSERT_OK(preparer_recover(p, &recovered, &n));
        ASSERT_EQ(n, N);
        ASSERT_OK(dra_service_new(api.event, p, fake_fetch, &api, 2, &s));
        dra_service_set_verify_retry(s, 20 * 1000);
        unsigned fetches = api.fetches;
        ASSERT_OK(dra_service_verify(s, recovered, n));
        wait_verifications(s, n_keep);
        for (size_t i = 0; i < N; i++) {
                bool kept = fixture_exists("%s/checkpoints/%s.ckpt", fx.state_dir, uids[i]);
                if (kept == cases[i].forget)
                        log_error("claim %s: %s, expected %s", cases[i].name, kept ? "kept" : "forgotten",
                                  cases[i].forget ? "forgotten" : "kept");
                ASSERT_EQ(kept, !cases[i].forget);
        }
        ASSERT_EQ(dra_service_n_verify_waiting(s), n_keep);
        ASSERT_EQ(fixture_count(fx.cdi_dir), n_keep);

        /* Asked again: an answer that proves something ends the wait. */
        api_put("group-not-served", NULL);
        api_answer("group-not-served", 0, NULL);        /* now the NotFound Status naming it */
        api_answer("proxy-html", 0, NULL);              /* now the claim, allocated, our UID */
        wait_verifications(s, n_keep - 2);
        ASSERT_TRUE(api.fetches >= fetches + N + n_keep);
        ASSERT_FALSE(fixture_exists("%s/checkpoints/%s.ckpt", fx.state_dir, uids[5]));  /* group-not-served */
        ASSERT_TRUE(fixture_exists("%s/checkpoints/%s.ckpt", fx.state_dir, uids[1]));   /* proxy-html */
        ASSERT_EQ(fixture_count(fx.cdi_dir), n_keep - 1);

        /* A claim unprepared while it waits is not asked about again. */
        const char *unprepare[] = { "default", cases[0].name, uids[0] };
        fake_dra_request_free(run(s, false, unprepare, 1));
        ASSERT_FALSE(fixture_exists("%s/checkpoints/%s.ckpt", fx.state_dir, uids[0]));
        wait_verifications(s, n_keep - 3);
        ASSERT_EQ(dra_service_n_verifying(s), n_keep - 3);

        /* Shutting down with verifications waiting frees them (ASan would see a leak). */
        dra_service_free(s);
        preparer_free(p);

        /* Leave nothing prepared behind for the next test. */
        ASSERT_OK(preparer_new(&fx.options, &fx.gpus, &p));
        ASSERT_OK(preparer_recover(p, NULL, NULL));
        ASSERT_OK(dra_service_new(api.event, p, fake_fetch, &api, 2, &s));
        fake_dra_request_free(run(s, false, claims, N));
        ASSERT_EQ(fixture_count(fx.cdi_dir), 0);
        dra_service_free(s);
        preparer_free(p);
}

int main(void) {
        FixtureResult ok[] = { { .device = "hami-gpu-0", .share_id = S1, .memory = "10Gi", .cores = "50" } };
        FixtureResult far[] = { { .device = "hami-gpu-0", .pool = "node9" } };
        Preparer *p;
        DraService *s;

        log_set_max_level(LOG_NOTICE);
        fixture_init(&fx, 2);
        ASSERT_OK(sd_event_new(&api.event));
        api_put("ok", fixture_claim(UID_OK, "ok", ok, 1, NULL));
        api_put("elsewhere", fixture_claim(UID_ELSEWHERE, "elsewhere", far, 1, NULL));
        api_put("recreated", fixture_claim(UID_NEW, "recreated", ok, 1, NULL));

        ASSERT_OK(preparer_new(&fx.options, &fx.gpus, &p));
        ASSERT_OK(preparer_recover(p, NULL, NULL));
        ASSERT_OK(dra_service_new(api.event, p, fake_fetch, &api, 4, &s));
        dra_service_set_observer(s, observer, NULL);
        test_prepare_answers(s);
        ASSERT_EQ(observed_prepared, 2);     /* the first prepare and the idempotent repeat */
        ASSERT_EQ(observed_unprepared, 4);   /* every successful unprepare, known or not */
        test_release(s);
        test_many_concurrent(s);
        dra_service_free(s);
        preparer_free(p);

        test_verify_after_restart();
        test_verify_needs_proof();
        test_shutdown_while_fetching();

        for (size_t i = 0; i < api.n; i++)
                free(api.claims[i].json);
        sd_event_unref(api.event);
        fixture_done(&fx);
        return 0;
}
