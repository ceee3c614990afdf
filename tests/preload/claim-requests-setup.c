/* SPDX-License-Identifier: Apache-2.0 */

/*
 * For test-claim-requests.py: build a fixture host, prepare one claim with two requests
 * on two GPUs ("a": 2 GiB / 20 % of hami-gpu-0, "b": 1 GiB / 10 % of hami-gpu-1) and
 * print ROOT, SPEC (the CDI spec file) and REGION (the claim's shared region), one
 * NAME=value a line. The fixture is kept; the script removes ROOT.
 */

#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "macro.h"
#include "prepare-fixture.h"
#include "prepare.h"
#include "tests.h"

#define UID "2c6a3d6e-2f8e-4c6b-9b7e-4a2a0f1c9d13"

int main(void) {
        FixtureResult r[] = {
                { .request = "a", .device = "hami-gpu-0", .memory = "2Gi", .cores = "20" },
                { .request = "b", .device = "hami-gpu-1", .memory = "1Gi", .cores = "10" },
        };
        PreparedClaim c;
        Fixture fx;
        Preparer *p;

        log_set_max_level(LOG_WARNING);
        fixture_init(&fx, 2);
        fixture_prepare_claim(&fx, UID, "requests", r, ELEMENTSOF(r), &p, &c);

        printf("ROOT=%s\nSPEC=%s/k8s." FIXTURE_DRIVER "-claim_" UID ".json\nREGION=%s/claims/" UID "/vgpu/vgpu.cache\n",
               fx.root, fx.cdi_dir, fx.state_dir);
        prepared_claim_done(&c);
        preparer_free(p);
        setenv("HAMI_KEEP_FIXTURE", "1", 1);
        fixture_done(&fx);
        return 0;
}
