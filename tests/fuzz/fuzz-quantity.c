/* SPDX-License-Identifier: Apache-2.0 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "quantity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char s[QUANTITY_STRING_MAX * 2];
        uint64_t v;
        int exact;

        if (size >= sizeof(s))
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        if (quantity_parse_exact(s, &v, &exact) >= 0) {
                char buf[QUANTITY_STRING_MAX];
                if (v > INT64_MAX)
                        abort();
                if (quantity_format_bytes(v, buf, sizeof(buf)) < 0)
                        abort();
        }
        return 0;
}
