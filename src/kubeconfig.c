/* SPDX-License-Identifier: Apache-2.0 */

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "fsutil.h"
#include "kubeconfig.h"
#include "log.h"
#include "macro.h"

#define KUBE_SERVER_MAX 2048
#define KUBE_NAME_MAX 1024

static void kube_blob_done(KubeBlob *b) {
        free(b->path);
        if (b->data)
                explicit_bzero(b->data, b->size);
        free(b->data);
        *b = (KubeBlob) {};
}

void kube_credentials_done(KubeCredentials *c) {
        if (!c)
                return;
        free(c->origin);
        free(c->server);
        free(c->tls_server_name);
        kube_blob_done(&c->ca);
        kube_blob_done(&c->client_cert);
        kube_blob_done(&c->client_key);
        if (c->token)
                explicit_bzero(c->token, strlen(c->token));
        free(c->token);
        free(c->token_file);
        *c = (KubeCredentials) {};
}

static int base64_value(char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

/* Standard base64 with padding; whitespace (line breaks in YAML) is skipped. */
int base64_decode_alloc(const char *in, size_t len, char **ret, size_t *ret_size) {
        _cleanup_free_ char *out = NULL;
        unsigned acc = 0, bits = 0, pad = 0;
        size_t n = 0;

        out = malloc(len / 4 * 3 + 4);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < len; i++) {
                char c = in[i];
                int v;

                if (strchr(" \t\r\n", c))
                        continue;
                if (c == '=') {
                        pad++;
                        continue;
                }
                if (pad > 0)
                        return -EINVAL;   /* data after padding */
                v = base64_value(c);
                if (v < 0)
                        return -EINVAL;
                acc = (acc << 6) | (unsigned) v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[n++] = (char) ((acc >> bits) & 0xff);
                }
        }
        if (pad > 2 || bits >= 6)
                return -EINVAL;
        out[n] = '\0';
        if (n == 0)
                return -EINVAL;
        *ret = TAKE_PTR(out);
        *ret_size = n;
        return 0;
}

/* ---- the YAML document ---- */

typedef struct KubeconfigDoc {
        yaml_document_t doc;
        const char *path;
        char *dir;
} KubeconfigDoc;

static yaml_node_t *yaml_mapping_get(KubeconfigDoc *d, yaml_node_t *map, const char *key) {
        if (!map || map->type != YAML_MAPPING_NODE)
                return NULL;
        for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
                yaml_node_t *k = yaml_document_get_node(&d->doc, p->key);
                if (k && k->type == YAML_SCALAR_NODE && streq((const char *) k->data.scalar.value, key))
                        return yaml_document_get_node(&d->doc, p->value);
        }
        return NULL;
}

/* A scalar value of `key` in `map`; NULL when absent, -EINVAL when not a scalar. */
static int yaml_mapping_get_string(KubeconfigDoc *d, yaml_node_t *map, const char *where,
                                   const char *key, const char **ret) {
        yaml_node_t *v = yaml_mapping_get(d, map, key);

        if (!v) {
                *ret = NULL;
                return 0;
        }
        if (v->type != YAML_SCALAR_NODE)
                return log_error_errno(EINVAL, "%s: %s.%s is not a string.", d->path, where, key);
        *ret = (const char *) v->data.scalar.value;
        if (strlen(*ret) != v->data.scalar.length)
                return log_error_errno(EINVAL, "%s: %s.%s contains a NUL byte.", d->path, where, key);
        return 0;
}

/* In the sequence `list` ("clusters"), the entry whose name is `name`; returns its `field` mapping. */
static int kubeconfig_find_named(KubeconfigDoc *d, const char *list, const char *field,
                                 const char *name, yaml_node_t **ret) {
        yaml_node_t *root = yaml_document_get_root_node(&d->doc);
        yaml_node_t *seq = yaml_mapping_get(d, root, list);

        if (!seq || seq->type != YAML_SEQUENCE_NODE)
                return log_error_errno(EINVAL, "%s: no '%s' list.", d->path, list);
        for (yaml_node_item_t *i = seq->data.sequence.items.start; i < seq->data.sequence.items.top; i++) {
                yaml_node_t *entry = yaml_document_get_node(&d->doc, *i);
                const char *n;
                int r;

                r = yaml_mapping_get_string(d, entry, list, "name", &n);
                if (r < 0)
                        return r;
                if (!n || !streq(n, name))
                        continue;
                *ret = yaml_mapping_get(d, entry, field);
                if (!*ret || (*ret)->type != YAML_MAPPING_NODE)
                        return log_error_errno(EINVAL, "%s: %s '%s' has no '%s' mapping.", d->path,
                                               list, name, field);
                return 0;
        }
        return log_error_errno(EINVAL, "%s: %s '%s' not found in '%s'.", d->path, field, name, list);
}

static int kubeconfig_resolve_path(KubeconfigDoc *d, const char *p, char **ret) {
        char *s;

        if (isempty(p))
                return -EINVAL;
        if (p[0] == '/' || !d->dir)
                s = strdup(p);
        else if (asprintf(&s, "%s/%s", d->dir, p) < 0)
                s = NULL;
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* `<key>` (a file) or `<key>-data` (base64), not both. */
static int kubeconfig_get_blob(KubeconfigDoc *d, yaml_node_t *map, const char *where,
                               const char *key, KubeBlob *ret) {
        char key_data[64];
        const char *file, *data;
        int r;

        snprintf(key_data, sizeof(key_data), "%s-data", key);
        r = yaml_mapping_get_string(d, map, where, key, &file);
        if (r < 0)
                return r;
        r = yaml_mapping_get_string(d, map, where, key_data, &data);
        if (r < 0)
                return r;
        if (!isempty(file) && !isempty(data))
                return log_error_errno(EINVAL, "%s: %s has both %s and %s; use one.", d->path, where,
                                       key, key_data);
        if (!isempty(data)) {
                size_t len = strlen(data);

                if (len > KUBE_PEM_SIZE_MAX * 4 / 3 + 4)
                        return log_error_errno(E2BIG, "%s: %s.%s is too large.", d->path, where, key_data);
                r = base64_decode_alloc(data, len, &ret->data, &ret->size);
                if (r == -ENOMEM)
                        return log_oom();
                if (r < 0)
                        return log_error_errno(r, "%s: %s.%s is not valid base64.", d->path, where, key_data);
        } else if (!isempty(file)) {
                r = kubeconfig_resolve_path(d, file, &ret->path);
                if (r < 0)
                        return log_oom();
        }
        return 0;
}

static int kubeconfig_parse_cluster(KubeconfigDoc *d, yaml_node_t *cluster, const char *name,
                                    KubeCredentials *c) {
        const char *server, *insecure, *sni;
        char where[KUBE_NAME_MAX + 16];
        int r;

        snprintf(where, sizeof(where), "cluster '%s'", name);
        r = yaml_mapping_get_string(d, cluster, where, "server", &server);
        if (r < 0)
                return r;
        if (isempty(server))
                return log_error_errno(EINVAL, "%s: %s has no server.", d->path, where);
        if (strncmp(server, "https://", 8) != 0 || strlen(server) > KUBE_SERVER_MAX)
                return log_error_errno(EINVAL, "%s: %s: server '%.64s' must be an https:// URL.",
                                       d->path, where, server);
        r = yaml_mapping_get_string(d, cluster, where, "insecure-skip-tls-verify", &insecure);
        if (r < 0)
                return r;
        if (insecure && !isempty(insecure) && strcasecmp(insecure, "false") != 0 && strcasecmp(insecure, "no") != 0 &&
            strcasecmp(insecure, "off") != 0 && strcasecmp(insecure, "n") != 0 && !streq(insecure, "0"))
                return log_error_errno(EINVAL,
                                       "%s: %s sets insecure-skip-tls-verify; refused: hami-dra always verifies the API server's certificate.",
                                       d->path, where);
        r = yaml_mapping_get_string(d, cluster, where, "tls-server-name", &sni);
        if (r < 0)
                return r;
        if (yaml_mapping_get(d, cluster, "proxy-url"))
                log_warning("%s: %s: proxy-url is not supported and ignored.", d->path, where);

        c->server = strdup(server);
        if (!c->server || (sni && !(c->tls_server_name = strdup(sni))))
                return log_oom();
        while (strlen(c->server) > 8 && c->server[strlen(c->server) - 1] == '/')
                c->server[strlen(c->server) - 1] = '\0';
        return kubeconfig_get_blob(d, cluster, where, "certificate-authority", &c->ca);
}

static int kubeconfig_parse_user(KubeconfigDoc *d, yaml_node_t *user, const char *name,
                                 KubeCredentials *c) {
        static const char *const refused[] = { "exec", "auth-provider", "username", "password", "as" };
        const char *token, *token_file;
        char where[KUBE_NAME_MAX + 16];
        int r;

        snprintf(where, sizeof(where), "user '%s'", name);
        for (size_t i = 0; i < ELEMENTSOF(refused); i++)
                if (yaml_mapping_get(d, user, refused[i]))
                        return log_error_errno(EINVAL,
                                               "%s: %s uses '%s', which hami-dra does not support; use a client certificate or a token.",
                                               d->path, where, refused[i]);

        r = kubeconfig_get_blob(d, user, where, "client-certificate", &c->client_cert);
        if (r < 0)
                return r;
        r = kubeconfig_get_blob(d, user, where, "client-key", &c->client_key);
        if (r < 0)
                return r;
        if (!c->client_cert.path && !c->client_cert.data && (c->client_key.path || c->client_key.data))
                return log_error_errno(EINVAL, "%s: %s has a client key but no client certificate.", d->path, where);
        if ((c->client_cert.path || c->client_cert.data) && !c->client_key.path && !c->client_key.data)
                return log_error_errno(EINVAL, "%s: %s has a client certificate but no client-key.", d->path, where);

        r = yaml_mapping_get_string(d, user, where, "token", &token);
        if (r < 0)
                return r;
        r = yaml_mapping_get_string(d, user, where, "tokenFile", &token_file);
        if (r < 0)
                return r;
        if (!isempty(token)) {
                if (strlen(token) > KUBE_TOKEN_SIZE_MAX || strpbrk(token, "\r\n"))
                        return log_error_errno(EINVAL, "%s: %s.token is malformed.", d->path, where);
                c->token = strdup(token);
                if (!c->token)
                        return log_oom();
        } else if (!isempty(token_file)) {
                r = kubeconfig_resolve_path(d, token_file, &c->token_file);
                if (r < 0)
                        return log_oom();
        }

        if (!c->client_cert.path && !c->client_cert.data && !c->token && !c->token_file)
                return log_error_errno(EINVAL, "%s: %s has no credentials (client-certificate or token).",
                                       d->path, where);
        return 0;
}

static int kubeconfig_parse_document(KubeconfigDoc *d, KubeCredentials *c) {
        yaml_node_t *root = yaml_document_get_root_node(&d->doc), *context, *cluster, *user;
        const char *current, *cluster_name, *user_name;
        int r;

        if (!root || root->type != YAML_MAPPING_NODE)
                return log_error_errno(EINVAL, "%s: not a kubeconfig (top level is not a mapping).", d->path);
        r = yaml_mapping_get_string(d, root, "kubeconfig", "current-context", &current);
        if (r < 0)
                return r;
        if (isempty(current))
                return log_error_errno(EINVAL, "%s: current-context is not set.", d->path);
        if (strlen(current) > KUBE_NAME_MAX)
                return log_error_errno(EINVAL, "%s: current-context is too long.", d->path);

        r = kubeconfig_find_named(d, "contexts", "context", current, &context);
        if (r < 0)
                return r;
        r = yaml_mapping_get_string(d, context, "context", "cluster", &cluster_name);
        if (r < 0)
                return r;
        r = yaml_mapping_get_string(d, context, "context", "user", &user_name);
        if (r < 0)
                return r;
        if (isempty(cluster_name) || strlen(cluster_name) > KUBE_NAME_MAX)
                return log_error_errno(EINVAL, "%s: context '%s' has no valid cluster.", d->path, current);
        if (isempty(user_name) || strlen(user_name) > KUBE_NAME_MAX)
                return log_error_errno(EINVAL, "%s: context '%s' has no valid user.", d->path, current);

        r = kubeconfig_find_named(d, "clusters", "cluster", cluster_name, &cluster);
        if (r < 0)
                return r;
        r = kubeconfig_parse_cluster(d, cluster, cluster_name, c);
        if (r < 0)
                return r;
        r = kubeconfig_find_named(d, "users", "user", user_name, &user);
        if (r < 0)
                return r;
        return kubeconfig_parse_user(d, user, user_name, c);
}

int kubeconfig_parse(const char *text, size_t size, const char *path, KubeCredentials *ret) {
        _cleanup_(kube_credentials_done) KubeCredentials c = {};
        KubeconfigDoc d = { .path = path ?: "kubeconfig" };
        yaml_parser_t parser;
        int r;

        if (size > KUBECONFIG_SIZE_MAX)
                return log_error_errno(E2BIG, "%s: larger than %u bytes, refusing.", d.path, KUBECONFIG_SIZE_MAX);
        if (path && strchr(path, '/')) {
                _cleanup_free_ char *copy = strdup(path);
                if (!copy)
                        return log_oom();
                d.dir = strdup(dirname(copy));
                if (!d.dir)
                        return log_oom();
        }

        if (!yaml_parser_initialize(&parser)) {
                free(d.dir);
                return log_oom();
        }
        yaml_parser_set_input_string(&parser, (const unsigned char *) text, size);
        if (!yaml_parser_load(&parser, &d.doc)) {
                r = log_error_errno(EINVAL, "%s:%zu:%zu: YAML error: %s", d.path,
                                    parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                                    parser.problem ?: "unknown");
                yaml_parser_delete(&parser);
                free(d.dir);
                return r;
        }
        yaml_parser_delete(&parser);

        r = kubeconfig_parse_document(&d, &c);
        yaml_document_delete(&d.doc);
        free(d.dir);
        if (r < 0)
                return r;

        if (asprintf(&c.origin, "kubeconfig %s", d.path) < 0)
                return log_oom();
        *ret = c;
        c = (KubeCredentials) {};
        return 0;
}

int kubeconfig_load(const char *path, KubeCredentials *ret) {
        _cleanup_free_ char *text = NULL;
        size_t size;
        int r;

        r = read_file_bounded(path, KUBECONFIG_SIZE_MAX, &text, &size);
        if (r == -ENOENT)
                return r;
        if (r == -EFBIG)
                return log_error_errno(r, "%s: larger than %u bytes, refusing.", path, KUBECONFIG_SIZE_MAX);
        if (r == -EBADFD)
                return log_error_errno(r, "%s: not a regular file.", path);
        if (r < 0)
                return log_error_errno(r, "Failed to read kubeconfig %s: %m", path);
        if (memchr(text, '\0', size))
                return log_error_errno(EINVAL, "%s: contains a NUL byte.", path);
        return kubeconfig_parse(text, size, path, ret);
}

int kube_credentials_in_cluster(const char *root, KubeCredentials *ret) {
        _cleanup_(kube_credentials_done) KubeCredentials c = {};
        const char *host, *port;
        bool v6;

        root = root ?: KUBE_IN_CLUSTER_ROOT;
        host = secure_getenv("KUBERNETES_SERVICE_HOST");
        port = secure_getenv("KUBERNETES_SERVICE_PORT");
        if (isempty(host) || isempty(port))
                return -ENOENT;
        if (strlen(host) > 255 || strlen(port) > 5 || strspn(port, "0123456789") != strlen(port) ||
            strpbrk(host, "/@?# "))
                return log_error_errno(EINVAL, "KUBERNETES_SERVICE_HOST/PORT are malformed.");

        v6 = strchr(host, ':');
        if (asprintf(&c.server, "https://%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "", port) < 0 ||
            asprintf(&c.token_file, "%s/token", root) < 0 || asprintf(&c.ca.path, "%s/ca.crt", root) < 0 ||
            asprintf(&c.origin, "in-cluster service account %s", root) < 0)
                return log_oom();
        if (access(c.token_file, R_OK) < 0)
                return log_error_errno(errno, "In a cluster, but cannot read %s: %m", c.token_file);

        *ret = c;
        c = (KubeCredentials) {};
        return 0;
}

int kube_credentials_load(const char *path, KubeCredentials *ret) {
        int r;

        if (!isempty(path)) {
                r = kubeconfig_load(path, ret);
                if (r != -ENOENT)
                        return r;
                log_info("Kubeconfig %s does not exist, trying the in-cluster service account.", path);
        }
        r = kube_credentials_in_cluster(NULL, ret);
        if (r == -ENOENT)
                return log_error_errno(r, "No API server credentials: %s does not exist and KUBERNETES_SERVICE_HOST is not set.",
                                       isempty(path) ? "no kubeconfig given" : path);
        return r;
}

int kube_credentials_describe(const KubeCredentials *c, char *buf, size_t size) {
        int n;

        if (c->client_cert.path)
                n = snprintf(buf, size, "client certificate %s (%s)", c->client_cert.path, c->origin);
        else if (c->client_cert.data)
                n = snprintf(buf, size, "embedded client-certificate-data (%s)", c->origin);
        else if (c->token_file)
                n = snprintf(buf, size, "bearer token from %s (%s)", c->token_file, c->origin);
        else if (c->token)
                n = snprintf(buf, size, "inline bearer token (%s)", c->origin);
        else
                n = snprintf(buf, size, "no credentials (%s)", c->origin);
        return n < 0 ? -EINVAL : 0;
}
