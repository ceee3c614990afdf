/* SPDX-License-Identifier: Apache-2.0 */

/* Any body through both webhooks: no crash, every refusal says why, every answer is JSON. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "json-util.h"
#include "webhook.h"

static void check(int r, WebhookResult *res) {
        if (r == 0) {
                json_object *o = json_tokener_parse(res->response);
                if (!o)
                        abort();  /* the answer is JSON */
                json_object_put(o);
                for (size_t i = 0; i < res->n_templates; i++) {
                        o = json_tokener_parse(res->templates[i]);
                        if (!o)
                                abort();
                        json_object_put(o);
                }
                if (!res->allowed && res->error[0] == '\0')
                        abort();  /* a refusal says why */
        } else if ((r == -EBADMSG || r == -E2BIG) && res->error[0] == '\0')
                abort();
        webhook_result_done(res);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint64_t sizes[] = { UINT64_C(23028) << 20, UINT64_C(81559) << 20 };
        WebhookInventory inv = { .memory_bytes = sizes, .n = 2 };
        WebhookResult res = {};

        check(webhook_mutate((const char *) data, size, &inv, &res), &res);
        check(webhook_mutate((const char *) data, size, NULL, &res), &res);
        check(webhook_validate((const char *) data, size, &res), &res);
        return 0;
}
