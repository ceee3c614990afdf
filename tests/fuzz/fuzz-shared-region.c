/* SPDX-License-Identifier: Apache-2.0 */

/* The daemon's view of a region file written by a (hostile) container. */

#include <stdlib.h>

#include "fuzz.h"
#include "shared-region.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        SharedRegionUsage u;

        if (shared_region_validate(data, size) >= 0 && shared_region_validate_prefix(data, size) < 0)
                abort(); /* a whole region is a valid prefix */
        if (shared_region_validate_prefix(data, size) < 0) {
                if (shared_region_parse_usage(data, size, -1, &u) >= 0)
                        abort(); /* parse must refuse what validation refuses */
                return 0;
        }
        if (shared_region_parse_usage(data, size, -1, &u) < 0)
                abort();
        if (u.n_devices == 0 || u.n_devices > SHARED_REGION_DEVICES_MAX || u.n_active > SHARED_REGION_SLOTS_MAX)
                abort();
        return 0;
}
