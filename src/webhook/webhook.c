/* SPDX-License-Identifier: Apache-2.0 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "claim-params.h"
#include "json-util.h"
#include "pod-convert.h"
#include "quantity.h"
#include "webhook.h"

/* A ResourceSliceList nests about 10 deep; room to spare, not for a hostile bomb. */
#define SLICES_JSON_DEPTH_MAX 64

void webhook_result_done(WebhookResult *r) {
        if (!r)
                return;
        free(r->response);
        for (size_t i = 0; i < r->n_templates; i++)
                free(r->templates[i]);
        free(r->templates);
        free(r->namespace);
        free(r->uid);
        *r = (WebhookResult) {};
}

/* A call that failed: nothing of the result is kept but the reason in ret->error. */
static void result_fail(WebhookResult *ret) {
        char keep[sizeof(ret->error)];

        memcpy(keep, ret->error, sizeof(keep));
        webhook_result_done(ret);
        memcpy(ret->error, keep, sizeof(keep));
}

static int begin(const char *body, size_t size, AdmissionRequest *req, WebhookResult *ret) {
        ErrBuf e = { ret->error, sizeof(ret->error) };
        int r;

        *ret = (WebhookResult) {};
        r = admission_request_decode(body, size, req, &e);
        if (r < 0)
                return r;
        ret->namespace = strdup(req->namespace);
        ret->uid = strdup(req->uid);
        if (!ret->namespace || !ret->uid)
                return -ENOMEM;
        ret->dry_run = req->dry_run;
        return 0;
}

static int answer(const AdmissionRequest *req, bool allowed, int code, const char *message, const char *patch,
                  size_t patch_len, WebhookResult *ret) {
        AdmissionResponse a = {
                .uid = req->uid, .allowed = allowed, .code = code, .message = message,
                .patch = patch, .patch_len = patch_len,
        };
        ret->allowed = allowed;
        return admission_response_encode(&a, &ret->response);
}

int webhook_mutate(const char *body, size_t size, const WebhookInventory *inventory, WebhookResult *ret) {
        AdmissionRequest req = {};
        PodConversion c = {};
        DeviceSizes sizes = {};
        ErrBuf e = { ret->error, sizeof(ret->error) };
        int r;

        r = begin(body, size, &req, ret);
        if (r < 0)
                goto out;
        if (strcmp(req.kind_group, "") != 0 || strcmp(req.kind, "Pod") != 0 || strcmp(req.operation, "CREATE") != 0 ||
            req.sub_resource[0] != '\0') {
                r = answer(&req, true, 0, NULL, NULL, 0, ret);
                goto out;
        }
        if (inventory)
                sizes = (DeviceSizes) { .memory_bytes = inventory->memory_bytes, .n = inventory->n };
        r = pod_convert(req.object, req.namespace, &sizes, &c, &e);
        if (r == -EINVAL) {
                r = answer(&req, false, 400, ret->error, NULL, 0, ret);
                goto out;
        }
        if (r < 0)
                goto out;
        r = answer(&req, true, 0, NULL, c.patch, c.patch_len, ret);
        if (r < 0)
                goto out;
        ret->templates = TAKE_PTR(c.templates);
        ret->n_templates = c.n_templates;
        c.n_templates = 0;
out:
        pod_conversion_done(&c);
        admission_request_done(&req);
        if (r < 0)
                result_fail(ret);
        return r;
}

/* Our opaque parameters in the ResourceClaimSpec spec: 0, or -EINVAL with a reason. */
static int check_claim_spec(json_object *spec, const char *where, ErrBuf *e) {
        json_object *config = json_get(spec, "devices.config");

        if (!config || !json_object_is_type(config, json_type_array))
                return 0;
        for (size_t i = 0; i < json_object_array_length(config); i++) {
                json_object *c = json_object_array_get_idx(config, i), *params;
                ClaimParams p;
                char reason[256];
                const char *text;

                if (strcmp(json_get_string(c, "opaque.driver") ?: "", WEBHOOK_DRIVER) != 0)
                        continue;
                params = json_get(c, "opaque.parameters");
                if (!params)
                        return errbuf_fail(e, -EINVAL, "%s.devices.config[%zu].opaque: no parameters", where, i);
                text = json_object_to_json_string_ext(params, JSON_C_TO_STRING_PLAIN);
                if (!text)
                        return -ENOMEM;
                if (strlen(text) > CLAIM_PARAMS_SIZE_MAX)
                        return errbuf_fail(e, -EINVAL, "%s.devices.config[%zu].opaque.parameters: more than %d bytes",
                                           where, i, CLAIM_PARAMS_SIZE_MAX);
                reason[0] = '\0';
                if (claim_params_from_json(params, &p, reason, sizeof(reason)) < 0)
                        return errbuf_fail(e, -EINVAL, "%s.devices.config[%zu].opaque.parameters: %s "
                                           "(see hami-dra-parameters(5))", where, i, reason[0] ? reason : "invalid");
        }
        return 0;
}

int webhook_validate(const char *body, size_t size, WebhookResult *ret) {
        AdmissionRequest req = {};
        ErrBuf e = { ret->error, sizeof(ret->error) };
        json_object *spec = NULL;
        const char *where = NULL;
        int r;

        r = begin(body, size, &req, ret);
        if (r < 0)
                goto out;
        if (strcmp(req.kind_group, "resource.k8s.io") == 0 && req.sub_resource[0] == '\0' &&
            (strcmp(req.operation, "CREATE") == 0 || strcmp(req.operation, "UPDATE") == 0)) {
                if (strcmp(req.kind, "ResourceClaim") == 0) {
                        spec = json_get(req.object, "spec");
                        where = "spec";
                } else if (strcmp(req.kind, "ResourceClaimTemplate") == 0) {
                        spec = json_get(req.object, "spec.spec");
                        where = "spec.spec";
                }
        }
        if (spec) {
                r = check_claim_spec(spec, where, &e);
                if (r == -EINVAL) {
                        r = answer(&req, false, 400, ret->error, NULL, 0, ret);
                        goto out;
                }
                if (r < 0)
                        goto out;
        }
        r = answer(&req, true, 0, NULL, NULL, 0, ret);
out:
        admission_request_done(&req);
        if (r < 0)
                result_fail(ret);
        return r;
}

int webhook_inventory_parse(const char *text, size_t size, uint64_t **ret, size_t *ret_n) {
        _cleanup_json_ json_object *root = NULL;
        _cleanup_free_ uint64_t *mem = NULL;
        json_object *items;
        size_t n = 0;
        int r;

        r = json_parse_bounded(text, size, SLICES_JSON_DEPTH_MAX, &root);
        if (r < 0)
                return r;
        items = json_get(root, "items");
        if (!json_object_is_type(items, json_type_array))
                return -EBADMSG;
        for (size_t i = 0; i < json_object_array_length(items); i++) {
                json_object *devices = json_get(json_object_array_get_idx(items, i), "spec.devices");

                if (!json_object_is_type(devices, json_type_array))
                        continue;
                for (size_t j = 0; j < json_object_array_length(devices); j++) {
                        const char *v = json_get_string(json_object_array_get_idx(devices, j), "capacity.memory.value");
                        uint64_t bytes, *p;

                        if (!v || quantity_parse(v, &bytes) < 0)
                                continue;
                        p = realloc(mem, (n + 1) * sizeof *mem);
                        if (!p)
                                return -ENOMEM;
                        mem = p;
                        mem[n++] = bytes;
                }
        }
        *ret = TAKE_PTR(mem);
        *ret_n = n;
        return 0;
}
