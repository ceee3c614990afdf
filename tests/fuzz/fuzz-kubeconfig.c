/* SPDX-License-Identifier: Apache-2.0 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "kubeconfig.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        KubeCredentials c = {};

        if (size > KUBECONFIG_SIZE_MAX)
                return 0;
        log_set_max_level(LOG_CRIT);
        if (kubeconfig_parse((const char *) data, size, "/fuzz/kubeconfig", &c) >= 0) {
                char buf[512];
                if (!c.server || strncmp(c.server, "https://", 8) != 0)
                        abort();
                if (!c.client_cert.path && !c.client_cert.data && !c.token && !c.token_file)
                        abort();
                (void) kube_credentials_describe(&c, buf, sizeof(buf));
                kube_credentials_done(&c);
        }
        return 0;
}
