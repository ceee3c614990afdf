/* SPDX-License-Identifier: Apache-2.0 */

/* hamictl reload: Reload (polkit: org.projecthami.dra1.reload). */

#include "hamictl.h"

int verb_reload(Ctl *c, int argc, char *argv[]) {
        return ctl_call(c, "Reload", NULL, NULL);
}
