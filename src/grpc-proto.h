/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The kubelet protobuf messages as pure functions: bytes in, plain structs out, and
 * back. No sockets, no gRPC: grpc-server.c moves the bytes, the unit test and the
 * fuzzer (tests/fuzz/fuzz-grpc-proto.c) call these directly.
 *
 * Everything decoded here is untrusted: the number of claims and the length of every
 * string are bounded, claims without a UID and conflicting duplicates are answered by
 * us with a per-claim error and never reach the daemon.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dra-types.h"
#include "macro.h"

#define DRA_CLAIMS_MAX 1024U          /* claims in one prepare/unprepare request */
#define DRA_CLAIM_FIELD_MAX 253U      /* namespace, name and UID: DNS subdomain length */
#define DRA_HEALTH_MESSAGE_MAX 1024U  /* the kubelet truncates longer messages anyway */
#define GRPC_REGISTRATION_ERROR_MAX 4096U

#define DRA_PLUGIN_TYPE "DRAPlugin"

/* Every method we serve, on either socket. */
typedef enum GrpcMethod {
        GRPC_METHOD_GET_INFO,
        GRPC_METHOD_NOTIFY_REGISTRATION_STATUS,
        GRPC_METHOD_PREPARE_V1,
        GRPC_METHOD_UNPREPARE_V1,
        GRPC_METHOD_PREPARE_V1BETA1,
        GRPC_METHOD_UNPREPARE_V1BETA1,
        GRPC_METHOD_WATCH_HEALTH_V1ALPHA1,
        GRPC_METHOD_WATCH_HEALTH_V1,
        _GRPC_METHOD_MAX,
        _GRPC_METHOD_INVALID = -EINVAL,
} GrpcMethod;

typedef enum GrpcSocketKind {
        GRPC_SOCKET_REGISTRATION,
        GRPC_SOCKET_DRA,
} GrpcSocketKind;

/* Full gRPC path, e.g. "/pluginregistration.Registration/GetInfo". */
const char *grpc_method_to_path(GrpcMethod m) _const_;
/* Looks up a path that is not NUL-terminated; only methods served on `socket` match. */
GrpcMethod grpc_method_from_path(GrpcSocketKind socket, const char *path, size_t len) _pure_;
bool grpc_method_is_prepare(GrpcMethod m) _const_;
bool grpc_method_is_unprepare(GrpcMethod m) _const_;
bool grpc_method_is_health(GrpcMethod m) _const_;
DraApiVersion grpc_method_api_version(GrpcMethod m) _const_;

/* The supported_versions list of PluginInfo, in the order the kubelet walks it. */
extern const char *const grpc_proto_supported_versions[];
extern const size_t grpc_proto_n_supported_versions;

/* A claim the server answers itself. */
typedef struct DraClaimRejection {
        char *uid;
        char *error;
} DraClaimRejection;

typedef struct DraClaimList {
        DraClaimRef *claims;          /* valid claims with distinct UIDs, in request order */
        size_t n_claims;
        DraClaimRejection *rejected;  /* empty UID, or one UID sent with different names */
        size_t n_rejected;
} DraClaimList;

void dra_claim_list_done(DraClaimList *l);

/* A NodePrepareResources/NodeUnprepareResources request of any version.
 * -EBADMSG: not the message; -E2BIG: too many claims; -ENAMETOOLONG: a string too long. */
int grpc_proto_decode_claims(GrpcMethod m, const uint8_t *buf, size_t size, DraClaimList *ret);

/* InfoRequest and NodeWatchResourcesRequest are empty; -EBADMSG if the bytes are no such message. */
int grpc_proto_decode_empty(GrpcMethod m, const uint8_t *buf, size_t size);

int grpc_proto_decode_registration_status(const uint8_t *buf, size_t size, bool *ret_registered,
                                          char **ret_error);

/* One claim's answer; error NULL means success (devices apply, for prepare only). */
typedef struct DraClaimAnswer {
        const char *uid;
        const char *error;
        const DraDevice *devices;
        size_t n_devices;
} DraClaimAnswer;

/* The response map keyed by claim UID; v1beta1 has no share_id. Buffers are malloc()ed. */
int grpc_proto_encode_prepare_response(DraApiVersion v, const DraClaimAnswer *answers, size_t n,
                                       uint8_t **ret, size_t *ret_size);
int grpc_proto_encode_unprepare_response(DraApiVersion v, const DraClaimAnswer *answers, size_t n,
                                         uint8_t **ret, size_t *ret_size);

int grpc_proto_encode_plugin_info(const char *driver_name, const char *endpoint, uint8_t **ret,
                                  size_t *ret_size);

/* A NodeWatchResourcesResponse for the stream of method m (v1alpha1 or v1). */
int grpc_proto_encode_health(GrpcMethod m, const DraDeviceHealth *devices, size_t n, uint8_t **ret,
                             size_t *ret_size);

/* An empty message (RegistrationStatusResponse): zero bytes, but a valid buffer. */
int grpc_proto_encode_empty(uint8_t **ret, size_t *ret_size);
