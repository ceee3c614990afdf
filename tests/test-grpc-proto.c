/* SPDX-License-Identifier: Apache-2.0 */

/* The protobuf mapping of the kubelet APIs, without sockets: bytes in, structs out, and back. */

#include "dra-v1.pb-c.h"
#include "dra-v1beta1.pb-c.h"
#include "grpc-proto.h"
#include "health-v1.pb-c.h"
#include "health-v1alpha1.pb-c.h"
#include "pluginregistration.pb-c.h"
#include "tests.h"

#define V1(name) K8s__Io__Kubelet__Pkg__Apis__Dra__V1__##name
#define V1_FN(name) k8s__io__kubelet__pkg__apis__dra__v1__##name

typedef struct Claim3 {
        const char *ns, *name, *uid;
} Claim3;

/* A v1 NodePrepareResourcesRequest as the kubelet would send it. */
static uint8_t *request_pack(const Claim3 *claims, size_t n, size_t *ret_size) {
        V1(Claim) *c = calloc(n + 1, sizeof(*c));
        V1(Claim) **p = calloc(n + 1, sizeof(*p));
        V1(NodePrepareResourcesRequest) req = K8S__IO__KUBELET__PKG__APIS__DRA__V1__NODE_PREPARE_RESOURCES_REQUEST__INIT;
        uint8_t *buf;

        ASSERT_NOT_NULL(c);
        ASSERT_NOT_NULL(p);
        for (size_t i = 0; i < n; i++) {
                V1_FN(claim__init)(&c[i]);
                c[i].namespace_ = (char *) claims[i].ns;
                c[i].name = (char *) claims[i].name;
                c[i].uid = (char *) claims[i].uid;
                p[i] = &c[i];
        }
        req.n_claims = n;
        req.claims = p;
        *ret_size = V1_FN(node_prepare_resources_request__get_packed_size)(&req);
        buf = malloc(*ret_size + 1);
        ASSERT_NOT_NULL(buf);
        V1_FN(node_prepare_resources_request__pack)(&req, buf);
        free(c);
        free(p);
        return buf;
}

static void test_method_paths(void) {
        for (GrpcMethod m = 0; m < _GRPC_METHOD_MAX; m++) {
                const char *p = grpc_method_to_path(m);
                GrpcSocketKind k = m <= GRPC_METHOD_NOTIFY_REGISTRATION_STATUS ? GRPC_SOCKET_REGISTRATION
                                                                              : GRPC_SOCKET_DRA;
                ASSERT_NOT_NULL(p);
                ASSERT_EQ(grpc_method_from_path(k, p, strlen(p)), m);
                /* Not served on the other socket, nor with a byte missing. */
                ASSERT_EQ(grpc_method_from_path(!k, p, strlen(p)), _GRPC_METHOD_INVALID);
                ASSERT_EQ(grpc_method_from_path(k, p, strlen(p) - 1), _GRPC_METHOD_INVALID);
        }
        ASSERT_NULL(grpc_method_to_path(_GRPC_METHOD_MAX));
        ASSERT_EQ(grpc_method_from_path(GRPC_SOCKET_DRA, "", 0), _GRPC_METHOD_INVALID);
        ASSERT_TRUE(grpc_method_is_prepare(GRPC_METHOD_PREPARE_V1BETA1));
        ASSERT_TRUE(grpc_method_is_unprepare(GRPC_METHOD_UNPREPARE_V1));
        ASSERT_TRUE(grpc_method_is_health(GRPC_METHOD_WATCH_HEALTH_V1ALPHA1));
        ASSERT_EQ(grpc_method_api_version(GRPC_METHOD_UNPREPARE_V1BETA1), DRA_API_V1BETA1);
        ASSERT_EQ(grpc_method_api_version(GRPC_METHOD_PREPARE_V1), DRA_API_V1);
}

static void test_decode_claims(void) {
        const Claim3 in[] = {
                { "default", "a", "uid-a" },
                { "default", "b", "uid-b" },
                { "default", "a", "uid-a" },       /* identical repeat: collapses */
                { "default", "nouid", "" },        /* rejected */
                { "other", "c", "uid-c" },
                { "other", "c-renamed", "uid-c" }, /* conflicts with the previous one */
                { "", "", "uid-d" },               /* empty names are the kubelet's business */
        };
        DraClaimList l = {};
        size_t size;
        uint8_t *buf = request_pack(in, ELEMENTSOF(in), &size);

        for (GrpcMethod m = GRPC_METHOD_PREPARE_V1; m <= GRPC_METHOD_UNPREPARE_V1BETA1; m++) {
                ASSERT_OK(grpc_proto_decode_claims(m, buf, size, &l));
                ASSERT_EQ(l.n_claims, 3);
                ASSERT_STREQ(l.claims[0].uid, "uid-a");
                ASSERT_STREQ(l.claims[0].name, "a");
                ASSERT_STREQ(l.claims[1].uid, "uid-b");
                ASSERT_STREQ(l.claims[2].uid, "uid-d");
                ASSERT_STREQ(l.claims[2].namespace_, "");
                ASSERT_EQ(l.n_rejected, 2);
                ASSERT_STREQ(l.rejected[0].uid, "");
                ASSERT_STREQ(l.rejected[1].uid, "uid-c");
                ASSERT_NOT_NULL(strstr(l.rejected[1].error, "different names"));
                dra_claim_list_done(&l);
        }
        ASSERT_EQ(grpc_proto_decode_claims(GRPC_METHOD_GET_INFO, buf, size, &l), -EINVAL);
        ASSERT_EQ(grpc_proto_decode_claims(GRPC_METHOD_PREPARE_V1, buf, size - 1, &l), -EBADMSG);
        free(buf);

        /* Empty request: no claims. */
        ASSERT_OK(grpc_proto_decode_claims(GRPC_METHOD_PREPARE_V1, (const uint8_t *) "", 0, &l));
        ASSERT_EQ(l.n_claims + l.n_rejected, 0);
        dra_claim_list_done(&l);

        const uint8_t garbage[] = { 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01 };
        ASSERT_EQ(grpc_proto_decode_claims(GRPC_METHOD_PREPARE_V1, garbage, sizeof(garbage), &l), -EBADMSG);
        const uint8_t group[] = { 0x0b, 0x0c }; /* proto2 groups do not exist in proto3 */
        ASSERT_EQ(grpc_proto_decode_claims(GRPC_METHOD_PREPARE_V1, group, sizeof(group), &l), -EBADMSG);
}

static void test_decode_limits(void) {
        Claim3 *many = calloc(DRA_CLAIMS_MAX + 1, sizeof(Claim3));
        char (*uids)[16] = calloc(DRA_CLAIMS_MAX + 1, 16);
        char longname[DRA_CLAIM_FIELD_MAX + 2];
        DraClaimList l = {};
        uint8_t *buf;
        size_t size;

        ASSERT_NOT_NULL(many);
        ASSERT_NOT_NULL(uids);
        for (size_t i = 0; i <= DRA_CLAIMS_MAX; i++) {
                snprintf(uids[i], 16, "u%zu", i);
                many[i] = (Claim3) { "ns", "n", uids[i] };
        }
        buf = request_pack(many, DRA_CLAIMS_MAX, &size);
        ASSERT_OK(grpc_proto_decode_claims(GRPC_METHOD_PREPARE_V1, buf, size, &l));
        ASSERT_EQ(l.n_claims, DRA_CLAIMS_MAX);
        dra_claim_list_done(&l);
        free(buf);
        buf = request_pack(many, DRA_CLAIMS_MAX + 1, &size);
        ASSERT_EQ(grpc_proto_decode_claims(GRPC_METHOD_PREPARE_V1, buf, size, &l), -E2BIG);
        free(buf);
        free(many);
        free(uids);

        memset(longname, 'x', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = '\0';
        buf = request_pack(&(Claim3) { "ns", longname, "uid" }, 1, &size);
        ASSERT_EQ(grpc_proto_decode_claims(GRPC_METHOD_PREPARE_V1, buf, size, &l), -ENAMETOOLONG);
        free(buf);
        longname[DRA_CLAIM_FIELD_MAX] = '\0';
        buf = request_pack(&(Claim3) { "ns", longname, "uid" }, 1, &size);
        ASSERT_OK(grpc_proto_decode_claims(GRPC_METHOD_PREPARE_V1, buf, size, &l));
        dra_claim_list_done(&l);
        free(buf);
        buf = request_pack(&(Claim3) { "ns", "bad\nname", "uid" }, 1, &size);
        ASSERT_EQ(grpc_proto_decode_claims(GRPC_METHOD_PREPARE_V1, buf, size, &l), -EINVAL);
        free(buf);

        /* Tiny unknown fields in bulk are refused before protobuf-c allocates for them. */
        size = 2 * 10000;
        buf = malloc(size);
        ASSERT_NOT_NULL(buf);
        for (size_t i = 0; i < size; i += 2) {
                buf[i] = 0x78; /* field 15, varint */
                buf[i + 1] = 0x01;
        }
        ASSERT_EQ(grpc_proto_decode_claims(GRPC_METHOD_PREPARE_V1, buf, size, &l), -E2BIG);
        ASSERT_EQ(grpc_proto_decode_empty(GRPC_METHOD_GET_INFO, buf, size), -E2BIG);
        free(buf);
}

static void test_encode_prepare(void) {
        char *req_names[] = { "gpu", NULL };
        char *cdi[] = { "k8s.hami-core-gpu.project-hami.io/gpu=hami-gpu-0", NULL };
        DraDevice dev = {
                .request_names = req_names,
                .pool_name = "node-a",
                .device_name = "hami-gpu-0",
                .cdi_device_ids = cdi,
                .share_id = "6a9f1a9e-0000-4000-8000-000000000001",
        };
        DraClaimAnswer answers[] = {
                { .uid = "uid-ok", .devices = &dev, .n_devices = 1 },
                { .uid = "uid-bad", .error = "device busy", .devices = &dev, .n_devices = 1 },
                { .uid = "uid-none" },
        };

        for (DraApiVersion v = DRA_API_V1; v <= DRA_API_V1BETA1; v++) {
                uint8_t *buf;
                size_t size;

                ASSERT_OK(grpc_proto_encode_prepare_response(v, answers, ELEMENTSOF(answers), &buf, &size));
                /* Read back as v1 whatever version was written: share_id shows what is on the wire. */
                V1(NodePrepareResourcesResponse) *r = V1_FN(node_prepare_resources_response__unpack)(NULL, size, buf);
                ASSERT_NOT_NULL(r);
                ASSERT_EQ(r->n_claims, 3);
                ASSERT_STREQ(r->claims[0]->key, "uid-ok");
                ASSERT_STREQ(r->claims[0]->value->error, "");
                ASSERT_EQ(r->claims[0]->value->n_devices, 1);
                V1(Device) *d = r->claims[0]->value->devices[0];
                ASSERT_STREQ(d->pool_name, "node-a");
                ASSERT_STREQ(d->device_name, "hami-gpu-0");
                ASSERT_EQ(d->n_request_names, 1);
                ASSERT_STREQ(d->request_names[0], "gpu");
                ASSERT_EQ(d->n_cdi_device_ids, 1);
                ASSERT_STREQ(d->cdi_device_ids[0], cdi[0]);
                ASSERT_STREQ(d->share_id, v == DRA_API_V1 ? dev.share_id : "");
                ASSERT_STREQ(r->claims[1]->key, "uid-bad");
                ASSERT_STREQ(r->claims[1]->value->error, "device busy");
                ASSERT_EQ(r->claims[1]->value->n_devices, 0); /* a failed claim carries no devices */
                ASSERT_STREQ(r->claims[2]->key, "uid-none");
                ASSERT_EQ(r->claims[2]->value->n_devices, 0);
                V1_FN(node_prepare_resources_response__free_unpacked)(r, NULL);
                free(buf);

                ASSERT_OK(grpc_proto_encode_unprepare_response(v, answers, ELEMENTSOF(answers), &buf, &size));
                V1(NodeUnprepareResourcesResponse) *u = V1_FN(node_unprepare_resources_response__unpack)(NULL, size, buf);
                ASSERT_NOT_NULL(u);
                ASSERT_EQ(u->n_claims, 3);
                ASSERT_STREQ(u->claims[0]->value->error, "");
                ASSERT_STREQ(u->claims[1]->value->error, "device busy");
                V1_FN(node_unprepare_resources_response__free_unpacked)(u, NULL);
                free(buf);
        }
}

static void test_plugin_info(void) {
        uint8_t *buf;
        size_t size;

        ASSERT_OK(grpc_proto_encode_plugin_info("hami-core-gpu.project-hami.io", "/run/x/dra.sock", &buf, &size));
        Pluginregistration__PluginInfo *info = pluginregistration__plugin_info__unpack(NULL, size, buf);
        ASSERT_NOT_NULL(info);
        ASSERT_STREQ(info->type, "DRAPlugin");
        ASSERT_STREQ(info->name, "hami-core-gpu.project-hami.io");
        ASSERT_STREQ(info->endpoint, "/run/x/dra.sock");
        ASSERT_EQ(info->n_supported_versions, 4);
        ASSERT_STREQ(info->supported_versions[0], "v1.DRAPlugin");
        ASSERT_STREQ(info->supported_versions[1], "v1beta1.DRAPlugin");
        ASSERT_STREQ(info->supported_versions[2], "v1alpha1.DRAResourceHealth");
        ASSERT_STREQ(info->supported_versions[3], "v1.DRAResourceHealth");
        pluginregistration__plugin_info__free_unpacked(info, NULL);
        free(buf);
        ASSERT_EQ(grpc_proto_encode_plugin_info("", "/x", &buf, &size), -EINVAL);

        ASSERT_OK(grpc_proto_decode_empty(GRPC_METHOD_GET_INFO, (const uint8_t *) "", 0));
        ASSERT_EQ(grpc_proto_decode_empty(GRPC_METHOD_PREPARE_V1, (const uint8_t *) "", 0), -EINVAL);
}

static void test_registration_status(void) {
        Pluginregistration__RegistrationStatus st = PLUGINREGISTRATION__REGISTRATION_STATUS__INIT;
        uint8_t buf[64];
        size_t size;
        bool registered = true;
        char *error = NULL;

        st.plugin_registered = false;
        st.error = (char *) "no handler registered for plugin type";
        size = pluginregistration__registration_status__pack(&st, buf);
        ASSERT_OK(grpc_proto_decode_registration_status(buf, size, &registered, &error));
        ASSERT_FALSE(registered);
        ASSERT_STREQ(error, "no handler registered for plugin type");
        free(error);

        ASSERT_OK(grpc_proto_decode_registration_status(buf, 0, &registered, &error));
        ASSERT_FALSE(registered);
        ASSERT_STREQ(error, "");
        free(error);
        ASSERT_EQ(grpc_proto_decode_registration_status(buf, 3, &registered, &error), -EBADMSG);
}

static void test_health(void) {
        char longmsg[3000];
        memset(longmsg, 'm', sizeof(longmsg) - 1);
        longmsg[sizeof(longmsg) - 1] = '\0';
        DraDeviceHealth h[] = {
                { "node-a", "hami-gpu-0", DRA_HEALTH_HEALTHY, 1700000000, 0, "" },
                { "node-a", "hami-gpu-1", DRA_HEALTH_UNHEALTHY, 1700000001, 60, longmsg },
                { "node-a", "hami-gpu-2", (DraHealthStatus) 7, 1700000002, -5, NULL },
        };

        for (GrpcMethod m = GRPC_METHOD_WATCH_HEALTH_V1ALPHA1; m <= GRPC_METHOD_WATCH_HEALTH_V1; m++) {
                uint8_t *buf;
                size_t size;

                ASSERT_OK(grpc_proto_encode_health(m, h, ELEMENTSOF(h), &buf, &size));
                V1__NodeWatchResourcesResponse *r = v1__node_watch_resources_response__unpack(NULL, size, buf);
                ASSERT_NOT_NULL(r);
                ASSERT_EQ(r->n_devices, 3);
                ASSERT_STREQ(r->devices[0]->device->pool_name, "node-a");
                ASSERT_STREQ(r->devices[0]->device->device_name, "hami-gpu-0");
                ASSERT_EQ(r->devices[0]->health, V1__HEALTH_STATUS__HEALTHY);
                ASSERT_EQ(r->devices[0]->last_updated_time, 1700000000);
                ASSERT_EQ(r->devices[1]->health, V1__HEALTH_STATUS__UNHEALTHY);
                ASSERT_EQ(r->devices[1]->health_check_timeout_seconds, 60);
                ASSERT_EQ(strlen(r->devices[1]->message), DRA_HEALTH_MESSAGE_MAX);
                ASSERT_EQ(r->devices[2]->health, V1__HEALTH_STATUS__UNKNOWN);
                ASSERT_EQ(r->devices[2]->health_check_timeout_seconds, 0);
                v1__node_watch_resources_response__free_unpacked(r, NULL);
                free(buf);
        }
        uint8_t *buf;
        size_t size;
        ASSERT_EQ(grpc_proto_encode_health(GRPC_METHOD_GET_INFO, h, 1, &buf, &size), -EINVAL);
        ASSERT_OK(grpc_proto_encode_health(GRPC_METHOD_WATCH_HEALTH_V1, NULL, 0, &buf, &size));
        ASSERT_EQ(size, 0);
        free(buf);
}

int main(void) {
        TEST(test_method_paths);
        TEST(test_decode_claims);
        TEST(test_decode_limits);
        TEST(test_encode_prepare);
        TEST(test_plugin_info);
        TEST(test_registration_status);
        TEST(test_health);
        return 0;
}
