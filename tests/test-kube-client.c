/* SPDX-License-Identifier: Apache-2.0 */

/* The pure parts of the API client: backoff, Retry-After, escaping, what is retried. */

#include <errno.h>
#include <string.h>

#include "kube-client.h"
#include "tests.h"

#define SEC UINT64_C(1000000)

static void test_backoff(void) {
        KubeBackoff b = { .base_usec = SEC, .cap_usec = 8 * SEC };
        uint64_t expect_max = SEC;

        for (int i = 0; i < 40; i++) {
                uint64_t d = kube_backoff_next(&b, 0);
                /* jitter: between half and all of the exponential step, never above the cap */
                ASSERT_TRUE(d >= expect_max / 2 && d <= expect_max);
                expect_max = expect_max * 2 > 8 * SEC ? 8 * SEC : expect_max * 2;
        }
        /* Retry-After wins when it is longer, up to the hard limit. */
        ASSERT_EQ_U(kube_backoff_next(&b, 20 * SEC), 20 * SEC);
        ASSERT_EQ_U(kube_backoff_next(&b, 100000 * SEC), KUBE_RETRY_AFTER_MAX_USEC);
        kube_backoff_reset(&b);
        ASSERT_TRUE(kube_backoff_next(&b, 0) <= SEC);

        KubeBackoff defaults = {};
        ASSERT_TRUE(kube_backoff_next(&defaults, 0) <= SEC / 2);
}

static void test_retry_after(void) {
        ASSERT_EQ_U(kube_parse_retry_after(" 3"), 3 * SEC);
        ASSERT_EQ_U(kube_parse_retry_after("0"), 0);
        ASSERT_EQ_U(kube_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), 0);
        ASSERT_EQ_U(kube_parse_retry_after("99999999999999999999999"), KUBE_RETRY_AFTER_MAX_USEC);
        ASSERT_EQ_U(kube_parse_retry_after(NULL), 0);
}

static void test_escape(void) {
        char buf[64];

        ASSERT_OK(kube_escape("spec.nodeName=node1,x", buf, sizeof(buf)));
        ASSERT_STREQ(buf, "spec.nodeName%3Dnode1%2Cx");
        ASSERT_OK(kube_escape("a/b c", buf, sizeof(buf)));
        ASSERT_STREQ(buf, "a%2Fb%20c");
        ASSERT_ERROR(kube_escape("==========", buf, 10), ENOBUFS);
}

static void test_retryable(void) {
        ASSERT_TRUE(kube_response_retryable(&(KubeResponse) { .status = 429 }));
        ASSERT_TRUE(kube_response_retryable(&(KubeResponse) { .status = 503 }));
        ASSERT_TRUE(kube_response_retryable(&(KubeResponse) { .error = -ECONNREFUSED }));
        ASSERT_TRUE(kube_response_retryable(&(KubeResponse) { .error = -ETIMEDOUT }));
        ASSERT_FALSE(kube_response_retryable(&(KubeResponse) { .status = 404 }));
        ASSERT_FALSE(kube_response_retryable(&(KubeResponse) { .status = 403 }));
        ASSERT_FALSE(kube_response_retryable(&(KubeResponse) { .status = 409 }));
        ASSERT_FALSE(kube_response_retryable(&(KubeResponse) { .error = -EFBIG }));
}

static void test_client_refuses_bad_credentials(void) {
        sd_event *e = NULL;
        KubeClient *c = NULL;
        KubeCredentials creds = { .server = (char *) "https://10.0.0.1:6443", .tls_server_name = (char *) "bad name/x",
                                  .origin = (char *) "test" };

        ASSERT_OK(sd_event_new(&e));
        ASSERT_ERROR(kube_client_new(e, &(KubeCredentials) {}, NULL, &c), EINVAL);
        ASSERT_ERROR(kube_client_new(e, &creds, NULL, &c), EINVAL);
        creds.tls_server_name = (char *) "kubernetes";
        ASSERT_OK(kube_client_new(e, &creds, NULL, &c));
        ASSERT_STREQ(kube_client_server(c), "https://10.0.0.1:6443");
        ASSERT_TRUE(strstr(kube_client_credential_description(c), "no credentials") != NULL);
        ASSERT_ERROR(kube_client_request(c, "GET", "no-slash", NULL, 1, NULL, NULL, NULL), EINVAL);
        ASSERT_ERROR(kube_client_get_resource_claim(c, "", "x", NULL, NULL), EINVAL);
        kube_client_free(c);
        sd_event_unref(e);
}

static bool proves(const char *body) {
        return kube_status_proves_not_found(body, strlen(body), "resource.k8s.io", "resourceclaims", "c1");
}

/* Only the API server's NotFound Status naming the object proves it is gone. */
static void test_status_not_found(void) {
        KubeStatus st = {};
        const char *real = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
                           "\"message\":\"resourceclaims.resource.k8s.io \\\"c1\\\" not found\",\"reason\":\"NotFound\","
                           "\"details\":{\"name\":\"c1\",\"group\":\"resource.k8s.io\",\"kind\":\"resourceclaims\"},"
                           "\"code\":404}\n";

        ASSERT_OK(kube_status_parse(real, strlen(real), &st));
        ASSERT_STREQ(st.reason, "NotFound");
        ASSERT_STREQ(st.name, "c1");
        ASSERT_STREQ(st.group, "resource.k8s.io");
        ASSERT_STREQ(st.kind, "resourceclaims");
        ASSERT_EQ(st.code, 404);
        kube_status_done(&st);
        ASSERT_NULL(st.reason);

        ASSERT_TRUE(proves(real));
        ASSERT_TRUE(proves("{\"kind\":\"Status\",\"reason\":\"NotFound\",\"details\":{\"name\":\"c1\","
                           "\"kind\":\"resourceclaims\"}}"));
        ASSERT_FALSE(proves(""));
        ASSERT_FALSE(proves("{}"));
        ASSERT_FALSE(proves("<html><body>404 Not Found</body></html>"));
        ASSERT_FALSE(proves("{\"kind\":\"Status\",\"reason\":\"NotFound\",\"message\":\"the server could not "
                            "find the requested resource\",\"details\":{},\"code\":404}"));
        ASSERT_FALSE(proves("{\"kind\":\"Status\",\"reason\":\"NotFound\",\"details\":{\"name\":\"c2\","
                            "\"kind\":\"resourceclaims\"},\"code\":404}"));
        ASSERT_FALSE(proves("{\"kind\":\"Status\",\"reason\":\"NotFound\",\"details\":{\"name\":\"c1\","
                            "\"kind\":\"pods\"},\"code\":404}"));
        ASSERT_FALSE(proves("{\"kind\":\"Status\",\"reason\":\"NotFound\",\"details\":{\"name\":\"c1\","
                            "\"group\":\"apps\",\"kind\":\"resourceclaims\"},\"code\":404}"));
        ASSERT_FALSE(proves("{\"kind\":\"Status\",\"reason\":\"Forbidden\",\"details\":{\"name\":\"c1\","
                            "\"kind\":\"resourceclaims\"},\"code\":403}"));
        ASSERT_FALSE(proves("{\"kind\":\"Status\",\"reason\":\"NotFound\",\"details\":{\"name\":\"c1\","
                            "\"kind\":\"resourceclaims\"},\"code\":500}"));
        ASSERT_FALSE(proves("{\"kind\":\"Status\",\"reason\":\"NotFound\",\"details\":{\"name\":\"c1\\u0000\","
                            "\"kind\":\"resourceclaims\"},\"code\":404}"));
        ASSERT_FALSE(proves("{\"kind\":\"Status\",\"reason\":\"NotFound\",\"details\":{\"name\":\"c1\","
                            "\"kind\":\"resourceclaims\"},\"code\":404} {}"));
        ASSERT_FALSE(kube_status_proves_not_found(real, strlen(real), "resource.k8s.io", "resourceclaims", ""));
        ASSERT_ERROR(kube_status_parse("[1]", 3, &st), EBADMSG);
        ASSERT_ERROR(kube_status_parse(NULL, 0, &st), EBADMSG);
}

int main(void) {
        TEST(test_backoff);
        TEST(test_retry_after);
        TEST(test_escape);
        TEST(test_retryable);
        TEST(test_client_refuses_bad_credentials);
        TEST(test_status_not_found);
        return 0;
}
