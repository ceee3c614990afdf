/* SPDX-License-Identifier: Apache-2.0 */

/* hamictl release UID: ReleaseClaim (polkit: org.projecthami.dra1.release-claim). */

#include <stdio.h>

#include "hamictl.h"

int verb_release(Ctl *c, int argc, char *argv[]) {
        int r = ctl_call(c, "ReleaseClaim", NULL, "s", argv[0]);

        if (r == EXIT_OK && !c->json)
                printf("Released claim %s.\n", argv[0]);
        return r;
}
