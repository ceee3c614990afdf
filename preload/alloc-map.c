/* SPDX-License-Identifier: Apache-2.0 */

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "alloc-map.h"

typedef struct AllocEntry {
        uint64_t key;
        uint64_t size;
        int32_t dev;
        uint8_t kind;   /* 0: empty */
        bool tomb;
} AllocEntry;

static pthread_mutex_t map_lock = PTHREAD_MUTEX_INITIALIZER;
static AllocEntry *map;
static size_t map_cap, map_used, map_tombs;

static size_t slot_of(AllocKind kind, uint64_t key, size_t cap) {
        uint64_t h = (key ^ ((uint64_t) kind << 56)) * 0x9E3779B97F4A7C15ULL;
        return (size_t) (h >> 32) & (cap - 1);
}

static int map_grow(void) {
        size_t cap = map_cap ? map_cap * 2 : 1024;
        AllocEntry *n;

        if (map_used >= ALLOC_MAP_ENTRIES_MAX)
                return -ENOMEM;
        if (map_used * 4 < map_cap) /* mostly tombstones: rehash at the same size */
                cap = map_cap;
        n = calloc(cap, sizeof(AllocEntry));
        if (!n)
                return -ENOMEM;
        for (size_t i = 0; i < map_cap; i++) {
                AllocEntry *e = &map[i];
                if (e->kind == 0 || e->tomb)
                        continue;
                size_t j = slot_of(e->kind, e->key, cap);
                while (n[j].kind != 0)
                        j = (j + 1) & (cap - 1);
                n[j] = *e;
        }
        free(map);
        map = n;
        map_cap = cap;
        map_tombs = 0;
        return 0;
}

int alloc_map_put(AllocKind kind, uint64_t key, uint64_t size, int dev) {
        int r = 0;

        pthread_mutex_lock(&map_lock);
        if ((map_used + map_tombs + 1) * 2 > map_cap)
                r = map_grow();
        if (r >= 0) {
                size_t j = slot_of(kind, key, map_cap);
                while (map[j].kind != 0 && !map[j].tomb)
                        j = (j + 1) & (map_cap - 1);
                if (map[j].tomb)
                        map_tombs--;
                map[j] = (AllocEntry) { .key = key, .size = size, .dev = dev, .kind = (uint8_t) kind };
                map_used++;
        }
        pthread_mutex_unlock(&map_lock);
        return r;
}

bool alloc_map_take(AllocKind kind, uint64_t key, uint64_t *ret_size, int *ret_dev) {
        bool found = false;

        pthread_mutex_lock(&map_lock);
        if (map_cap > 0)
                for (size_t j = slot_of(kind, key, map_cap); map[j].kind != 0; j = (j + 1) & (map_cap - 1)) {
                        AllocEntry *e = &map[j];
                        if (e->tomb || e->kind != kind || e->key != key)
                                continue;
                        *ret_size = e->size;
                        *ret_dev = e->dev;
                        e->tomb = true;
                        map_used--;
                        map_tombs++;
                        found = true;
                        break;
                }
        pthread_mutex_unlock(&map_lock);
        return found;
}

/* In a forked child (one thread, the parent's allocations are not the child's). */
void alloc_map_reset(void) {
        pthread_mutex_init(&map_lock, NULL);
        free(map);
        map = NULL;
        map_cap = map_used = map_tombs = 0;
}
