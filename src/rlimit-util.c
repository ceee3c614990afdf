/* SPDX-License-Identifier: Apache-2.0 */

#include <errno.h>
#include <sys/resource.h>

#include "rlimit-util.h"

int rlimit_nofile_bump(uint64_t *ret_limit) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return -errno;
        if (ret_limit)
                *ret_limit = rl.rlim_cur;
        if (rl.rlim_cur >= rl.rlim_max)
                return 0;

        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                return -errno;
        if (ret_limit)
                *ret_limit = rl.rlim_cur;
        return 1;
}
