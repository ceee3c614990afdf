/* SPDX-License-Identifier: Apache-2.0 */

/*
 * Every decoder the kubelet's bytes reach. Input: one byte choosing the method, then the
 * message as it would arrive on the wire. Whatever decodes is encoded back into a
 * response, which must itself decode with one entry per claim.
 */

#include <stdlib.h>

#include "dra-v1.pb-c.h"
#include "fuzz.h"
#include "grpc-proto.h"

static void check_claims_roundtrip(GrpcMethod m, const DraClaimList *l) {
        size_t n = l->n_claims + l->n_rejected, k = 0;
        DraClaimAnswer *a = calloc(n + 1, sizeof(DraClaimAnswer));
        char *cdi[] = { "k8s.hami-core-gpu.project-hami.io/gpu=hami-gpu-0", NULL };
        DraDevice dev = { .pool_name = "pool", .device_name = "hami-gpu-0", .cdi_device_ids = cdi, .share_id = "s" };
        uint8_t *buf;
        size_t size;
        int r;

        if (!a)
                return;
        for (size_t i = 0; i < l->n_claims; i++) {
                if (l->claims[i].uid[0] == '\0')
                        abort(); /* empty UIDs never reach the daemon */
                a[k++] = (DraClaimAnswer) { .uid = l->claims[i].uid, .devices = &dev, .n_devices = 1 };
        }
        for (size_t i = 0; i < l->n_rejected; i++)
                a[k++] = (DraClaimAnswer) { .uid = l->rejected[i].uid, .error = l->rejected[i].error };

        if (grpc_method_is_prepare(m))
                r = grpc_proto_encode_prepare_response(grpc_method_api_version(m), a, n, &buf, &size);
        else
                r = grpc_proto_encode_unprepare_response(grpc_method_api_version(m), a, n, &buf, &size);
        free(a);
        if (r < 0)
                return;
        /* The map is one entry per answer; v1 and v1beta1 responses share the layout. */
        K8s__Io__Kubelet__Pkg__Apis__Dra__V1__NodeUnprepareResourcesResponse *u =
                k8s__io__kubelet__pkg__apis__dra__v1__node_unprepare_resources_response__unpack(NULL, size, buf);
        if (!u || u->n_claims != n)
                abort();
        k8s__io__kubelet__pkg__apis__dra__v1__node_unprepare_resources_response__free_unpacked(u, NULL);
        free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        DraClaimList l = {};
        GrpcMethod m;
        bool registered;
        char *error;

        if (size < 1)
                return 0;
        m = (GrpcMethod) (data[0] % _GRPC_METHOD_MAX);
        data++;
        size--;

        (void) grpc_method_from_path(GRPC_SOCKET_DRA, (const char *) data, size);

        switch (m) {
        case GRPC_METHOD_GET_INFO:
        case GRPC_METHOD_WATCH_HEALTH_V1ALPHA1:
        case GRPC_METHOD_WATCH_HEALTH_V1:
                (void) grpc_proto_decode_empty(m, data, size);
                break;
        case GRPC_METHOD_NOTIFY_REGISTRATION_STATUS:
                if (grpc_proto_decode_registration_status(data, size, &registered, &error) >= 0) {
                        if (strlen(error) > GRPC_REGISTRATION_ERROR_MAX)
                                abort();
                        free(error);
                }
                break;
        default:
                if (grpc_proto_decode_claims(m, data, size, &l) >= 0) {
                        if (l.n_claims > DRA_CLAIMS_MAX || l.n_rejected > DRA_CLAIMS_MAX)
                                abort();
                        check_claims_roundtrip(m, &l);
                        dra_claim_list_done(&l);
                }
                break;
        }
        return 0;
}
