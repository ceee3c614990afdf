/* SPDX-License-Identifier: Apache-2.0 */

#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "env.h"

static int parse_u64(const char **p, uint64_t *ret) {
        const char *s = *p;
        uint64_t v = 0;

        if (!isdigit((unsigned char) *s))
                return -EINVAL;
        for (; isdigit((unsigned char) *s); s++)
                if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t) (*s - '0'), &v))
                        return -ERANGE;
        *p = s;
        *ret = v;
        return 0;
}

int vgpu_parse_size(const char *s, uint64_t *ret) {
        unsigned shift = 0;
        uint64_t v;
        int r;

        if (!s)
                return -EINVAL;
        r = parse_u64(&s, &v);
        if (r < 0)
                return r;
        switch (*s) {
        case '\0':
                break;
        case 'k': case 'K':
                shift = 10;
                break;
        case 'm': case 'M':
                shift = 20;
                break;
        case 'g': case 'G':
                shift = 30;
                break;
        case 't': case 'T':
                shift = 40;
                break;
        default:
                return -EINVAL;
        }
        if (shift > 0) {
                s++;
                if (*s == 'i') /* "Mi", "Gi" */
                        s++;
                if (*s == 'b' || *s == 'B')
                        s++;
        }
        if (*s != '\0')
                return -EINVAL;
        if (shift > 0 && v > (UINT64_MAX >> shift))
                return -ERANGE;
        *ret = v << shift;
        return 0;
}

int vgpu_parse_percent(const char *s, unsigned *ret) {
        uint64_t v;
        int r;

        if (!s)
                return -EINVAL;
        r = parse_u64(&s, &v);
        if (r < 0)
                return r;
        if (*s != '\0')
                return -EINVAL;
        if (v > 100)
                return -ERANGE;
        *ret = (unsigned) v;
        return 0;
}

int vgpu_parse_log_level(const char *s, int *ret) {
        unsigned v;
        int r;

        r = vgpu_parse_percent(s, &v);
        if (r < 0)
                return r;
        if (v > 4)
                return -ERANGE;
        *ret = (int) v;
        return 0;
}

int vgpu_parse_visible_devices(const char *s, int *ret_map, size_t n) {
        size_t k = 0;

        if (!s || (!ret_map && n > 0))
                return -EINVAL;
        while (k < n) {
                const char *end = strchr(s, ',');
                size_t len = end ? (size_t) (end - s) : strlen(s);

                while (len > 0 && isspace((unsigned char) *s)) {
                        s++;
                        len--;
                }
                if (len >= 4 && (strncmp(s, "GPU-", 4) == 0 || strncmp(s, "MIG-", 4) == 0))
                        ret_map[k++] = -1;
                else {
                        uint64_t v;
                        const char *p = s;
                        if (parse_u64(&p, &v) < 0 || (size_t) (p - s) != len || v > 1024)
                                break; /* the driver stops at the first invalid entry */
                        ret_map[k++] = (int) v;
                }
                if (!end)
                        break;
                s = end + 1;
        }
        return (int) k;
}
