/* SPDX-License-Identifier: Apache-2.0 */

/* The mock-health file parser: any bytes in, per-GPU state out, never a crash. */

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "gpu-mock.h"
#include "log.h"

#define FUZZ_GPUS 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Gpu gpus[FUZZ_GPUS] = {};
        MockHealth h[FUZZ_GPUS];
        int r;

        log_set_max_level(LOG_CRIT); /* the parser's complaints are expected here */
        for (unsigned i = 0; i < FUZZ_GPUS; i++)
                (void) gpu_name_from_minor(i, gpus[i].name, sizeof(gpus[i].name));

        r = mock_health_parse((const char *) data, size, gpus, FUZZ_GPUS, h);
        if (r < 0) {
                if (size <= MOCK_HEALTH_FILE_MAX)
                        abort();
                return 0;
        }
        for (unsigned i = 0; i < FUZZ_GPUS; i++) {
                size_t n = strnlen(h[i].reason, sizeof(h[i].reason));

                if (n >= sizeof(h[i].reason))
                        abort(); /* not terminated */
                if (h[i].health != GPU_HEALTH_HEALTHY && h[i].health != GPU_HEALTH_UNHEALTHY)
                        abort();
                if ((h[i].health == GPU_HEALTH_UNHEALTHY) != (n > 0))
                        abort(); /* unhealthy always says why, healthy never */
        }
        return 0;
}
