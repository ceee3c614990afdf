/* SPDX-License-Identifier: Apache-2.0 */

/*
 * mkregion PATH MEMORY_LIMIT_BYTES SM_LIMIT_PERCENT
 *
 * Creates a shared region as the daemon does for a claim (one device, the limits
 * recorded, mode 0666), so that bench/gpu/run.sh can start the usage monitor on it
 * before the tenant's first process exists. 0 means no limit recorded.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared-region.h"

int main(int argc, char **argv) {
        uint64_t limits[SHARED_REGION_DEVICES_MAX] = { 0 };
        uint32_t sm_limits[SHARED_REGION_DEVICES_MAX] = { 0 };
        int r;

        if (argc != 4) {
                fprintf(stderr, "usage: mkregion PATH MEMORY_LIMIT_BYTES SM_LIMIT_PERCENT\n");
                return 1;
        }
        limits[0] = strtoull(argv[2], NULL, 10);
        sm_limits[0] = (uint32_t) strtoul(argv[3], NULL, 10);
        r = shared_region_create(argv[1], 1, SHARED_REGION_SLOTS_DEFAULT, limits, sm_limits, 0666);
        if (r < 0) {
                fprintf(stderr, "mkregion: %s: %s\n", argv[1], strerror(-r));
                return 1;
        }
        return 0;
}
