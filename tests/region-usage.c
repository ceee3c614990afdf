/* SPDX-License-Identifier: Apache-2.0 */

/*
 * For test-container-chain.py: what the daemon's reader (shared_region_read_usage, the
 * same code behind the D-Bus usage properties) sees in a claim's region, as shell-style
 * assignments: N_ACTIVE, USED_0, LIMIT_0, SM_LIMIT_0, and SLOTS_USED (the header's
 * high-water mark of slots ever claimed, i.e. how many processes attached).
 */

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "shared-region.h"

int main(int argc, char **argv) {
        SharedRegionHeader h;
        SharedRegionUsage u;
        int fd, r;

        if (argc != 2) {
                fprintf(stderr, "usage: %s REGION\n", argv[0]);
                return 2;
        }
        r = shared_region_read_usage(argv[1], &u);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", argv[1], strerror(-r));
                return 1;
        }
        fd = open(argv[1], O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 || read(fd, &h, sizeof(h)) != (ssize_t) sizeof(h)) {
                fprintf(stderr, "%s: cannot read the header\n", argv[1]);
                return 1;
        }
        close(fd);
        printf("N_ACTIVE=%" PRIu32 "\nUSED_0=%" PRIu64 "\nLIMIT_0=%" PRIu64 "\nSM_LIMIT_0=%" PRIu32
               "\nSLOTS_USED=%" PRIu32 "\nDEGRADED=%" PRIu32 "\nMEASURED_SM_0=%" PRIu32
               "\nMEASURED_PROCS_0=%" PRIu32 "\nMEASURED_SEQ_0=%" PRIu64 "\nFOOTPRINT_EXTRA_0=%" PRIu64
               "\nCONTEXT_BYTES_0=%" PRIu64 "\nPHASE_NS_0=%" PRIu64 "\n",
               u.n_active, u.used[0], u.limit[0], u.sm_limit[0], h.slot_hwm, u.degraded, h.devices[0].measured_sm,
               h.devices[0].measured_procs, h.devices[0].measured_seq, h.devices[0].footprint_extra,
               h.devices[0].context_bytes, h.devices[0].phase_ns);
        return 0;
}
