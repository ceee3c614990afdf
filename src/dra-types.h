/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The kubelet's DRA messages as plain C types, without gRPC or protobuf-c: what the
 * gRPC layer (grpc-server.h) hands the daemon and takes back, and what the protobuf
 * codec (grpc-proto.h) decodes into and encodes from.
 */

#include <stdint.h>

typedef enum DraApiVersion {
        DRA_API_V1,
        DRA_API_V1BETA1,
} DraApiVersion;

typedef struct DraClaimRef {
        char *namespace_;
        char *uid;
        char *name;
} DraClaimRef;

/* One prepared device in a NodePrepareResources answer. */
typedef struct DraDevice {
        char **request_names;  /* NULL-terminated; NULL or empty = all requests */
        char *pool_name;
        char *device_name;
        char **cdi_device_ids; /* NULL-terminated */
        char *share_id;        /* NULL when not shared; dropped for v1beta1 */
} DraDevice;

void dra_device_done(DraDevice *d);

typedef enum DraHealthStatus {
        DRA_HEALTH_UNKNOWN = 0,
        DRA_HEALTH_HEALTHY = 1,
        DRA_HEALTH_UNHEALTHY = 2,
} DraHealthStatus;

typedef struct DraDeviceHealth {
        const char *pool_name;
        const char *device_name;
        DraHealthStatus health;
        int64_t last_updated;        /* unix seconds */
        int64_t timeout_seconds;     /* <= 0: kubelet default */
        const char *message;
} DraDeviceHealth;
