/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * ResourceSlice building and comparison: pure functions, devices in, JSON out
 * (resource.k8s.io/v1; the schema is tests/data/kubernetes). No sockets, no clocks.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

#include "gpu.h"
#include "json-util.h"
#include "macro.h"

#define SLICE_DEVICES_MAX 128
#define SLICE_DEVICES_MAX_TAINTED 64      /* when any device of the slice has taints */
#define SLICE_DEVICE_ENTRIES_MAX 32       /* attributes + capacities per device */
#define SLICE_ATTRIBUTE_STRING_MAX 64
#define SLICE_TAINT_VALUE_MAX 63          /* a label value */
#define SLICE_POOL_SLICES_MAX 1024        /* we never make more (64 * 1024 GPUs) */

#define SLICE_TAINT_UNHEALTHY "unhealthy"    /* key <driver>/unhealthy */
#define SLICE_TAINT_MAINTENANCE "maintenance"

/* Fields an API server drops when a feature gate is off. */
typedef enum SliceDropped {
        SLICE_DROPPED_CONSUMABLE = 1 << 0,   /* allowMultipleAllocations, requestPolicy: DRAConsumableCapacity */
        SLICE_DROPPED_TAINTS = 1 << 1,       /* taints: DRADeviceTaints */
} SliceDropped;

#define SLICE_CONSUMABLE_FIX                                                                    \
        "enable the DRAConsumableCapacity feature gate on kube-apiserver, kube-scheduler and kubelet; " \
        "it is on by default only from Kubernetes 1.36"

typedef struct SlicePoolParams {
        const char *driver;
        const char *node;
        const char *node_uid;
        int64_t generation;
        /* device names (NULL-terminated) an operator put into maintenance: NoSchedule taint */
        char **maintenance;
} SlicePoolParams;

/* One device object. -EINVAL when the GPU cannot be published (bad name, no memory). */
int resourceslice_device_build(const Gpu *gpu, const char *driver, bool unschedulable, json_object **ret);

/*
 * The desired pool: a JSON array of ResourceSlice objects with metadata.generateName
 * "<index as 5 hex digits>-<driver>-<node>-", ownerReference to the Node, spec.pool
 * with resourceSliceCount. Devices that cannot be published are skipped with a log
 * line. An empty GpuList gives one slice without devices (the pool exists, empty).
 */
int resourceslice_pool_build(const GpuList *gpus, const SlicePoolParams *p, json_object **ret_array);

/* The slice index from a generated name; -EINVAL when the prefix is not ours. */
int resourceslice_name_index(const char *name, unsigned *ret);

/* Two quantity strings with the same value ("1048576" == "1Mi"); false if either is invalid. */
bool quantity_equal(const char *a, const char *b);

/*
 * Does the stored slice's spec match the desired one? Quantities compare numerically,
 * taint timeAdded with 1 s tolerance (and only when both have it); `ignore` masks
 * fields the server is known to drop.
 */
bool resourceslice_spec_equal(json_object *desired_spec, json_object *stored_spec, SliceDropped ignore);

/* What the server dropped from what we sent (compare request and response). */
SliceDropped resourceslice_dropped_fields(json_object *sent_spec, json_object *stored_spec);

/*
 * The object to PUT: a copy of `stored` (metadata, resourceVersion) with the desired
 * spec, keeping the stored timeAdded of taints that did not change.
 */
int resourceslice_merge_for_update(json_object *stored, json_object *desired, json_object **ret);

/* Remove what `mask` says the server drops, so comparison does not loop forever. */
void resourceslice_spec_strip(json_object *spec, SliceDropped mask);

/* "XID 79: fell off the bus" -> "XID-79-fell-off-the-bus": a valid label value, ≤ 63. */
void slice_taint_value_sanitize(const char *in, char *out, size_t size);

/* "535.104.05" -> "535.104.5", "12.4" -> "12.4.0", semver 2.0 passes; -EINVAL otherwise. */
int slice_version_normalize(const char *in, char *out, size_t size);

/* spec.pool.generation, or -1. */
int64_t slice_pool_generation(json_object *slice);
