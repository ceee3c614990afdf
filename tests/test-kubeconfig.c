/* SPDX-License-Identifier: Apache-2.0 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kubeconfig.h"
#include "macro.h"
#include "tests.h"

static char dir[] = "/tmp/test-kubeconfig-XXXXXX";

static const char *write_file(const char *name, const char *text) {
        static char path[512];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "we");
        ASSERT_NOT_NULL(f);
        fputs(text, f);
        fclose(f);
        return path;
}

static int parse(const char *text, KubeCredentials *c) {
        return kubeconfig_load(write_file("config", text), c);
}

#define HEAD                                                                                     \
        "apiVersion: v1\nkind: Config\ncurrent-context: ctx\n"                                   \
        "contexts:\n- name: other\n  context: {cluster: nope, user: nope}\n"                     \
        "- name: ctx\n  context:\n    cluster: c1\n    user: u1\n"

/* "hello" and "world" */
#define B64_HELLO "aGVsbG8="
#define B64_WORLD "d29y\n  bGQ="

static void test_cert_files_relative(void) {
        KubeCredentials c = {};
        char expect[600];

        ASSERT_OK(parse(HEAD
                        "clusters:\n- name: c1\n  cluster:\n    server: https://10.0.0.1:6443/\n"
                        "    certificate-authority: pki/ca.crt\n    tls-server-name: kubernetes\n"
                        "users:\n- name: u1\n  user:\n    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem\n"
                        "    client-key: key.pem\n",
                        &c));
        ASSERT_STREQ(c.server, "https://10.0.0.1:6443");
        ASSERT_STREQ(c.tls_server_name, "kubernetes");
        snprintf(expect, sizeof(expect), "%s/pki/ca.crt", dir);
        ASSERT_STREQ(c.ca.path, expect);
        ASSERT_NULL(c.ca.data);
        ASSERT_STREQ(c.client_cert.path, "/var/lib/kubelet/pki/kubelet-client-current.pem");
        snprintf(expect, sizeof(expect), "%s/key.pem", dir);
        ASSERT_STREQ(c.client_key.path, expect);
        ASSERT_NULL(c.token);
        ASSERT_TRUE(strstr(c.origin, "kubeconfig ") == c.origin);

        char buf[1024];
        ASSERT_OK(kube_credentials_describe(&c, buf, sizeof(buf)));
        ASSERT_TRUE(strstr(buf, "client certificate /var/lib/kubelet/pki/kubelet-client-current.pem") != NULL);
        kube_credentials_done(&c);
}

static void test_embedded_data(void) {
        KubeCredentials c = {};

        ASSERT_OK(parse(HEAD
                        "clusters:\n- name: c1\n  cluster:\n    server: https://api.example:443\n"
                        "    certificate-authority-data: " B64_HELLO "\n"
                        "users:\n- name: u1\n  user:\n    client-certificate-data: " B64_HELLO "\n"
                        "    client-key-data: \"" B64_WORLD "\"\n",
                        &c));
        ASSERT_NULL(c.ca.path);
        ASSERT_EQ(c.ca.size, 5);
        ASSERT_TRUE(memcmp(c.ca.data, "hello", 5) == 0);
        ASSERT_TRUE(memcmp(c.client_cert.data, "hello", 5) == 0);
        ASSERT_EQ(c.client_key.size, 5);
        ASSERT_TRUE(memcmp(c.client_key.data, "world", 5) == 0);
        kube_credentials_done(&c);
}

static void test_tokens(void) {
        KubeCredentials c = {};
        char expect[600];

        ASSERT_OK(parse(HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://h:1'}\n"
                             "users:\n- name: u1\n  user: {token: abc.def}\n", &c));
        ASSERT_STREQ(c.token, "abc.def");
        ASSERT_NULL(c.token_file);
        kube_credentials_done(&c);

        ASSERT_OK(parse(HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://h:1'}\n"
                             "users:\n- name: u1\n  user: {tokenFile: tok}\n", &c));
        snprintf(expect, sizeof(expect), "%s/tok", dir);
        ASSERT_STREQ(c.token_file, expect);
        ASSERT_NULL(c.token);
        kube_credentials_done(&c);
}

static void test_refused_and_malformed(void) {
        static const char *const bad[] = {
                /* TLS verification is never switched off */
                HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://h:1', insecure-skip-tls-verify: true}\n"
                     "users:\n- name: u1\n  user: {token: x}\n",
                HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://h:1', insecure-skip-tls-verify: 'TRUE'}\n"
                     "users:\n- name: u1\n  user: {token: x}\n",
                HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://h:1', insecure-skip-tls-verify: on}\n"
                     "users:\n- name: u1\n  user: {token: x}\n",
                /* plain http */
                HEAD "clusters:\n- name: c1\n  cluster: {server: 'http://h:1'}\nusers:\n- name: u1\n  user: {token: x}\n",
                /* no current-context */
                "clusters: []\ncontexts: []\nusers: []\n",
                /* current context missing */
                "current-context: zzz\n" "contexts:\n- name: ctx\n  context: {cluster: c1, user: u1}\n",
                /* user missing */
                HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://h:1'}\nusers:\n- name: u2\n  user: {token: x}\n",
                /* cluster without server */
                HEAD "clusters:\n- name: c1\n  cluster: {certificate-authority: x}\nusers:\n- name: u1\n  user: {token: x}\n",
                /* both file and data */
                HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://h:1', certificate-authority: a, certificate-authority-data: " B64_HELLO "}\n"
                     "users:\n- name: u1\n  user: {token: x}\n",
                /* bad base64 */
                HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://h:1', certificate-authority-data: '@@@'}\n"
                     "users:\n- name: u1\n  user: {token: x}\n",
                /* exec plugins are not supported */
                HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://h:1'}\n"
                     "users:\n- name: u1\n  user: {exec: {command: aws}}\n",
                /* cert without key */
                HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://h:1'}\n"
                     "users:\n- name: u1\n  user: {client-certificate: a}\n",
                /* no credentials at all */
                HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://h:1'}\nusers:\n- name: u1\n  user: {}\n",
                /* server is a list */
                HEAD "clusters:\n- name: c1\n  cluster: {server: [a]}\nusers:\n- name: u1\n  user: {token: x}\n",
                /* YAML syntax error */
                "current-context: [\n",
                /* not a mapping */
                "- a\n- b\n",
                "",
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                KubeCredentials c = {};
                int r = parse(bad[i], &c);
                if (r >= 0)
                        TEST_FAIL("case %zu parsed but should not", i);
                ASSERT_TRUE(r == -EINVAL);
        }
}

static void test_insecure_false_is_fine(void) {
        KubeCredentials c = {};

        ASSERT_OK(parse(HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://h:1', insecure-skip-tls-verify: false}\n"
                             "users:\n- name: u1\n  user: {token: x}\n", &c));
        kube_credentials_done(&c);
}

static void test_in_cluster(void) {
        KubeCredentials c = {};
        char expect[600];

        unsetenv("KUBERNETES_SERVICE_HOST");
        ASSERT_ERROR(kube_credentials_in_cluster(dir, &c), ENOENT);
        setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
        setenv("KUBERNETES_SERVICE_PORT", "443", 1);
        ASSERT_ERROR(kube_credentials_in_cluster(dir, &c), ENOENT);   /* no token yet */
        write_file("token", "sa-token\n");
        ASSERT_OK(kube_credentials_in_cluster(dir, &c));
        ASSERT_STREQ(c.server, "https://10.96.0.1:443");
        snprintf(expect, sizeof(expect), "%s/ca.crt", dir);
        ASSERT_STREQ(c.ca.path, expect);
        kube_credentials_done(&c);

        setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
        ASSERT_OK(kube_credentials_in_cluster(dir, &c));
        ASSERT_STREQ(c.server, "https://[fd00::1]:443");
        kube_credentials_done(&c);

        setenv("KUBERNETES_SERVICE_PORT", "44x", 1);
        ASSERT_ERROR(kube_credentials_in_cluster(dir, &c), EINVAL);
        unsetenv("KUBERNETES_SERVICE_HOST");
        unsetenv("KUBERNETES_SERVICE_PORT");

        /* A missing kubeconfig without a cluster environment is a clear error. */
        ASSERT_ERROR(kube_credentials_load("/nonexistent/kubelet.conf", &c), ENOENT);
}

static void test_base64(void) {
        char *out;
        size_t n;

        ASSERT_OK(base64_decode_alloc("aGk=", 4, &out, &n));
        ASSERT_EQ(n, 2);
        ASSERT_STREQ(out, "hi");
        free(out);
        ASSERT_OK(base64_decode_alloc("aGV5\nYQ==", 9, &out, &n));
        ASSERT_STREQ(out, "heya");
        free(out);
        ASSERT_ERROR(base64_decode_alloc("aGk=x", 5, &out, &n), EINVAL);
        ASSERT_ERROR(base64_decode_alloc("a", 1, &out, &n), EINVAL);
        ASSERT_ERROR(base64_decode_alloc("", 0, &out, &n), EINVAL);
}

static void test_too_large(void) {
        KubeCredentials c = {};
        char *big = malloc(KUBECONFIG_SIZE_MAX + 2);

        ASSERT_NOT_NULL(big);
        memset(big, '#', KUBECONFIG_SIZE_MAX + 1);
        big[KUBECONFIG_SIZE_MAX + 1] = '\0';
        ASSERT_ERROR(parse(big, &c), EFBIG);
        free(big);
}

int main(void) {
        ASSERT_NOT_NULL(mkdtemp(dir));
        TEST(test_cert_files_relative);
        TEST(test_embedded_data);
        TEST(test_tokens);
        TEST(test_refused_and_malformed);
        TEST(test_insecure_false_is_fine);
        TEST(test_in_cluster);
        TEST(test_base64);
        TEST(test_too_large);
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", dir);
        ASSERT_EQ(system(cmd), 0);
        return 0;
}
