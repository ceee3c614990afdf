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

/* The mounts of old that are not driver files (region, preload, ld.so.preload), after fresh. */
static int merge_mounts(json_object *old, json_object *fresh) {
        size_t n = old ? json_object_array_length(old) : 0;

        for (size_t i = 0; i < n; i++) {
                json_object *m = json_object_array_get_idx(old, i);
                const char *path = json_get_string(m, "containerPath");

                if (!json_object_is_type(m, json_type_object))
                        return -EBADMSG;
                if (host_driver_is_file_path(path))
                        continue;
                if (json_object_array_add(fresh, json_object_get(m)) < 0) {
                        json_object_put(m);
                        return -ENOMEM;
                }
        }
        return 0;
}

static bool array_or_absent(json_object *o) {
        return !o || json_object_is_type(o, json_type_array);
}

int cdi_spec_update_host(const char *json, const HostDriver *host, char **ret) {
        _cleanup_json_ json_object *root = NULL, *nodes = NULL, *mounts = NULL;
        _cleanup_free_ char *nodes_text = NULL, *mounts_text = NULL;
        json_object *edits, *old_nodes, *old_mounts;
        const char *text;
        bool same;
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

        r = cdi_host_edits_build(host, &nodes_text, &mounts_text);
        if (r < 0)
                return r;
        if (json_parse_bounded(nodes_text, strlen(nodes_text), CDI_SPEC_DEPTH_MAX, &nodes) < 0 ||
            json_parse_bounded(mounts_text, strlen(mounts_text), CDI_SPEC_DEPTH_MAX, &mounts) < 0)
                return -ENOMEM; /* our own text: only memory can fail */
        r = merge_mounts(old_mounts, mounts);
        if (r < 0)
                return r;

        same = json_object_equal(mounts, old_mounts);
        if (json_object_array_length(nodes) == 0)
                same = same && (!old_nodes || json_object_array_length(old_nodes) == 0);
        else
                same = same && json_object_equal(nodes, old_nodes);
        if (same)
                return 0;

        if (json_object_array_length(nodes) == 0)
                json_object_object_del(edits, "deviceNodes");
        else if (json_add(edits, "deviceNodes", TAKE_PTR(nodes)) < 0)
                return -ENOMEM;
        if (json_add(edits, "mounts", TAKE_PTR(mounts)) < 0)
                return -ENOMEM;
        text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!text)
                return -ENOMEM;
        *ret = strdup(text);
        return *ret ? 1 : -ENOMEM;
}
