/* SPDX-License-Identifier: Apache-2.0 */

#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "fuzz.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Config c;
        char *text;

        log_set_max_level(LOG_CRIT); /* the parser's complaints are expected here */
        text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0'; /* a NUL inside just ends the text early, as with a C string */
        if (config_init(&c) >= 0) {
                (void) config_parse_text(&c, text, "fuzz");
                config_done(&c);
        }
        free(text);
        return 0;
}
