/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Small json-c helpers that several parts of the daemon, hamictl and the tests share:
 * bounded parsing of untrusted text, and reading members by a dotted path.
 * (json-writer.h is the other direction: writing JSON without json-c.)
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

#include "macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put);
#define _cleanup_json_ _cleanup_(json_object_putp)

/*
 * Parse exactly one JSON value filling all n bytes, nested at most depth deep.
 * 0 with a new reference in *ret; -EBADMSG when it is no such value (or is null),
 * -ENOMEM. *ret is left alone on failure.
 */
int json_parse_bounded(const char *s, size_t n, int depth, json_object **ret);

/* The member at a dotted path ("metadata.name"); NULL when a step is missing or not an object. */
json_object *json_get(json_object *o, const char *path);

/* The string at path; NULL when absent or of another type. */
const char *json_get_string(json_object *o, const char *path);

/* The value at path converted as json-c converts (json_object_get_int64() ...); def when
 * absent or null. */
int64_t json_get_int64(json_object *o, const char *path, int64_t def);
uint64_t json_get_uint64(json_object *o, const char *path, uint64_t def);
bool json_get_bool(json_object *o, const char *path, bool def);

/* Add v to object o under key, taking v's reference whatever happens: -ENOMEM when v is
 * NULL (a failed json_object_new_*()) or the add fails, then v is released. */
int json_add(json_object *o, const char *key, json_object *v);
