/* SPDX-License-Identifier: Apache-2.0 */

#include <stdint.h>
#include <stdlib.h>

#include "fuzz.h"
#include "proc-locks.h"

static int check_lock(const ProcLock *l, void *userdata) {
        size_t *n = userdata;

        if (l->pid <= 0 || l->end < l->start)
                abort();
        (*n)++;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        size_t n = 0;
        int r = proc_locks_parse((const char *) data, size, check_lock, &n);

        if (r < 0 || (size_t) r != n)
                abort();
        return 0;
}
