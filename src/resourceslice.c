/* SPDX-License-Identifier: Apache-2.0 */

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "quantity.h"
#include "resourceslice.h"

#define MIB (UINT64_C(1) << 20)

/* ---- small JSON helpers ---- */

int64_t slice_pool_generation(json_object *slice) {
        json_object *g = json_get(slice, "spec.pool.generation");
        return json_object_is_type(g, json_type_int) ? json_object_get_int64(g) : -1;
}

static size_t json_array_len(json_object *o) {
        return json_object_is_type(o, json_type_array) ? json_object_array_length(o) : 0;
}

static int json_add_string(json_object *o, const char *key, const char *s) {
        return json_add(o, key, json_object_new_string(s));
}


/* ---- values ---- */

static bool is_dns_label(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > 63 || !isalnum((unsigned char) s[0]) || !isalnum((unsigned char) s[n - 1]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!(islower((unsigned char) s[i]) || isdigit((unsigned char) s[i]) || s[i] == '-'))
                        return false;
        return true;
}

static bool semver_numeric(const char *s, size_t n) {
        if (n == 0 || n > 18 || strspn(s, "0123456789") < n)
                return false;
        return !(n > 1 && s[0] == '0');
}

/* Strict semver 2.0: MAJOR.MINOR.PATCH[-pre][+build]. */
static bool is_semver(const char *s) {
        const char *p = s;

        for (int i = 0; i < 3; i++) {
                size_t n = strspn(p, "0123456789");
                if (!semver_numeric(p, n))
                        return false;
                p += n;
                if (i < 2) {
                        if (*p != '.')
                                return false;
                        p++;
                }
        }
        if (*p == '-' || *p == '+') {
                p++;
                if (*p == '\0' || strspn(p, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-.+") != strlen(p))
                        return false;
                return strstr(p, "..") == NULL && p[strlen(p) - 1] != '.';
        }
        return *p == '\0';
}

int slice_version_normalize(const char *in, char *out, size_t size) {
        unsigned long long part[3] = {};
        const char *p = in;
        int n = 0;

        if (isempty(in))
                return -EINVAL;
        if (is_semver(in)) {
                if (strlen(in) >= size)
                        return -ENOBUFS;
                strcpy(out, in);
                return 0;
        }
        /* Dotted numbers with leading zeros or fewer than three parts. */
        while (n < 3) {
                char *end;
                if (!isdigit((unsigned char) *p))
                        return -EINVAL;
                errno = 0;
                part[n++] = strtoull(p, &end, 10);
                if (errno != 0 || end - p > 18)
                        return -EINVAL;
                p = end;
                if (*p == '\0')
                        break;
                if (*p != '.')
                        return -EINVAL;
                p++;
        }
        if (*p != '\0')
                return -EINVAL;
        if (snprintf(out, size, "%llu.%llu.%llu", part[0], part[1], part[2]) >= (int) size)
                return -ENOBUFS;
        return 0;
}

void slice_taint_value_sanitize(const char *in, char *out, size_t size) {
        size_t n = 0, max = MIN(size - 1, (size_t) SLICE_TAINT_VALUE_MAX);

        for (const char *p = in; *p && n < max; p++) {
                char c = *p;
                if (isalnum((unsigned char) c) || c == '.' || c == '_' || c == '-')
                        out[n++] = c;
                else if (n > 0 && out[n - 1] != '-')
                        out[n++] = '-';
        }
        while (n > 0 && !isalnum((unsigned char) out[n - 1]))
                n--;
        out[n] = '\0';
        /* leading non-alphanumerics */
        size_t skip = 0;
        while (out[skip] && !isalnum((unsigned char) out[skip]))
                skip++;
        memmove(out, out + skip, n - skip + 1);
}

/* ---- one device ---- */

static int attribute_add(json_object *attrs, const char *key, const char *type, const char *value) {
        json_object *a = json_object_new_object();
        int r;

        if (!a)
                return -ENOMEM;
        r = json_add_string(a, type, value);
        if (r < 0) {
                json_object_put(a);
                return r;
        }
        return json_add(attrs, key, a);
}

/* A string attribute: descriptive ones are truncated at 64, identifying ones skipped. */
static int attribute_add_string(json_object *attrs, const Gpu *g, const char *key, const char *value,
                                bool may_truncate) {
        char buf[SLICE_ATTRIBUTE_STRING_MAX + 1];

        if (isempty(value))
                return 0;
        if (strlen(value) > SLICE_ATTRIBUTE_STRING_MAX) {
                if (!may_truncate) {
                        log_warning("%s: attribute %s is longer than %d characters, not published.",
                                    g->name, key, SLICE_ATTRIBUTE_STRING_MAX);
                        return 0;
                }
                log_debug("%s: attribute %s truncated to %d characters.", g->name, key, SLICE_ATTRIBUTE_STRING_MAX);
                snprintf(buf, sizeof(buf), "%s", value);
                value = buf;
        }
        return attribute_add(attrs, key, "string", value);
}

static int attribute_add_version(json_object *attrs, const Gpu *g, const char *key, const char *value) {
        char v[SLICE_ATTRIBUTE_STRING_MAX + 1];

        if (isempty(value))
                return 0;
        if (slice_version_normalize(value, v, sizeof(v)) < 0) {
                log_warning("%s: attribute %s '%s' is not a version, not published.", g->name, key, value);
                return 0;
        }
        return attribute_add(attrs, key, "version", v);
}

static int device_attributes_build(const Gpu *g, json_object **ret) {
        _cleanup_json_ json_object *a = json_object_new_object();
        int r = 0;

        if (!a)
                return -ENOMEM;
        r = r ?: attribute_add(a, "type", "string", "hami-gpu");
        r = r ?: attribute_add_string(a, g, "uuid", g->uuid, false);
        r = r ?: attribute_add_string(a, g, "productName", g->product_name, true);
        r = r ?: attribute_add_string(a, g, "brand", g->brand, true);
        r = r ?: attribute_add_string(a, g, "architecture", g->architecture, true);
        r = r ?: attribute_add_version(a, g, "cudaComputeCapability", g->cuda_compute_capability);
        r = r ?: attribute_add_version(a, g, "driverVersion", g->driver_version);
        r = r ?: attribute_add_version(a, g, "cudaDriverVersion", g->cuda_driver_version);
        r = r ?: attribute_add_string(a, g, "pcieBusID", g->pcie_bus_id, false);
        r = r ?: attribute_add_string(a, g, "resource.kubernetes.io/pcieRoot", g->pcie_root, false);
        if (r < 0)
                return r;
        {
                json_object *m = json_object_new_object();
                if (!m)
                        return -ENOMEM;
                r = json_add(m, "int", json_object_new_int64(g->minor));
                if (r < 0) {
                        json_object_put(m);
                        return r;
                }
                r = json_add(a, "minor", m);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(a);
        return 0;
}

/* {"value": v, "requestPolicy": {"default": v, "validRange": {"min", "max": v, "step"}}} */
static int capacity_build(const char *value, const char *min, const char *step, json_object **ret) {
        _cleanup_json_ json_object *c = json_object_new_object(), *policy = json_object_new_object(),
                                   *range = json_object_new_object();
        int r = 0;

        if (!c || !policy || !range)
                return -ENOMEM;
        r = r ?: json_add_string(range, "min", min);
        r = r ?: json_add_string(range, "max", value);
        r = r ?: json_add_string(range, "step", step);
        r = r ?: json_add_string(policy, "default", value);
        r = r ?: json_add(policy, "validRange", TAKE_PTR(range));
        r = r ?: json_add_string(c, "value", value);
        r = r ?: json_add(c, "requestPolicy", TAKE_PTR(policy));
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

static int device_capacity_build(const Gpu *g, json_object **ret) {
        _cleanup_json_ json_object *cap = json_object_new_object(), *cores = NULL, *memory = NULL;
        char mem[QUANTITY_STRING_MAX], cores_s[16];
        uint64_t mib = g->memory_total / MIB;
        int r;

        if (!cap)
                return -ENOMEM;
        /* validRange needs min + step <= value: at least 2 MiB. Rounded down to whole MiB. */
        if (mib < 2)
                return log_warning_errno(EINVAL, "%s: memory %" PRIu64 " bytes is too small to publish.",
                                         g->name, g->memory_total);
        r = quantity_format_bytes(mib * MIB, mem, sizeof(mem));
        if (r < 0)
                return r;
        snprintf(cores_s, sizeof(cores_s), "%u", GPU_CORES_TOTAL);

        r = capacity_build(cores_s, "1", "1", &cores);
        if (r < 0)
                return r;
        r = capacity_build(mem, "1Mi", "1Mi", &memory);
        if (r < 0)
                return r;
        r = json_add(cap, "cores", TAKE_PTR(cores));
        if (r < 0)
                return r;
        r = json_add(cap, "memory", TAKE_PTR(memory));
        if (r < 0)
                return r;
        *ret = TAKE_PTR(cap);
        return 0;
}

static int taint_add(json_object *taints, const char *driver, const char *what, const char *reason) {
        _cleanup_json_ json_object *t = json_object_new_object();
        char key[256], value[SLICE_TAINT_VALUE_MAX + 1];
        int r = 0;

        if (!t)
                return -ENOMEM;
        snprintf(key, sizeof(key), "%s/%s", driver, what);
        slice_taint_value_sanitize(reason ?: "", value, sizeof(value));
        r = r ?: json_add_string(t, "key", key);
        if (value[0])
                r = r ?: json_add_string(t, "value", value);
        r = r ?: json_add_string(t, "effect", "NoSchedule");
        if (r < 0)
                return r;
        if (json_object_array_add(taints, t) < 0)
                return -ENOMEM;
        TAKE_PTR(t);
        return 0;
}

static int device_taints_build(const Gpu *g, const char *driver, bool unschedulable, json_object **ret) {
        _cleanup_json_ json_object *taints = json_object_new_array();
        int r;

        if (!taints)
                return -ENOMEM;
        if (g->health == GPU_HEALTH_UNHEALTHY) {
                r = taint_add(taints, driver, SLICE_TAINT_UNHEALTHY,
                              isempty(g->health_reason) ? "unhealthy" : g->health_reason);
                if (r < 0)
                        return r;
        }
        if (unschedulable) {
                r = taint_add(taints, driver, SLICE_TAINT_MAINTENANCE, "maintenance");
                if (r < 0)
                        return r;
        }
        *ret = json_object_array_length(taints) > 0 ? TAKE_PTR(taints) : NULL;
        return 0;
}

int resourceslice_device_build(const Gpu *g, const char *driver, bool unschedulable, json_object **ret) {
        _cleanup_json_ json_object *d = json_object_new_object(), *attrs = NULL, *cap = NULL, *taints = NULL;
        int r;

        if (!d)
                return -ENOMEM;
        if (!is_dns_label(g->name))
                return log_warning_errno(EINVAL, "GPU name '%s' is not a DNS label, not published.", g->name);

        r = device_attributes_build(g, &attrs);
        if (r < 0)
                return r;
        r = device_capacity_build(g, &cap);
        if (r < 0)
                return r;
        if (json_object_object_length(attrs) + json_object_object_length(cap) > SLICE_DEVICE_ENTRIES_MAX)
                return log_warning_errno(E2BIG, "%s: more than %d attributes and capacities.", g->name,
                                         SLICE_DEVICE_ENTRIES_MAX);
        r = device_taints_build(g, driver, unschedulable, &taints);
        if (r < 0)
                return r;

        r = json_add_string(d, "name", g->name);
        r = r ?: json_add(d, "attributes", TAKE_PTR(attrs));
        r = r ?: json_add(d, "capacity", TAKE_PTR(cap));
        r = r ?: json_add(d, "allowMultipleAllocations", json_object_new_boolean(true));
        if (r == 0 && taints)
                r = json_add(d, "taints", TAKE_PTR(taints));
        if (r < 0)
                return r;
        *ret = TAKE_PTR(d);
        return 0;
}

/* ---- the pool ---- */

static bool strv_contains(char **l, const char *s) {
        for (char **i = l; i && *i; i++)
                if (streq(*i, s))
                        return true;
        return false;
}

static int slice_build(const SlicePoolParams *p, unsigned index, unsigned count, json_object *devices,
                       json_object **ret) {
        _cleanup_json_ json_object *s = json_object_new_object(), *meta = json_object_new_object(),
                                   *owners = json_object_new_array(), *owner = json_object_new_object(),
                                   *spec = json_object_new_object(), *pool = json_object_new_object();
        char generate_name[512];
        int r = 0;

        if (!s || !meta || !owners || !owner || !spec || !pool)
                return -ENOMEM;
        snprintf(generate_name, sizeof(generate_name), "%05x-%s-%s-", index, p->driver, p->node);

        r = r ?: json_add_string(owner, "apiVersion", "v1");
        r = r ?: json_add_string(owner, "kind", "Node");
        r = r ?: json_add_string(owner, "name", p->node);
        r = r ?: json_add_string(owner, "uid", p->node_uid ?: "");
        r = r ?: json_add(owner, "controller", json_object_new_boolean(true));
        if (r < 0)
                return r;
        if (json_object_array_add(owners, TAKE_PTR(owner)) < 0)
                return -ENOMEM;
        r = r ?: json_add_string(meta, "generateName", generate_name);
        r = r ?: json_add(meta, "ownerReferences", TAKE_PTR(owners));

        r = r ?: json_add_string(pool, "name", p->node);
        r = r ?: json_add(pool, "generation", json_object_new_int64(p->generation));
        r = r ?: json_add(pool, "resourceSliceCount", json_object_new_int64(count));
        r = r ?: json_add_string(spec, "driver", p->driver);
        r = r ?: json_add_string(spec, "nodeName", p->node);
        r = r ?: json_add(spec, "pool", TAKE_PTR(pool));
        r = r ?: json_add(spec, "devices", json_object_get(devices));

        r = r ?: json_add_string(s, "apiVersion", "resource.k8s.io/v1");
        r = r ?: json_add_string(s, "kind", "ResourceSlice");
        r = r ?: json_add(s, "metadata", TAKE_PTR(meta));
        r = r ?: json_add(s, "spec", TAKE_PTR(spec));
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

int resourceslice_pool_build(const GpuList *gpus, const SlicePoolParams *p, json_object **ret_array) {
        _cleanup_json_ json_object *devices = json_object_new_array(), *slices = json_object_new_array();
        size_t n, per_slice = SLICE_DEVICES_MAX, count;
        int r;

        if (!devices || !slices)
                return -ENOMEM;
        if (isempty(p->driver) || isempty(p->node))
                return -EINVAL;

        for (size_t i = 0; i < gpus->n_gpus; i++) {
                const Gpu *g = &gpus->gpus[i];
                json_object *d = NULL;
                bool dup = false;

                for (size_t j = 0; j < i; j++)
                        dup = dup || streq(gpus->gpus[j].name, g->name);
                if (dup) {
                        log_warning("GPU name %s appears twice, publishing it once.", g->name);
                        continue;
                }
                r = resourceslice_device_build(g, p->driver, strv_contains(p->maintenance, g->name), &d);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        continue;   /* logged */
                if (json_get(d, "taints"))
                        per_slice = SLICE_DEVICES_MAX_TAINTED;
                if (json_object_array_add(devices, d) < 0) {
                        json_object_put(d);
                        return -ENOMEM;
                }
        }

        n = json_object_array_length(devices);
        count = n == 0 ? 1 : (n + per_slice - 1) / per_slice;
        if (count > SLICE_POOL_SLICES_MAX)
                return -E2BIG;

        for (size_t i = 0; i < count; i++) {
                _cleanup_json_ json_object *part = json_object_new_array(), *slice = NULL;

                if (!part)
                        return -ENOMEM;
                for (size_t j = i * per_slice; j < MIN(n, (i + 1) * per_slice); j++)
                        if (json_object_array_add(part, json_object_get(json_object_array_get_idx(devices, j))) < 0)
                                return -ENOMEM;
                r = slice_build(p, (unsigned) i, (unsigned) count, part, &slice);
                if (r < 0)
                        return r;
                if (json_object_array_add(slices, TAKE_PTR(slice)) < 0)
                        return -ENOMEM;
        }
        *ret_array = TAKE_PTR(slices);
        return 0;
}

int resourceslice_name_index(const char *name, unsigned *ret) {
        size_t n;
        unsigned long v;

        if (!name)
                return -EINVAL;
        n = strspn(name, "0123456789abcdef");
        if (n < 5 || n > 8 || name[n] != '-')
                return -EINVAL;
        v = strtoul(name, NULL, 16);
        *ret = (unsigned) v;
        return 0;
}

/* ---- comparison ---- */

bool quantity_equal(const char *a, const char *b) {
        uint64_t x, y;
        int ex, ey;

        if (!a || !b)
                return a == b;
        if (quantity_parse_exact(a, &x, &ex) < 0 || quantity_parse_exact(b, &y, &ey) < 0)
                return false;
        return x == y && !!ex == !!ey;
}

static bool json_quantity_equal(json_object *a, json_object *b) {
        if (!a || !b)
                return a == b;
        return quantity_equal(json_object_get_string(a), json_object_get_string(b));
}

static bool capacity_equal(json_object *a, json_object *b, SliceDropped ignore) {
        static const char *const range_keys[] = { "min", "max", "step" };
        json_object *pa, *pb, *ra, *rb, *va, *vb;

        if (!json_quantity_equal(json_get(a, "value"), json_get(b, "value")))
                return false;
        if (ignore & SLICE_DROPPED_CONSUMABLE)
                return true;
        pa = json_get(a, "requestPolicy");
        pb = json_get(b, "requestPolicy");
        if (!pa || !pb)
                return pa == pb;
        if (!json_quantity_equal(json_get(pa, "default"), json_get(pb, "default")))
                return false;
        ra = json_get(pa, "validRange");
        rb = json_get(pb, "validRange");
        if (!ra != !rb)
                return false;
        for (size_t i = 0; ra && i < ELEMENTSOF(range_keys); i++)
                if (!json_quantity_equal(json_get(ra, range_keys[i]), json_get(rb, range_keys[i])))
                        return false;
        va = json_get(pa, "validValues");
        vb = json_get(pb, "validValues");
        if (!va != !vb)
                return false;
        if (va) {
                if (json_array_len(va) != json_array_len(vb))
                        return false;
                for (size_t i = 0; i < json_array_len(va); i++)
                        if (!json_quantity_equal(json_object_array_get_idx(va, i), json_object_array_get_idx(vb, i)))
                                return false;
        }
        return true;
}

static bool capacities_equal(json_object *a, json_object *b, SliceDropped ignore) {
        if (!a || !b)
                return a == b;
        if (!json_object_is_type(a, json_type_object) || !json_object_is_type(b, json_type_object))
                return false;
        if (json_object_object_length(a) != json_object_object_length(b))
                return false;
        json_object_object_foreach(a, key, ca) {
                json_object *cb;
                if (!json_object_object_get_ex(b, key, &cb) || !capacity_equal(ca, cb, ignore))
                        return false;
        }
        return true;
}

static bool parse_rfc3339(const char *s, time_t *ret) {
        struct tm tm = {};
        const char *end;

        if (!s)
                return false;
        end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!end)
                return false;
        *ret = timegm(&tm);
        return true;
}

static bool taint_equal(json_object *a, json_object *b) {
        static const char *const keys[] = { "key", "value", "effect" };
        const char *ta, *tb;
        time_t x, y;

        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                const char *sa = json_get_string(a, keys[i]), *sb = json_get_string(b, keys[i]);
                /* an empty value and an absent one are the same */
                if (!streq_ptr(isempty(sa) ? NULL : sa, isempty(sb) ? NULL : sb))
                        return false;
        }
        ta = json_get_string(a, "timeAdded");
        tb = json_get_string(b, "timeAdded");
        if (!ta || !tb)
                return true;   /* the server fills it in */
        if (!parse_rfc3339(ta, &x) || !parse_rfc3339(tb, &y))
                return streq(ta, tb);
        return llabs((long long) (x - y)) <= 1;
}

static bool taints_equal(json_object *a, json_object *b) {
        size_t na = json_array_len(a), nb = json_array_len(b);

        if (na != nb)
                return false;
        for (size_t i = 0; i < na; i++)
                if (!taint_equal(json_object_array_get_idx(a, i), json_object_array_get_idx(b, i)))
                        return false;
        return true;
}

static bool device_equal(json_object *a, json_object *b, SliceDropped ignore) {
        static const char *const plain[] = { "name", "attributes", "bindsToNode", "bindingConditions",
                                             "bindingFailureConditions", "consumesCounters" };
        for (size_t i = 0; i < ELEMENTSOF(plain); i++) {
                json_object *x = json_get(a, plain[i]), *y = json_get(b, plain[i]);
                if (!json_object_equal(x, y))
                        return false;
        }
        if (!capacities_equal(json_get(a, "capacity"), json_get(b, "capacity"), ignore))
                return false;
        if (!(ignore & SLICE_DROPPED_CONSUMABLE) &&
            json_object_get_boolean(json_get(a, "allowMultipleAllocations")) !=
                    json_object_get_boolean(json_get(b, "allowMultipleAllocations")))
                return false;
        if (!(ignore & SLICE_DROPPED_TAINTS) && !taints_equal(json_get(a, "taints"), json_get(b, "taints")))
                return false;
        return true;
}

bool resourceslice_spec_equal(json_object *desired, json_object *stored, SliceDropped ignore) {
        static const char *const plain[] = { "driver", "nodeName", "nodeSelector", "allNodes",
                                             "perDeviceNodeSelection", "sharedCounters" };
        json_object *pd = json_get(desired, "pool"), *ps = json_get(stored, "pool"), *da, *db;
        size_t n;

        if (!desired || !stored)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(plain); i++)
                if (!json_object_equal(json_get(desired, plain[i]), json_get(stored, plain[i])))
                        return false;
        if (!json_object_equal(json_get(pd, "name"), json_get(ps, "name")) ||
            !json_object_equal(json_get(pd, "generation"), json_get(ps, "generation")) ||
            !json_object_equal(json_get(pd, "resourceSliceCount"), json_get(ps, "resourceSliceCount")))
                return false;
        da = json_get(desired, "devices");
        db = json_get(stored, "devices");
        if ((da && !json_object_is_type(da, json_type_array)) || (db && !json_object_is_type(db, json_type_array)))
                return false;
        n = json_array_len(da);
        if (n != json_array_len(db))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!device_equal(json_object_array_get_idx(da, i), json_object_array_get_idx(db, i), ignore))
                        return false;
        return true;
}

SliceDropped resourceslice_dropped_fields(json_object *sent, json_object *stored) {
        json_object *ds = json_get(sent, "devices"), *dr = json_get(stored, "devices");
        SliceDropped dropped = 0;
        size_t n = json_array_len(ds);

        if (json_array_len(dr) != n)
                return 0;
        for (size_t i = 0; i < n; i++) {
                json_object *a = json_object_array_get_idx(ds, i), *b = json_object_array_get_idx(dr, i);

                if (json_get(a, "allowMultipleAllocations") && !json_get(b, "allowMultipleAllocations"))
                        dropped |= SLICE_DROPPED_CONSUMABLE;
                json_object *ca = json_get(a, "capacity"), *cb = json_get(b, "capacity");
                if (json_object_is_type(ca, json_type_object)) {
                        json_object_object_foreach(ca, k, c) {
                                json_object *other = NULL;
                                if (json_get(c, "requestPolicy") &&
                                    !(cb && json_object_object_get_ex(cb, k, &other) && json_get(other, "requestPolicy")))
                                        dropped |= SLICE_DROPPED_CONSUMABLE;
                        }
                }
                if (json_get(a, "taints") && !json_get(b, "taints"))
                        dropped |= SLICE_DROPPED_TAINTS;
        }
        return dropped;
}

void resourceslice_spec_strip(json_object *spec, SliceDropped mask) {
        json_object *devices = json_get(spec, "devices");

        for (size_t i = 0; i < json_array_len(devices); i++) {
                json_object *d = json_object_array_get_idx(devices, i);
                /* What the server stored is untrusted: json-c asserts on deleting from a
                 * non-object, so anything else is left as it is. */
                if (!json_object_is_type(d, json_type_object))
                        continue;
                if (mask & SLICE_DROPPED_CONSUMABLE) {
                        json_object_object_del(d, "allowMultipleAllocations");
                        json_object *cap = json_get(d, "capacity");
                        if (json_object_is_type(cap, json_type_object)) {
                                json_object_object_foreach(cap, k, c) {
                                        (void) k;
                                        if (json_object_is_type(c, json_type_object))
                                                json_object_object_del(c, "requestPolicy");
                                }
                        }
                }
                if (mask & SLICE_DROPPED_TAINTS)
                        json_object_object_del(d, "taints");
        }
}

/* Keep the stored timeAdded of a taint that is still wanted. */
static void taints_keep_time_added(json_object *desired_spec, json_object *stored_spec) {
        json_object *dd = json_get(desired_spec, "devices"), *sd = json_get(stored_spec, "devices");

        for (size_t i = 0; i < json_array_len(dd); i++) {
                json_object *d = json_object_array_get_idx(dd, i), *td = json_get(d, "taints");
                const char *name = json_get_string(d, "name");

                for (size_t j = 0; td && j < json_array_len(sd); j++) {
                        json_object *s = json_object_array_get_idx(sd, j), *ts = json_get(s, "taints");
                        if (!streq_ptr(name, json_get_string(s, "name")))
                                continue;
                        for (size_t a = 0; a < json_array_len(td); a++)
                                for (size_t b = 0; b < json_array_len(ts); b++) {
                                        json_object *x = json_object_array_get_idx(td, a),
                                                    *y = json_object_array_get_idx(ts, b), *t;
                                        if (!taint_equal(x, y) || !(t = json_get(y, "timeAdded")))
                                                continue;
                                        json_object_object_add(x, "timeAdded", json_object_get(t));
                                }
                }
        }
}

int resourceslice_merge_for_update(json_object *stored, json_object *desired, json_object **ret) {
        _cleanup_json_ json_object *copy = NULL, *spec = NULL;

        if (json_object_deep_copy(stored, &copy, NULL) < 0 ||
            json_object_deep_copy(json_get(desired, "spec"), &spec, NULL) < 0)
                return -ENOMEM;
        taints_keep_time_added(spec, json_get(stored, "spec"));
        if (json_object_object_add(copy, "spec", TAKE_PTR(spec)) < 0)
                return -ENOMEM;
        json_object_object_del(copy, "status");
        *ret = TAKE_PTR(copy);
        return 0;
}
