/* SPDX-License-Identifier: Apache-2.0 */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>

#include "json-writer.h"

struct JsonWriter {
        yajl_gen gen;
        int error;
};

JsonWriter *json_writer_new(void) {
        JsonWriter *w = calloc(1, sizeof(*w));

        if (!w)
                return NULL;
        w->gen = yajl_gen_alloc(NULL);
        if (!w->gen) {
                free(w);
                return NULL;
        }
        /* Strings come from claims, i.e. from users: never write one that is not UTF-8. */
        yajl_gen_config(w->gen, yajl_gen_validate_utf8, 1);
        return w;
}

JsonWriter *json_writer_free(JsonWriter *w) {
        if (!w)
                return NULL;
        yajl_gen_free(w->gen);
        free(w);
        return NULL;
}

static void check(JsonWriter *w, yajl_gen_status s) {
        if (s == yajl_gen_status_ok || w->error < 0)
                return;
        /* Anything but bad UTF-8 is a misuse by the caller (a value where a key belongs...). */
        w->error = s == yajl_gen_invalid_string ? -EILSEQ : -EINVAL;
}

void jw_object_begin(JsonWriter *w) {
        if (w->error >= 0)
                check(w, yajl_gen_map_open(w->gen));
}

void jw_object_end(JsonWriter *w) {
        if (w->error >= 0)
                check(w, yajl_gen_map_close(w->gen));
}

void jw_array_begin(JsonWriter *w) {
        if (w->error >= 0)
                check(w, yajl_gen_array_open(w->gen));
}

void jw_array_end(JsonWriter *w) {
        if (w->error >= 0)
                check(w, yajl_gen_array_close(w->gen));
}

void jw_string(JsonWriter *w, const char *s) {
        if (w->error >= 0)
                check(w, yajl_gen_string(w->gen, (const unsigned char *) s, strlen(s)));
}

void jw_key(JsonWriter *w, const char *key) {
        jw_string(w, key);
}

void jw_stringf(JsonWriter *w, const char *format, ...) {
        char buf[512], *s = buf;
        va_list ap;
        int n;

        if (w->error < 0)
                return;
        va_start(ap, format);
        n = vsnprintf(buf, sizeof(buf), format, ap);
        va_end(ap);
        if (n < 0) {
                w->error = -EINVAL;
                return;
        }
        if ((size_t) n >= sizeof(buf)) {
                va_start(ap, format);
                n = vasprintf(&s, format, ap);
                va_end(ap);
                if (n < 0) {
                        w->error = -ENOMEM;
                        return;
                }
        }
        check(w, yajl_gen_string(w->gen, (const unsigned char *) s, (size_t) n));
        if (s != buf)
                free(s);
}

void jw_uint(JsonWriter *w, uint64_t v) {
        char buf[24];
        int n = snprintf(buf, sizeof(buf), "%" PRIu64, v);

        /* yajl_gen_integer() takes a long long: write the digits, so every uint64_t fits. */
        if (w->error >= 0)
                check(w, yajl_gen_number(w->gen, buf, (size_t) n));
}

void jw_kv_string(JsonWriter *w, const char *key, const char *s) {
        if (!s)
                return;
        jw_key(w, key);
        jw_string(w, s);
}

void jw_kv_uint(JsonWriter *w, const char *key, uint64_t v) {
        jw_key(w, key);
        jw_uint(w, v);
}

int json_writer_finish(JsonWriter *w, const char **ret, size_t *ret_len) {
        const unsigned char *buf;
        size_t len;

        if (w->error < 0)
                return w->error;
        if (yajl_gen_get_buf(w->gen, &buf, &len) != yajl_gen_status_ok)
                return -EINVAL;
        *ret = (const char *) buf;
        *ret_len = len;
        return 0;
}
