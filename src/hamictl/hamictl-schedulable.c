/* SPDX-License-Identifier: Apache-2.0 */

/* hamictl schedulable NAME yes|no: SetDeviceSchedulable (polkit: org.projecthami.dra1.set-device-schedulable). */

#include <stdio.h>

#include "hamictl.h"

static int parse_yes_no(const char *s) {
        if (streq(s, "yes") || streq(s, "true") || streq(s, "1") || streq(s, "on"))
                return 1;
        if (streq(s, "no") || streq(s, "false") || streq(s, "0") || streq(s, "off"))
                return 0;
        return -EINVAL;
}

int verb_schedulable(Ctl *c, int argc, char *argv[]) {
        int b = parse_yes_no(argv[1]);

        if (b < 0) {
                fprintf(stderr, "Expected yes or no, got \"%s\".\n", argv[1]);
                return EXIT_USAGE;
        }
        return ctl_call(c, "SetDeviceSchedulable", NULL, "sb", argv[0], b);
}
