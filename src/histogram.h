/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * A duration histogram with fixed buckets, Prometheus-style (cumulative when rendered):
 * what the DRA service keeps for prepare and unprepare, and metrics.c renders. Plain
 * data, updated on the event thread only.
 */

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* Upper bounds in µs: a prepare takes milliseconds when the claim is known, seconds when
 * the API server is slow. Their text, for the "le" label, is in metrics.c. */
#define HISTOGRAM_BOUNDS_USEC                                                                    \
        1000, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, \
                30000000
#define HISTOGRAM_N_BOUNDS 13

typedef struct Histogram {
        uint64_t buckets[HISTOGRAM_N_BOUNDS]; /* observations <= bound i and > bound i-1 */
        uint64_t count;                       /* all, those above the last bound included */
        uint64_t sum_usec;
} Histogram;

static inline void histogram_observe(Histogram *h, uint64_t usec) {
        static const uint64_t bounds[] = { HISTOGRAM_BOUNDS_USEC };

        _Static_assert(ELEMENTSOF(bounds) == HISTOGRAM_N_BOUNDS, "bucket count");
        for (size_t i = 0; i < HISTOGRAM_N_BOUNDS; i++)
                if (usec <= bounds[i]) {
                        h->buckets[i]++;
                        break;
                }
        h->count++;
        h->sum_usec += usec;
}
