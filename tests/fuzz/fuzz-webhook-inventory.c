/* SPDX-License-Identifier: Apache-2.0 */

/*
 * Any ResourceSliceList body through the webhook's inventory decoder (the memory sizes
 * that gpumem-percentage is computed from), then a pod through the mutating webhook
 * with that inventory: no crash, no leak.
 */

#include <stdlib.h>

#include "fuzz.h"
#include "webhook.h"

static const char pod[] =
        "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"u1\","
        "\"kind\":{\"group\":\"\",\"version\":\"v1\",\"kind\":\"Pod\"},\"operation\":\"CREATE\","
        "\"namespace\":\"default\",\"object\":{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\","
        "\"namespace\":\"default\"},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"i\",\"resources\":{"
        "\"limits\":{\"nvidia.com/gpu\":\"1\",\"nvidia.com/gpumem-percentage\":\"50\"}}}]}}}}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint64_t *mem = NULL;
        size_t n = 0;

        if (webhook_inventory_parse((const char *) data, size, &mem, &n) >= 0) {
                WebhookInventory inv = { .memory_bytes = mem, .n = n };
                WebhookResult res = {};

                if (n > 0 && !mem)
                        abort();
                (void) webhook_mutate(pod, sizeof(pod) - 1, &inv, &res);
                webhook_result_done(&res);
        }
        free(mem);
        return 0;
}
