/* SPDX-License-Identifier: Apache-2.0 */

/* Checkpoint files are read back after crashes: damaged input must be refused, never crash. */

#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Checkpoint c = {};
        char *out = NULL;
        size_t len;

        if (checkpoint_decode(data, size, &c) < 0)
                return 0;
        /* What decodes re-encodes into something that decodes to the same claim. */
        Checkpoint d = {};
        if (checkpoint_encode(&c, &out, &len) < 0 || checkpoint_decode(out, len, &d) < 0)
                abort();
        if (strcmp(c.uid, d.uid) != 0 || c.n_devices != d.n_devices || strcmp(c.cdi_spec, d.cdi_spec) != 0)
                abort();
        free(out);
        checkpoint_done(&c);
        checkpoint_done(&d);
        return 0;
}
