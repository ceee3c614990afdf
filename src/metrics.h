/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The node daemon's Prometheus metrics (text exposition format 0.0.4), rendered from
 * what the manager knows: its GPUs, its prepared claims (kept here as the DRA service's
 * observer reports them), the live usage in each claim's shared region, and the
 * counters of the DRA service, the API client, the slice publisher and the gRPC server.
 * The families are listed in docs/metrics.md and hami-dra-plugin(8), METRICS.
 *
 * Cost: what changes only when a claim is prepared or unprepared (label sets, limits,
 * allocations) is rendered once into a cache; a scrape re-reads each claim's region at
 * most once per METRICS_REGION_MAX_AGE_USEC and writes the live series with
 * hand-rolled number formatting. Everything runs on the caller's (event) thread: no locks.
 *
 * Label values come from the API server (namespaces, names), the GPU driver and the
 * configuration: all escaped, and bytes that are not UTF-8 replaced. A region that fails
 * validation only loses that claim's usage series: hami_dra_shared_region_errors_total
 * counts it, and the journal says so once per claim.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dra-service.h"
#include "gpu.h"
#include "kube-client.h"
#include "prepared-claim.h"
#include "shared-region.h"

#define METRICS_REGION_MAX_AGE_USEC (1000 * 1000ULL)
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct MetricsBuffer {
        char *data;
        size_t size;
        size_t allocated;
} MetricsBuffer;

void metrics_buffer_done(MetricsBuffer *b);
/* Take the text (NUL-terminated) out of b, which is left empty. */
char *metrics_buffer_steal(MetricsBuffer *b, size_t *ret_size);

typedef struct MetricsDevice {
        char name[GPU_NAME_MAX];
        char uuid[GPU_STRING_MAX];
        char model[GPU_STRING_MAX];
        uint64_t memory_total;
        bool healthy;
        bool schedulable;
} MetricsDevice;

/* Fill from the backend's GPU; schedulable defaults to true. */
void metrics_device_from_gpu(MetricsDevice *d, const Gpu *g);

/* The driver's counters at scrape time; NULL members render as zero. */
typedef struct MetricsOperation {
        const DraServiceStats *dra;
        unsigned grpc_in_flight;
        const KubeRequestCount *api;
        size_t n_api;
        const uint64_t (*slice_writes)[2]; /* [3][2]: create, update, delete x success, error */
} MetricsOperation;

/* shared_region_read_usage() in the daemon; tests and benchmarks inject their own. */
typedef int (*MetricsRegionReader)(const char *path, SharedRegionUsage *ret);

typedef struct Metrics Metrics;

int metrics_new(const char *node, const char *driver, const char *version, Metrics **ret);
Metrics *metrics_free(Metrics *m);

void metrics_set_region_reader(Metrics *m, MetricsRegionReader reader);

/* Replace the GPU list (in CUDA order: device_index is the position). */
int metrics_set_devices(Metrics *m, const MetricsDevice *devices, size_t n);

/* A claim prepared (or restored): replaces any record of the same UID. region_path: its
 * shared region. -ENOMEM, or -E2BIG past METRICS_CLAIMS_MAX. */
#define METRICS_CLAIMS_MAX 65536u
int metrics_claim_prepared(Metrics *m, const PreparedClaim *c, const char *region_path);
/* A claim gone; unknown UIDs are ignored. */
void metrics_claim_unprepared(Metrics *m, const char *uid);
size_t metrics_n_claims(const Metrics *m);

/*
 * The usage monitor read uid's region anyway, every 100 ms (error < 0: that failed): taken
 * as the claim's reading when the last one is older than METRICS_REGION_MAX_AGE_USEC.
 * With the monitor running, a scrape then reads no region at all.
 */
void metrics_claim_usage(Metrics *m, const char *uid, int error, const SharedRegionUsage *u, uint64_t now_usec);

/* Render every family into out (appended). now_usec: CLOCK_MONOTONIC, for the regions'
 * ages. 0 or -ENOMEM. */
int metrics_render(Metrics *m, const MetricsOperation *op, uint64_t now_usec, MetricsBuffer *out);

/* Regions that failed validation since start (the counter's value). */
uint64_t metrics_region_errors(const Metrics *m);

/* Exposed for the unit test: append v escaped as a label value. */
int metrics_buffer_put_label_value(MetricsBuffer *b, const char *v);

static inline void metrics_buffer_donep(MetricsBuffer *b) {
        metrics_buffer_done(b);
}

static inline void metrics_freep(Metrics **m) {
        if (*m)
                metrics_free(*m);
}
