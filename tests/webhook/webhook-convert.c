/* SPDX-License-Identifier: Apache-2.0 */

/*
 * webhook-convert [--validate] [--memory BYTES]... FILE
 *
 * Run the webhook's decision on the AdmissionReview in FILE and print the WebhookResult
 * as one JSON object: {"rc", "error", "allowed", "dryRun", "namespace", "response"
 * (the AdmissionReview, parsed), "templates": [...]}. For tests/webhook/test-webhook-convert.py.
 * Exit status 0 whenever the call returned (the rc is in the output).
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "webhook.h"

static char *read_all(const char *path, size_t *ret_n) {
        FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t n = 0, cap = 0;

        if (!f)
                return NULL;
        for (;;) {
                if (n + 65536 > cap) {
                        char *b = realloc(buf, cap = cap * 2 + 65536);
                        if (!b) {
                                free(buf);
                                fclose(f);
                                return NULL;
                        }
                        buf = b;
                }
                size_t k = fread(buf + n, 1, cap - n, f);
                n += k;
                if (k == 0)
                        break;
        }
        fclose(f);
        *ret_n = n;
        return buf;
}

int main(int argc, char **argv) {
        uint64_t memory[64];
        WebhookInventory inv = { .memory_bytes = memory };
        WebhookResult res = {};
        bool validate = false;
        const char *path = NULL;
        size_t n;
        char *body;
        int r;

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--validate") == 0)
                        validate = true;
                else if (strcmp(argv[i], "--memory") == 0 && i + 1 < argc && inv.n < 64)
                        memory[inv.n++] = strtoull(argv[++i], NULL, 10);
                else
                        path = argv[i];
        }
        if (!path) {
                fprintf(stderr, "usage: webhook-convert [--validate] [--memory BYTES]... FILE\n");
                return 2;
        }
        body = read_all(path, &n);
        if (!body) {
                fprintf(stderr, "webhook-convert: cannot read %s: %m\n", path);
                return 1;
        }
        r = validate ? webhook_validate(body, n, &res) : webhook_mutate(body, n, &inv, &res);
        free(body);

        _cleanup_json_ json_object *out = json_object_new_object();
        json_object *templates = json_object_new_array();
        json_object_object_add(out, "rc", json_object_new_int(r));
        json_object_object_add(out, "error", json_object_new_string(res.error));
        json_object_object_add(out, "allowed", json_object_new_boolean(res.allowed));
        json_object_object_add(out, "dryRun", json_object_new_boolean(res.dry_run));
        json_object_object_add(out, "namespace", res.namespace ? json_object_new_string(res.namespace) : NULL);
        json_object_object_add(out, "response", res.response ? json_tokener_parse(res.response) : NULL);
        for (size_t i = 0; i < res.n_templates; i++)
                json_object_array_add(templates, json_tokener_parse(res.templates[i]));
        json_object_object_add(out, "templates", templates);
        puts(json_object_to_json_string_ext(out, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        webhook_result_done(&res);
        return 0;
}
