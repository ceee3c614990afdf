/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Keeps this node's ResourceSlice pool true, on the event loop:
 *   GET the Node (its UID for the owner reference), LIST our slices (field selector
 *   spec.nodeName=<node>,spec.driver=<driver>: the node authorizer requires it) and
 *   WATCH them from that resourceVersion; then sync like the Go publisher
 *   (k8s.io/dynamic-resource-allocation/resourceslice): delete obsolete slices, update
 *   changed ones, create missing ones, bump the pool generation when it would. Unchanged devices
 *   mean zero writes. Deleted slices (the kubelet wipes them) are recreated at once.
 *
 * Failures never end it: every failure is logged with its reason and retried with
 * capped exponential backoff and jitter (Retry-After honoured).
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "gpu.h"
#include "kube-client.h"
#include "macro.h"

typedef struct SlicePublisher SlicePublisher;

typedef struct SlicePublisherStatus {
        bool api_reachable;          /* the last request got an HTTP answer */
        bool synced;                 /* the stored pool equals the desired one */
        int consumable_capacity;     /* 1 supported, 0 the API server dropped the fields, -1 not known yet */
        const char *consumable_reason;  /* set when 0: what is wrong and the fix */
        int device_taints;           /* 1 supported, 0 dropped (DRADeviceTaints off), -1 not known */
        int64_t generation;          /* the pool generation stored */
        unsigned n_slices;
        unsigned n_devices;
        uint64_t n_writes;           /* POST/PUT/DELETE sent since start */
        uint64_t writes[3][2];       /* of those, [create, update, delete][succeeded, failed] */
        const char *last_error;      /* NULL when the last sync succeeded */
} SlicePublisherStatus;

typedef void (*SlicePublisherStatusHandler)(SlicePublisher *p, const SlicePublisherStatus *s, void *userdata);

typedef struct SlicePublisherOptions {
        uint64_t backoff_base_usec;     /* 0: 1 s */
        uint64_t backoff_cap_usec;      /* 0: 60 s */
        uint64_t debounce_usec;         /* delay before a sync after a change; 0: 100 ms */
        unsigned watch_timeout_sec;     /* 0: 300 */
} SlicePublisherOptions;

/* `client` is borrowed and must outlive the publisher. */
int slice_publisher_new(sd_event *event, KubeClient *client, const char *driver, const char *node,
                        const SlicePublisherOptions *opts, SlicePublisher **ret);
SlicePublisher *slice_publisher_free(SlicePublisher *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(SlicePublisher *, slice_publisher_free);

void slice_publisher_set_status_handler(SlicePublisher *p, SlicePublisherStatusHandler h, void *userdata);

/* Begin: GET node, LIST, WATCH, sync. Publishing waits for the first set_devices(). */
int slice_publisher_start(SlicePublisher *p);

/* The devices to publish (copied, health included). A sync follows when they differ. */
int slice_publisher_set_devices(SlicePublisher *p, const GpuList *gpus);

/* Health from the health stream: unhealthy devices get a NoSchedule taint. -ENOENT: no such device. */
int slice_publisher_set_device_health(SlicePublisher *p, const char *name, GpuHealth health, const char *reason);

/* Maintenance: schedulable=false adds a NoSchedule taint "<driver>/maintenance". */
int slice_publisher_set_device_schedulable(SlicePublisher *p, const char *name, bool schedulable);

/* False while set_device_schedulable(name, false) keeps the device tainted. */
bool slice_publisher_device_schedulable(SlicePublisher *p, const char *name);

void slice_publisher_get_status(SlicePublisher *p, SlicePublisherStatus *ret);

/* One line for sd_notify STATUS=: "Published 8 GPUs in 1 ResourceSlice (generation 1)". */
int slice_publisher_status_format(const SlicePublisherStatus *s, char *buf, size_t size);
