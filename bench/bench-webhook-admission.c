/* SPDX-License-Identifier: Apache-2.0 */

/*
 * bench-webhook-admission: hami-dra-webhook's server time per admission, in process.
 *
 *   bench-webhook-admission FIXTURES_DIR [N]      (default N = 20000)
 *
 * FIXTURES_DIR is tests/webhook/fixtures. Times webhook_mutate() on HAMi's guide pod
 * (hami-guide.json: one container asking nvidia.com/gpu 1, gpumem 10240, gpucores 50)
 * with a small inventory (8 devices, two sizes), and webhook_validate() on a claim with
 * our opaque parameters, N calls each after a warm-up, one call per clock reading.
 * The baseline, measured in the same run, is json_parse_bounded() of the same guide
 * body alone (json-c parse and free): the least any admission must do. Also the decode
 * alone (admission_request_decode), and a pod without GPUs (allowed unchanged).
 * Prints median and p99 per call, and each median's and p99's ratio to the baseline's.
 * No sockets, no TLS, no API calls: bench/bench-webhook-admission.py measures those.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admission.h"
#include "json-util.h"
#include "macro.h"
#include "webhook.h"

#define GIB (1024ULL * 1024ULL * 1024ULL)

typedef struct Body {
        const char *name;
        char *data;
        size_t n;
} Body;

typedef int (*OpFunc)(const Body *b);

typedef struct Row {
        const char *name;
        const char *fixture;
        double p50_us, p99_us;
} Row;

static uint64_t inventory_bytes[] = { 24 * GIB, 24 * GIB, 24 * GIB, 24 * GIB,
                                      80 * GIB, 80 * GIB, 80 * GIB, 80 * GIB };
static const WebhookInventory inventory = { inventory_bytes, ELEMENTSOF(inventory_bytes) };

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static int read_fixture(const char *dir, const char *name, Body *ret) {
        char path[1024];
        FILE *f;
        long size;

        snprintf(path, sizeof path, "%s/%s", dir, name);
        f = fopen(path, "re");
        if (!f)
                return -errno;
        if (fseek(f, 0, SEEK_END) < 0 || (size = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET) < 0) {
                fclose(f);
                return -EIO;
        }
        ret->data = malloc((size_t) size);
        if (!ret->data) {
                fclose(f);
                return -ENOMEM;
        }
        ret->n = fread(ret->data, 1, (size_t) size, f);
        fclose(f);
        ret->name = name;
        return ret->n == (size_t) size ? 0 : -EIO;
}

static int op_parse(const Body *b) {
        json_object *o = NULL;
        int r = json_parse_bounded(b->data, b->n, ADMISSION_DEPTH_MAX, &o);
        json_object_put(o);
        return r;
}

static int op_decode(const Body *b) {
        AdmissionRequest req = {};
        char buf[256];
        ErrBuf e = { buf, sizeof buf };
        int r = admission_request_decode(b->data, b->n, &req, &e);
        admission_request_done(&req);
        return r;
}

/* Each checks the answer, so that a benchmark of a broken path fails instead. */
static int op_mutate_gpu(const Body *b) {
        WebhookResult res = {};
        int r = webhook_mutate(b->data, b->n, &inventory, &res);
        if (r >= 0 && (!res.allowed || !res.response || res.n_templates != 1 || !strstr(res.response, "\"patch\"")))
                r = -EPROTO;
        webhook_result_done(&res);
        return r;
}

static int op_mutate_plain(const Body *b) {
        WebhookResult res = {};
        int r = webhook_mutate(b->data, b->n, &inventory, &res);
        if (r >= 0 && (!res.allowed || !res.response || res.n_templates != 0))
                r = -EPROTO;
        webhook_result_done(&res);
        return r;
}

static int op_validate_good(const Body *b) {
        WebhookResult res = {};
        int r = webhook_validate(b->data, b->n, &res);
        if (r >= 0 && (!res.allowed || !res.response))
                r = -EPROTO;
        webhook_result_done(&res);
        return r;
}

static int op_validate_bad(const Body *b) {
        WebhookResult res = {};
        int r = webhook_validate(b->data, b->n, &res);
        if (r >= 0 && (res.allowed || !res.response))
                r = -EPROTO;
        webhook_result_done(&res);
        return r;
}

static int measure(const char *name, OpFunc f, const Body *b, unsigned n, uint64_t *t, Row *ret) {
        int r;

        for (unsigned i = 0; i < n / 10 + 10; i++) /* warm up: caches, the allocator's free lists */
                if ((r = f(b)) < 0) {
                        fprintf(stderr, "%s on %s failed: %s\n", name, b->name, strerror(-r));
                        return r;
                }
        for (unsigned i = 0; i < n; i++) {
                uint64_t start = now_ns();
                r = f(b);
                t[i] = now_ns() - start;
                if (r < 0) {
                        fprintf(stderr, "%s on %s failed: %s\n", name, b->name, strerror(-r));
                        return r;
                }
        }
        qsort(t, n, sizeof *t, cmp_u64);
        *ret = (Row) {
                .name = name,
                .fixture = b->name,
                .p50_us = (double) t[n / 2] / 1e3,
                .p99_us = (double) t[MIN(n - 1, (size_t) ((double) n * 0.99))] / 1e3,
        };
        return 0;
}

int main(int argc, char **argv) {
        Body guide = {}, plain = {}, good = {}, bad = {};
        unsigned n = 20000;
        uint64_t *t = NULL;
        Row rows[6];
        size_t n_rows = 0;
        int r;

        if (argc < 2 || argc > 3) {
                fprintf(stderr, "usage: bench-webhook-admission FIXTURES_DIR [N]\n");
                return 2;
        }
        if (argc == 3 && (n = (unsigned) strtoul(argv[2], NULL, 10)) < 1) {
                fprintf(stderr, "N must be at least 1\n");
                return 2;
        }
        if ((r = read_fixture(argv[1], "hami-guide.json", &guide)) < 0 ||
            (r = read_fixture(argv[1], "no-gpu.json", &plain)) < 0 ||
            (r = read_fixture(argv[1], "validate-claim-good.json", &good)) < 0 ||
            (r = read_fixture(argv[1], "validate-claim-bad.json", &bad)) < 0) {
                fprintf(stderr, "cannot read the fixtures in %s: %s\n", argv[1], strerror(-r));
                return 1;
        }
        t = calloc(n, sizeof *t);
        if (!t)
                return 1;

        struct {
                const char *name;
                OpFunc f;
                const Body *b;
        } plan[] = {
                { "baseline: json_parse_bounded", op_parse, &guide },
                { "admission_request_decode", op_decode, &guide },
                { "webhook_mutate, 1 GPU container", op_mutate_gpu, &guide },
                { "webhook_mutate, no GPU (unchanged)", op_mutate_plain, &plain },
                { "webhook_validate, good claim", op_validate_good, &good },
                { "webhook_validate, bad claim (refused)", op_validate_bad, &bad },
        };
        for (size_t i = 0; i < ELEMENTSOF(plan); i++) {
                r = measure(plan[i].name, plan[i].f, plan[i].b, n, t, &rows[n_rows]);
                if (r < 0)
                        goto out;
                n_rows++;
        }

        printf("hami-dra-webhook server time per admission, in process, %u calls each; inventory: %zu devices\n\n",
               n, inventory.n);
        printf("%-40s %-26s %9s %9s %9s %9s\n", "operation", "fixture", "p50 us", "p99 us", "p50/base", "p99/base");
        for (size_t i = 0; i < n_rows; i++)
                printf("%-40s %-26s %9.2f %9.2f %8.1fx %8.1fx\n", rows[i].name, rows[i].fixture, rows[i].p50_us,
                       rows[i].p99_us, rows[i].p50_us / rows[0].p50_us, rows[i].p99_us / rows[0].p99_us);
        r = 0;
out:
        free(t);
        free(guide.data);
        free(plain.data);
        free(good.data);
        free(bad.data);
        return r < 0 ? 1 : 0;
}
