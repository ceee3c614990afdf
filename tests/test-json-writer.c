/* SPDX-License-Identifier: Apache-2.0 */

#include <json-c/json.h>
#include <stdio.h>

#include "json-writer.h"
#include "macro.h"
#include "tests.h"

/* What the writer wrote, parsed back by json-c (the project's parser). */
static json_object *parse(JsonWriter *w, const char *expect) {
        const char *text;
        size_t len;
        json_object *o;

        ASSERT_OK(json_writer_finish(w, &text, &len));
        ASSERT_EQ_U(len, strlen(text));
        if (expect)
                ASSERT_STREQ(text, expect);
        o = json_tokener_parse(text);
        ASSERT_TRUE(o != NULL);
        return o;
}

static void test_shapes(void) {
        _cleanup_(json_writer_freep) JsonWriter *w = json_writer_new();

        ASSERT_TRUE(w != NULL);
        jw_object_begin(w);
        jw_kv_string(w, "path", "/dev/nvidia0");
        jw_kv_string(w, "absent", NULL);
        jw_kv_uint(w, "big", UINT64_MAX);
        jw_key(w, "env");
        jw_array_begin(w);
        jw_stringf(w, "A_%u=%s", 3u, "x");
        jw_array_end(w);
        jw_object_end(w);
        json_object_put(parse(w, "{\"path\":\"/dev/nvidia0\",\"big\":18446744073709551615,\"env\":[\"A_3=x\"]}"));
}

/* Quotes, backslashes, control characters and UTF-8 survive the round trip; long ones too. */
static void test_escaping(void) {
        _cleanup_(json_writer_freep) JsonWriter *w = json_writer_new();
        const char *nasty = "a\"b\\c\nd\te\x01f/g\xc3\xa9h";
        char long_value[2000];
        json_object *o, *v;

        memset(long_value, 'x', sizeof(long_value) - 1);
        long_value[sizeof(long_value) - 1] = '\0';
        jw_array_begin(w);
        jw_string(w, nasty);
        jw_stringf(w, "%s", long_value);
        jw_array_end(w);
        o = parse(w, NULL);
        v = json_object_array_get_idx(o, 0);
        ASSERT_STREQ(json_object_get_string(v), nasty);
        ASSERT_STREQ(json_object_get_string(json_object_array_get_idx(o, 1)), long_value);
        json_object_put(o);
}

/* Bad input is an error, sticky, and nothing half-written is handed out. */
static void test_errors(void) {
        _cleanup_(json_writer_freep) JsonWriter *bad = json_writer_new(), *misuse = json_writer_new();
        const char *text;
        size_t len;

        jw_object_begin(bad);
        jw_kv_string(bad, "name", "ok");
        jw_kv_string(bad, "broken", "\xff\xfe");
        jw_kv_string(bad, "after", "ignored");
        jw_object_end(bad);
        ASSERT_ERROR(json_writer_finish(bad, &text, &len), EILSEQ);

        jw_object_begin(misuse);
        jw_uint(misuse, 1);   /* a number where a key belongs */
        ASSERT_ERROR(json_writer_finish(misuse, &text, &len), EINVAL);
}

int main(void) {
        TEST(test_shapes);
        TEST(test_escaping);
        TEST(test_errors);
        return 0;
}
