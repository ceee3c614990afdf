/* SPDX-License-Identifier: Apache-2.0 */

/*
 * Any 404 body through the Status parser that decides whether a recovered claim was
 * deleted (kube_status_proves_not_found()): no crash, and a proof always names the claim.
 */

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "kube-client.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *body = (const char *) data;
        KubeStatus s = {};

        if (kube_status_parse(body, size, &s) >= 0) {
                /* Strings never hide a NUL: they are whole C strings. */
                if ((s.name && strlen(s.name) > size) || (s.reason && strlen(s.reason) > size))
                        abort();
                kube_status_done(&s);
        }
        if (kube_status_proves_not_found(body, size, "resource.k8s.io", "resourceclaims", "claim-1")) {
                /* A proof parses, says NotFound and names our claim. */
                if (kube_status_parse(body, size, &s) < 0 || !streq_ptr(s.reason, "NotFound") ||
                    !streq_ptr(s.name, "claim-1") || !streq_ptr(s.kind, "resourceclaims"))
                        abort();
                kube_status_done(&s);
        }
        (void) kube_status_proves_not_found(body, size, "", "nodes", "node-1");
        return 0;
}
