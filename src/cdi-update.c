/* SPDX-License-Identifier: Apache-2.0 */

/*
 * Bringing a prepared claim's CDI spec up to date with the host driver (a driver upgrade
 * while pods run: new library versions, device nodes made again). Only the claim-wide
 * edits that come from the host are replaced; everything else of the spec is kept as
 * written, so the claim's devices, limits and region stay what the kubelet was told.
 */

#include "cdi.h"
#include "json-util.h"

#define CDI_SPEC_SIZE_MAX (4u * 1024 * 1024)
#define CDI_SPEC_DEPTH_MAX 16

struct CdiHostEdits {
        json_object *device_nodes;   /* an array, as cdi_host_edits_build() writes it */
        json_object *mounts;
};

int cdi_host_edits_new(const HostDriver *host, CdiHostEdits **ret) {
        _cleanup_free_ char *nodes_text = NULL, *mounts_text = NULL;
        CdiHostEdits *e;
        int r;

        r = cdi_host_edits_build(host, &nodes_text, &mounts_text);
        if (r < 0)
                return r;
        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        if (json_parse_bounded(nodes_text, strlen(nodes_text), CDI_SPEC_DEPTH_MAX, &e->device_nodes) < 0 ||
            json_parse_bounded(mounts_text, strlen(mounts_text), CDI_SPEC_DEPTH_MAX, &e->mounts) < 0) {
                cdi_host_edits_free(e);
                return -ENOMEM; /* our own text: only memory can fail */
        }
        *ret = e;
        return 0;
}

CdiHostEdits *cdi_host_edits_free(CdiHostEdits *e) {
        if (!e)
                return NULL;
        json_object_put(e->device_nodes);
        json_object_put(e->mounts);
        free(e);
        return NULL;
}

/* A new array: the host's driver-file mounts, then the mounts of old that are not driver
 * files (region, preload, ld.so.preload), as cdi_spec_build() orders them. */
static int merge_mounts(const CdiHostEdits *e, json_object *old, json_object **ret) {
        _cleanup_json_ json_object *a = json_object_new_array();
        size_t n = json_object_array_length(e->mounts);

        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (json_object_array_add(a, json_object_get(json_object_array_get_idx(e->mounts, i))) < 0)
                        return -ENOMEM;
        n = old ? json_object_array_length(old) : 0;
        for (size_t i = 0; i < n; i++) {
                json_object *m = json_object_array_get_idx(old, i);

                if (!json_object_is_type(m, json_type_object))
                        return -EBADMSG;
                if (host_driver_is_file_path(json_get_string(m, "containerPath")))
                        continue;
                if (json_object_array_add(a, json_object_get(m)) < 0) {
                        json_object_put(m);
                        return -ENOMEM;
                }
        }
        *ret = TAKE_PTR(a);
        return 0;
}

static bool array_or_absent(json_object *o) {
        return !o || json_object_is_type(o, json_type_array);
}

int cdi_spec_update_host(const char *json, const CdiHostEdits *e, char **ret) {
        _cleanup_json_ json_object *root = NULL, *mounts = NULL;
        json_object *edits, *old_nodes, *old_mounts;
        bool no_nodes = json_object_array_length(e->device_nodes) == 0, same;
        const char *text;
        int r;

        *ret = NULL;
        if (!json || strlen(json) > CDI_SPEC_SIZE_MAX ||
            json_parse_bounded(json, strlen(json), CDI_SPEC_DEPTH_MAX, &root) < 0)
                return -EBADMSG;
        edits = json_get(root, "containerEdits");
        if (!edits || !json_object_is_type(edits, json_type_object))
                return -EBADMSG;
        old_nodes = json_get(edits, "deviceNodes");
        old_mounts = json_get(edits, "mounts");
        if (!array_or_absent(old_nodes) || !array_or_absent(old_mounts))
                return -EBADMSG;
        r = merge_mounts(e, old_mounts, &mounts);
        if (r < 0)
                return r;

        same = json_object_equal(mounts, old_mounts) &&
               (no_nodes ? !old_nodes || json_object_array_length(old_nodes) == 0 :
                           json_object_equal(e->device_nodes, old_nodes));
        if (same)
                return 0;

        if (no_nodes)
                json_object_object_del(edits, "deviceNodes");
        else if (json_add(edits, "deviceNodes", json_object_get(e->device_nodes)) < 0)
                return -ENOMEM;
        if (json_add(edits, "mounts", TAKE_PTR(mounts)) < 0)
                return -ENOMEM;
        text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!text)
                return -ENOMEM;
        *ret = strdup(text);
        return *ret ? 1 : -ENOMEM;
}
