/* SPDX-License-Identifier: Apache-2.0 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dra-v1.pb-c.h"
#include "dra-v1beta1.pb-c.h"
#include "grpc-proto.h"
#include "health-v1.pb-c.h"
#include "health-v1alpha1.pb-c.h"
#include "pluginregistration.pb-c.h"

#ifndef IN_SET
#define IN_SET(x, a, b) ((x) == (a) || (x) == (b))
#endif

/* The generated names spell out the whole proto package. */
#define V1(name) K8s__Io__Kubelet__Pkg__Apis__Dra__V1__##name
#define V1BETA1(name) K8s__Io__Kubelet__Pkg__Apis__Dra__V1beta1__##name
#define V1_DESC(name) k8s__io__kubelet__pkg__apis__dra__v1__##name##__descriptor
#define V1BETA1_DESC(name) k8s__io__kubelet__pkg__apis__dra__v1beta1__##name##__descriptor

/*
 * v1 and v1beta1 (and both health versions) have the same messages field for field,
 * except that the v1beta1 Device ends before share_id. We fill the v1 structs and pack
 * them with the descriptor of the version asked for: protobuf-c packs exactly the
 * fields its descriptor lists, so share_id is dropped for v1beta1. These asserts keep
 * that honest if a .proto file ever changes.
 */
#define SAME_LAYOUT(a, b, field) _Static_assert(offsetof(a, field) == offsetof(b, field), #field)
SAME_LAYOUT(V1(Claim), V1BETA1(Claim), namespace_);
SAME_LAYOUT(V1(Claim), V1BETA1(Claim), uid);
SAME_LAYOUT(V1(Claim), V1BETA1(Claim), name);
SAME_LAYOUT(V1(NodePrepareResourcesRequest), V1BETA1(NodeUnprepareResourcesRequest), claims);
SAME_LAYOUT(V1(NodePrepareResourcesRequest), V1BETA1(NodePrepareResourcesRequest), claims);
SAME_LAYOUT(V1(NodePrepareResourcesRequest), V1(NodeUnprepareResourcesRequest), claims);
SAME_LAYOUT(V1(Device), V1BETA1(Device), cdi_device_ids);
SAME_LAYOUT(V1(NodePrepareResourceResponse), V1BETA1(NodePrepareResourceResponse), error);
SAME_LAYOUT(V1(NodePrepareResourcesResponse__ClaimsEntry),
            V1BETA1(NodePrepareResourcesResponse__ClaimsEntry), value);
SAME_LAYOUT(V1(NodeUnprepareResourcesResponse__ClaimsEntry),
            V1BETA1(NodeUnprepareResourcesResponse__ClaimsEntry), value);
SAME_LAYOUT(V1(NodeUnprepareResourceResponse), V1BETA1(NodeUnprepareResourceResponse), error);
SAME_LAYOUT(V1__DeviceHealth, V1alpha1__DeviceHealth, message);
SAME_LAYOUT(V1__DeviceHealth, V1alpha1__DeviceHealth, health_check_timeout_seconds);
SAME_LAYOUT(V1__NodeWatchResourcesResponse, V1alpha1__NodeWatchResourcesResponse, devices);
_Static_assert((int) V1__HEALTH_STATUS__UNHEALTHY == (int) DRA_HEALTH_UNHEALTHY, "health enum");
_Static_assert((int) V1__HEALTH_STATUS__HEALTHY == (int) DRA_HEALTH_HEALTHY, "health enum");

static const char *const method_paths[_GRPC_METHOD_MAX] = {
        [GRPC_METHOD_GET_INFO] = "/pluginregistration.Registration/GetInfo",
        [GRPC_METHOD_NOTIFY_REGISTRATION_STATUS] = "/pluginregistration.Registration/NotifyRegistrationStatus",
        [GRPC_METHOD_PREPARE_V1] = "/k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin/NodePrepareResources",
        [GRPC_METHOD_UNPREPARE_V1] = "/k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin/NodeUnprepareResources",
        [GRPC_METHOD_PREPARE_V1BETA1] = "/k8s.io.kubelet.pkg.apis.dra.v1beta1.DRAPlugin/NodePrepareResources",
        [GRPC_METHOD_UNPREPARE_V1BETA1] = "/k8s.io.kubelet.pkg.apis.dra.v1beta1.DRAPlugin/NodeUnprepareResources",
        [GRPC_METHOD_WATCH_HEALTH_V1ALPHA1] = "/v1alpha1.DRAResourceHealth/NodeWatchResources",
        [GRPC_METHOD_WATCH_HEALTH_V1] = "/v1.DRAResourceHealth/NodeWatchResources",
};

/* The kubelet takes the first entry it knows, so the newest API comes first. */
const char *const grpc_proto_supported_versions[] = {
        "v1.DRAPlugin",
        "v1beta1.DRAPlugin",
        "v1alpha1.DRAResourceHealth",
        "v1.DRAResourceHealth",
};
const size_t grpc_proto_n_supported_versions = ELEMENTSOF(grpc_proto_supported_versions);

const char *grpc_method_to_path(GrpcMethod m) {
        if (m < 0 || m >= _GRPC_METHOD_MAX)
                return NULL;
        return method_paths[m];
}

GrpcMethod grpc_method_from_path(GrpcSocketKind socket, const char *path, size_t len) {
        GrpcMethod first = socket == GRPC_SOCKET_REGISTRATION ? GRPC_METHOD_GET_INFO : GRPC_METHOD_PREPARE_V1;
        GrpcMethod last = socket == GRPC_SOCKET_REGISTRATION ? GRPC_METHOD_NOTIFY_REGISTRATION_STATUS
                                                             : GRPC_METHOD_WATCH_HEALTH_V1;

        for (GrpcMethod m = first; m <= last; m++)
                if (strlen(method_paths[m]) == len && memcmp(method_paths[m], path, len) == 0)
                        return m;
        return _GRPC_METHOD_INVALID;
}

bool grpc_method_is_prepare(GrpcMethod m) {
        return IN_SET(m, GRPC_METHOD_PREPARE_V1, GRPC_METHOD_PREPARE_V1BETA1);
}

bool grpc_method_is_unprepare(GrpcMethod m) {
        return IN_SET(m, GRPC_METHOD_UNPREPARE_V1, GRPC_METHOD_UNPREPARE_V1BETA1);
}

bool grpc_method_is_health(GrpcMethod m) {
        return IN_SET(m, GRPC_METHOD_WATCH_HEALTH_V1ALPHA1, GRPC_METHOD_WATCH_HEALTH_V1);
}

DraApiVersion grpc_method_api_version(GrpcMethod m) {
        return IN_SET(m, GRPC_METHOD_PREPARE_V1BETA1, GRPC_METHOD_UNPREPARE_V1BETA1) ? DRA_API_V1BETA1
                                                                                     : DRA_API_V1;
}

/* ---- wire pre-scan: bound what protobuf-c would allocate before it allocates it ---- */

static int wire_read_varint(const uint8_t **p, const uint8_t *end, uint64_t *ret) {
        uint64_t v = 0;

        for (unsigned shift = 0; shift < 64; shift += 7) {
                if (*p >= end)
                        return -EBADMSG;
                uint8_t b = *(*p)++;
                v |= (uint64_t) (b & 0x7f) << shift;
                if (!(b & 0x80)) {
                        *ret = v;
                        return 0;
                }
        }
        return -EBADMSG;
}

/*
 * Walk one message level. Counts all fields (at most max_fields, else -E2BIG) and calls
 * `nested` for every length-delimited field number `nested_field`. protobuf-c keeps
 * unknown fields, so a message of tiny fields would otherwise cost ~20x its size.
 */
static int wire_scan(const uint8_t *buf, size_t size, size_t max_fields, uint32_t nested_field,
                     int (*nested)(const uint8_t *buf, size_t size), size_t *ret_nested) {
        const uint8_t *p = buf, *end = buf + size;
        size_t n_fields = 0, n_nested = 0;
        int r;

        while (p < end) {
                uint64_t key, v;

                r = wire_read_varint(&p, end, &key);
                if (r < 0)
                        return r;
                if (++n_fields > max_fields)
                        return -E2BIG;
                switch (key & 7) {
                case 0: /* varint */
                        r = wire_read_varint(&p, end, &v);
                        if (r < 0)
                                return r;
                        break;
                case 1: /* 64-bit */
                        if (end - p < 8)
                                return -EBADMSG;
                        p += 8;
                        break;
                case 2: /* length-delimited */
                        r = wire_read_varint(&p, end, &v);
                        if (r < 0)
                                return r;
                        if (v > (uint64_t) (end - p))
                                return -EBADMSG;
                        if (nested && (key >> 3) == nested_field) {
                                r = nested(p, (size_t) v);
                                if (r < 0)
                                        return r;
                                n_nested++;
                        }
                        p += v;
                        break;
                case 5: /* 32-bit */
                        if (end - p < 4)
                                return -EBADMSG;
                        p += 4;
                        break;
                default: /* groups are not proto3 */
                        return -EBADMSG;
                }
        }
        if (ret_nested)
                *ret_nested = n_nested;
        return 0;
}

#define WIRE_FIELDS_MAX 64U /* per message level, known and unknown together */

static int wire_scan_claim(const uint8_t *buf, size_t size) {
        return wire_scan(buf, size, WIRE_FIELDS_MAX, 0, NULL, NULL);
}

static int wire_scan_claims_request(const uint8_t *buf, size_t size) {
        size_t n = 0;
        int r;

        r = wire_scan(buf, size, DRA_CLAIMS_MAX + WIRE_FIELDS_MAX, 1, wire_scan_claim, &n);
        if (r < 0)
                return r;
        return n > DRA_CLAIMS_MAX ? -E2BIG : 0;
}

/* ---- decoding ---- */

void dra_claim_list_done(DraClaimList *l) {
        if (!l)
                return;
        for (size_t i = 0; i < l->n_claims; i++) {
                free(l->claims[i].namespace_);
                free(l->claims[i].uid);
                free(l->claims[i].name);
        }
        for (size_t i = 0; i < l->n_rejected; i++) {
                free(l->rejected[i].uid);
                free(l->rejected[i].error);
        }
        free(l->claims);
        free(l->rejected);
        *l = (DraClaimList) {};
}

/* Kubernetes names and UIDs are short printable ASCII; anything else is not from a kubelet. */
static int claim_field_check(const char *s) {
        size_t n = 0;

        for (; s[n]; n++) {
                if (n >= DRA_CLAIM_FIELD_MAX)
                        return -ENAMETOOLONG;
                if (s[n] <= ' ' || s[n] >= 0x7f)
                        return -EINVAL;
        }
        return 0;
}

static const ProtobufCMessageDescriptor *claims_request_descriptor(GrpcMethod m) {
        switch (m) {
        case GRPC_METHOD_PREPARE_V1:
                return &V1_DESC(node_prepare_resources_request);
        case GRPC_METHOD_UNPREPARE_V1:
                return &V1_DESC(node_unprepare_resources_request);
        case GRPC_METHOD_PREPARE_V1BETA1:
                return &V1BETA1_DESC(node_prepare_resources_request);
        case GRPC_METHOD_UNPREPARE_V1BETA1:
                return &V1BETA1_DESC(node_unprepare_resources_request);
        default:
                return NULL;
        }
}

typedef struct ClaimIndex {
        const V1(Claim) *claim;
        size_t pos;
} ClaimIndex;

static int claim_index_compare(const void *a, const void *b) {
        const ClaimIndex *x = a, *y = b;
        int c = strcmp(x->claim->uid, y->claim->uid);

        if (c != 0)
                return c;
        return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static bool claim_same(const V1(Claim) *a, const V1(Claim) *b) {
        return streq(a->namespace_, b->namespace_) && streq(a->name, b->name);
}

static int claim_list_reject(DraClaimList *l, const char *uid, const char *error) {
        char *u = strdup(uid), *e = strdup(error);

        if (!u || !e) {
                free(u);
                free(e);
                return -ENOMEM;
        }
        l->rejected[l->n_rejected++] = (DraClaimRejection) { .uid = u, .error = e };
        return 0;
}

static int claim_list_add(DraClaimList *l, const V1(Claim) *c) {
        DraClaimRef ref = {
                .namespace_ = strdup(c->namespace_),
                .uid = strdup(c->uid),
                .name = strdup(c->name),
        };

        if (!ref.namespace_ || !ref.uid || !ref.name) {
                free(ref.namespace_);
                free(ref.uid);
                free(ref.name);
                return -ENOMEM;
        }
        l->claims[l->n_claims++] = ref;
        return 0;
}

/* Sort by UID to find duplicates in O(n log n); keep[] marks the claims that survive. */
static int claim_list_build(V1(Claim) *const *claims, size_t n, DraClaimList *l) {
        _cleanup_free_ ClaimIndex *idx = calloc(MAX(n, 1U), sizeof(ClaimIndex));
        _cleanup_free_ bool *keep = calloc(MAX(n, 1U), sizeof(bool));
        int r;

        if (!idx || !keep)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                idx[i] = (ClaimIndex) { .claim = claims[i], .pos = i };
        qsort(idx, n, sizeof(ClaimIndex), claim_index_compare);

        for (size_t i = 0, j; i < n; i = j) {
                bool conflict = false;

                for (j = i + 1; j < n && streq(idx[j].claim->uid, idx[i].claim->uid); j++)
                        if (!claim_same(idx[i].claim, idx[j].claim))
                                conflict = true;

                if (isempty(idx[i].claim->uid))
                        r = claim_list_reject(l, "", "claim without a UID");
                else if (conflict)
                        r = claim_list_reject(l, idx[i].claim->uid,
                                              "claim UID sent more than once with different names");
                else {
                        keep[idx[i].pos] = true; /* identical repeats collapse into the first */
                        r = 0;
                }
                if (r < 0)
                        return r;
        }

        for (size_t i = 0; i < n; i++)
                if (keep[i]) {
                        r = claim_list_add(l, claims[i]);
                        if (r < 0)
                                return r;
                }
        return 0;
}

int grpc_proto_decode_claims(GrpcMethod m, const uint8_t *buf, size_t size, DraClaimList *ret) {
        const ProtobufCMessageDescriptor *desc = claims_request_descriptor(m);
        _cleanup_(dra_claim_list_done) DraClaimList l = {};
        V1(NodePrepareResourcesRequest) *req;
        int r;

        if (!desc || !ret)
                return -EINVAL;

        r = wire_scan_claims_request(buf, size);
        if (r < 0)
                return r;

        req = (V1(NodePrepareResourcesRequest) *) protobuf_c_message_unpack(desc, NULL, size, buf);
        if (!req)
                return -EBADMSG;

        for (size_t i = 0; i < req->n_claims && r >= 0; i++) {
                const V1(Claim) *c = req->claims[i];
                r = claim_field_check(c->namespace_);
                if (r >= 0)
                        r = claim_field_check(c->uid);
                if (r >= 0)
                        r = claim_field_check(c->name);
        }
        if (r >= 0) {
                l.claims = calloc(MAX(req->n_claims, 1U), sizeof(DraClaimRef));
                l.rejected = calloc(MAX(req->n_claims, 1U), sizeof(DraClaimRejection));
                r = l.claims && l.rejected ? claim_list_build(req->claims, req->n_claims, &l) : -ENOMEM;
        }
        protobuf_c_message_free_unpacked(&req->base, NULL);
        if (r < 0)
                return r;

        *ret = l;
        l = (DraClaimList) {};
        return 0;
}

int grpc_proto_decode_empty(GrpcMethod m, const uint8_t *buf, size_t size) {
        const ProtobufCMessageDescriptor *desc;
        ProtobufCMessage *msg;
        int r;

        switch (m) {
        case GRPC_METHOD_GET_INFO:
                desc = &pluginregistration__info_request__descriptor;
                break;
        case GRPC_METHOD_WATCH_HEALTH_V1ALPHA1:
                desc = &v1alpha1__node_watch_resources_request__descriptor;
                break;
        case GRPC_METHOD_WATCH_HEALTH_V1:
                desc = &v1__node_watch_resources_request__descriptor;
                break;
        default:
                return -EINVAL;
        }

        r = wire_scan(buf, size, WIRE_FIELDS_MAX, 0, NULL, NULL);
        if (r < 0)
                return r;
        msg = protobuf_c_message_unpack(desc, NULL, size, buf);
        if (!msg)
                return -EBADMSG;
        protobuf_c_message_free_unpacked(msg, NULL);
        return 0;
}

int grpc_proto_decode_registration_status(const uint8_t *buf, size_t size, bool *ret_registered,
                                          char **ret_error) {
        Pluginregistration__RegistrationStatus *st;
        char *error;
        int r;

        r = wire_scan(buf, size, WIRE_FIELDS_MAX, 0, NULL, NULL);
        if (r < 0)
                return r;
        st = pluginregistration__registration_status__unpack(NULL, size, buf);
        if (!st)
                return -EBADMSG;

        /* Kept for a log line: bounded, and cut at the limit rather than refused. */
        error = strndup(st->error ? st->error : "", GRPC_REGISTRATION_ERROR_MAX);
        if (!error) {
                pluginregistration__registration_status__free_unpacked(st, NULL);
                return -ENOMEM;
        }
        *ret_registered = st->plugin_registered;
        *ret_error = error;
        pluginregistration__registration_status__free_unpacked(st, NULL);
        return 0;
}

/* ---- encoding ---- */

static int message_pack(const ProtobufCMessage *msg, uint8_t **ret, size_t *ret_size) {
        size_t n = protobuf_c_message_get_packed_size(msg);
        uint8_t *buf = malloc(MAX(n, 1U));

        if (!buf)
                return -ENOMEM;
        if (protobuf_c_message_pack(msg, buf) != n) {
                free(buf);
                return -EIO;
        }
        *ret = buf;
        *ret_size = n;
        return 0;
}

static size_t strv_length(char *const *l) {
        size_t n = 0;

        while (l && l[n])
                n++;
        return n;
}

/* protobuf-c wants char *; it never writes through them when packing. */
#define STR(s) ((char *) ((s) ? (s) : ""))

int grpc_proto_encode_prepare_response(DraApiVersion v, const DraClaimAnswer *answers, size_t n,
                                       uint8_t **ret, size_t *ret_size) {
        const ProtobufCMessageDescriptor *d_resp, *d_entry, *d_claim, *d_dev;
        size_t n_devices = 0;
        int r;

        if (v == DRA_API_V1) {
                d_resp = &V1_DESC(node_prepare_resources_response);
                d_entry = &V1_DESC(node_prepare_resources_response__claims_entry);
                d_claim = &V1_DESC(node_prepare_resource_response);
                d_dev = &V1_DESC(device);
        } else {
                d_resp = &V1BETA1_DESC(node_prepare_resources_response);
                d_entry = &V1BETA1_DESC(node_prepare_resources_response__claims_entry);
                d_claim = &V1BETA1_DESC(node_prepare_resource_response);
                d_dev = &V1BETA1_DESC(device);
        }

        for (size_t i = 0; i < n; i++)
                if (!answers[i].error)
                        n_devices += answers[i].n_devices;

        _cleanup_free_ V1(NodePrepareResourcesResponse__ClaimsEntry) *entries = calloc(MAX(n, 1U), sizeof(*entries));
        _cleanup_free_ V1(NodePrepareResourcesResponse__ClaimsEntry) **entry_ptrs = calloc(MAX(n, 1U), sizeof(void *));
        _cleanup_free_ V1(NodePrepareResourceResponse) *values = calloc(MAX(n, 1U), sizeof(*values));
        _cleanup_free_ V1(Device) *devs = calloc(MAX(n_devices, 1U), sizeof(*devs));
        _cleanup_free_ V1(Device) **dev_ptrs = calloc(MAX(n_devices, 1U), sizeof(void *));
        if (!entries || !entry_ptrs || !values || !devs || !dev_ptrs)
                return -ENOMEM;

        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                const DraClaimAnswer *a = &answers[i];

                values[i] = (V1(NodePrepareResourceResponse)) {
                        .base = PROTOBUF_C_MESSAGE_INIT(d_claim),
                        .error = STR(a->error),
                        .devices = a->error ? NULL : &dev_ptrs[k],
                };
                for (size_t j = 0; !a->error && j < a->n_devices; j++, k++) {
                        const DraDevice *dd = &a->devices[j];
                        devs[k] = (V1(Device)) {
                                .base = PROTOBUF_C_MESSAGE_INIT(d_dev),
                                .n_request_names = strv_length(dd->request_names),
                                .request_names = dd->request_names,
                                .pool_name = STR(dd->pool_name),
                                .device_name = STR(dd->device_name),
                                .n_cdi_device_ids = strv_length(dd->cdi_device_ids),
                                .cdi_device_ids = dd->cdi_device_ids,
                                .share_id = STR(dd->share_id),
                        };
                        dev_ptrs[k] = &devs[k];
                        values[i].n_devices++;
                }
                entries[i] = (V1(NodePrepareResourcesResponse__ClaimsEntry)) {
                        .base = PROTOBUF_C_MESSAGE_INIT(d_entry),
                        .key = STR(a->uid),
                        .value = &values[i],
                };
                entry_ptrs[i] = &entries[i];
        }

        V1(NodePrepareResourcesResponse) resp = {
                .base = PROTOBUF_C_MESSAGE_INIT(d_resp),
                .n_claims = n,
                .claims = entry_ptrs,
        };
        r = message_pack(&resp.base, ret, ret_size);
        return r;
}

int grpc_proto_encode_unprepare_response(DraApiVersion v, const DraClaimAnswer *answers, size_t n,
                                         uint8_t **ret, size_t *ret_size) {
        const ProtobufCMessageDescriptor *d_resp, *d_entry, *d_claim;

        if (v == DRA_API_V1) {
                d_resp = &V1_DESC(node_unprepare_resources_response);
                d_entry = &V1_DESC(node_unprepare_resources_response__claims_entry);
                d_claim = &V1_DESC(node_unprepare_resource_response);
        } else {
                d_resp = &V1BETA1_DESC(node_unprepare_resources_response);
                d_entry = &V1BETA1_DESC(node_unprepare_resources_response__claims_entry);
                d_claim = &V1BETA1_DESC(node_unprepare_resource_response);
        }

        _cleanup_free_ V1(NodeUnprepareResourcesResponse__ClaimsEntry) *entries = calloc(MAX(n, 1U), sizeof(*entries));
        _cleanup_free_ V1(NodeUnprepareResourcesResponse__ClaimsEntry) **entry_ptrs = calloc(MAX(n, 1U), sizeof(void *));
        _cleanup_free_ V1(NodeUnprepareResourceResponse) *values = calloc(MAX(n, 1U), sizeof(*values));
        if (!entries || !entry_ptrs || !values)
                return -ENOMEM;

        for (size_t i = 0; i < n; i++) {
                values[i] = (V1(NodeUnprepareResourceResponse)) {
                        .base = PROTOBUF_C_MESSAGE_INIT(d_claim),
                        .error = STR(answers[i].error),
                };
                entries[i] = (V1(NodeUnprepareResourcesResponse__ClaimsEntry)) {
                        .base = PROTOBUF_C_MESSAGE_INIT(d_entry),
                        .key = STR(answers[i].uid),
                        .value = &values[i],
                };
                entry_ptrs[i] = &entries[i];
        }

        V1(NodeUnprepareResourcesResponse) resp = {
                .base = PROTOBUF_C_MESSAGE_INIT(d_resp),
                .n_claims = n,
                .claims = entry_ptrs,
        };
        return message_pack(&resp.base, ret, ret_size);
}

int grpc_proto_encode_plugin_info(const char *driver_name, const char *endpoint, uint8_t **ret,
                                  size_t *ret_size) {
        Pluginregistration__PluginInfo info = PLUGINREGISTRATION__PLUGIN_INFO__INIT;

        if (isempty(driver_name) || isempty(endpoint))
                return -EINVAL;
        info.type = STR(DRA_PLUGIN_TYPE);
        info.name = STR(driver_name);
        info.endpoint = STR(endpoint);
        info.n_supported_versions = grpc_proto_n_supported_versions;
        info.supported_versions = (char **) grpc_proto_supported_versions;
        return message_pack(&info.base, ret, ret_size);
}

int grpc_proto_encode_health(GrpcMethod m, const DraDeviceHealth *devices, size_t n, uint8_t **ret,
                             size_t *ret_size) {
        const ProtobufCMessageDescriptor *d_resp, *d_health, *d_id;
        int r;

        if (m == GRPC_METHOD_WATCH_HEALTH_V1) {
                d_resp = &v1__node_watch_resources_response__descriptor;
                d_health = &v1__device_health__descriptor;
                d_id = &v1__device_identifier__descriptor;
        } else if (m == GRPC_METHOD_WATCH_HEALTH_V1ALPHA1) {
                d_resp = &v1alpha1__node_watch_resources_response__descriptor;
                d_health = &v1alpha1__device_health__descriptor;
                d_id = &v1alpha1__device_identifier__descriptor;
        } else
                return -EINVAL;

        _cleanup_free_ V1__DeviceHealth *health = calloc(MAX(n, 1U), sizeof(*health));
        _cleanup_free_ V1__DeviceHealth **health_ptrs = calloc(MAX(n, 1U), sizeof(void *));
        _cleanup_free_ V1__DeviceIdentifier *ids = calloc(MAX(n, 1U), sizeof(*ids));
        _cleanup_free_ char **messages = calloc(MAX(n, 1U), sizeof(char *));
        if (!health || !health_ptrs || !ids || !messages)
                return -ENOMEM;

        r = 0;
        for (size_t i = 0; i < n && r >= 0; i++) {
                const DraDeviceHealth *d = &devices[i];

                messages[i] = strndup(STR(d->message), DRA_HEALTH_MESSAGE_MAX);
                if (!messages[i]) {
                        r = -ENOMEM;
                        break;
                }
                ids[i] = (V1__DeviceIdentifier) {
                        .base = PROTOBUF_C_MESSAGE_INIT(d_id),
                        .pool_name = STR(d->pool_name),
                        .device_name = STR(d->device_name),
                };
                health[i] = (V1__DeviceHealth) {
                        .base = PROTOBUF_C_MESSAGE_INIT(d_health),
                        .device = &ids[i],
                        .health = IN_SET(d->health, DRA_HEALTH_HEALTHY, DRA_HEALTH_UNHEALTHY)
                                          ? (V1__HealthStatus) d->health
                                          : V1__HEALTH_STATUS__UNKNOWN,
                        .last_updated_time = d->last_updated,
                        .health_check_timeout_seconds = MAX(d->timeout_seconds, 0),
                        .message = messages[i],
                };
                health_ptrs[i] = &health[i];
        }

        if (r >= 0) {
                V1__NodeWatchResourcesResponse resp = {
                        .base = PROTOBUF_C_MESSAGE_INIT(d_resp),
                        .n_devices = n,
                        .devices = health_ptrs,
                };
                r = message_pack(&resp.base, ret, ret_size);
        }
        for (size_t i = 0; i < n; i++)
                free(messages[i]);
        return r;
}

int grpc_proto_encode_empty(uint8_t **ret, size_t *ret_size) {
        uint8_t *buf = malloc(1);

        if (!buf)
                return -ENOMEM;
        *ret = buf;
        *ret_size = 0;
        return 0;
}
