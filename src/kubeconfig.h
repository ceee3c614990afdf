/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Credentials for the API server, the way a systemd service on a node finds them:
 * a kubeconfig file (default: the kubelet's /etc/kubernetes/kubelet.conf), else the
 * in-cluster service account. Parsed with libyaml; TLS verification is always on, so
 * `insecure-skip-tls-verify: true` is refused.
 *
 * Each of CA, client certificate and client key is either a file path (handed to curl
 * as a path) or embedded data (handed to curl as a blob, never written to disk).
 */

#include <stdbool.h>
#include <stddef.h>

#define KUBECONFIG_SIZE_MAX (1024u * 1024u)   /* bigger files are refused */
#define KUBE_PEM_SIZE_MAX (256u * 1024u)      /* one certificate bundle or key */
#define KUBE_TOKEN_SIZE_MAX (64u * 1024u)
#define KUBE_IN_CLUSTER_ROOT "/var/run/secrets/kubernetes.io/serviceaccount"

typedef struct KubeBlob {
        char *path;      /* absolute path, or NULL */
        char *data;      /* embedded bytes (NUL-terminated for convenience), or NULL */
        size_t size;
} KubeBlob;

typedef struct KubeCredentials {
        char *origin;           /* "kubeconfig /etc/kubernetes/kubelet.conf" or "in-cluster service account" */
        char *server;           /* "https://10.0.0.1:6443", no trailing slash */
        char *tls_server_name;  /* SNI + name the certificate is checked against, or NULL */
        KubeBlob ca;
        KubeBlob client_cert;
        KubeBlob client_key;
        char *token;            /* inline bearer token, or NULL */
        char *token_file;       /* read at every request (rotated tokens), or NULL */
} KubeCredentials;

void kube_credentials_done(KubeCredentials *c);

/*
 * Parse kubeconfig text. `path` names the file in messages and relative paths in it
 * resolve against its directory. Errors: -EINVAL (malformed, missing key, refused
 * setting; logged naming file and key), -E2BIG (too large), -ENOMEM.
 */
int kubeconfig_parse(const char *text, size_t size, const char *path, KubeCredentials *ret);

/* Read and parse a kubeconfig file; -ENOENT when it does not exist. */
int kubeconfig_load(const char *path, KubeCredentials *ret);

/*
 * In-cluster credentials: KUBERNETES_SERVICE_HOST/PORT and <root>/{token,ca.crt}.
 * `root` NULL means KUBE_IN_CLUSTER_ROOT. -ENOENT when not running in a cluster.
 */
int kube_credentials_in_cluster(const char *root, KubeCredentials *ret);

/* The kubeconfig at `path`; when it does not exist, the in-cluster credentials. */
int kube_credentials_load(const char *path, KubeCredentials *ret);

/* "client certificate /var/lib/kubelet/pki/kubelet-client-current.pem (kubeconfig /etc/kubernetes/kubelet.conf)" */
int kube_credentials_describe(const KubeCredentials *c, char *buf, size_t size);

/* Helpers shared with the client and the fuzzer. */
int base64_decode_alloc(const char *in, size_t len, char **ret, size_t *ret_size);
