/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* What server.c shares with the per-interface files (manager-object.c, device-object.c, claim-object.c). */

#include "dbus/polkit.h"
#include "dbus/server.h"

/* Properties that can change, one bit each: what the deferred emitter sends. */
typedef enum ManagerProp {
        MANAGER_PROP_STATE = 1u << 0,
        MANAGER_PROP_STATE_REASON = 1u << 1,
        MANAGER_PROP_API_SERVER_REACHABLE = 1u << 2,
        MANAGER_PROP_API_SERVER_CONSUMABLE_CAPACITY = 1u << 3,
        MANAGER_PROP_KUBELET_REGISTERED = 1u << 4,
        MANAGER_PROP_SLICE_GENERATION = 1u << 5,
        MANAGER_PROP_N_DEVICES = 1u << 6,
        MANAGER_PROP_N_CLAIMS = 1u << 7,
} ManagerProp;

typedef enum DeviceProp {
        DEVICE_PROP_MEMORY_ALLOCATED = 1u << 0,
        DEVICE_PROP_CORES_ALLOCATED = 1u << 1,
        DEVICE_PROP_CLAIMS = 1u << 2,
        DEVICE_PROP_HEALTH = 1u << 3,
        DEVICE_PROP_HEALTH_REASON = 1u << 4,
        DEVICE_PROP_SCHEDULABLE = 1u << 5,
        DEVICE_PROPS_ALLOCATION = DEVICE_PROP_MEMORY_ALLOCATED | DEVICE_PROP_CORES_ALLOCATED |
                                  DEVICE_PROP_CLAIMS,
} DeviceProp;

typedef struct DeviceDirty {
        char name[GPU_NAME_MAX];
        unsigned props;            /* DeviceProp bits */
} DeviceDirty;

/* MemoryUsed of a device sums one file per claim: cached this long, so a caller polling
 * GetAll cannot make us read thousands of files per call. */
#define DEVICE_MEMORY_USED_CACHE_USEC (500 * 1000ULL)

typedef struct DeviceUsedCache {
        char name[GPU_NAME_MAX];
        uint64_t bytes;
        uint64_t timestamp;        /* CLOCK_MONOTONIC µs; 0 = empty */
} DeviceUsedCache;

/* ListUsage's readings of every claim, in the model's order, reused for usage_cache_usec:
 * a caller looping on ListUsage cannot make us read thousands of files per call. The
 * entries borrow the claims' device names, so any change of the claims drops it. */
typedef struct UsageCache {
        BusClaimDeviceUsage *entries;
        size_t *offsets;           /* claim i's entries start at offsets[i], end at offsets[i+1] */
        uint64_t timestamp;        /* CLOCK_MONOTONIC µs; 0 = empty or dropped */
} UsageCache;

struct BusServer {
        sd_event *event;
        sd_bus *bus;
        const BusModelOps *ops;
        void *userdata;
        BusUsageReader usage_reader;
        uint64_t usage_cache_usec;

        BusModel model;

        char *driver_name;
        char *node_name;
        BusState state;
        char *state_reason;
        bool api_server_reachable;
        bool api_server_consumable_capacity;
        bool kubelet_registered;
        uint64_t slice_generation;

        /* Batched PropertiesChanged. */
        sd_event_source *emit_source;
        unsigned manager_dirty;    /* ManagerProp bits */
        DeviceDirty *device_dirty;
        size_t n_device_dirty;
        bool devices_changed;      /* DevicesChanged to send */

        DeviceUsedCache *used_cache;
        size_t n_used_cache;
        UsageCache list_usage;
        uint64_t n_implausible_usage; /* region readings skipped as implausible (logged once) */

        BusPolkitRegistry polkit;
};

extern const sd_bus_vtable manager_vtable[];
extern const sd_bus_vtable device_vtable[];
extern const sd_bus_vtable claim_vtable[];

int device_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                       void **found, sd_bus_error *error);
int device_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes,
                           sd_bus_error *error);
int claim_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                      void **found, sd_bus_error *error);
int claim_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes,
                          sd_bus_error *error);

/* Object paths of devices and claims; NULL on OOM. */
char *device_object_path(const char *name);
char *claim_object_path(const char *uid);

/* The a(stu) list of a claim's devices: Claim.Devices and ListClaims. */
int claim_object_append_devices(sd_bus_message *reply, const BusClaim *c);

/* Look an object up from its path; NULL when it is not (or no longer) there. */
const BusDevice *device_from_path(BusServer *s, const char *path);
const BusClaim *claim_from_path(BusServer *s, const char *path);

/* Sum of the live usage of every claim on a device (cached), and of one claim. */
uint64_t bus_server_device_memory_used(BusServer *s, const BusDevice *d);
uint64_t bus_server_claim_memory_used(BusServer *s, const BusClaim *c);

/* A claim's live usage per device, ret[k] for its device k (k < BUS_CLAIM_DEVICES_MAX),
 * read now from its region. Returns how many entries were filled. */
size_t bus_server_claim_usage(BusServer *s, const BusClaim *c, BusClaimDeviceUsage ret[static BUS_CLAIM_DEVICES_MAX]);

/* Every claim's usage for ListUsage: bring the cache up to date (0 or -ENOMEM), then
 * claim c's entries from it. */
int bus_server_list_usage_refresh(BusServer *s);
size_t bus_server_list_usage_get(BusServer *s, const BusClaim *c, const BusClaimDeviceUsage **ret);

/* The a(sttuuuuu) of Claim.Usage and ListUsage. */
int claim_object_append_usage(sd_bus_message *reply, const BusClaimDeviceUsage *u, size_t n);

/* Mark properties for the next batched PropertiesChanged. */
void bus_server_manager_dirty(BusServer *s, unsigned props);
void bus_server_device_dirty(BusServer *s, const char *name, unsigned props);

/* Emit DevicesChanged for the current device list, now. */
int manager_object_send_devices_changed(BusServer *s);
int manager_object_send_claim_signal(BusServer *s, const char *member, const BusClaim *c);

/* A property's bit in a dirty mask, and its D-Bus name. */
typedef struct BusPropertyBit {
        unsigned bit;
        const char *name;
} BusPropertyBit;

/* PropertiesChanged on path for those of the table's n properties whose bits are in props
 * (nothing when none is). */
int bus_emit_properties_changed(BusServer *s, const char *path, const char *interface,
                                const BusPropertyBit *table, size_t n, unsigned props);

/* Emit the collected PropertiesChanged for the manager, and for one device. */
int manager_object_emit_changes(BusServer *s, unsigned props);
int device_object_emit_changes(BusServer *s, const char *name, unsigned props);
