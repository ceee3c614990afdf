/* SPDX-License-Identifier: Apache-2.0 */

/*
 * For test-prepare-container.sh: build a fixture host, prepare one claim with two
 * results (a 10 GiB/50% share of hami-gpu-0 and the whole of hami-gpu-1) and print
 * shell assignments: ROOT, CDI_DIR, STATE_DIR, PRELOAD, CLAIM_UID, CDI_IDS (space separated).
 * The fixture is kept; the script removes ROOT.
 */

#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "macro.h"
#include "prepare-fixture.h"
#include "prepare.h"
#include "tests.h"

#define UID "0c6a3d6e-2f8e-4c6b-9b7e-4a2a0f1c9d11"
#define S1 "6f1c2f1e-0000-4000-8000-000000000001"

int main(void) {
        FixtureResult r[] = {
                { .device = "hami-gpu-0", .share_id = S1, .memory = "10Gi", .cores = "50" },
                { .device = "hami-gpu-1" },
        };
        PreparedClaim c;
        Fixture fx;
        Preparer *p;

        log_set_max_level(LOG_WARNING);
        fixture_init(&fx, 2);
        fixture_prepare_claim(&fx, UID, "container", r, ELEMENTSOF(r), &p, &c);

        printf("ROOT=%s\nCDI_DIR=%s\nSTATE_DIR=%s\nPRELOAD=%s\nCLAIM_UID=%s\nCDI_IDS='", fx.root, fx.cdi_dir,
               fx.state_dir, fx.preload, UID);
        for (size_t i = 0; i < c.n_devices; i++)
                printf("%s%s", i ? " " : "", c.devices[i].cdi_device_id);
        printf("'\n");
        prepared_claim_done(&c);
        preparer_free(p);
        setenv("HAMI_KEEP_FIXTURE", "1", 1);
        fixture_done(&fx);
        return 0;
}
