/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Streaming JSON output for the files written on every prepare (the CDI spec and the
 * checkpoint), on yajl's generator: no tree of objects to build and free, which with
 * json-c cost more than everything else the prepare path computes. json-c remains the
 * parser (and the tree builder where a tree is wanted, the ResourceSlice).
 *
 * Errors are sticky: after the first, every call does nothing and json_writer_finish()
 * returns it (-ENOMEM, or -EILSEQ for a string that is not UTF-8). Output is compact,
 * '/' unescaped, like json-c's JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE.
 */

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

typedef struct JsonWriter JsonWriter;

JsonWriter *json_writer_new(void);
JsonWriter *json_writer_free(JsonWriter *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(JsonWriter *, json_writer_free);

void jw_object_begin(JsonWriter *w);
void jw_object_end(JsonWriter *w);
void jw_array_begin(JsonWriter *w);
void jw_array_end(JsonWriter *w);
/* A key in an object (the next call writes its value). */
void jw_key(JsonWriter *w, const char *key);
void jw_string(JsonWriter *w, const char *s);
void jw_stringf(JsonWriter *w, const char *format, ...) _printf_(2, 3);
void jw_uint(JsonWriter *w, uint64_t v);
/* key + value; jw_kv_string() with s == NULL writes nothing (an absent optional field). */
void jw_kv_string(JsonWriter *w, const char *key, const char *s);
void jw_kv_uint(JsonWriter *w, const char *key, uint64_t v);

/* The text so far (NUL-terminated, valid until the next call), or a negative errno. */
int json_writer_finish(JsonWriter *w, const char **ret, size_t *ret_len);
