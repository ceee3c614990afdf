/* SPDX-License-Identifier: Apache-2.0 */

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "sorted-search.h"
#include "metrics.h"

typedef struct MetricsClaimDevice {
        char uuid[GPU_STRING_MAX];
        unsigned region_index;
        uint64_t memory_limit;      /* bytes; 0: none (the whole GPU) */
        unsigned cores;             /* percent; 0: none (the whole GPU) */
        char *labels;               /* node="..",device_uuid="..",...,pod="..": cached */
        size_t labels_len;
} MetricsClaimDevice;

typedef struct MetricsClaim {
        char *uid;
        char *namespace_;
        char *name;
        char *pod;                  /* "" when unknown */
        char *region_path;
        MetricsClaimDevice *devices;
        size_t n_devices;

        /* The region's last reading. */
        uint64_t read_usec;         /* 0: never read */
        int read_error;
        bool error_logged;
        uint32_t n_active;
        uint64_t used[SHARED_REGION_DEVICES_MAX];   /* used + footprint_extra, saturating */
        uint32_t measured_sm[SHARED_REGION_DEVICES_MAX];
        uint64_t measured_seq[SHARED_REGION_DEVICES_MAX];
} MetricsClaim;

typedef struct MetricsAllocation {
        uint64_t memory;
        uint64_t cores;             /* percent, summed */
} MetricsAllocation;

struct Metrics {
        char *node;
        char *driver;
        char *version;
        char *node_label;           /* node="<escaped>" */
        MetricsRegionReader reader;

        MetricsDevice *devices;
        MetricsAllocation *allocations; /* per device, from the claims (cached) */
        size_t n_devices;

        MetricsClaim *claims;
        size_t n_claims;
        size_t n_claims_allocated;

        MetricsBuffer cached;       /* the families that change only with the claims */
        size_t last_size;           /* of the last rendering: the next one's allocation */
        bool dirty;
        uint64_t region_errors;
};

/* ---------------------------------------------------------------- buffer */

void metrics_buffer_done(MetricsBuffer *b) {
        b->data = mfree(b->data);
        b->size = b->allocated = 0;
}

char *metrics_buffer_steal(MetricsBuffer *b, size_t *ret_size) {
        char *d;

        if (!b->data && !(b->data = calloc(1, 1)))
                return NULL;
        d = TAKE_PTR(b->data);
        if (ret_size)
                *ret_size = b->size;
        b->size = b->allocated = 0;
        return d;
}

static int buf_reserve(MetricsBuffer *b, size_t more) {
        size_t want;
        char *p;

        if (b->allocated - b->size > more)
                return 0;
        if (more > SIZE_MAX / 4 - b->size)
                return -ENOMEM;
        want = MAX((b->size + more + 1) * 3 / 2, (size_t) 4096);
        p = realloc(b->data, want);
        if (!p)
                return -ENOMEM;
        b->data = p;
        b->allocated = want;
        return 0;
}

static int buf_put(MetricsBuffer *b, const char *s, size_t n) {
        if (buf_reserve(b, n) < 0)
                return -ENOMEM;
        memcpy(b->data + b->size, s, n);
        b->size += n;
        b->data[b->size] = '\0';
        return 0;
}

static int buf_puts(MetricsBuffer *b, const char *s) {
        return buf_put(b, s, strlen(s));
}

/* Decimal digits of v, right-aligned in the 20 bytes before end; returns the first. */
static char *format_u64(uint64_t v, char *end) {
        char *p = end;

        do {
                *--p = (char) ('0' + v % 10);
                v /= 10;
        } while (v > 0);
        return p;
}

static int buf_put_u64(MetricsBuffer *b, uint64_t v) {
        char tmp[24], *end = tmp + sizeof(tmp), *p = format_u64(v, end);

        return buf_put(b, p, (size_t) (end - p));
}

/* v / 10^decimals, exactly, without trailing zeros: 305,3 -> "0.305"; 1000,3 -> "1". */
static int buf_put_fixed(MetricsBuffer *b, uint64_t v, unsigned decimals) {
        char tmp[48], *end = tmp + sizeof(tmp), *p = end;
        uint64_t scale = 1;
        bool digits = false;

        assert(decimals <= 9);
        uint64_t frac;

        for (unsigned i = 0; i < decimals; i++)
                scale *= 10;
        /* The fraction, least significant digit first, dropping trailing zeros. */
        frac = v % scale;
        for (unsigned i = 0; i < decimals; i++) {
                unsigned d = (unsigned) (frac % 10);
                frac /= 10;
                if (d == 0 && !digits)
                        continue;
                digits = true;
                *--p = (char) ('0' + d);
        }
        if (digits)
                *--p = '.';
        p = format_u64(v / scale, p);
        return buf_put(b, p, (size_t) (end - p));
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when there is none. */
static size_t utf8_sequence(const unsigned char *s) {
        size_t n;
        uint32_t cp;

        if (s[0] < 0x80)
                return 1;
        if ((s[0] & 0xe0) == 0xc0) {
                n = 2;
                cp = s[0] & 0x1f;
        } else if ((s[0] & 0xf0) == 0xe0) {
                n = 3;
                cp = s[0] & 0x0f;
        } else if ((s[0] & 0xf8) == 0xf0) {
                n = 4;
                cp = s[0] & 0x07;
        } else
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[i] & 0x3f);
        }
        /* Overlong forms, surrogates and beyond U+10FFFF are not UTF-8. */
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
                return 0;
        return n;
}

int metrics_buffer_put_label_value(MetricsBuffer *b, const char *v) {
        const unsigned char *s = (const unsigned char *) (v ?: "");
        int r = 0;

        while (*s && r >= 0) {
                size_t n = utf8_sequence(s);

                if (*s == '\\')
                        r = buf_put(b, "\\\\", 2);
                else if (*s == '"')
                        r = buf_put(b, "\\\"", 2);
                else if (*s == '\n')
                        r = buf_put(b, "\\n", 2);
                else if (n == 0 || *s < 0x20 || *s == 0x7f)
                        r = buf_put(b, "\xef\xbf\xbd", 3); /* U+FFFD */
                else
                        r = buf_put(b, (const char *) s, n);
                s += MAX(n, (size_t) 1);
        }
        return r;
}

/* name="value" with a leading comma unless first. */
static int buf_put_label(MetricsBuffer *b, bool first, const char *name, const char *value) {
        int r = 0;

        if (!first)
                r = buf_put(b, ",", 1);
        if (r >= 0)
                r = buf_puts(b, name);
        if (r >= 0)
                r = buf_put(b, "=\"", 2);
        if (r >= 0)
                r = metrics_buffer_put_label_value(b, value);
        if (r >= 0)
                r = buf_put(b, "\"", 1);
        return r;
}

/* ---------------------------------------------------------------- families */

typedef struct Family {
        const char *name;
        const char *type;
        const char *help;
} Family;

static const Family F_GPU_MEMORY_LIMIT = { "hami_dra_gpu_memory_limit_bytes", "gauge",
                                           "Device memory of the GPU, in bytes." };
static const Family F_GPU_CORE_LIMIT = { "hami_dra_gpu_core_limit_ratio", "gauge",
                                         "Compute of the GPU that can be shared out (1 = all of it)." };
static const Family F_GPU_MEMORY_ALLOCATED = { "hami_dra_gpu_memory_allocated_bytes", "gauge",
                                               "Sum of the memory limits of the claims prepared on the GPU." };
static const Family F_GPU_CORE_ALLOCATED = { "hami_dra_gpu_core_allocated_ratio", "gauge",
                                             "Sum of the compute limits of the claims prepared on the GPU." };
static const Family F_VGPU_MEMORY = { "hami_dra_vgpu_memory_allocated_bytes", "gauge",
                                      "Memory limits of a pod's claims on the GPU, in bytes." };
static const Family F_VGPU_CORE = { "hami_dra_vgpu_core_allocated_ratio", "gauge",
                                    "Compute limits of a pod's claims on the GPU (1 = the whole GPU)." };
static const Family F_CLAIM_MEMORY_USED = { "hami_dra_claim_memory_used_bytes", "gauge",
                                            "Device memory the claim's containers hold on the GPU (reserved plus the driver's footprint)." };
static const Family F_CLAIM_MEMORY_LIMIT = { "hami_dra_claim_memory_limit_bytes", "gauge",
                                             "The claim's memory limit on the GPU, in bytes." };
static const Family F_CLAIM_CORE_USED = { "hami_dra_claim_core_used_ratio", "gauge",
                                          "The claim's share of the GPU's compute over the usage monitor's last window." };
static const Family F_CLAIM_CORE_LIMIT = { "hami_dra_claim_core_limit_ratio", "gauge",
                                           "The claim's compute limit on the GPU (1 = the whole GPU)." };
static const Family F_CLAIM_PROCESSES = { "hami_dra_claim_processes", "gauge",
                                          "Live processes attached to the claim's shared region." };
static const Family F_REGION_ERRORS = { "hami_dra_shared_region_errors_total", "counter",
                                        "Shared region reads that failed validation." };
static const Family F_PREPARE = { "hami_dra_prepare_total", "counter", "Claims the kubelet asked to prepare, by result." };
static const Family F_UNPREPARE = { "hami_dra_unprepare_total", "counter",
                                    "Claims the kubelet asked to unprepare, by result." };
static const Family F_PREPARE_DURATION = { "hami_dra_prepare_duration_seconds", "histogram",
                                           "Time from the kubelet's call to a claim's prepare answer." };
static const Family F_UNPREPARE_DURATION = { "hami_dra_unprepare_duration_seconds", "histogram",
                                             "Time from the kubelet's call to a claim's unprepare answer." };
static const Family F_GRPC_IN_FLIGHT = { "hami_dra_grpc_requests_in_flight", "gauge",
                                         "Kubelet gRPC calls not finished yet, streams included." };
static const Family F_APISERVER = { "hami_dra_apiserver_requests_total", "counter",
                                    "Requests to the API server by method and HTTP status (\"error\": no answer)." };
static const Family F_SLICE_WRITES = { "hami_dra_resourceslice_writes_total", "counter",
                                       "ResourceSlice writes by operation and result." };
static const Family F_HEALTHY = { "hami_dra_device_healthy", "gauge", "1 when the GPU is healthy." };
static const Family F_SCHEDULABLE = { "hami_dra_device_schedulable", "gauge",
                                      "1 unless the GPU is in maintenance (SetDeviceSchedulable)." };
static const Family F_PREPARED = { "hami_dra_prepared_claims", "gauge", "Claims prepared on this node." };
static const Family F_BUILD_INFO = { "hami_dra_build_info", "gauge", "The daemon's version and driver name." };

static int put_family(MetricsBuffer *b, const Family *f) {
        int r;

        r = buf_puts(b, "# HELP ");
        if (r >= 0)
                r = buf_puts(b, f->name);
        if (r >= 0)
                r = buf_put(b, " ", 1);
        if (r >= 0)
                r = buf_puts(b, f->help);
        if (r >= 0)
                r = buf_puts(b, "\n# TYPE ");
        if (r >= 0)
                r = buf_puts(b, f->name);
        if (r >= 0)
                r = buf_put(b, " ", 1);
        if (r >= 0)
                r = buf_puts(b, f->type);
        if (r >= 0)
                r = buf_put(b, "\n", 1);
        return r;
}

/* name{labels} (labels already escaped; suffix after the name, e.g. "_bucket"). */
static int put_sample_start(MetricsBuffer *b, const char *name, const char *suffix, const char *labels,
                            size_t labels_len) {
        int r;

        r = buf_puts(b, name);
        if (r >= 0 && suffix)
                r = buf_puts(b, suffix);
        if (r >= 0)
                r = buf_put(b, "{", 1);
        if (r >= 0)
                r = buf_put(b, labels, labels_len);
        return r;
}

static int put_sample_end_u64(MetricsBuffer *b, uint64_t v) {
        int r = buf_put(b, "} ", 2);

        if (r >= 0)
                r = buf_put_u64(b, v);
        if (r >= 0)
                r = buf_put(b, "\n", 1);
        return r;
}

static int put_sample_end_fixed(MetricsBuffer *b, uint64_t v, unsigned decimals) {
        int r = buf_put(b, "} ", 2);

        if (r >= 0)
                r = buf_put_fixed(b, v, decimals);
        if (r >= 0)
                r = buf_put(b, "\n", 1);
        return r;
}

/* A sample whose only label is node. */
/* name{node="..." (the node's label, further labels may follow; suffix as for put_sample_start). */
static int put_node_sample_start(Metrics *m, MetricsBuffer *b, const char *name, const char *suffix) {
        return put_sample_start(b, name, suffix, m->node_label, strlen(m->node_label));
}

static int put_node_u64(Metrics *m, MetricsBuffer *b, const Family *f, uint64_t v) {
        int r = put_family(b, f);

        if (r >= 0)
                r = put_node_sample_start(m, b, f->name, NULL);
        if (r >= 0)
                r = put_sample_end_u64(b, v);
        return r;
}

/* ---------------------------------------------------------------- life */

int metrics_new(const char *node, const char *driver, const char *version, Metrics **ret) {
        _cleanup_(metrics_buffer_donep) MetricsBuffer label = {};
        Metrics *m;

        if (buf_put_label(&label, true, "node", node) < 0)
                return -ENOMEM;
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->node = strdup(node ?: "");
        m->driver = strdup(driver ?: "");
        m->version = strdup(version ?: "");
        m->node_label = metrics_buffer_steal(&label, NULL);
        m->reader = shared_region_read_usage;
        m->dirty = true;
        if (!m->node || !m->driver || !m->version || !m->node_label) {
                metrics_free(m);
                return -ENOMEM;
        }
        *ret = m;
        return 0;
}

static void claim_done(MetricsClaim *c) {
        free(c->uid);
        free(c->namespace_);
        free(c->name);
        free(c->pod);
        free(c->region_path);
        for (size_t i = 0; i < c->n_devices; i++)
                free(c->devices[i].labels);
        free(c->devices);
        *c = (MetricsClaim) {};
}

Metrics *metrics_free(Metrics *m) {
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_claims; i++)
                claim_done(&m->claims[i]);
        free(m->claims);
        free(m->devices);
        free(m->allocations);
        metrics_buffer_done(&m->cached);
        free(m->node);
        free(m->driver);
        free(m->version);
        free(m->node_label);
        free(m);
        return NULL;
}

void metrics_set_region_reader(Metrics *m, MetricsRegionReader reader) {
        m->reader = reader ?: shared_region_read_usage;
}

void metrics_device_from_gpu(MetricsDevice *d, const Gpu *g) {
        *d = (MetricsDevice) {
                .memory_total = g->memory_total,
                .healthy = g->health == GPU_HEALTH_HEALTHY,
                .schedulable = true,
        };
        snprintf(d->name, sizeof(d->name), "%s", g->name);
        snprintf(d->uuid, sizeof(d->uuid), "%s", g->uuid);
        snprintf(d->model, sizeof(d->model), "%s", g->product_name);
}

int metrics_set_devices(Metrics *m, const MetricsDevice *devices, size_t n) {
        MetricsDevice *copy = NULL;
        MetricsAllocation *alloc = NULL;
        bool same;

        if (n > 0) {
                copy = calloc(n, sizeof(*copy));
                alloc = calloc(n, sizeof(*alloc));
                if (!copy || !alloc) {
                        free(copy);
                        free(alloc);
                        return -ENOMEM;
                }
                memcpy(copy, devices, n * sizeof(*copy));
        }
        /* Health and maintenance change often and are rendered per scrape; the claims'
         * cache depends only on the GPUs' identities and sizes. */
        same = n == m->n_devices;
        for (size_t i = 0; same && i < n; i++)
                same = streq(copy[i].uuid, m->devices[i].uuid) && copy[i].memory_total == m->devices[i].memory_total;
        if (same && m->allocations && n > 0)
                memcpy(alloc, m->allocations, n * sizeof(*alloc));
        else
                m->dirty = true;
        free(m->devices);
        free(m->allocations);
        m->devices = copy;
        m->allocations = alloc;
        m->n_devices = n;
        return 0;
}

/* Claims are sorted by UID: the usage monitor's readings find theirs by bsearch. The
 * position of uid, or where it would go (*ret_found false). */
static size_t claim_position(const Metrics *m, const char *uid, bool *ret_found) {
        return SORTED_SEARCH_STR(m->claims, m->n_claims, uid, uid, ret_found);
}

static MetricsClaim *claim_find(Metrics *m, const char *uid) {
        bool found;
        size_t i = claim_position(m, uid, &found);

        return found ? &m->claims[i] : NULL;
}

/* node=..,device_uuid=..,namespace=..,claim=..,claim_uid=..,pod=.. */
static int claim_device_labels(Metrics *m, const MetricsClaim *c, MetricsClaimDevice *d) {
        _cleanup_(metrics_buffer_donep) MetricsBuffer b = {};
        int r;

        r = buf_puts(&b, m->node_label);
        if (r >= 0)
                r = buf_put_label(&b, false, "device_uuid", d->uuid);
        if (r >= 0)
                r = buf_put_label(&b, false, "namespace", c->namespace_);
        if (r >= 0)
                r = buf_put_label(&b, false, "claim", c->name);
        if (r >= 0)
                r = buf_put_label(&b, false, "claim_uid", c->uid);
        if (r >= 0)
                r = buf_put_label(&b, false, "pod", c->pod);
        if (r < 0)
                return r;
        d->labels = metrics_buffer_steal(&b, &d->labels_len);
        return d->labels ? 0 : -ENOMEM;
}

/* One entry per GPU: a claim's results on one GPU share its summed limits (the first
 * result carries them), as the D-Bus objects show it. */
static int claim_fill(Metrics *m, const PreparedClaim *pc, const char *region_path, MetricsClaim *c) {
        int r;

        c->uid = strdup(pc->uid ?: "");
        c->namespace_ = strdup(pc->namespace_ ?: "");
        c->name = strdup(pc->name ?: "");
        c->pod = strdup(pc->pod ?: "");
        c->region_path = strdup(region_path ?: "");
        c->devices = calloc(MAX(pc->n_devices, (size_t) 1), sizeof(*c->devices));
        if (!c->uid || !c->namespace_ || !c->name || !c->pod || !c->region_path || !c->devices)
                return -ENOMEM;
        for (size_t i = 0; i < pc->n_devices; i++) {
                const PreparedClaimDevice *pd = &pc->devices[i];
                const char *uuid = pd->gpu_uuid ?: "";
                bool seen = false;

                for (size_t k = 0; k < c->n_devices && !seen; k++)
                        seen = streq(c->devices[k].uuid, uuid);
                if (seen)
                        continue;
                MetricsClaimDevice *d = &c->devices[c->n_devices++];
                snprintf(d->uuid, sizeof(d->uuid), "%s", uuid);
                d->region_index = pd->cuda_index;
                d->memory_limit = pd->memory_mib > UINT64_MAX >> 20 ? UINT64_MAX : pd->memory_mib << 20;
                d->cores = pd->cores;
                r = claim_device_labels(m, c, d);
                if (r < 0)
                        return r;
        }
        return 0;
}

int metrics_claim_prepared(Metrics *m, const PreparedClaim *pc, const char *region_path) {
        MetricsClaim c = {};
        MetricsClaim *slot;
        bool found;
        size_t pos;
        int r;

        r = claim_fill(m, pc, region_path, &c);
        if (r < 0) {
                claim_done(&c);
                return r;
        }
        pos = claim_position(m, c.uid, &found);
        if (found) {
                slot = &m->claims[pos];
                claim_done(slot);
        } else {
                if (m->n_claims >= METRICS_CLAIMS_MAX) {
                        claim_done(&c);
                        return -E2BIG;
                }
                if (m->n_claims == m->n_claims_allocated) {
                        size_t n = MAX(m->n_claims_allocated * 2, (size_t) 64);
                        MetricsClaim *p = reallocarray(m->claims, n, sizeof(*p));
                        if (!p) {
                                claim_done(&c);
                                return -ENOMEM;
                        }
                        m->claims = p;
                        m->n_claims_allocated = n;
                }
                memmove(&m->claims[pos + 1], &m->claims[pos], (m->n_claims - pos) * sizeof(*m->claims));
                m->n_claims++;
                slot = &m->claims[pos];
        }
        *slot = c;
        m->dirty = true;
        return 0;
}

void metrics_claim_unprepared(Metrics *m, const char *uid) {
        bool found;
        size_t pos = claim_position(m, uid, &found);

        if (!found)
                return;
        claim_done(&m->claims[pos]);
        memmove(&m->claims[pos], &m->claims[pos + 1], (m->n_claims - pos - 1) * sizeof(*m->claims));
        m->n_claims--;
        m->dirty = true;
}

size_t metrics_n_claims(const Metrics *m) {
        return m->n_claims;
}

uint64_t metrics_region_errors(const Metrics *m) {
        return m->region_errors;
}

/* ---------------------------------------------------------------- the cached part */

static ssize_t device_find(const Metrics *m, const char *uuid) {
        for (size_t i = 0; i < m->n_devices; i++)
                if (streq(m->devices[i].uuid, uuid))
                        return (ssize_t) i;
        return -1;
}

/* What a claim may use on a GPU: its limits, or the whole GPU where it has none. */
static uint64_t claim_memory_limit(const Metrics *m, const MetricsClaimDevice *d) {
        ssize_t i;

        if (d->memory_limit > 0)
                return d->memory_limit;
        i = device_find(m, d->uuid);
        return i >= 0 ? m->devices[i].memory_total : 0;
}

static unsigned claim_cores_limit(const MetricsClaimDevice *d) {
        return d->cores > 0 ? MIN(d->cores, GPU_CORES_TOTAL) : GPU_CORES_TOTAL;
}

typedef struct PodAllocation {
        const char *uuid, *namespace_, *pod;
        uint64_t memory;
        uint64_t cores;
} PodAllocation;

static int pod_allocation_compare(const void *a, const void *b) {
        const PodAllocation *x = a, *y = b;
        int r = strcmp(x->uuid, y->uuid);

        if (r == 0)
                r = strcmp(x->namespace_, y->namespace_);
        if (r == 0)
                r = strcmp(x->pod, y->pod);
        return r;
}

/* hami_dra_vgpu_*: the claims' limits summed per GPU, namespace and pod (HAMi's labels). */
static int render_vgpu(Metrics *m, MetricsBuffer *b) {
        _cleanup_free_ PodAllocation *a = NULL;
        size_t n = 0, total = 0;
        int r;

        for (size_t i = 0; i < m->n_claims; i++)
                total += m->claims[i].n_devices;
        a = calloc(MAX(total, (size_t) 1), sizeof(*a));
        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_claims; i++)
                for (size_t k = 0; k < m->claims[i].n_devices; k++) {
                        const MetricsClaimDevice *d = &m->claims[i].devices[k];
                        a[n++] = (PodAllocation) {
                                .uuid = d->uuid,
                                .namespace_ = m->claims[i].namespace_,
                                .pod = m->claims[i].pod,
                                .memory = claim_memory_limit(m, d),
                                .cores = claim_cores_limit(d),
                        };
                }
        qsort(a, n, sizeof(*a), pod_allocation_compare);
        /* Merge equal keys into the first of each run. */
        size_t merged = 0;
        for (size_t i = 0; i < n; i++) {
                if (merged > 0 && pod_allocation_compare(&a[merged - 1], &a[i]) == 0) {
                        a[merged - 1].memory += a[i].memory;
                        a[merged - 1].cores += a[i].cores;
                } else
                        a[merged++] = a[i];
        }
        for (int pass = 0; pass < 2; pass++) {
                const Family *f = pass == 0 ? &F_VGPU_MEMORY : &F_VGPU_CORE;

                r = put_family(b, f);
                for (size_t i = 0; r >= 0 && i < merged; i++) {
                        r = put_node_sample_start(m, b, f->name, NULL);
                        if (r >= 0)
                                r = buf_put_label(b, false, "device_uuid", a[i].uuid);
                        if (r >= 0)
                                r = buf_put_label(b, false, "namespace", a[i].namespace_);
                        if (r >= 0)
                                r = buf_put_label(b, false, "pod", a[i].pod);
                        if (r >= 0)
                                r = pass == 0 ? put_sample_end_u64(b, a[i].memory)
                                              : put_sample_end_fixed(b, a[i].cores, 2);
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

static int render_claim_limits(Metrics *m, MetricsBuffer *b) {
        int r;

        for (int pass = 0; pass < 2; pass++) {
                const Family *f = pass == 0 ? &F_CLAIM_MEMORY_LIMIT : &F_CLAIM_CORE_LIMIT;

                r = put_family(b, f);
                for (size_t i = 0; r >= 0 && i < m->n_claims; i++)
                        for (size_t k = 0; r >= 0 && k < m->claims[i].n_devices; k++) {
                                const MetricsClaimDevice *d = &m->claims[i].devices[k];

                                r = put_sample_start(b, f->name, NULL, d->labels, d->labels_len);
                                if (r >= 0)
                                        r = pass == 0 ? put_sample_end_u64(b, claim_memory_limit(m, d))
                                                      : put_sample_end_fixed(b, claim_cores_limit(d), 2);
                        }
                if (r < 0)
                        return r;
        }
        return 0;
}

static int rebuild_cache(Metrics *m) {
        _cleanup_(metrics_buffer_donep) MetricsBuffer b = {};
        int r;

        for (size_t i = 0; i < m->n_devices; i++)
                m->allocations[i] = (MetricsAllocation) {};
        for (size_t i = 0; i < m->n_claims; i++)
                for (size_t k = 0; k < m->claims[i].n_devices; k++) {
                        const MetricsClaimDevice *d = &m->claims[i].devices[k];
                        ssize_t j = device_find(m, d->uuid);

                        if (j < 0)
                                continue;
                        m->allocations[j].memory += claim_memory_limit(m, d);
                        m->allocations[j].cores += claim_cores_limit(d);
                }
        r = render_vgpu(m, &b);
        if (r >= 0)
                r = render_claim_limits(m, &b);
        if (r < 0)
                return r;
        metrics_buffer_done(&m->cached);
        m->cached = b;
        b = (MetricsBuffer) {};
        m->dirty = false;
        return 0;
}

/* ---------------------------------------------------------------- per scrape */

static bool claim_reading_fresh(const MetricsClaim *c, uint64_t now) {
        return c->read_usec != 0 && now - c->read_usec < METRICS_REGION_MAX_AGE_USEC;
}

/* A reading of c's region (r < 0: it failed), made here or by the usage monitor. */
static void claim_take_reading(Metrics *m, MetricsClaim *c, int r, const SharedRegionUsage *u, uint64_t now) {
        c->read_usec = now ?: 1;
        c->read_error = r < 0 ? r : 0;
        if (r < 0) {
                /* Gone (unprepared meanwhile, or not made yet) is no error of the region. */
                if (r == -ENOENT)
                        return;
                m->region_errors++;
                if (!c->error_logged)
                        log_struct(LOG_WARNING,
                                   LOG_MESSAGE("Cannot read the shared region of claim %s/%s (%s), its usage is "
                                               "left out of the metrics: %s",
                                               c->namespace_, c->name, c->uid, strerror(-r)),
                                   LOG_FIELD("CLAIM_UID=%s", c->uid), LOG_FIELD("CLAIM_NAMESPACE=%s", c->namespace_),
                                   LOG_FIELD("CLAIM_NAME=%s", c->name), LOG_FIELD("SHARED_REGION=%s", c->region_path),
                                   NULL);
                c->error_logged = true;
                return;
        }
        c->n_active = u->n_active;
        for (size_t d = 0; d < SHARED_REGION_DEVICES_MAX; d++) {
                bool known = d < u->n_devices;

                c->used[d] = !known ? 0
                             : u->used[d] > UINT64_MAX - u->footprint_extra[d] ? UINT64_MAX
                                                                               : u->used[d] + u->footprint_extra[d];
                c->measured_sm[d] = known ? MIN(u->measured_sm[d], 1000u) : 0;
                c->measured_seq[d] = known ? u->measured_seq[d] : 0;
        }
}

static void claim_read_region(Metrics *m, MetricsClaim *c, uint64_t now) {
        SharedRegionUsage u = {};
        int r;

        if (claim_reading_fresh(c, now))
                return;
        r = m->reader(c->region_path, &u);
        claim_take_reading(m, c, r, &u, now);
}

void metrics_claim_usage(Metrics *m, const char *uid, int error, const SharedRegionUsage *u, uint64_t now_usec) {
        MetricsClaim *c = claim_find(m, uid);

        if (!c || claim_reading_fresh(c, now_usec))
                return;
        claim_take_reading(m, c, error, u, now_usec);
}

/* Whether device d of claim c has a reading to show. */
static bool claim_device_readable(const MetricsClaim *c, const MetricsClaimDevice *d) {
        return c->read_error == 0 && c->read_usec != 0 && d->region_index < SHARED_REGION_DEVICES_MAX;
}

static int render_usage(Metrics *m, MetricsBuffer *b) {
        static const Family *const families[] = { &F_CLAIM_MEMORY_USED, &F_CLAIM_CORE_USED, &F_CLAIM_PROCESSES };
        int r = 0;

        for (size_t f = 0; r >= 0 && f < ELEMENTSOF(families); f++) {
                r = put_family(b, families[f]);
                for (size_t i = 0; r >= 0 && i < m->n_claims; i++) {
                        const MetricsClaim *c = &m->claims[i];

                        for (size_t k = 0; r >= 0 && k < c->n_devices; k++) {
                                const MetricsClaimDevice *d = &c->devices[k];
                                unsigned x = d->region_index;

                                if (!claim_device_readable(c, d))
                                        continue;
                                if (families[f] == &F_CLAIM_CORE_USED && c->measured_seq[x] == 0)
                                        continue; /* never measured: no series */
                                r = put_sample_start(b, families[f]->name, NULL, d->labels, d->labels_len);
                                if (r < 0)
                                        break;
                                if (families[f] == &F_CLAIM_MEMORY_USED)
                                        r = put_sample_end_u64(b, c->used[x]);
                                else if (families[f] == &F_CLAIM_CORE_USED)
                                        r = put_sample_end_fixed(b, c->measured_sm[x], 3);
                                else
                                        r = put_sample_end_u64(b, c->n_active);
                        }
                }
        }
        return r;
}

/* One sample per GPU with the HAMi device labels. */
static int put_device_labels(Metrics *m, MetricsBuffer *b, const char *name, size_t i) {
        const MetricsDevice *d = &m->devices[i];
        char index[24], *end = index + sizeof(index) - 1;
        int r;

        *end = '\0';
        r = put_node_sample_start(m, b, name, NULL);
        if (r >= 0)
                r = buf_put_label(b, false, "device_uuid", d->uuid);
        if (r >= 0)
                r = buf_put_label(b, false, "device_index", format_u64(i, end));
        if (r >= 0)
                r = buf_put_label(b, false, "device_name", d->name);
        if (r >= 0)
                r = buf_put_label(b, false, "device_type", d->model);
        return r;
}

static int render_devices(Metrics *m, MetricsBuffer *b) {
        static const Family *const hami[] = { &F_GPU_MEMORY_LIMIT, &F_GPU_CORE_LIMIT, &F_GPU_MEMORY_ALLOCATED,
                                              &F_GPU_CORE_ALLOCATED };
        int r = 0;

        for (size_t f = 0; r >= 0 && f < ELEMENTSOF(hami); f++) {
                r = put_family(b, hami[f]);
                for (size_t i = 0; r >= 0 && i < m->n_devices; i++) {
                        r = put_device_labels(m, b, hami[f]->name, i);
                        if (r < 0)
                                break;
                        if (hami[f] == &F_GPU_MEMORY_LIMIT)
                                r = put_sample_end_u64(b, m->devices[i].memory_total);
                        else if (hami[f] == &F_GPU_CORE_LIMIT)
                                r = put_sample_end_u64(b, 1);
                        else if (hami[f] == &F_GPU_MEMORY_ALLOCATED)
                                r = put_sample_end_u64(b, m->allocations[i].memory);
                        else
                                r = put_sample_end_fixed(b, m->allocations[i].cores, 2);
                }
        }
        for (int pass = 0; r >= 0 && pass < 2; pass++) {
                const Family *f = pass == 0 ? &F_HEALTHY : &F_SCHEDULABLE;

                r = put_family(b, f);
                for (size_t i = 0; r >= 0 && i < m->n_devices; i++) {
                        const MetricsDevice *d = &m->devices[i];

                        r = put_node_sample_start(m, b, f->name, NULL);
                        if (r >= 0)
                                r = buf_put_label(b, false, "device_uuid", d->uuid);
                        if (r >= 0)
                                r = buf_put_label(b, false, "device_name", d->name);
                        if (r >= 0)
                                r = put_sample_end_u64(b, pass == 0 ? d->healthy : d->schedulable);
                }
        }
        return r;
}

/* node="..",result="..." */
static int put_result(Metrics *m, MetricsBuffer *b, const char *name, const char *result, uint64_t v) {
        int r;

        r = put_node_sample_start(m, b, name, NULL);
        if (r >= 0)
                r = buf_put_label(b, false, "result", result);
        if (r >= 0)
                r = put_sample_end_u64(b, v);
        return r;
}

static int render_histogram(Metrics *m, MetricsBuffer *b, const Family *f, const Histogram *h) {
        static const char *const bounds[HISTOGRAM_N_BOUNDS] = {
                "0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30",
        };
        uint64_t cumulative = 0;
        int r;

        r = put_family(b, f);
        for (size_t i = 0; r >= 0 && i <= HISTOGRAM_N_BOUNDS; i++) {
                cumulative = i < HISTOGRAM_N_BOUNDS ? cumulative + h->buckets[i] : h->count;
                r = put_node_sample_start(m, b, f->name, "_bucket");
                if (r >= 0)
                        r = buf_put_label(b, false, "le", i < HISTOGRAM_N_BOUNDS ? bounds[i] : "+Inf");
                if (r >= 0)
                        r = put_sample_end_u64(b, cumulative);
        }
        if (r >= 0)
                r = put_node_sample_start(m, b, f->name, "_sum");
        if (r >= 0)
                r = put_sample_end_fixed(b, h->sum_usec, 6);
        if (r >= 0)
                r = put_node_sample_start(m, b, f->name, "_count");
        if (r >= 0)
                r = put_sample_end_u64(b, h->count);
        return r;
}

static int render_operation(Metrics *m, const MetricsOperation *op, MetricsBuffer *b) {
        static const char *const operations[] = { "create", "update", "delete" };
        static const DraServiceStats none = {};
        const DraServiceStats *dra = op && op->dra ? op->dra : &none;
        int r;

        r = put_family(b, &F_PREPARE);
        if (r >= 0)
                r = put_result(m, b, F_PREPARE.name, "success", dra->prepare[0]);
        if (r >= 0)
                r = put_result(m, b, F_PREPARE.name, "error", dra->prepare[1]);
        if (r >= 0)
                r = put_family(b, &F_UNPREPARE);
        if (r >= 0)
                r = put_result(m, b, F_UNPREPARE.name, "success", dra->unprepare[0]);
        if (r >= 0)
                r = put_result(m, b, F_UNPREPARE.name, "error", dra->unprepare[1]);
        if (r >= 0)
                r = render_histogram(m, b, &F_PREPARE_DURATION, &dra->prepare_duration);
        if (r >= 0)
                r = render_histogram(m, b, &F_UNPREPARE_DURATION, &dra->unprepare_duration);
        if (r >= 0)
                r = put_node_u64(m, b, &F_GRPC_IN_FLIGHT, op ? op->grpc_in_flight : 0);

        if (r >= 0)
                r = put_family(b, &F_APISERVER);
        for (size_t i = 0; r >= 0 && op && i < op->n_api; i++) {
                const KubeRequestCount *k = &op->api[i];
                char code[24], *end = code + sizeof(code) - 1;

                *end = '\0';
                r = put_node_sample_start(m, b, F_APISERVER.name, NULL);
                if (r >= 0)
                        r = buf_put_label(b, false, "verb", k->verb);
                if (r >= 0)
                        r = buf_put_label(b, false, "code", k->code > 0 ? format_u64((uint64_t) k->code, end) : "error");
                if (r >= 0)
                        r = put_sample_end_u64(b, k->count);
        }

        if (r >= 0)
                r = put_family(b, &F_SLICE_WRITES);
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(operations); i++)
                for (size_t k = 0; r >= 0 && k < 2; k++) {
                        r = put_node_sample_start(m, b, F_SLICE_WRITES.name, NULL);
                        if (r >= 0)
                                r = buf_put_label(b, false, "operation", operations[i]);
                        if (r >= 0)
                                r = buf_put_label(b, false, "result", k == 0 ? "success" : "error");
                        if (r >= 0)
                                r = put_sample_end_u64(b, op && op->slice_writes ? op->slice_writes[i][k] : 0);
                }
        return r;
}

int metrics_render(Metrics *m, const MetricsOperation *op, uint64_t now_usec, MetricsBuffer *out) {
        int r;

        if (m->dirty) {
                r = rebuild_cache(m);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < m->n_claims; i++)
                claim_read_region(m, &m->claims[i], now_usec);

        /* One allocation of the right size: no copies while growing. */
        r = buf_reserve(out, MAX(m->last_size, m->cached.size * 2) + 8192);
        if (r >= 0)
                r = render_usage(m, out);
        if (r >= 0)
                r = buf_put(out, m->cached.data ?: "", m->cached.size);
        if (r >= 0)
                r = render_devices(m, out);
        if (r >= 0)
                r = render_operation(m, op, out);
        if (r >= 0)
                r = put_node_u64(m, out, &F_PREPARED, m->n_claims);
        if (r >= 0)
                r = put_node_u64(m, out, &F_REGION_ERRORS, m->region_errors);
        if (r >= 0)
                r = put_family(out, &F_BUILD_INFO);
        if (r >= 0)
                r = put_node_sample_start(m, out, F_BUILD_INFO.name, NULL);
        if (r >= 0)
                r = buf_put_label(out, false, "version", m->version);
        if (r >= 0)
                r = buf_put_label(out, false, "driver", m->driver);
        if (r >= 0)
                r = put_sample_end_u64(out, 1);
        if (r >= 0)
                m->last_size = out->size;
        return r;
}
