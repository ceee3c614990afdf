/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Binary search in an array of structs sorted by a `char *` key field. */

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* Index of key in base[0..n) (each `size` bytes, its key a `char *` at key_offset), or
 * of where it would go to keep the order (*ret_found false). */
static inline size_t sorted_search_str(const void *base, size_t n, size_t size, size_t key_offset, const char *key,
                                       bool *ret_found) {
        size_t lo = 0, hi = n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                const char *k;
                int c;

                memcpy(&k, (const char *) base + mid * size + key_offset, sizeof(k));
                c = strcmp(k, key);
                if (c == 0) {
                        *ret_found = true;
                        return mid;
                }
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *ret_found = false;
        return lo;
}

#define SORTED_SEARCH_STR(array, n, field, key, ret_found)                                                     \
        sorted_search_str((array), (n), sizeof(*(array)), offsetof(__typeof__(*(array)), field), (key), (ret_found))
