/* SPDX-License-Identifier: Apache-2.0 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "json-util.h"

static bool printable_ascii(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || (unsigned char) *s >= 0x7f)
                        return false;
        return true;
}

/* The string member key of o: *ret = its value, or "" when absent/null and !required. */
static int member_string(json_object *o, const char *where, const char *key, bool required,
                         const char **ret, ErrBuf *e) {
        json_object *v = NULL;

        if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) {
                if (required)
                        return errbuf_fail(e, -EBADMSG, "%s%s is missing", where, key);
                *ret = "";
                return 0;
        }
        if (!json_object_is_type(v, json_type_string))
                return errbuf_fail(e, -EBADMSG, "%s%s is not a string", where, key);
        *ret = json_object_get_string(v);
        if (strlen(*ret) != (size_t) json_object_get_string_len(v))
                return errbuf_fail(e, -EBADMSG, "%s%s contains a NUL byte", where, key);
        return 0;
}

static int member_object(json_object *o, const char *where, const char *key, bool required,
                         json_object **ret, ErrBuf *e) {
        json_object *v = NULL;

        if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) {
                if (required)
                        return errbuf_fail(e, -EBADMSG, "%s%s is missing", where, key);
                *ret = NULL;
                return 0;
        }
        if (!json_object_is_type(v, json_type_object))
                return errbuf_fail(e, -EBADMSG, "%s%s is not an object", where, key);
        *ret = v;
        return 0;
}

int admission_request_decode(const char *body, size_t n, AdmissionRequest *ret, ErrBuf *e) {
        _cleanup_json_ json_object *root = NULL;
        AdmissionRequest a = {};
        json_object *req, *kind, *resource, *v;
        const char *s;
        int r;

        *ret = (AdmissionRequest) {};
        if (!body && n > 0)
                return errbuf_fail(e, -EBADMSG, "no body");
        if (n > ADMISSION_SIZE_MAX)
                return errbuf_fail(e, -E2BIG, "the body is %zu bytes, more than %u", n, ADMISSION_SIZE_MAX);
        r = json_parse_bounded(body ?: "", n, ADMISSION_DEPTH_MAX, &root);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return errbuf_fail(e, -EBADMSG, "the body is not one JSON value (or is nested more than %d deep)",
                                   ADMISSION_DEPTH_MAX);
        if (!json_object_is_type(root, json_type_object))
                return errbuf_fail(e, -EBADMSG, "the body is not a JSON object");

        r = member_string(root, "", "apiVersion", true, &s, e);
        if (r < 0)
                return r;
        if (strcmp(s, "admission.k8s.io/v1") != 0)
                return errbuf_fail(e, -EBADMSG, "apiVersion is not admission.k8s.io/v1 (admissionReviewVersions: [v1])");
        r = member_string(root, "", "kind", true, &s, e);
        if (r < 0)
                return r;
        if (strcmp(s, "AdmissionReview") != 0)
                return errbuf_fail(e, -EBADMSG, "kind is not AdmissionReview");
        r = member_object(root, "", "request", true, &req, e);
        if (r < 0)
                return r;

        r = member_string(req, "request.", "uid", true, &a.uid, e);
        if (r < 0)
                return r;
        if (a.uid[0] == '\0' || strlen(a.uid) > ADMISSION_UID_MAX || !printable_ascii(a.uid))
                return errbuf_fail(e, -EBADMSG, "request.uid is empty, longer than %d or not printable ASCII",
                                   ADMISSION_UID_MAX);

        r = member_object(req, "request.", "kind", true, &kind, e);
        if (r < 0)
                return r;
        r = member_string(kind, "request.kind.", "group", false, &a.kind_group, e);
        if (r >= 0)
                r = member_string(kind, "request.kind.", "version", true, &a.kind_version, e);
        if (r >= 0)
                r = member_string(kind, "request.kind.", "kind", true, &a.kind, e);
        if (r < 0)
                return r;
        r = member_object(req, "request.", "resource", false, &resource, e);
        if (r < 0)
                return r;
        a.resource = "";
        if (resource) {
                r = member_string(resource, "request.resource.", "resource", false, &a.resource, e);
                if (r < 0)
                        return r;
        }
        r = member_string(req, "request.", "subResource", false, &a.sub_resource, e);
        if (r >= 0)
                r = member_string(req, "request.", "namespace", false, &a.namespace, e);
        if (r >= 0)
                r = member_string(req, "request.", "name", false, &a.name, e);
        if (r >= 0)
                r = member_string(req, "request.", "operation", true, &a.operation, e);
        if (r < 0)
                return r;
        if (strcmp(a.operation, "CREATE") != 0 && strcmp(a.operation, "UPDATE") != 0 &&
            strcmp(a.operation, "DELETE") != 0 && strcmp(a.operation, "CONNECT") != 0)
                return errbuf_fail(e, -EBADMSG, "request.operation is not CREATE, UPDATE, DELETE or CONNECT");

        if (json_object_object_get_ex(req, "dryRun", &v) && !json_object_is_type(v, json_type_null)) {
                if (!json_object_is_type(v, json_type_boolean))
                        return errbuf_fail(e, -EBADMSG, "request.dryRun is not a boolean");
                a.dry_run = json_object_get_boolean(v);
        }
        r = member_object(req, "request.", "object", false, &a.object, e);
        if (r < 0)
                return r;
        if (!a.object && (strcmp(a.operation, "CREATE") == 0 || strcmp(a.operation, "UPDATE") == 0))
                return errbuf_fail(e, -EBADMSG, "request.object is missing on %s", a.operation);

        a.root = TAKE_PTR(root);
        *ret = a;
        return 0;
}

void admission_request_done(AdmissionRequest *r) {
        if (!r)
                return;
        json_object_put(r->root);
        *r = (AdmissionRequest) {};
}

char *base64_encode(const void *data, size_t n) {
        static const char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const unsigned char *p = data;
        char *out, *o;

        if (n > (SIZE_MAX - 1) / 4 * 3 - 3)
                return NULL;
        out = o = malloc((n + 2) / 3 * 4 + 1);
        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i += 3) {
                unsigned v = (unsigned) p[i] << 16;
                if (i + 1 < n)
                        v |= (unsigned) p[i + 1] << 8;
                if (i + 2 < n)
                        v |= p[i + 2];
                *o++ = table[(v >> 18) & 63];
                *o++ = table[(v >> 12) & 63];
                *o++ = i + 1 < n ? table[(v >> 6) & 63] : '=';
                *o++ = i + 2 < n ? table[v & 63] : '=';
        }
        *o = '\0';
        return out;
}

int admission_response_encode(const AdmissionResponse *a, char **ret) {
        _cleanup_json_ json_object *root = json_object_new_object();
        json_object *resp = json_object_new_object();
        int r = 0;

        if (!a || !a->uid || !ret) {
                json_object_put(resp);
                return -EINVAL;
        }
        if (!root || !resp) {
                json_object_put(resp);
                return -ENOMEM;
        }
        r = r ?: json_add(root, "apiVersion", json_object_new_string("admission.k8s.io/v1"));
        r = r ?: json_add(root, "kind", json_object_new_string("AdmissionReview"));
        r = r ?: json_add(root, "response", resp);
        if (r < 0)
                return r;
        r = r ?: json_add(resp, "uid", json_object_new_string(a->uid));
        r = r ?: json_add(resp, "allowed", json_object_new_boolean(a->allowed));
        if (r >= 0 && !a->allowed) {
                json_object *st = json_object_new_object();
                r = json_add(resp, "status", st);
                if (r >= 0 && a->code > 0)
                        r = json_add(st, "code", json_object_new_int(a->code));
                if (r >= 0)
                        r = json_add(st, "message", json_object_new_string(a->message ?: "refused"));
        }
        if (r >= 0 && a->allowed && a->patch) {
                char *b = base64_encode(a->patch, a->patch_len);
                if (!b)
                        return -ENOMEM;
                r = json_add(resp, "patchType", json_object_new_string("JSONPatch"));
                if (r >= 0)
                        r = json_add(resp, "patch", json_object_new_string(b));
                free(b);
        }
        if (r >= 0 && a->n_warnings > 0) {
                json_object *w = json_object_new_array();
                r = json_add(resp, "warnings", w);
                for (size_t i = 0; r >= 0 && i < a->n_warnings; i++) {
                        json_object *s = json_object_new_string(a->warnings[i]);
                        if (!s || json_object_array_add(w, s) < 0) {
                                json_object_put(s);
                                r = -ENOMEM;
                        }
                }
        }
        if (r < 0)
                return r;
        const char *text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!text)
                return -ENOMEM;
        *ret = strdup(text);
        return *ret ? 0 : -ENOMEM;
}
