/* SPDX-License-Identifier: Apache-2.0 */

/* The AdmissionReview decoder refuses what is not a review, and the encoder's shape. */

#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "json-util.h"
#include "pod-convert.h"
#include "tests.h"
#include "webhook.h"

#define GOOD "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{" \
        "\"uid\":\"u-1\",\"kind\":{\"group\":\"\",\"version\":\"v1\",\"kind\":\"Pod\"}," \
        "\"resource\":{\"group\":\"\",\"version\":\"v1\",\"resource\":\"pods\"},\"namespace\":\"ns\"," \
        "\"operation\":\"CREATE\",\"dryRun\":true,\"object\":{\"metadata\":{},\"spec\":{\"containers\":[]}}}}"

static void refused(const char *body, size_t n, int err, const char *reason) {
        AdmissionRequest r = {};
        char buf[256] = "";
        ErrBuf e = { buf, sizeof(buf) };

        ASSERT_ERROR(admission_request_decode(body, n, &r, &e), err);
        ASSERT_NULL(r.root);
        if (!strstr(buf, reason))
                TEST_FAIL("reason \"%s\" lacks \"%s\"", buf, reason);
}

static char *replace(const char *s, const char *old, const char *new) {
        const char *p = strstr(s, old);
        char *out;

        ASSERT_NOT_NULL(p);
        out = malloc(strlen(s) + strlen(new) + 1);
        ASSERT_NOT_NULL(out);
        memcpy(out, s, (size_t) (p - s));
        strcpy(out + (p - s), new);
        strcat(out, p + strlen(old));
        return out;
}

static void refused_with(const char *old, const char *new, const char *reason) {
        char *b = replace(GOOD, old, new);
        refused(b, strlen(b), EBADMSG, reason);
        free(b);
}

static void test_decode_good(void) {
        AdmissionRequest r = {};
        char buf[256] = "";
        ErrBuf e = { buf, sizeof(buf) };

        ASSERT_OK(admission_request_decode(GOOD, strlen(GOOD), &r, &e));
        ASSERT_STREQ(r.uid, "u-1");
        ASSERT_STREQ(r.kind_group, "");
        ASSERT_STREQ(r.kind, "Pod");
        ASSERT_STREQ(r.resource, "pods");
        ASSERT_STREQ(r.namespace, "ns");
        ASSERT_STREQ(r.name, "");
        ASSERT_STREQ(r.operation, "CREATE");
        ASSERT_TRUE(r.dry_run);
        ASSERT_NOT_NULL(r.object);
        admission_request_done(&r);
        admission_request_done(&r);
}

static void test_decode_refusals(void) {
        char *big;

        refused("", 0, EBADMSG, "not one JSON value");
        refused(GOOD, strlen(GOOD) - 1, EBADMSG, "not one JSON value");       /* truncated */
        refused(GOOD, 40, EBADMSG, "not one JSON value");
        refused("[1]", 3, EBADMSG, "not a JSON object");
        refused("\"x\"", 3, EBADMSG, "not a JSON object");
        refused("null", 4, EBADMSG, "not one JSON value");
        refused("{} {}", 5, EBADMSG, "not one JSON value");
        refused("{}", 2, EBADMSG, "apiVersion is missing");
        refused_with("admission.k8s.io/v1", "admission.k8s.io/v1beta1", "apiVersion is not admission.k8s.io/v1");
        refused_with("\"AdmissionReview\"", "\"AdmissionReviewList\"", "kind is not AdmissionReview");
        refused_with("\"kind\":\"AdmissionReview\"", "\"kind\":7", "kind is not a string");
        refused_with("\"request\":{", "\"response\":{", "request is missing");
        refused_with("\"uid\":\"u-1\"", "\"uid\":\"\"", "request.uid is empty");
        refused_with("\"uid\":\"u-1\"", "\"uid\":\"u\\n1\"", "not printable");
        refused_with("\"uid\":\"u-1\"", "\"uid\":\"u\\u00001\"", "NUL");
        refused_with("\"uid\":\"u-1\",", "", "request.uid is missing");
        refused_with("\"kind\":{\"group\":\"\",\"version\":\"v1\",\"kind\":\"Pod\"}", "\"kind\":\"Pod\"",
                     "request.kind is not an object");
        refused_with("\"operation\":\"CREATE\"", "\"operation\":\"create\"", "request.operation is not");
        refused_with("\"dryRun\":true", "\"dryRun\":\"yes\"", "request.dryRun is not a boolean");
        refused_with("\"object\":{\"metadata\":{},\"spec\":{\"containers\":[]}}", "\"object\":[]", "request.object is not an object");
        refused_with("\"namespace\":\"ns\"", "\"namespace\":{}", "request.namespace is not a string");

        /* Too deep. */
        big = malloc(4096);
        ASSERT_NOT_NULL(big);
        memset(big, '[', 200);
        memset(big + 200, ']', 200);
        refused(big, 400, EBADMSG, "nested");
        free(big);

        /* Too large: refused before parsing. */
        big = malloc(ADMISSION_SIZE_MAX + 2);
        ASSERT_NOT_NULL(big);
        memset(big, ' ', ADMISSION_SIZE_MAX + 1);
        refused(big, ADMISSION_SIZE_MAX + 1, E2BIG, "bytes, more than");
        free(big);
}

static void test_encode(void) {
        const char *warnings[] = { "w1" };
        AdmissionResponse a = { .uid = "u\"1", .allowed = true, .patch = "[]", .patch_len = 2,
                                .warnings = warnings, .n_warnings = 1 };
        char *s = NULL;

        ASSERT_OK(admission_response_encode(&a, &s));
        ASSERT_STREQ(s, "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"response\":"
                        "{\"uid\":\"u\\\"1\",\"allowed\":true,\"patchType\":\"JSONPatch\",\"patch\":\"W10=\","
                        "\"warnings\":[\"w1\"]}}");
        free(s);
        a = (AdmissionResponse) { .uid = "u", .allowed = false, .code = 400, .message = "no" };
        ASSERT_OK(admission_response_encode(&a, &s));
        ASSERT_STREQ(s, "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"response\":"
                        "{\"uid\":\"u\",\"allowed\":false,\"status\":{\"code\":400,\"message\":\"no\"}}}");
        free(s);
        ASSERT_ERROR(admission_response_encode(&(AdmissionResponse) {}, &s), EINVAL);
}

static void test_base64(void) {
        char *s;
        const char *in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
        const char *out[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };

        for (size_t i = 0; i < 7; i++) {
                s = base64_encode(in[i], strlen(in[i]));
                ASSERT_STREQ(s, out[i]);
                free(s);
        }
}

static void test_json_pointer(void) {
        char buf[64] = "/a/";

        ASSERT_OK(json_pointer_append(buf, sizeof(buf), "nvidia.com/gpu~x"));
        ASSERT_STREQ(buf, "/a/nvidia.com~1gpu~0x");
        ASSERT_ERROR(json_pointer_append(buf, 24, "////"), ENOBUFS);
}

static void test_webhook_bad_body(void) {
        WebhookResult r = {};

        ASSERT_ERROR(webhook_mutate("{", 1, NULL, &r), EBADMSG);
        ASSERT_NULL(r.response);
        ASSERT_TRUE(r.error[0] != '\0');
        webhook_result_done(&r);
        ASSERT_ERROR(webhook_validate("[]", 2, &r), EBADMSG);
        webhook_result_done(&r);
        ASSERT_OK(webhook_mutate(GOOD, strlen(GOOD), NULL, &r));
        ASSERT_TRUE(r.allowed && r.dry_run);
        ASSERT_STREQ(r.namespace, "ns");
        ASSERT_EQ(r.n_templates, 0);
        ASSERT_NULL(strstr(r.response, "patch"));
        webhook_result_done(&r);

        /* A pod that asks for nothing of ours is allowed, whatever else is odd about it. */
        char *b = replace(GOOD, "\"namespace\":\"ns\"", "\"namespace\":\"\"");
        ASSERT_OK(webhook_mutate(b, strlen(b), NULL, &r));
        ASSERT_TRUE(r.allowed);
        webhook_result_done(&r);
        free(b);
}

int main(void) {
        TEST(test_decode_good);
        TEST(test_decode_refusals);
        TEST(test_encode);
        TEST(test_base64);
        TEST(test_json_pointer);
        TEST(test_webhook_bad_body);
        return 0;
}
