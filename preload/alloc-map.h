/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* This process's live allocations: (kind, key) -> (size, device), so that each free
 * gives back exactly what its allocation reserved. */

#include <stdbool.h>
#include <stdint.h>

typedef enum AllocKind {
        ALLOC_DEVPTR = 1,  /* cuMemAlloc*, managed, async, pitch */
        ALLOC_HANDLE,      /* cuMemCreate */
        ALLOC_ARRAY,       /* cuArrayCreate, cuArray3DCreate */
        ALLOC_MIPMAP,      /* cuMipmappedArrayCreate */
} AllocKind;

#define ALLOC_MAP_ENTRIES_MAX (1u << 24)

int alloc_map_put(AllocKind kind, uint64_t key, uint64_t size, int dev) __attribute__((visibility("hidden")));
bool alloc_map_take(AllocKind kind, uint64_t key, uint64_t *ret_size, int *ret_dev) __attribute__((visibility("hidden")));
void alloc_map_reset(void) __attribute__((visibility("hidden")));
