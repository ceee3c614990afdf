/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * org.projecthami.Dra1 on the system bus: the service's interface to its owner. The
 * daemon's manager drives it from manager-dbus*.c (see manager-dbus.h); the tests'
 * bus-test-daemon and the D-Bus benchmark drive it the same way.
 *
 *   BusServer *s;
 *   bus_server_new(event, &manager_dbus_ops, manager, &s);
 *   bus_server_set_properties(s, &(BusManagerProps) { .driver_name = ..., ... });
 *   bus_server_set_devices(s, devices, n);
 *   bus_server_connect(s);                        system bus, objects, name
 *   ...
 *   bus_server_claim_prepared(s, &claim);         a claim was prepared or restored
 *   bus_server_claim_unprepared(s, uid);          unprepared, released or forgotten
 *   bus_server_set_properties(s, &props);         whenever one changed (cheap: diffed)
 *   bus_server_set_devices(s, devices, n);        after a rescan, health or taint change
 *   ...
 *   bus_server_free(s);
 *
 * All calls run on the sd-event loop's thread. ClaimPrepared and ClaimUnprepared go out
 * at once; PropertiesChanged and DevicesChanged are batched: changes are collected and
 * sent from a deferred event source, once per loop iteration (and object).
 *
 * The privileged methods come back through BusModelOps after polkit said yes. Each
 * returns 0 or a negative errno, which the caller sees as a named error (dbus/error.c):
 * -ENOENT/-ENODEV NoSuchClaim or NoSuchDevice (Failed for Rescan and Reload), -EINVAL
 * InvalidArgument, -EBUSY/-EALREADY Busy, -EAGAIN NotReady, anything else Failed. The
 * owner sends the resulting notifications itself, through the entry points above (in
 * the daemon a release reaches bus_server_claim_unprepared() through the DRA service's
 * observer).
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "dbus/model.h"
#include "dbus/names.h"
#include "shared-region.h"

typedef struct BusServer BusServer;

typedef struct BusModelOps {
        int (*rescan)(void *userdata);
        int (*reload)(void *userdata);
        int (*release_claim)(void *userdata, const char *uid);
        int (*set_device_schedulable)(void *userdata, const char *name, bool schedulable);
} BusModelOps;

/*
 * Reads what a claim's containers use from its shared-region file (untrusted: written by
 * code running in the containers). The same contract as shared_region_read_usage() in
 * shared-region.h: 0 and *ret filled (device i of the region in ret->used[i] etc., for
 * i < ret->n_devices), or a negative errno.
 */
typedef int (*BusUsageReader)(const char *shared_region, SharedRegionUsage *ret);

/* The default reader (dbus/usage.c): shared_region_read_usage(), the validating reader. */
int bus_usage_read_shared_region(const char *shared_region, SharedRegionUsage *ret);

/* One entry of Claim.Usage and Manager.ListUsage: a claim's use of one of its GPUs. */
typedef struct BusClaimDeviceUsage {
        const char *device;            /* borrowed from the claim */
        uint64_t memory_used;          /* bytes: what its processes reserved + what the driver holds beyond */
        uint64_t memory_limit;         /* bytes, from the daemon's record */
        uint32_t sm_used;              /* permille of the GPU (monitor), BUS_USAGE_SM_UNKNOWN */
        uint32_t sm_limit;             /* percent, from the daemon's record */
        uint32_t processes;            /* live processes attached to the claim's region */
        uint32_t measured_processes;   /* of them, those the monitor saw on this GPU */
        uint32_t flags;                /* BUS_USAGE_* (dbus/names.h) */
} BusClaimDeviceUsage;

int bus_server_new(sd_event *event, const BusModelOps *ops, void *userdata, BusServer **ret);
BusServer *bus_server_free(BusServer *s);

static inline void bus_server_freep(BusServer **s) {
        if (*s)
                bus_server_free(*s);
}

void bus_server_set_usage_reader(BusServer *s, BusUsageReader reader);

/* How long a device's MemoryUsed sum is reused (default 500 ms; 0: read on every Get). */
void bus_server_set_usage_cache(BusServer *s, uint64_t usec);

/* Connect to the system bus ($DBUS_SYSTEM_BUS_ADDRESS honoured), export, own the name. */
int bus_server_connect(BusServer *s);

/* Export on a bus the caller opened (tests, benchmarks). Does not request the name. */
int bus_server_attach(BusServer *s, sd_bus *bus);

sd_bus *bus_server_get_bus(BusServer *s);
const BusModel *bus_server_get_model(BusServer *s);

/* Notification entry points. */
int bus_server_set_properties(BusServer *s, const BusManagerProps *p);
int bus_server_set_devices(BusServer *s, const BusDevice *devices, size_t n);
int bus_server_claim_prepared(BusServer *s, const BusClaim *c);
int bus_server_claim_unprepared(BusServer *s, const char *uid);
