/* SPDX-License-Identifier: Apache-2.0 */

/*
 * What the API server sends back is untrusted: feed arbitrary JSON as the stored slice
 * to the comparison, the dropped-field detection and the update merge.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "log.h"
#include "resourceslice.h"

#define MIB (UINT64_C(1) << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        json_tokener *tok;
        json_object *stored, *desired = NULL, *merged = NULL;
        Gpu g = { .name = "hami-gpu-0", .uuid = "GPU-0", .minor = 0, .memory_total = 24 * 1024 * MIB,
                  .health = GPU_HEALTH_UNHEALTHY, .health_reason = "XID 79" };
        GpuList l = { .gpus = &g, .n_gpus = 1 };
        SlicePoolParams p = { .driver = "hami-core-gpu.project-hami.io", .node = "node1", .node_uid = "u" };
        unsigned idx;

        if (size > 1024 * 1024)
                return 0;
        log_set_max_level(LOG_CRIT);
        tok = json_tokener_new_ex(64);
        if (!tok)
                return 0;
        stored = json_tokener_parse_ex(tok, (const char *) data, (int) size);
        json_tokener_free(tok);
        if (!stored)
                return 0;
        if (resourceslice_pool_build(&l, &p, &desired) < 0)
                abort();
        json_object *d = json_object_array_get_idx(desired, 0);

        (void) resourceslice_spec_equal(json_get(d, "spec"), json_get(stored, "spec"), 0);
        (void) resourceslice_spec_equal(json_get(stored, "spec"), json_get(d, "spec"), SLICE_DROPPED_CONSUMABLE);
        (void) resourceslice_spec_equal(stored, stored, 0);
        (void) resourceslice_dropped_fields(json_get(d, "spec"), json_get(stored, "spec"));
        (void) resourceslice_dropped_fields(stored, d);
        (void) resourceslice_name_index(json_get_string(stored, "metadata.name"), &idx);
        (void) slice_pool_generation(stored);
        if (json_object_is_type(stored, json_type_object) &&
            resourceslice_merge_for_update(stored, d, &merged) >= 0)
                json_object_put(merged);
        resourceslice_spec_strip(json_get(stored, "spec"), SLICE_DROPPED_CONSUMABLE | SLICE_DROPPED_TAINTS);

        json_object_put(desired);
        json_object_put(stored);
        return 0;
}
