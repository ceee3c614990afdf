/* SPDX-License-Identifier: Apache-2.0 */

#include <json-c/json.h>
#include <stdio.h>

#include "claim-params.h"
#include "errbuf.h"
#include "json-util.h"
#include "macro.h"

void claim_params_init(ClaimParams *c) {
        *c = (ClaimParams) {
                .memory_limit_policy = LIMIT_POLICY_HARD,
                .sm_limit_policy = LIMIT_POLICY_HARD,
                .oversubscription = false,
        };
}

const char *limit_policy_to_string(LimitPolicy p) {
        return p == LIMIT_POLICY_DISABLED ? "disabled" : "hard";
}

static int check_not_looser(LimitPolicy class_policy, LimitPolicy claim_policy, const char *field, ErrBuf *e) {
        if (claim_policy == LIMIT_POLICY_DISABLED && class_policy == LIMIT_POLICY_HARD)
                return errbuf_fail(e, -EPERM,
                                   "%s \"disabled\" in the claim's config would relax the DeviceClass's \"hard\": "
                                   "only the DeviceClass may relax a limit", field);
        return 0;
}

int claim_params_merge(const ClaimParams *class_params, const ClaimParams *claim_params, ClaimParams *ret,
                       char *error, size_t size) {
        ErrBuf e = { error, size };
        ClaimParams c;
        int r;

        if (class_params)
                c = *class_params;
        else
                claim_params_init(&c);
        if (claim_params) {
                r = check_not_looser(c.memory_limit_policy, claim_params->memory_limit_policy, "memoryLimitPolicy", &e);
                if (r < 0)
                        return r;
                r = check_not_looser(c.sm_limit_policy, claim_params->sm_limit_policy, "smLimitPolicy", &e);
                if (r < 0)
                        return r;
                c = *claim_params;
        }
        *ret = c;
        return 0;
}

static int parse_policy(json_object *v, const char *field, LimitPolicy *ret, ErrBuf *e) {
        const char *s;

        if (!json_object_is_type(v, json_type_string))
                return errbuf_fail(e, -EINVAL, "%s must be a string", field);
        s = json_object_get_string(v);
        if (streq(s, "hard"))
                *ret = LIMIT_POLICY_HARD;
        else if (streq(s, "disabled"))
                *ret = LIMIT_POLICY_DISABLED;
        else
                return errbuf_fail(e, -EINVAL, "%s must be \"hard\" or \"disabled\"", field);
        return 0;
}

int claim_params_from_json(json_object *o, ClaimParams *ret, char *error, size_t size) {
        ErrBuf e = { error, size };
        ClaimParams c;
        bool have_version = false, have_kind = false;
        int r;

        if (!json_object_is_type(o, json_type_object))
                return errbuf_fail(&e, -EINVAL, "parameters must be a JSON object");

        claim_params_init(&c);
        json_object_object_foreach(o, key, v) {
                if (streq(key, "apiVersion")) {
                        if (!json_object_is_type(v, json_type_string) ||
                            !streq(json_object_get_string(v), CLAIM_PARAMS_API_VERSION))
                                return errbuf_fail(&e, -EINVAL, "apiVersion must be \"%s\"", CLAIM_PARAMS_API_VERSION);
                        have_version = true;
                } else if (streq(key, "kind")) {
                        if (!json_object_is_type(v, json_type_string) ||
                            !streq(json_object_get_string(v), CLAIM_PARAMS_KIND))
                                return errbuf_fail(&e, -EINVAL, "kind must be \"%s\"", CLAIM_PARAMS_KIND);
                        have_kind = true;
                } else if (streq(key, "memoryLimitPolicy")) {
                        r = parse_policy(v, key, &c.memory_limit_policy, &e);
                        if (r < 0)
                                return r;
                } else if (streq(key, "smLimitPolicy")) {
                        r = parse_policy(v, key, &c.sm_limit_policy, &e);
                        if (r < 0)
                                return r;
                } else if (streq(key, "oversubscription")) {
                        if (!json_object_is_type(v, json_type_boolean))
                                return errbuf_fail(&e, -EINVAL, "oversubscription must be true or false");
                        c.oversubscription = json_object_get_boolean(v);
                } else {
                        char k[64];
                        snprintf(k, sizeof(k), "%s", key);
                        return errbuf_fail(&e, -EINVAL, "unknown field \"%s\"", k);
                }
        }
        if (!have_version)
                return errbuf_fail(&e, -EINVAL, "apiVersion is missing (want \"%s\")", CLAIM_PARAMS_API_VERSION);
        if (!have_kind)
                return errbuf_fail(&e, -EINVAL, "kind is missing (want \"%s\")", CLAIM_PARAMS_KIND);

        *ret = c;
        return 0;
}

int claim_params_parse(const char *json, size_t len, ClaimParams *ret, char *error, size_t size) {
        ErrBuf e = { error, size };
        json_object *o;
        int r;

        if (!json || len == 0)
                return errbuf_fail(&e, -EINVAL, "parameters are empty");
        if (len > CLAIM_PARAMS_SIZE_MAX)
                return errbuf_fail(&e, -EINVAL, "parameters are larger than %d bytes", CLAIM_PARAMS_SIZE_MAX);

        r = json_parse_bounded(json, len, 16, &o);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return errbuf_fail(&e, -EINVAL, "parameters are not valid JSON");
        r = claim_params_from_json(o, ret, error, size);
        json_object_put(o);
        return r;
}
