/* SPDX-License-Identifier: Apache-2.0 */

/* PreparedClaim files are read back after crashes: damaged input must be refused, never crash. */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "fuzz.h"

static void fuzz_one(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char header[128];
        uint8_t *wrapped;
        int n;

        fuzz_one(data, size);

        /* Also as a payload behind a valid header, so the fuzzer gets past the CRC. */
        if (size > CHECKPOINT_FILE_MAX)
                return 0;
        n = snprintf(header, sizeof(header), "HAMI-DRA-CHECKPOINT %d %08" PRIx32 " %zu\n", CHECKPOINT_VERSION,
                     crc32c(0, data, size), size);
        wrapped = malloc((size_t) n + size);
        if (!wrapped)
                return 0;
        memcpy(wrapped, header, (size_t) n);
        if (size > 0)
                memcpy(wrapped + n, data, size);
        fuzz_one(wrapped, (size_t) n + size);
        free(wrapped);
        return 0;
}

static void fuzz_one(const uint8_t *data, size_t size) {
        PreparedClaim c = {};
        char *out = NULL;
        size_t len;

        if (checkpoint_decode(data, size, &c) < 0)
                return;
        /* What decodes re-encodes into something that decodes to the same claim. */
        PreparedClaim d = {};
        if (checkpoint_encode(&c, &out, &len) < 0 || checkpoint_decode(out, len, &d) < 0)
                abort();
        if (strcmp(c.uid, d.uid) != 0 || c.n_devices != d.n_devices || strcmp(c.cdi_spec, d.cdi_spec) != 0)
                abort();
        free(out);
        prepared_claim_done(&c);
        prepared_claim_done(&d);
}
