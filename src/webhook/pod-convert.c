/* SPDX-License-Identifier: Apache-2.0 */

#include <errno.h>
#include <gnutls/crypto.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "pod-convert.h"
#include "quantity.h"

#define MIB (UINT64_C(1) << 20)

enum {
        RES_GPU,
        RES_MEM,
        RES_PCT,
        RES_CORES,
        _RES_MAX,
};

static const char *const res_names[_RES_MAX] = {
        [RES_GPU] = "nvidia.com/gpu",
        [RES_MEM] = "nvidia.com/gpumem",
        [RES_PCT] = "nvidia.com/gpumem-percentage",
        [RES_CORES] = "nvidia.com/gpucores",
};

/* The annotations, their attribute and whether they exclude. */
static const struct {
        const char *annotation;
        const char *attribute;
        bool negate;
        bool product;   /* productName: "X" also matches "NVIDIA X" */
} annotations[] = {
        { "nvidia.com/use-gpuuuid", "uuid", false, false },
        { "nvidia.com/nouse-gpuuuid", "uuid", true, false },
        { "nvidia.com/use-gputype", "productName", false, true },
        { "nvidia.com/nouse-gputype", "productName", true, true },
};

typedef struct Ask {
        bool set[_RES_MAX];
        uint64_t v[_RES_MAX];
} Ask;

static int jpush(json_object *a, json_object *v) {
        if (!v)
                return -ENOMEM;
        if (json_object_array_add(a, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

int json_pointer_append(char *buf, size_t size, const char *token) {
        size_t n = strlen(buf);

        for (const char *p = token; *p; p++) {
                const char *rep = *p == '~' ? "~0" : *p == '/' ? "~1" : NULL;
                size_t l = rep ? 2 : 1;
                if (n + l + 1 > size)
                        return -ENOBUFS;
                if (rep)
                        memcpy(buf + n, rep, 2);
                else
                        buf[n] = *p;
                n += l;
        }
        buf[n] = '\0';
        return 0;
}

/* A whole, non-negative number: a JSON integer or a quantity string without rounding. */
static int read_whole(json_object *v, uint64_t *ret) {
        if (json_object_is_type(v, json_type_int)) {
                int64_t i = json_object_get_int64(v);
                if (i < 0)
                        return -EINVAL;
                *ret = (uint64_t) i;
                return 0;
        }
        if (json_object_is_type(v, json_type_string)) {
                uint64_t x;
                int exact = 0;
                if (quantity_parse_exact(json_object_get_string(v), &x, &exact) < 0 || !exact)
                        return -EINVAL;
                *ret = x;
                return 0;
        }
        return -EINVAL;
}

static int read_ask(json_object *container, const char *who, Ask *ask, ErrBuf *e) {
        json_object *limits = json_get(container, "resources.limits");
        json_object *requests = json_get(container, "resources.requests");

        *ask = (Ask) {};
        for (int k = 0; k < _RES_MAX; k++) {
                json_object *lv = NULL, *rv = NULL;
                uint64_t l = 0, r = 0;

                if (limits && json_object_is_type(limits, json_type_object))
                        json_object_object_get_ex(limits, res_names[k], &lv);
                if (requests && json_object_is_type(requests, json_type_object))
                        json_object_object_get_ex(requests, res_names[k], &rv);
                if (!lv && !rv)
                        continue;
                if (lv && read_whole(lv, &l) < 0)
                        return errbuf_fail(e, -EINVAL, "%s: limits %s is not a whole number: write it like \"1\"",
                                           who, res_names[k]);
                if (rv && read_whole(rv, &r) < 0)
                        return errbuf_fail(e, -EINVAL, "%s: requests %s is not a whole number: write it like \"1\"",
                                           who, res_names[k]);
                if (lv && rv && l != r)
                        return errbuf_fail(e, -EINVAL, "%s: requests and limits of %s differ: give the same value "
                                           "(or only limits)", who, res_names[k]);
                ask->set[k] = true;
                ask->v[k] = lv ? l : r;
        }
        return 0;
}

static int check_ask(const Ask *a, const char *who, const uint64_t *sizes, size_t n_sizes, ErrBuf *e) {
        if (a->set[RES_GPU] && a->v[RES_GPU] == 0)
                return errbuf_fail(e, -EINVAL, "%s: nvidia.com/gpu is 0: ask for 1 or more GPUs, or remove "
                                   "the nvidia.com/ resources from this container", who);
        if (a->set[RES_GPU] && a->v[RES_GPU] > POD_CONVERT_COUNT_MAX)
                return errbuf_fail(e, -EINVAL, "%s: nvidia.com/gpu is %" PRIu64 ": ask for at most %d GPUs",
                                   who, a->v[RES_GPU], POD_CONVERT_COUNT_MAX);
        if (a->set[RES_CORES] && a->v[RES_CORES] == 0)
                return errbuf_fail(e, -EINVAL, "%s: nvidia.com/gpucores is 0, which would mean no limit: ask for "
                                   "1 to 100 (percent of a GPU's cores), or remove it for the whole GPU", who);
        if (a->set[RES_CORES] && a->v[RES_CORES] > 100)
                return errbuf_fail(e, -EINVAL, "%s: nvidia.com/gpucores is %" PRIu64 ": ask for 1 to 100 (percent "
                                   "of a GPU's cores)", who, a->v[RES_CORES]);
        if (a->set[RES_MEM] && a->set[RES_PCT])
                return errbuf_fail(e, -EINVAL, "%s: both nvidia.com/gpumem and nvidia.com/gpumem-percentage are "
                                   "given: keep only one", who);
        if (a->set[RES_MEM] && a->v[RES_MEM] == 0)
                return errbuf_fail(e, -EINVAL, "%s: nvidia.com/gpumem is 0: ask for 1 or more MiB, or remove it "
                                   "for all of the GPU's memory", who);
        if (a->set[RES_MEM] && a->v[RES_MEM] > UINT64_MAX / MIB / 2)
                return errbuf_fail(e, -EINVAL, "%s: nvidia.com/gpumem is too large", who);
        if (a->set[RES_MEM] && n_sizes > 0 && a->v[RES_MEM] * MIB > sizes[n_sizes - 1])
                return errbuf_fail(e, -EINVAL, "%s: nvidia.com/gpumem is %" PRIu64 " MiB, more than any GPU has "
                                   "(the largest has %" PRIu64 " MiB): ask for less", who, a->v[RES_MEM],
                                   sizes[n_sizes - 1] / MIB);
        if (a->set[RES_PCT] && (a->v[RES_PCT] == 0 || a->v[RES_PCT] > 100))
                return errbuf_fail(e, -EINVAL, "%s: nvidia.com/gpumem-percentage is %" PRIu64 ": ask for 1 to 100 "
                                   "(percent of a GPU's memory)", who, a->v[RES_PCT]);
        if (a->set[RES_PCT] && n_sizes == 0)
                return errbuf_fail(e, -EINVAL, "%s: nvidia.com/gpumem-percentage cannot be converted: no GPU of "
                                   "driver %s is published in the cluster yet; ask for nvidia.com/gpumem (MiB) "
                                   "instead, or retry when the nodes' ResourceSlices are there", who, WEBHOOK_DRIVER);
        if (a->set[RES_PCT] && n_sizes > POD_CONVERT_SUBREQUESTS_MAX)
                return errbuf_fail(e, -EINVAL, "%s: nvidia.com/gpumem-percentage cannot be converted: the cluster "
                                   "has %zu different GPU memory sizes, more than %d; ask for nvidia.com/gpumem (MiB) "
                                   "instead", who, n_sizes, POD_CONVERT_SUBREQUESTS_MAX);
        return 0;
}

/* Append {"cel": {"expression": expr}} to the selectors array a. */
static int cel_selector_push(json_object *a, const char *expr) {
        json_object *sel = NULL, *cel = NULL;
        int r = 0;

        r = r ?: jpush(a, (sel = json_object_new_object()));
        r = r ?: json_add(sel, "cel", (cel = json_object_new_object()));
        r = r ?: json_add(cel, "expression", json_object_new_string(expr));
        return r;
}

/* A CEL string literal of s (printable ASCII only, checked by the caller). */
static void cel_quote(char *out, size_t size, const char *s) {
        size_t n = 0;
        out[n++] = '"';
        for (; *s && n + 4 < size; s++) {
                if (*s == '"' || *s == '\\')
                        out[n++] = '\\';
                out[n++] = *s;
        }
        out[n++] = '"';
        out[n] = '\0';
}

/* Append ", " + literal to expr. */
static int list_append(char *expr, size_t size, bool first, const char *v) {
        char q[2 * (POD_CONVERT_ANNOTATION_MAX + 8) + 3];
        size_t n = strlen(expr);
        int l;

        cel_quote(q, sizeof(q), v);
        l = snprintf(expr + n, size - n, "%s%s", first ? "" : ", ", q);
        return l < 0 || (size_t) l >= size - n ? -ENOBUFS : 0;
}

/* The CEL selectors of the pod's annotations, in the order of annotations[]. */
static int annotation_selectors(json_object *pod, json_object *ret, ErrBuf *e) {
        json_object *ann = json_get(pod, "metadata.annotations");

        if (!ann || !json_object_is_type(ann, json_type_object))
                return 0;
        for (size_t i = 0; i < sizeof(annotations) / sizeof(annotations[0]); i++) {
                const char *name = annotations[i].annotation;
                char expr[8 * POD_CONVERT_ANNOTATION_MAX], item[POD_CONVERT_ANNOTATION_MAX + 1];
                json_object *v = NULL;
                const char *s;
                size_t n_items = 0;
                int r;

                if (!json_object_object_get_ex(ann, name, &v))
                        continue;
                if (!json_object_is_type(v, json_type_string))
                        return errbuf_fail(e, -EINVAL, "annotation %s is not a string", name);
                s = json_object_get_string(v);
                if (strlen(s) > POD_CONVERT_ANNOTATION_MAX)
                        return errbuf_fail(e, -EINVAL, "annotation %s is longer than %d characters: shorten it",
                                           name, POD_CONVERT_ANNOTATION_MAX);
                for (const char *p = s; *p; p++)
                        if ((unsigned char) *p < 0x20 || (unsigned char) *p >= 0x7f)
                                return errbuf_fail(e, -EINVAL, "annotation %s has a character that is not printable "
                                                   "ASCII: write only names like \"GPU-8f2c...\" or \"A10\", "
                                                   "separated by commas", name);
                snprintf(expr, sizeof(expr), "%sdevice.attributes[\"%s\"].%s in [", annotations[i].negate ? "!(" : "",
                         WEBHOOK_DRIVER, annotations[i].attribute);
                for (const char *p = s;;) {
                        const char *end = strchrnul(p, ',');
                        const char *a = p, *b = end;
                        while (a < b && *a == ' ')
                                a++;
                        while (b > a && b[-1] == ' ')
                                b--;
                        if (a == b)
                                return errbuf_fail(e, -EINVAL, "annotation %s has an empty value%s: write one or "
                                                   "more names separated by commas, or remove it", name,
                                                   s[0] ? " in its list" : "");
                        memcpy(item, a, (size_t) (b - a));
                        item[b - a] = '\0';
                        r = list_append(expr, sizeof(expr), n_items++ == 0, item);
                        /* A product name "A10" also matches the name NVML reports, "NVIDIA A10". */
                        if (r >= 0 && annotations[i].product && strncmp(item, "NVIDIA ", 7) != 0) {
                                char full[POD_CONVERT_ANNOTATION_MAX + 8];
                                snprintf(full, sizeof(full), "NVIDIA %s", item);
                                r = list_append(expr, sizeof(expr), false, full);
                        }
                        if (r < 0)
                                return errbuf_fail(e, -EINVAL, "annotation %s is too long", name);
                        if (*end == '\0')
                                break;
                        p = end + 1;
                }
                if (strlen(expr) + 3 > sizeof(expr))
                        return errbuf_fail(e, -EINVAL, "annotation %s is too long", name);
                strcat(expr, annotations[i].negate ? "])" : "]");

                r = cel_selector_push(ret, expr);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The fields common to an exact request and a subrequest. */
static int request_fill(json_object *req, const Ask *a, json_object *selectors, const char *size_selector,
                        uint64_t memory_bytes) {
        json_object *sel = NULL, *cap = NULL, *creq = NULL;
        char buf[QUANTITY_STRING_MAX];
        int r = 0;

        r = r ?: json_add(req, "deviceClassName", json_object_new_string(WEBHOOK_DRIVER));
        r = r ?: json_add(req, "allocationMode", json_object_new_string("ExactCount"));
        r = r ?: json_add(req, "count", json_object_new_int64((int64_t) (a->set[RES_GPU] ? a->v[RES_GPU] : 1)));
        if (r < 0)
                return r;
        if (size_selector || json_object_array_length(selectors) > 0) {
                r = json_add(req, "selectors", (sel = json_object_new_array()));
                if (r >= 0 && size_selector)
                        r = cel_selector_push(sel, size_selector);
                for (size_t i = 0; r >= 0 && i < json_object_array_length(selectors); i++)
                        r = jpush(sel, json_object_get(json_object_array_get_idx(selectors, i)));
                if (r < 0)
                        return r;
        }
        if (memory_bytes > 0 || a->set[RES_CORES]) {
                r = r ?: json_add(req, "capacity", (cap = json_object_new_object()));
                r = r ?: json_add(cap, "requests", (creq = json_object_new_object()));
                if (r >= 0 && a->set[RES_CORES]) {
                        snprintf(buf, sizeof(buf), "%" PRIu64, a->v[RES_CORES]);
                        r = json_add(creq, "cores", json_object_new_string(buf));
                }
                if (r >= 0 && memory_bytes > 0) {
                        r = quantity_format_bytes(memory_bytes, buf, sizeof(buf));
                        if (r >= 0)
                                r = json_add(creq, "memory", json_object_new_string(buf));
                }
        }
        return r < 0 ? r : 0;
}

/* The template's spec (ResourceClaimTemplateSpec) for one container's ask. */
static int template_spec_build(const Ask *a, json_object *selectors, const uint64_t *sizes, size_t n_sizes,
                               const char *who, json_object **ret, ErrBuf *e) {
        _cleanup_json_ json_object *spec = json_object_new_object();
        json_object *meta = NULL, *labels = NULL, *cspec = NULL, *devices = NULL, *requests = NULL, *req = NULL;
        int r = spec ? 0 : -ENOMEM;

        r = r ?: json_add(spec, "metadata", (meta = json_object_new_object()));
        r = r ?: json_add(meta, "labels", (labels = json_object_new_object()));
        r = r ?: json_add(labels, WEBHOOK_MANAGED_BY_LABEL, json_object_new_string(WEBHOOK_MANAGED_BY));
        r = r ?: json_add(spec, "spec", (cspec = json_object_new_object()));
        r = r ?: json_add(cspec, "devices", (devices = json_object_new_object()));
        r = r ?: json_add(devices, "requests", (requests = json_object_new_array()));
        r = r ?: jpush(requests, (req = json_object_new_object()));
        r = r ?: json_add(req, "name", json_object_new_string("gpu"));
        if (r < 0)
                return r;

        if (!a->set[RES_PCT]) {
                json_object *x = NULL;
                r = json_add(req, "exactly", (x = json_object_new_object()));
                if (r >= 0)
                        r = request_fill(x, a, selectors, NULL, a->set[RES_MEM] ? a->v[RES_MEM] * MIB : 0);
                if (r < 0)
                        return r;
        } else {
                json_object *fa = NULL;
                size_t n = 0;
                r = json_add(req, "firstAvailable", (fa = json_object_new_array()));
                /* One subrequest per distinct size, smallest first: exactly P % of that size,
                 * rounded down to whole MiB. */
                for (size_t i = 0; r >= 0 && i < n_sizes; i++) {
                        uint64_t mib = sizes[i] / MIB * a->v[RES_PCT] / 100;
                        char name[64], size_q[QUANTITY_STRING_MAX], sel[256];
                        json_object *sub = NULL;

                        if (mib == 0)
                                continue;
                        r = quantity_format_bytes(sizes[i], size_q, sizeof(size_q));
                        if (r < 0)
                                return r;
                        snprintf(name, sizeof(name), "mem-%" PRIu64 "mi", sizes[i] / MIB);
                        if (sizes[i] % MIB != 0)
                                snprintf(name, sizeof(name), "mem-%" PRIu64, sizes[i]);
                        snprintf(sel, sizeof(sel),
                                 "device.capacity[\"%s\"].memory.compareTo(quantity(\"%s\")) == 0",
                                 WEBHOOK_DRIVER, size_q);
                        r = jpush(fa, (sub = json_object_new_object()));
                        r = r ?: json_add(sub, "name", json_object_new_string(name));
                        r = r ?: request_fill(sub, a, selectors, sel, mib * MIB);
                        n++;
                }
                if (r < 0)
                        return r;
                if (n == 0)
                        return errbuf_fail(e, -EINVAL, "%s: nvidia.com/gpumem-percentage %" PRIu64 " is less than "
                                           "1 MiB of every GPU: ask for more", who, a->v[RES_PCT]);
        }
        *ret = TAKE_PTR(spec);
        return 0;
}

static int sha256_hex16(const char *text, char out[17]) {
        unsigned char d[32];

        if (gnutls_hash_fast(GNUTLS_DIG_SHA256, text, strlen(text), d) < 0)
                return -EIO;
        for (int i = 0; i < 8; i++)
                snprintf(out + 2 * i, 3, "%02x", d[i]);
        return 0;
}

static const char *to_text(json_object *o) {
        return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* The template object for spec; *ret_name its name. Same spec, same name. */
static int template_build(json_object *spec, const char *namespace, char **ret_text, char ret_name[64]) {
        _cleanup_json_ json_object *t = json_object_new_object();
        json_object *meta = NULL, *labels = NULL;
        const char *s = to_text(spec);
        char hex[17];
        int r;

        if (!t || !s)
                return -ENOMEM;
        r = sha256_hex16(s, hex);
        if (r < 0)
                return r;
        snprintf(ret_name, 64, WEBHOOK_TEMPLATE_PREFIX "%s", hex);
        r = r ?: json_add(t, "apiVersion", json_object_new_string("resource.k8s.io/v1"));
        r = r ?: json_add(t, "kind", json_object_new_string("ResourceClaimTemplate"));
        r = r ?: json_add(t, "metadata", (meta = json_object_new_object()));
        r = r ?: json_add(meta, "name", json_object_new_string(ret_name));
        r = r ?: json_add(meta, "namespace", json_object_new_string(namespace));
        r = r ?: json_add(meta, "labels", (labels = json_object_new_object()));
        r = r ?: json_add(labels, WEBHOOK_MANAGED_BY_LABEL, json_object_new_string(WEBHOOK_MANAGED_BY));
        r = r ?: json_add(t, "spec", json_object_get(spec));
        if (r < 0)
                return r;
        s = to_text(t);
        *ret_text = s ? strdup(s) : NULL;
        return *ret_text ? 0 : -ENOMEM;
}

static int op_add(json_object *patch, const char *op, const char *path, json_object *value) {
        json_object *o = NULL;
        int r = jpush(patch, (o = json_object_new_object()));

        r = r ?: json_add(o, "op", json_object_new_string(op));
        r = r ?: json_add(o, "path", json_object_new_string(path));
        if (r < 0) {
                json_object_put(value);
                return r;
        }
        if (value)
                return json_add(o, "value", value);
        return 0;
}

static bool dns_label(const char *s) {
        size_t n = strlen(s);
        if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
                        return false;
        return true;
}

static bool entry_taken(json_object *entries, const char *name) {
        for (size_t i = 0; entries && i < json_object_array_length(entries); i++)
                if (strcmp(json_get_string(json_object_array_get_idx(entries, i), "name") ?: "", name) == 0)
                        return true;
        return false;
}

typedef struct State {
        json_object *pod;
        const char *namespace;
        const uint64_t *sizes;
        size_t n_sizes;
        json_object *selectors;     /* from the annotations */
        json_object *patch;         /* the ops */
        json_object *new_entries;   /* spec.resourceClaims entries to add */
        PodConversion *out;
} State;

static int convert_container(State *st, const char *list, size_t idx, json_object *c, ErrBuf *e) {
        _cleanup_json_ json_object *spec = NULL;
        const char *cname = json_get_string(c, "name") ?: "";
        json_object *existing = json_get(st->pod, "spec.resourceClaims");
        char who[128], entry[64], tname[64], path[512], base[128];
        char *text = NULL;
        bool known = false;
        Ask a;
        int r;

        snprintf(who, sizeof(who), "%s \"%.63s\" (spec.%s[%zu])",
                 strcmp(list, "containers") == 0 ? "container" : "init container", cname, list, idx);
        r = read_ask(c, who, &a, e);
        if (r < 0)
                return r;
        if (!a.set[RES_GPU] && !a.set[RES_MEM] && !a.set[RES_PCT] && !a.set[RES_CORES])
                return 0;
        r = check_ask(&a, who, st->sizes, st->n_sizes, e);
        if (r < 0)
                return r;
        if (isempty(st->namespace))
                return errbuf_fail(e, -EINVAL, "the request names no namespace");
        r = template_spec_build(&a, st->selectors, st->sizes, st->n_sizes, who, &spec, e);
        if (r < 0)
                return r;
        r = template_build(spec, st->namespace, &text, tname);
        if (r < 0)
                return r;
        for (size_t i = 0; i < st->out->n_templates; i++)
                if (strcmp(st->out->templates[i], text) == 0)
                        known = true;
        if (known)
                free(text);
        else {
                char **t = realloc(st->out->templates, (st->out->n_templates + 1) * sizeof(char *));
                if (!t) {
                        free(text);
                        return -ENOMEM;
                }
                st->out->templates = t;
                t[st->out->n_templates++] = text;
        }

        /* The pod's entry: "gpu-<container>", or by position when that is no DNS label. */
        if (strlen(cname) <= 59 && dns_label(cname))
                snprintf(entry, sizeof(entry), "gpu-%s", cname);
        else
                snprintf(entry, sizeof(entry), "gpu-%s-%zu", strcmp(list, "containers") == 0 ? "c" : "i", idx);
        if (entry_taken(existing, entry) || entry_taken(st->new_entries, entry))
                return errbuf_fail(e, -EINVAL, "%s: the pod already has a resourceClaims entry \"%s\": rename it",
                                   who, entry);

        snprintf(base, sizeof(base), "/spec/%s/%zu/resources", list, idx);
        for (int side = 0; side < 2; side++) {
                json_object *m = json_get(c, side == 0 ? "resources.limits" : "resources.requests");
                for (int k = 0; k < _RES_MAX; k++) {
                        if (!m || !json_object_is_type(m, json_type_object) ||
                            !json_object_object_get_ex(m, res_names[k], NULL))
                                continue;
                        snprintf(path, sizeof(path), "%s/%s/", base, side == 0 ? "limits" : "requests");
                        r = json_pointer_append(path, sizeof(path), res_names[k]);
                        r = r ?: op_add(st->patch, "remove", path, NULL);
                        if (r < 0)
                                return r;
                }
        }

        json_object *claim = json_object_new_object();
        r = json_add(claim, "name", json_object_new_string(entry));
        if (r < 0) {
                json_object_put(claim);
                return r;
        }
        json_object *claims = json_get(c, "resources.claims");
        if (claims && !json_object_is_type(claims, json_type_array)) {
                json_object_put(claim);
                return errbuf_fail(e, -EINVAL, "%s: resources.claims is not a list", who);
        }
        if (claims) {
                snprintf(path, sizeof(path), "%s/claims/-", base);
                r = op_add(st->patch, "add", path, claim);
        } else {
                json_object *arr = json_object_new_array();
                r = jpush(arr, claim);
                snprintf(path, sizeof(path), "%s/claims", base);
                if (r >= 0)
                        r = op_add(st->patch, "add", path, arr);
                else
                        json_object_put(arr);
        }
        if (r < 0)
                return r;

        json_object *pe = NULL;
        r = jpush(st->new_entries, (pe = json_object_new_object()));
        r = r ?: json_add(pe, "name", json_object_new_string(entry));
        r = r ?: json_add(pe, "resourceClaimTemplateName", json_object_new_string(tname));
        if (r < 0)
                return r;
        st->out->n_converted++;
        return 0;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

void pod_conversion_done(PodConversion *c) {
        if (!c)
                return;
        free(c->patch);
        for (size_t i = 0; i < c->n_templates; i++)
                free(c->templates[i]);
        free(c->templates);
        *c = (PodConversion) {};
}

static int pod_convert_internal(State *st, ErrBuf *e) {
        static const char *const lists[] = { "initContainers", "containers" };
        json_object *spec = json_get(st->pod, "spec");
        int r;

        if (!spec || !json_object_is_type(spec, json_type_object))
                return errbuf_fail(e, -EINVAL, "the pod has no spec");
        r = annotation_selectors(st->pod, st->selectors, e);
        if (r < 0)
                return r;
        for (size_t l = 0; l < 2; l++) {
                json_object *arr = json_get(spec, lists[l]);
                if (!arr)
                        continue;
                if (!json_object_is_type(arr, json_type_array))
                        return errbuf_fail(e, -EINVAL, "spec.%s is not a list", lists[l]);
                for (size_t i = 0; i < json_object_array_length(arr); i++) {
                        json_object *c = json_object_array_get_idx(arr, i);
                        if (!c || !json_object_is_type(c, json_type_object))
                                return errbuf_fail(e, -EINVAL, "spec.%s[%zu] is not an object", lists[l], i);
                        r = convert_container(st, lists[l], i, c, e);
                        if (r < 0)
                                return r;
                }
        }
        if (st->out->n_converted == 0)
                return 0;

        json_object *existing = json_get(spec, "resourceClaims");
        if (existing && !json_object_is_type(existing, json_type_array))
                return errbuf_fail(e, -EINVAL, "spec.resourceClaims is not a list");
        if (existing) {
                for (size_t i = 0; i < json_object_array_length(st->new_entries); i++) {
                        r = op_add(st->patch, "add", "/spec/resourceClaims/-",
                                   json_object_get(json_object_array_get_idx(st->new_entries, i)));
                        if (r < 0)
                                return r;
                }
        } else {
                r = op_add(st->patch, "add", "/spec/resourceClaims", json_object_get(st->new_entries));
                if (r < 0)
                        return r;
        }
        const char *text = to_text(st->patch);
        st->out->patch = text ? strdup(text) : NULL;
        if (!st->out->patch)
                return -ENOMEM;
        st->out->patch_len = strlen(st->out->patch);
        return 0;
}

int pod_convert(json_object *pod, const char *namespace, const DeviceSizes *sizes, PodConversion *ret, ErrBuf *e) {
        _cleanup_json_ json_object *selectors = json_object_new_array();
        _cleanup_json_ json_object *patch = json_object_new_array();
        _cleanup_json_ json_object *entries = json_object_new_array();
        uint64_t *sorted = NULL;
        size_t n = 0;
        int r;

        *ret = (PodConversion) {};
        if (!selectors || !patch || !entries)
                return -ENOMEM;
        if (!pod || !json_object_is_type(pod, json_type_object))
                return errbuf_fail(e, -EINVAL, "the object is not a pod");
        if (sizes && sizes->n > 0) {
                sorted = malloc(sizes->n * sizeof(uint64_t));
                if (!sorted)
                        return -ENOMEM;
                for (size_t i = 0; i < sizes->n; i++)
                        if (sizes->memory_bytes[i] > 0)
                                sorted[n++] = sizes->memory_bytes[i];
                qsort(sorted, n, sizeof(uint64_t), cmp_u64);
                size_t u = 0;
                for (size_t i = 0; i < n; i++)
                        if (u == 0 || sorted[u - 1] != sorted[i])
                                sorted[u++] = sorted[i];
                n = u;
        }
        State st = {
                .pod = pod, .namespace = namespace, .sizes = sorted, .n_sizes = n,
                .selectors = selectors, .patch = patch, .new_entries = entries, .out = ret,
        };
        r = pod_convert_internal(&st, e);
        free(sorted);
        if (r < 0)
                pod_conversion_done(ret);
        return r;
}
