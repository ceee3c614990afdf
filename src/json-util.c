/* SPDX-License-Identifier: Apache-2.0 */

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "json-util.h"

int json_parse_bounded(const char *s, size_t n, int depth, json_object **ret) {
        json_tokener *tok;
        json_object *o;

        if (n > INT_MAX) /* json-c takes an int length */
                return -EBADMSG;
        tok = json_tokener_new_ex(depth);
        if (!tok)
                return -ENOMEM;
        o = json_tokener_parse_ex(tok, s, (int) n);
        if (!o || json_tokener_get_error(tok) != json_tokener_success || json_tokener_get_parse_end(tok) != n) {
                json_object_put(o);
                json_tokener_free(tok);
                return -EBADMSG;
        }
        json_tokener_free(tok);
        *ret = o;
        return 0;
}

json_object *json_get(json_object *o, const char *path) {
        char key[128];

        while (o && *path) {
                size_t n = strcspn(path, ".");
                if (n >= sizeof(key))
                        return NULL;
                memcpy(key, path, n);
                key[n] = '\0';
                if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &o))
                        return NULL;
                path += n;
                if (*path == '.')
                        path++;
        }
        return o;
}

const char *json_get_string(json_object *o, const char *path) {
        o = json_get(o, path);
        return json_object_is_type(o, json_type_string) ? json_object_get_string(o) : NULL;
}

int64_t json_get_int64(json_object *o, const char *path, int64_t def) {
        o = json_get(o, path);
        return o ? json_object_get_int64(o) : def;
}

uint64_t json_get_uint64(json_object *o, const char *path, uint64_t def) {
        o = json_get(o, path);
        return o ? json_object_get_uint64(o) : def;
}

bool json_get_bool(json_object *o, const char *path, bool def) {
        o = json_get(o, path);
        return o ? json_object_get_boolean(o) : def;
}

int json_add(json_object *o, const char *key, json_object *v) {
        if (!v)
                return -ENOMEM;
        if (json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}
