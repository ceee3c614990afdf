/* SPDX-License-Identifier: Apache-2.0 */

/* libvgpu's environment parsers: the first byte picks one, the rest is the value. */

#include <stdlib.h>
#include <string.h>

#include "env.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        int map[VGPU_VISIBLE_DEVICES_MAX];
        char s[512];
        uint64_t v;
        unsigned p;
        int l, n;

        if (size < 1 || size > sizeof(s))
                return 0;
        memcpy(s, data + 1, size - 1);
        s[size - 1] = '\0';
        switch (data[0] % 4) {
        case 0:
                (void) vgpu_parse_size(s, &v);
                break;
        case 1:
                if (vgpu_parse_percent(s, &p) >= 0 && p > 100)
                        abort();
                break;
        case 2:
                if (vgpu_parse_log_level(s, &l) >= 0 && (l < 0 || l > 4))
                        abort();
                break;
        default:
                n = vgpu_parse_visible_devices(s, map, VGPU_VISIBLE_DEVICES_MAX);
                if (n > VGPU_VISIBLE_DEVICES_MAX)
                        abort();
                for (int i = 0; i < n; i++)
                        if (map[i] < -1 || map[i] > 1024)
                                abort();
        }
        return 0;
}
