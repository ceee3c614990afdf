/* SPDX-License-Identifier: Apache-2.0 */

/* What the driver tells us (versions, PCI bus ids) before it becomes an attribute. */

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "gpu.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char in[256], out[GPU_STRING_MAX];

        if (size >= sizeof(in))
                return 0;
        memcpy(in, data, size);
        in[size] = '\0';

        if (version_to_semver(in, out, sizeof(out)) >= 0) {
                /* Semver core: three dot-separated numbers without leading zeros. */
                unsigned dots = 0;
                for (const char *p = out; *p; p++) {
                        if (*p == '.')
                                dots++;
                        else if (*p < '0' || *p > '9')
                                abort();
                        if ((p == out || p[-1] == '.') && *p == '0' && p[1] != '.' && p[1] != '\0')
                                abort();
                }
                if (dots != 2)
                        abort();
        }
        if (pci_bus_id_normalize(in, out, sizeof(out)) >= 0 &&
            (strlen(out) != 12 && strlen(out) != 16))
                abort();
        return 0;
}
