/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * What the D-Bus service shows, as plain data, and the store that keeps it.
 *
 * The bus objects (manager-object.c, device-object.c, claim-object.c) never look into
 * the manager: the manager pushes what changed through the bus_server_*() entry points
 * in dbus/server.h, which keep a BusModel, and gets the privileged calls back through
 * BusModelOps. Everything here is pure (no sd-bus), so unit tests reach it directly.
 *
 * Per-device allocations (MemoryAllocated, CoresAllocated, Claims) are derived from the
 * prepared claims, never kept twice.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpu.h"

/* Hard limits on what the store holds: a bug or a flood upstream cannot make it grow further. */
#define BUS_DEVICES_MAX 256u
#define BUS_CLAIMS_MAX 16384u
#define BUS_CLAIM_DEVICES_MAX 32u
#define BUS_UID_MAX 128u              /* Kubernetes UIDs are 36-byte UUIDs */
#define BUS_NAMESPACE_MAX 63u         /* a DNS label */
#define BUS_OBJECT_NAME_MAX 253u      /* a DNS subdomain */
#define BUS_PATH_MAX 4096u
#define BUS_REASON_MAX 512u

typedef enum BusState {
        BUS_STATE_STARTING,
        BUS_STATE_READY,
        BUS_STATE_DEGRADED,
        BUS_STATE_STOPPING,
        _BUS_STATE_MAX,
} BusState;

const char *bus_state_to_string(BusState s);
const char *bus_health_to_string(GpuHealth h);   /* "healthy", "unhealthy", "unknown" */

/* The Manager object's properties. Strings are copied by bus_server_set_properties(). */
typedef struct BusManagerProps {
        const char *driver_name;
        const char *node_name;
        BusState state;
        const char *state_reason;         /* NULL or "" when ready */
        bool api_server_reachable;
        bool api_server_consumable_capacity;
        bool kubelet_registered;
        uint64_t slice_generation;
} BusManagerProps;

/* One GPU. Fixed-size strings, so a device list is copied with memcpy. */
typedef struct BusDevice {
        char name[GPU_NAME_MAX];
        char uuid[GPU_STRING_MAX];
        char model[GPU_STRING_MAX];
        uint64_t memory_total;
        uint32_t cores;
        GpuHealth health;
        char health_reason[256];
        bool schedulable;
} BusDevice;

/* Fill a BusDevice from what the GPU backend reports (schedulable defaults to true). */
void bus_device_from_gpu(BusDevice *d, const Gpu *g);

typedef struct BusClaimDevice {
        char device[GPU_NAME_MAX];   /* device name, as in the ResourceSlice */
        uint64_t memory_limit;       /* bytes */
        uint32_t cores_limit;        /* percent */
        /* Where its live usage is: its device in the claim's shared region (the GPU's index
         * in the claim, from the daemon's own record, never from the region), and the
         * GPU's UUID, by which usage is paired with a device ("": by name). */
        uint32_t region_index;
        char uuid[GPU_STRING_MAX];
} BusClaimDevice;

/* One prepared claim. Owned strings; bus_claim_done() frees them. */
typedef struct BusClaim {
        char *uid;
        char *namespace_;
        char *name;
        char *shared_region;          /* path, or NULL */
        uint64_t prepared_usec;       /* CLOCK_REALTIME µs */
        BusClaimDevice *devices;
        size_t n_devices;
} BusClaim;

void bus_claim_done(BusClaim *c);
int bus_claim_copy(const BusClaim *src, BusClaim *ret);

/*
 * Validation of what callers (and the manager) hand us. 0 or -EINVAL.
 * UIDs: 1..BUS_UID_MAX bytes of printable ASCII. Namespaces and names: DNS label and
 * subdomain characters. Device names: 1..GPU_NAME_MAX-1 of [A-Za-z0-9._-].
 */
int bus_uid_validate(const char *uid);
int bus_device_name_validate(const char *name);
int bus_claim_validate(const BusClaim *c);

typedef struct BusModel {
        BusDevice *devices;    /* in the order the manager gave (CUDA order) */
        size_t n_devices;
        BusClaim *claims;      /* sorted by uid, for bsearch */
        size_t n_claims;
        size_t n_claims_allocated;
} BusModel;

void bus_model_done(BusModel *m);

const BusDevice *bus_model_find_device(const BusModel *m, const char *name);
const BusClaim *bus_model_find_claim(const BusModel *m, const char *uid);

/* Replace the device list (validated; -EINVAL on a bad or duplicate name, -E2BIG past the limit). */
int bus_model_set_devices(BusModel *m, const BusDevice *devices, size_t n);

/* Add a copy of c. -EEXIST when its uid is there, -E2BIG at BUS_CLAIMS_MAX, -EINVAL when invalid. */
int bus_model_add_claim(BusModel *m, const BusClaim *c);

/* Remove a claim, handing it to ret (may be NULL). -ENOENT when absent. */
int bus_model_remove_claim(BusModel *m, const char *uid, BusClaim *ret);

typedef struct BusDeviceUsage {
        uint64_t memory_allocated;
        uint32_t cores_allocated;
        size_t n_claims;
} BusDeviceUsage;

/* Sum the limits of the claims on one device. */
void bus_model_device_usage(const BusModel *m, const char *device, BusDeviceUsage *ret);

/* The sorted UIDs of the claims on one device, as a NULL-terminated strv (not copies: borrowed). */
int bus_model_device_claims(const BusModel *m, const char *device, const char ***ret);
