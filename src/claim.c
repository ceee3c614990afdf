/* SPDX-License-Identifier: Apache-2.0 */

#include <ctype.h>
#include <json-c/json.h>
#include <stdio.h>

#include "claim.h"
#include "claim-params.h"
#include "errbuf.h"
#include "json-util.h"
#include "macro.h"
#include "quantity.h"

#define CLAIM_JSON_DEPTH_MAX 32
#define CLAIM_REQUEST_MAX 127      /* "<label>/<label>" */
#define CLAIM_LABEL_MAX 63
#define CLAIM_SUBDOMAIN_MAX 253
#define CLAIM_CONFIG_REQUESTS_MAX 32
#define CLAIM_CAPACITIES_MAX 32

void claim_allocation_done(ClaimAllocation *c) {
        if (!c)
                return;
        free(c->namespace_);
        free(c->name);
        free(c->uid);
        free(c->resource_version);
        free(c->pod);
        for (size_t i = 0; i < c->n_results; i++) {
                ClaimResult *r = &c->results[i];
                free(r->request);
                free(r->device);
                free(r->share_id);
                free(r->class_parameters_json);
                free(r->claim_parameters_json);
        }
        free(c->results);
        *c = (ClaimAllocation) {};
}

/* ---------------------------------------------------------------- string checks */

bool claim_uid_is_valid(const char *uid) {
        size_t n;

        if (isempty(uid) || uid[0] == '-')
                return false;
        n = strlen(uid);
        if (n > CLAIM_UID_MAX || uid[n - 1] == '-')
                return false;
        for (const char *p = uid; *p; p++)
                if (!isascii(*p) || !(isalnum(*p) || *p == '-'))
                        return false;
        return true;
}

/* RFC 1123 label (a-z0-9-) or, with dots, a subdomain. */
static bool dns_name_is_valid(const char *s, size_t max, bool dots) {
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > max || !isalnum(s[0]) || !isalnum(s[n - 1]))
                return false;
        for (const char *p = s; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || isdigit(*p) || *p == '-' || (dots && *p == '.')))
                        return false;
        return true;
}

static bool request_is_valid(const char *s) {
        const char *slash;
        char main_part[CLAIM_LABEL_MAX + 1];
        size_t n;

        if (!s || strlen(s) > CLAIM_REQUEST_MAX)
                return false;
        slash = strchr(s, '/');
        if (!slash)
                return dns_name_is_valid(s, CLAIM_LABEL_MAX, false);
        n = (size_t) (slash - s);
        if (n == 0 || n > CLAIM_LABEL_MAX)
                return false;
        memcpy(main_part, s, n);
        main_part[n] = '\0';
        return dns_name_is_valid(main_part, CLAIM_LABEL_MAX, false) &&
               dns_name_is_valid(slash + 1, CLAIM_LABEL_MAX, false);
}

static bool share_id_is_valid(const char *s) {
        static const int dashes[] = { 8, 13, 18, 23 };

        if (!s || strlen(s) != 36)
                return false;
        for (int i = 0; i < 36; i++) {
                bool dash = false;
                for (size_t j = 0; j < ELEMENTSOF(dashes); j++)
                        dash = dash || dashes[j] == i;
                if (dash ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        }
        return true;
}

size_t claim_request_main_len(const char *request) {
        const char *slash = strchr(request, '/');
        return slash ? (size_t) (slash - request) : strlen(request);
}

/* ---------------------------------------------------------------- JSON helpers */

/* A string field: NULL when absent or null; -EBADMSG when of another type. */
static int get_string(json_object *o, const char *key, const char **ret) {
        json_object *v = json_get(o, key);

        if (!v || json_object_is_type(v, json_type_null)) {
                *ret = NULL;
                return 0;
        }
        if (!json_object_is_type(v, json_type_string))
                return -EBADMSG;
        *ret = json_object_get_string(v);
        return 0;
}

static int get_array(json_object *o, const char *key, json_object **ret) {
        json_object *v = json_get(o, key);

        if (!v || json_object_is_type(v, json_type_null)) {
                *ret = NULL;
                return 0;
        }
        if (!json_object_is_type(v, json_type_array))
                return -EBADMSG;
        *ret = v;
        return 0;
}

/* ---------------------------------------------------------------- metadata */

static int decode_metadata(json_object *root, ClaimAllocation *c, ErrBuf *e) {
        json_object *md = json_get(root, "metadata");
        const char *uid, *name, *ns, *rv;

        if (!json_object_is_type(md, json_type_object))
                return errbuf_fail(e, -EBADMSG, "claim has no metadata");
        if (get_string(md, "uid", &uid) < 0 || get_string(md, "name", &name) < 0 ||
            get_string(md, "namespace", &ns) < 0 || get_string(md, "resourceVersion", &rv) < 0)
                return errbuf_fail(e, -EBADMSG, "claim metadata has a field of the wrong type");
        if (!claim_uid_is_valid(uid))
                return errbuf_fail(e, -EBADMSG, "claim has a missing or invalid metadata.uid");
        if (!name || !dns_name_is_valid(name, CLAIM_SUBDOMAIN_MAX, true))
                return errbuf_fail(e, -EBADMSG, "claim has a missing or invalid metadata.name");
        if (!ns || !dns_name_is_valid(ns, CLAIM_LABEL_MAX, false))
                return errbuf_fail(e, -EBADMSG, "claim has a missing or invalid metadata.namespace");
        if (rv && strlen(rv) > 64)
                return errbuf_fail(e, -EBADMSG, "claim has an invalid metadata.resourceVersion");

        c->uid = strdup(uid);
        c->name = strdup(name);
        c->namespace_ = strdup(ns);
        c->resource_version = rv ? strdup(rv) : NULL;
        if (!c->uid || !c->name || !c->namespace_ || (rv && !c->resource_version))
                return -ENOMEM;
        return 0;
}

/*
 * The pod the claim is reserved for (the first of status.reservedFor with resource "pods"
 * in the core group): for the metrics' pod label, nothing else. Informational, so an
 * entry that is malformed or names no valid pod is skipped, never an error.
 */
#define CLAIM_RESERVED_FOR_MAX 256   /* the API's limit */
static int decode_reserved_for(json_object *root, ClaimAllocation *c) {
        json_object *list = json_get(json_get(root, "status"), "reservedFor");
        size_t n;

        if (!list || !json_object_is_type(list, json_type_array))
                return 0;
        n = MIN(json_object_array_length(list), (size_t) CLAIM_RESERVED_FOR_MAX);
        for (size_t i = 0; i < n; i++) {
                json_object *o = json_object_array_get_idx(list, i);
                const char *resource = NULL, *group = NULL, *name = NULL;

                if (!json_object_is_type(o, json_type_object) || get_string(o, "resource", &resource) < 0 ||
                    get_string(o, "apiGroup", &group) < 0 || get_string(o, "name", &name) < 0)
                        continue;
                if (!streq_ptr(resource, "pods") || !isempty(group) || !name ||
                    !dns_name_is_valid(name, CLAIM_SUBDOMAIN_MAX, true))
                        continue;
                c->pod = strdup(name);
                return c->pod ? 0 : -ENOMEM;
        }
        return 0;
}

/* ---------------------------------------------------------------- results */

static int decode_capacity(json_object *cc, ClaimResult *res, size_t idx, ErrBuf *e) {
        size_t n = 0;

        if (!cc || json_object_is_type(cc, json_type_null))
                return 0;
        if (!json_object_is_type(cc, json_type_object))
                return errbuf_fail(e, -EBADMSG, "results[%zu].consumedCapacity is not an object", idx);

        res->has_consumed_capacity = true;
        json_object_object_foreach(cc, key, v) {
                uint64_t value;
                int r;

                if (++n > CLAIM_CAPACITIES_MAX)
                        return errbuf_fail(e, -E2BIG, "results[%zu].consumedCapacity has too many entries", idx);
                if (!json_object_is_type(v, json_type_string))
                        return errbuf_fail(e, -EBADMSG, "results[%zu].consumedCapacity values must be quantity strings", idx);
                /* Only our two capacities matter; others (future ones) are not ours to enforce. */
                if (!streq(key, "memory") && !streq(key, "cores"))
                        continue;
                r = quantity_parse(json_object_get_string(v), &value);
                if (r < 0)
                        return errbuf_fail(e, -EBADMSG, "results[%zu].consumedCapacity.%s is not a valid quantity",
                                           idx, streq(key, "memory") ? "memory" : "cores");
                if (streq(key, "memory"))
                        res->consumed_memory = value;
                else
                        res->consumed_cores = value;
        }
        return 0;
}

/* Returns 1 when the result is ours (and was filled), 0 when it belongs to another driver. */
static int decode_result(json_object *o, size_t idx, const char *driver_name, const char *pool,
                         ClaimResult *res, ErrBuf *e) {
        const char *request, *driver, *rpool, *device, *share_id;
        json_object *admin;
        int r;

        if (!json_object_is_type(o, json_type_object))
                return errbuf_fail(e, -EBADMSG, "results[%zu] is not an object", idx);
        if (get_string(o, "driver", &driver) < 0 || !driver)
                return errbuf_fail(e, -EBADMSG, "results[%zu] has no driver", idx);
        if (!streq(driver, driver_name))
                return 0;

        if (get_string(o, "request", &request) < 0 || get_string(o, "pool", &rpool) < 0 ||
            get_string(o, "device", &device) < 0 || get_string(o, "shareID", &share_id) < 0)
                return errbuf_fail(e, -EBADMSG, "results[%zu] has a field of the wrong type", idx);
        if (!rpool)
                return errbuf_fail(e, -EBADMSG, "results[%zu] has no pool", idx);
        if (!streq(rpool, pool)) {
                char p[CLAIM_SUBDOMAIN_MAX + 1];
                snprintf(p, sizeof(p), "%s", rpool);
                return errbuf_fail(e, -EXDEV, "allocated to another node: results[%zu] is in pool \"%s\", this node is \"%s\"",
                                   idx, p, pool);
        }
        if (!request_is_valid(request))
                return errbuf_fail(e, -EBADMSG, "results[%zu] has a missing or invalid request", idx);
        if (!device || !dns_name_is_valid(device, CLAIM_LABEL_MAX, false))
                return errbuf_fail(e, -EBADMSG, "results[%zu] has a missing or invalid device", idx);
        if (share_id && !share_id_is_valid(share_id))
                return errbuf_fail(e, -EBADMSG, "results[%zu].shareID is not a lower-case UUID", idx);

        admin = json_get(o, "adminAccess");
        if (admin && !json_object_is_type(admin, json_type_null)) {
                if (!json_object_is_type(admin, json_type_boolean))
                        return errbuf_fail(e, -EBADMSG, "results[%zu].adminAccess is not a boolean", idx);
                res->admin_access = json_object_get_boolean(admin);
        }

        res->request = strdup(request);
        res->device = strdup(device);
        res->share_id = share_id ? strdup(share_id) : NULL;
        if (!res->request || !res->device || (share_id && !res->share_id))
                return -ENOMEM;

        r = decode_capacity(json_get(o, "consumedCapacity"), res, idx, e);
        if (r < 0)
                return r;
        return 1;
}

/* ---------------------------------------------------------------- configs */

typedef struct OurConfig {
        json_object *requests;     /* array or NULL (= all) */
        const char *parameters;    /* serialised, owned by the json tree */
} OurConfig;

static bool config_applies(const OurConfig *cfg, const char *request) {
        size_t n, main_len = claim_request_main_len(request);

        if (!cfg->requests)
                return true;
        n = json_object_array_length(cfg->requests);
        if (n == 0)
                return true;
        for (size_t i = 0; i < n; i++) {
                const char *s = json_object_get_string(json_object_array_get_idx(cfg->requests, i));
                if (streq(s, request))
                        return true;
                if (strlen(s) == main_len && strncmp(s, request, main_len) == 0)
                        return true;  /* "<main>" covers every "<main>/<sub>" */
        }
        return false;
}

static int decode_config(json_object *o, size_t idx, const char *driver_name, OurConfig *ret,
                         bool *ret_from_class, ErrBuf *e) {
        json_object *opaque, *params, *requests;
        const char *source, *driver, *text;
        char reason[256] = "";
        ClaimParams gc;
        size_t n;

        if (!json_object_is_type(o, json_type_object))
                return errbuf_fail(e, -EBADMSG, "config[%zu] is not an object", idx);
        if (get_string(o, "source", &source) < 0 || !source ||
            (!streq(source, "FromClass") && !streq(source, "FromClaim")))
                return errbuf_fail(e, -EBADMSG, "config[%zu].source must be FromClass or FromClaim", idx);
        opaque = json_get(o, "opaque");
        if (!opaque || json_object_is_type(opaque, json_type_null))
                return 0;  /* another kind of configuration: not ours */
        if (get_string(opaque, "driver", &driver) < 0 || !driver)
                return errbuf_fail(e, -EBADMSG, "config[%zu].opaque has no driver", idx);
        if (!streq(driver, driver_name))
                return 0;

        if (get_array(o, "requests", &requests) < 0)
                return errbuf_fail(e, -EBADMSG, "config[%zu].requests is not an array", idx);
        n = requests ? json_object_array_length(requests) : 0;
        if (n > CLAIM_CONFIG_REQUESTS_MAX)
                return errbuf_fail(e, -E2BIG, "config[%zu] names more than %d requests", idx, CLAIM_CONFIG_REQUESTS_MAX);
        for (size_t i = 0; i < n; i++) {
                json_object *s = json_object_array_get_idx(requests, i);
                if (!json_object_is_type(s, json_type_string) || !request_is_valid(json_object_get_string(s)))
                        return errbuf_fail(e, -EBADMSG, "config[%zu].requests[%zu] is not a request name", idx, i);
        }

        params = json_get(opaque, "parameters");
        if (!params)
                return errbuf_fail(e, -EBADMSG, "malformed opaque config: config[%zu] has no parameters", idx);
        text = json_object_to_json_string_ext(params, JSON_C_TO_STRING_PLAIN);
        if (!text)
                return -ENOMEM;
        if (strlen(text) > CLAIM_PARAMS_SIZE_MAX)
                return errbuf_fail(e, -E2BIG, "malformed opaque config: config[%zu] parameters exceed %d bytes",
                                   idx, CLAIM_PARAMS_SIZE_MAX);
        if (claim_params_from_json(params, &gc, reason, sizeof(reason)) < 0)
                return errbuf_fail(e, -EBADMSG, "malformed opaque config: config[%zu]: %s", idx, reason);

        *ret = (OurConfig) { .requests = requests, .parameters = text };
        *ret_from_class = streq(source, "FromClass");
        return 1;
}

/* For each result, the last applicable class entry and the last applicable claim entry. */
static int decode_configs(json_object *arr, const char *driver_name, ClaimAllocation *c, ErrBuf *e) {
        bool from_class[CLAIM_CONFIGS_MAX];
        OurConfig ours[CLAIM_CONFIGS_MAX];
        size_t n, n_ours = 0;
        int r;

        n = arr ? json_object_array_length(arr) : 0;
        if (n > CLAIM_CONFIGS_MAX)
                return errbuf_fail(e, -E2BIG, "claim has more than %d config entries", CLAIM_CONFIGS_MAX);
        for (size_t i = 0; i < n; i++) {
                r = decode_config(json_object_array_get_idx(arr, i), i, driver_name, &ours[n_ours],
                                  &from_class[n_ours], e);
                if (r < 0)
                        return r;
                if (r > 0)
                        n_ours++;
        }

        for (size_t i = 0; i < c->n_results; i++) {
                ClaimResult *res = &c->results[i];
                const char *class_winner = NULL, *claim_winner = NULL;

                for (size_t j = 0; j < n_ours; j++)
                        if (config_applies(&ours[j], res->request)) {
                                if (from_class[j])
                                        class_winner = ours[j].parameters;
                                else
                                        claim_winner = ours[j].parameters;
                        }
                if (class_winner) {
                        res->class_parameters_json = strdup(class_winner);
                        if (!res->class_parameters_json)
                                return -ENOMEM;
                }
                if (claim_winner) {
                        res->claim_parameters_json = strdup(claim_winner);
                        if (!res->claim_parameters_json)
                                return -ENOMEM;
                }
        }
        return 0;
}

/* ---------------------------------------------------------------- claim */

static int decode_allocation(json_object *root, const char *driver_name, const char *pool,
                             ClaimAllocation *c, ErrBuf *e) {
        json_object *status, *alloc, *devices, *results, *configs;
        size_t n;
        int r;

        status = json_get(root, "status");
        alloc = json_get(status, "allocation");
        if (!alloc || json_object_is_type(alloc, json_type_null))
                return errbuf_fail(e, -ENODATA, "claim %s/%s is not allocated", c->namespace_, c->name);
        if (!json_object_is_type(alloc, json_type_object))
                return errbuf_fail(e, -EBADMSG, "status.allocation is not an object");
        devices = json_get(alloc, "devices");
        if (devices && !json_object_is_type(devices, json_type_object))
                return errbuf_fail(e, -EBADMSG, "status.allocation.devices is not an object");
        if (get_array(devices, "results", &results) < 0 || get_array(devices, "config", &configs) < 0)
                return errbuf_fail(e, -EBADMSG, "status.allocation.devices.results/config must be arrays");

        n = results ? json_object_array_length(results) : 0;
        if (n > CLAIM_RESULTS_MAX)
                return errbuf_fail(e, -E2BIG, "claim has more than %d results", CLAIM_RESULTS_MAX);
        if (n > 0) {
                c->results = calloc(n, sizeof(ClaimResult));
                if (!c->results)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                r = decode_result(json_object_array_get_idx(results, i), i, driver_name, pool,
                                  &c->results[c->n_results], e);
                if (r > 0)
                        c->n_results++;
                else if (r < 0) {
                        /* Free what the failed result already holds. */
                        c->n_results++;
                        return r;
                }
        }
        return decode_configs(configs, driver_name, c, e);
}

int claim_allocation_decode(const char *json, size_t len, const char *driver_name, const char *pool,
                            ClaimAllocation *ret, char *error, size_t error_size) {
        _cleanup_(claim_allocation_done) ClaimAllocation c = {};
        ErrBuf e = { error, error_size };
        json_tokener *tok;
        json_object *root;
        int r;

        if (error && error_size > 0)
                error[0] = '\0';
        if (!json || len == 0)
                return errbuf_fail(&e, -EBADMSG, "claim JSON is empty");
        if (len > CLAIM_JSON_MAX)
                return errbuf_fail(&e, -E2BIG, "claim JSON is larger than %u bytes", CLAIM_JSON_MAX);
        if (len > INT32_MAX || memchr(json, '\0', len))
                return errbuf_fail(&e, -EBADMSG, "claim JSON contains a NUL byte");

        tok = json_tokener_new_ex(CLAIM_JSON_DEPTH_MAX);
        if (!tok)
                return -ENOMEM;
        root = json_tokener_parse_ex(tok, json, (int) len);
        if (!root || json_tokener_get_error(tok) != json_tokener_success) {
                json_object_put(root);
                json_tokener_free(tok);
                return errbuf_fail(&e, -EBADMSG, "claim is not valid JSON");
        }
        for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
                if (!isspace((unsigned char) json[i])) {
                        json_object_put(root);
                        json_tokener_free(tok);
                        return errbuf_fail(&e, -EBADMSG, "claim JSON has trailing data");
                }
        json_tokener_free(tok);

        if (!json_object_is_type(root, json_type_object))
                r = errbuf_fail(&e, -EBADMSG, "claim is not a JSON object");
        else {
                r = decode_metadata(root, &c, &e);
                if (r >= 0)
                        r = decode_allocation(root, driver_name, pool, &c, &e);
                if (r >= 0)
                        r = decode_reserved_for(root, &c);
        }
        json_object_put(root);
        if (r < 0)
                return r;

        *ret = c;
        c = (ClaimAllocation) {};
        return 0;
}
