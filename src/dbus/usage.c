/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The live-usage hook of the bus objects: what a claim's containers use, read from its
 * shared-region file with the validating reader of src/shared-region.h (the file is
 * written inside the containers: hostile; the reader takes no lock and maps nothing).
 */

#include "dbus/server.h"
#include "shared-region.h"

int bus_usage_read_shared_region(const char *shared_region, SharedRegionUsage *ret) {
        return shared_region_read_usage(shared_region, ret);
}
