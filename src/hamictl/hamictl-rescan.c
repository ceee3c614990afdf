/* SPDX-License-Identifier: Apache-2.0 */

/* hamictl rescan: Rescan (polkit: org.projecthami.dra1.rescan). */

#include "hamictl.h"

int verb_rescan(Ctl *c, int argc, char *argv[]) {
        return ctl_call(c, "Rescan", NULL, NULL);
}
