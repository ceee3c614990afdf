/* SPDX-License-Identifier: Apache-2.0 */

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "quantity.h"

typedef unsigned __int128 u128;

#define U128_DIGITS_MAX 38 /* 10^38 < 2^128 */

static u128 pow10_u128(unsigned n) {
        u128 r = 1;
        while (n-- > 0)
                r *= 10;
        return r;
}

static int mul_u128(u128 a, u128 b, u128 *ret) {
        if (a != 0 && b > ((u128) -1) / a)
                return -ERANGE;
        *ret = a * b;
        return 0;
}

/* Suffix -> decimal exponent and binary multiplier (1024^k). */
static int parse_suffix(const char *s, int *ret_exp10, u128 *ret_mult) {
        static const struct {
                const char *suffix;
                int exp10;
                unsigned exp1024;
        } table[] = {
                { "", 0, 0 },   { "m", -3, 0 }, { "k", 3, 0 },  { "M", 6, 0 },  { "G", 9, 0 },
                { "T", 12, 0 }, { "P", 15, 0 }, { "E", 18, 0 }, { "Ki", 0, 1 }, { "Mi", 0, 2 },
                { "Gi", 0, 3 }, { "Ti", 0, 4 }, { "Pi", 0, 5 }, { "Ei", 0, 6 },
        };

        for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
                if (strcmp(s, table[i].suffix) == 0) {
                        u128 m = 1;
                        for (unsigned k = 0; k < table[i].exp1024; k++)
                                m *= 1024;
                        *ret_exp10 = table[i].exp10;
                        *ret_mult = m;
                        return 0;
                }

        /* Decimal exponent: e<signed digits> or E<signed digits>. */
        if (s[0] == 'e' || s[0] == 'E') {
                const char *p = s + 1;
                bool neg = false;
                int v = 0;

                if (*p == '+' || *p == '-')
                        neg = *p++ == '-';
                if (!isdigit((unsigned char) *p))
                        return -EINVAL;
                for (; isdigit((unsigned char) *p); p++) {
                        v = v * 10 + (*p - '0');
                        if (v > 1000)
                                return -ERANGE;
                }
                if (*p)
                        return -EINVAL;
                *ret_exp10 = neg ? -v : v;
                *ret_mult = 1;
                return 0;
        }
        return -EINVAL;
}

int quantity_parse_exact(const char *s, uint64_t *ret, int *ret_exact) {
        char digits[QUANTITY_STRING_MAX];
        size_t n_digits = 0, n_frac = 0;
        bool seen_dot = false, seen_digit = false;
        const char *p;
        int exp10, r;
        u128 mult, value = 0;

        if (!s || strnlen(s, QUANTITY_STRING_MAX) >= QUANTITY_STRING_MAX)
                return -EINVAL;

        p = s;
        if (*p == '+')
                p++;
        else if (*p == '-')
                return -EINVAL;

        for (; *p; p++) {
                if (isdigit((unsigned char) *p)) {
                        seen_digit = true;
                        if (n_digits == 0 && *p == '0' && !seen_dot)
                                continue; /* leading zeros of the integer part */
                        digits[n_digits++] = *p;
                        if (seen_dot)
                                n_frac++;
                } else if (*p == '.' && !seen_dot)
                        seen_dot = true;
                else
                        break;
        }
        if (!seen_digit)
                return -EINVAL;

        r = parse_suffix(p, &exp10, &mult);
        if (r < 0)
                return r;

        /* Drop trailing zeros of the fraction: they change nothing but the digit count. */
        while (n_frac > 0 && digits[n_digits - 1] == '0') {
                n_digits--;
                n_frac--;
        }
        /* And leading zeros that came from the fraction ("0.005"). */
        size_t first = 0;
        while (first < n_digits && digits[first] == '0')
                first++;
        if (n_digits - first > U128_DIGITS_MAX)
                return -ERANGE;
        for (size_t i = first; i < n_digits; i++)
                value = value * 10 + (u128) (digits[i] - '0');

        r = mul_u128(value, mult, &value);
        if (r < 0)
                return r;

        int scale = exp10 - (int) n_frac;
        bool exact = true;
        if (scale >= 0) {
                if (value != 0) {
                        if (scale > U128_DIGITS_MAX)
                                return -ERANGE;
                        r = mul_u128(value, pow10_u128((unsigned) scale), &value);
                        if (r < 0)
                                return r;
                }
        } else if (-scale > U128_DIGITS_MAX) {
                exact = value == 0;
                value = value == 0 ? 0 : 1;
        } else {
                u128 d = pow10_u128((unsigned) -scale);
                exact = value % d == 0;
                value = value / d + (exact ? 0 : 1);
        }

        if (value > (u128) INT64_MAX)
                return -ERANGE;

        *ret = (uint64_t) value;
        if (ret_exact)
                *ret_exact = exact;
        return 0;
}

int quantity_parse(const char *s, uint64_t *ret) {
        return quantity_parse_exact(s, ret, NULL);
}

int quantity_format_bytes(uint64_t bytes, char *buf, size_t size) {
        static const char *const suffixes[] = { "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei" };
        unsigned k = 0;
        int n;

        while (bytes != 0 && bytes % 1024 == 0 && k + 1 < sizeof(suffixes) / sizeof(suffixes[0])) {
                bytes /= 1024;
                k++;
        }
        n = snprintf(buf, size, "%" PRIu64 "%s", bytes, suffixes[k]);
        if (n < 0 || (size_t) n >= size)
                return -ENOBUFS;
        return 0;
}
