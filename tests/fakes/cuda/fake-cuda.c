/* SPDX-License-Identifier: Apache-2.0 */

/*
 * A strict fake libcuda.so.1 (soname and all): devices with memory, contexts whose
 * creation takes FAKE_CUDA_CONTEXT_MS, allocations of every kind checked on free, a
 * kernel-execution model (fake-cuda-state.h) and cuGetProcAddress with the driver's
 * (name, version, flags) rule. It rejects what the driver rejects: calls before cuInit,
 * without a current context, NULL out-parameters, unknown pointers and handles,
 * allocations past the device's memory.
 *
 * Environment: FAKE_CUDA_DEVICES (2), FAKE_CUDA_MEMORY (16 GiB per device),
 * FAKE_CUDA_CONTEXT_MS (0), FAKE_CUDA_KERNEL_US (1000), FAKE_CUDA_QUEUE (1024),
 * FAKE_CUDA_STATE (file shared with other processes and the fake NVML),
 * FAKE_CUDA_SWITCH_US (30): the context switch between kernels of two processes,
 * FAKE_CUDA_CONTEXT_MEMORY (0): device memory each context holds.
 *
 * Processes: memory (contexts included) and kernel time are charged to the calling
 * process's entry in the shared state (fake-cuda-state.h); a dead process's entry and
 * memory are reclaimed. The real driver's figures (docs/gpu-observed.md): a
 * context holds about 520 MiB (FAKE_CUDA_CONTEXT_MEMORY=545259520; 0 by default, so
 * tests keep their exact arithmetic), and two processes launching 200 us kernels back
 * to back got 87 % of one process's rate together: 200 / (200 + 30) = 0.87 with a switch
 * between every two kernels, which is how the shared queue interleaves them.
 *
 * A forked child inherits none of its parent's CUDA state: the parent's contexts
 * (primary ones included) are invalid in it and the parent's allocations are not its
 * to free (a generation number, bumped in the child by pthread_atfork).
 */

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cuda-abi.h"
#include "fake-cuda-state.h"

#define _public_ __attribute__((visibility("default")))

#define CTX_MAGIC 0x43545846u
#define OBJ_MAGIC 0x4f424a46u

struct CUctx_st {
        uint32_t magic;
        int device;
        int refs;
        int primary;
        unsigned gen;    /* the process generation that made it */
        uint64_t memory; /* device memory it holds */
};

typedef struct FakeObject { /* arrays, mipmaps, modules, functions, graphs, pools */
        uint32_t magic;
        char kind;
        int device;
        uint64_t size;
} FakeObject;

static bool initialized;
static uint64_t kernel_ns = 1000000, queue_max = 1024, context_ns, switch_ns = 30000, context_memory;
static unsigned gen; /* bumped in a forked child: what older generations made is not its own */
static __thread struct CUctx_st *current __attribute__((tls_model("initial-exec")));
static struct CUctx_st primary[FAKE_DEVICES_MAX];
static pthread_mutex_t primary_lock = PTHREAD_MUTEX_INITIALIZER;

static FakeState *st(void) {
        return fake_state_get();
}

/* ---- the allocation table: key -> (size, device, kind) ---- */

typedef struct Alloc {
        uint64_t key;
        uint64_t size;
        int device;
        unsigned gen;
        char kind; /* 0 empty, 'T' tombstone, 'd' devptr, 'h' handle, 'a' array, 'm' mipmap */
} Alloc;

#define ALLOCS (1u << 20)
static Alloc *allocs;
static pthread_mutex_t allocs_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t next_ptr = 0x7f0000000000ULL;

static size_t alloc_slot(uint64_t key) {
        return (size_t) ((key * 0x9E3779B97F4A7C15ULL) >> 40) & (ALLOCS - 1);
}

static bool alloc_insert(uint64_t key, uint64_t size, int device, char kind) {
        size_t i = alloc_slot(key);

        for (size_t n = 0; n < ALLOCS; n++, i = (i + 1) & (ALLOCS - 1))
                if (allocs[i].kind == 0 || allocs[i].kind == 'T') {
                        allocs[i] = (Alloc) { key, size, device, gen, kind };
                        return true;
                }
        return false;
}

static Alloc *alloc_find(uint64_t key, char kind) {
        size_t i = alloc_slot(key);

        for (size_t n = 0; n < ALLOCS && allocs[i].kind != 0; n++, i = (i + 1) & (ALLOCS - 1))
                if (allocs[i].kind == kind && allocs[i].key == key && allocs[i].gen == gen)
                        return &allocs[i];
        return NULL;
}

/* Device pointers encode a slot index (2 MiB apart), so freeing is O(1) and strict. */
#define PTR_BASE 0x7f0000000000ULL
#define PTR_SHIFT 21
typedef struct PtrSlot {
        uint64_t size;
        int device;
        bool used;
        unsigned gen;
        uint32_t next_free;
} PtrSlot;
static PtrSlot *ptr_slots;
static uint32_t ptr_free_head, ptr_high;

static CuResult ptr_new(uint64_t size, int device, uint64_t *ret) {
        uint32_t i;

        pthread_mutex_lock(&allocs_lock);
        if (ptr_free_head) {
                i = ptr_free_head;
                ptr_free_head = ptr_slots[i].next_free;
        } else if (ptr_high + 1 < ALLOCS)
                i = ++ptr_high;
        else {
                pthread_mutex_unlock(&allocs_lock);
                return VG_CUDA_ERROR_OUT_OF_MEMORY;
        }
        ptr_slots[i] = (PtrSlot) { .size = size, .device = device, .used = true, .gen = gen };
        pthread_mutex_unlock(&allocs_lock);
        *ret = PTR_BASE + ((uint64_t) i << PTR_SHIFT);
        return VG_CUDA_SUCCESS;
}

static bool ptr_free(uint64_t p, uint64_t *ret_size, int *ret_device) {
        uint64_t off = p - PTR_BASE, i = off >> PTR_SHIFT;

        if (p < PTR_BASE || (off & ((1ULL << PTR_SHIFT) - 1)) || i == 0 || i > ptr_high)
                return false;
        pthread_mutex_lock(&allocs_lock);
        if (!ptr_slots[i].used || ptr_slots[i].gen != gen) {
                pthread_mutex_unlock(&allocs_lock);
                return false;
        }
        *ret_size = ptr_slots[i].size;
        *ret_device = ptr_slots[i].device;
        ptr_slots[i] = (PtrSlot) { .next_free = ptr_free_head };
        ptr_free_head = (uint32_t) i;
        pthread_mutex_unlock(&allocs_lock);
        return true;
}

/* Device memory, charged to this process's entry (fake-cuda-procs.c). */
static CuResult memory_take(int device, uint64_t size) {
        return fake_proc_charge((unsigned) device, size) < 0 ? VG_CUDA_ERROR_OUT_OF_MEMORY : VG_CUDA_SUCCESS;
}

static void memory_give(int device, uint64_t size) {
        fake_proc_uncharge((unsigned) device, size);
}

static CuResult record(uint64_t key, uint64_t size, int device, char kind) {
        bool ok;

        pthread_mutex_lock(&allocs_lock);
        ok = alloc_insert(key, size, device, kind);
        pthread_mutex_unlock(&allocs_lock);
        if (!ok) {
                memory_give(device, size);
                return VG_CUDA_ERROR_OUT_OF_MEMORY;
        }
        return VG_CUDA_SUCCESS;
}

static CuResult unrecord(uint64_t key, char kind) {
        Alloc *a;

        pthread_mutex_lock(&allocs_lock);
        a = alloc_find(key, kind);
        if (!a) {
                pthread_mutex_unlock(&allocs_lock);
                return kind == 'd' ? VG_CUDA_ERROR_INVALID_VALUE : VG_CUDA_ERROR_INVALID_HANDLE;
        }
        memory_give(a->device, a->size);
        a->kind = 'T';
        pthread_mutex_unlock(&allocs_lock);
        return VG_CUDA_SUCCESS;
}

/* ---- checks ---- */

#define CHECK_INIT()                                                                             \
        do {                                                                                     \
                if (!initialized)                                                                \
                        return VG_CUDA_ERROR_NOT_INITIALIZED;                                    \
        } while (0)

static bool ctx_valid(const struct CUctx_st *c) {
        return c && c->magic == CTX_MAGIC && c->gen == gen;
}

#define CHECK_CTX()                                                                              \
        do {                                                                                     \
                CHECK_INIT();                                                                    \
                if (!ctx_valid(current))                                                         \
                        return VG_CUDA_ERROR_INVALID_CONTEXT;                                    \
        } while (0)

static bool valid_device(CuDevice d) {
        return d >= 0 && (unsigned) d < st()->n_devices;
}

static void sleep_ns(uint64_t ns) {
        if (ns)
                nanosleep(&(struct timespec) { .tv_sec = (time_t) (ns / 1000000000ULL),
                                               .tv_nsec = (long) (ns % 1000000000ULL) }, NULL);
}

static uint64_t env_u64(const char *name, uint64_t def) {
        const char *v = getenv(name);
        return v && *v ? strtoull(v, NULL, 0) : def;
}

/* ---- initialisation, devices ---- */

/* In a forked child: a new generation, no primary contexts. */
static void fork_child(void) {
        gen++;
        current = NULL;
        memset(primary, 0, sizeof(primary));
        pthread_mutex_init(&primary_lock, NULL);
}

static void register_fork_handler(void) {
        pthread_atfork(NULL, NULL, fork_child);
}

_public_ CuResult cuInit(unsigned int flags) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;

        if (flags != 0)
                return VG_CUDA_ERROR_INVALID_VALUE;
        if (!st())
                return VG_CUDA_ERROR_UNKNOWN;
        pthread_once(&once, register_fork_handler);
        pthread_mutex_lock(&allocs_lock);
        if (!allocs)
                allocs = calloc(ALLOCS, sizeof(Alloc));
        if (!ptr_slots)
                ptr_slots = calloc(ALLOCS, sizeof(PtrSlot));
        pthread_mutex_unlock(&allocs_lock);
        if (!allocs || !ptr_slots)
                return VG_CUDA_ERROR_OUT_OF_MEMORY;
        kernel_ns = env_u64("FAKE_CUDA_KERNEL_US", 1000) * 1000;
        queue_max = env_u64("FAKE_CUDA_QUEUE", 1024);
        context_ns = env_u64("FAKE_CUDA_CONTEXT_MS", 0) * 1000000;
        switch_ns = env_u64("FAKE_CUDA_SWITCH_US", 30) * 1000;
        context_memory = env_u64("FAKE_CUDA_CONTEXT_MEMORY", 0);
        initialized = true;
        return VG_CUDA_SUCCESS;
}

_public_ CuResult cuDriverGetVersion(int *v) {
        if (!v)
                return VG_CUDA_ERROR_INVALID_VALUE;
        *v = 13000;
        return VG_CUDA_SUCCESS;
}

_public_ CuResult cuDeviceGetCount(int *count) {
        CHECK_INIT();
        if (!count)
                return VG_CUDA_ERROR_INVALID_VALUE;
        *count = (int) st()->n_devices;
        return VG_CUDA_SUCCESS;
}

_public_ CuResult cuDeviceGet(CuDevice *dev, int ordinal) {
        CHECK_INIT();
        if (!dev)
                return VG_CUDA_ERROR_INVALID_VALUE;
        if (!valid_device(ordinal))
                return VG_CUDA_ERROR_INVALID_DEVICE;
        *dev = ordinal;
        return VG_CUDA_SUCCESS;
}

_public_ CuResult cuDeviceGetName(char *name, int len, CuDevice dev) {
        CHECK_INIT();
        if (!name || len <= 0)
                return VG_CUDA_ERROR_INVALID_VALUE;
        if (!valid_device(dev))
                return VG_CUDA_ERROR_INVALID_DEVICE;
        snprintf(name, (size_t) len, "Fake GPU %d", dev);
        return VG_CUDA_SUCCESS;
}

_public_ CuResult cuDeviceGetUuid(CuUuid *uuid, CuDevice dev) {
        CHECK_INIT();
        if (!uuid)
                return VG_CUDA_ERROR_INVALID_VALUE;
        if (!valid_device(dev))
                return VG_CUDA_ERROR_INVALID_DEVICE;
        memset(uuid->bytes, 0, sizeof(uuid->bytes));
        uuid->bytes[15] = (char) dev;
        return VG_CUDA_SUCCESS;
}

_public_ CuResult cuDeviceTotalMem_v2(size_t *bytes, CuDevice dev) {
        CHECK_INIT();
        if (!bytes)
                return VG_CUDA_ERROR_INVALID_VALUE;
        if (!valid_device(dev))
                return VG_CUDA_ERROR_INVALID_DEVICE;
        *bytes = (size_t) st()->devices[dev].total_memory;
        return VG_CUDA_SUCCESS;
}

_public_ CuResult cuDeviceGetAttribute(int *pi, int attrib, CuDevice dev) {
        CHECK_INIT();
        if (!pi)
                return VG_CUDA_ERROR_INVALID_VALUE;
        if (!valid_device(dev))
                return VG_CUDA_ERROR_INVALID_DEVICE;
        *pi = attrib == VG_CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT ? 80 : 0;
        return VG_CUDA_SUCCESS;
}

/* ---- contexts ---- */

/* A context comes into being on dev: its memory, and one context more for this
 * process there. */
static CuResult ctx_open(struct CUctx_st *c, CuDevice dev, int primary_) {
        CuResult r = memory_take(dev, context_memory);

        if (r != VG_CUDA_SUCCESS)
                return r;
        sleep_ns(context_ns);
        fake_proc_contexts((unsigned) dev, 1);
        *c = (struct CUctx_st) { .magic = CTX_MAGIC, .device = dev, .refs = 1, .primary = primary_, .gen = gen,
                                 .memory = context_memory };
        return VG_CUDA_SUCCESS;
}

static void ctx_close(struct CUctx_st *c) {
        c->magic = 0;
        c->refs = 0;
        memory_give(c->device, c->memory);
        fake_proc_contexts((unsigned) c->device, -1);
        if (current == c)
                current = NULL;
}

_public_ CuResult cuCtxCreate_v2(CuContext *pctx, unsigned int flags, CuDevice dev) {
        struct CUctx_st *c;
        CuResult r;

        CHECK_INIT();
        if (!pctx)
                return VG_CUDA_ERROR_INVALID_VALUE;
        if (!valid_device(dev))
                return VG_CUDA_ERROR_INVALID_DEVICE;
        c = calloc(1, sizeof(*c));
        if (!c)
                return VG_CUDA_ERROR_OUT_OF_MEMORY;
        r = ctx_open(c, dev, 0);
        if (r != VG_CUDA_SUCCESS) {
                free(c);
                return r;
        }
        current = c;
        *pctx = c;
        return VG_CUDA_SUCCESS;
}

_public_ CuResult cuCtxDestroy_v2(CuContext ctx) {
        CHECK_INIT();
        if (!ctx_valid(ctx) || ctx->primary)
                return VG_CUDA_ERROR_INVALID_CONTEXT;
        ctx_close(ctx);
        free(ctx);
        return VG_CUDA_SUCCESS;
}

_public_ CuResult cuDevicePrimaryCtxRetain(CuContext *pctx, CuDevice dev) {
        struct CUctx_st *c;
        CuResult r;

        CHECK_INIT();
        if (!pctx)
                return VG_CUDA_ERROR_INVALID_VALUE;
        if (!valid_device(dev))
                return VG_CUDA_ERROR_INVALID_DEVICE;
        c = &primary[dev];
        pthread_mutex_lock(&primary_lock);
        r = c->refs == 0 ? ctx_open(c, dev, 1) : (c->refs++, VG_CUDA_SUCCESS);
        pthread_mutex_unlock(&primary_lock);
        if (r == VG_CUDA_SUCCESS)
                *pctx = c;
        return r;
}

_public_ CuResult cuDevicePrimaryCtxRelease_v2(CuDevice dev) {
        CHECK_INIT();
        if (!valid_device(dev))
                return VG_CUDA_ERROR_INVALID_DEVICE;
        pthread_mutex_lock(&primary_lock);
        if (primary[dev].refs == 0) {
                pthread_mutex_unlock(&primary_lock);
                return VG_CUDA_ERROR_INVALID_CONTEXT;
        }
        if (--primary[dev].refs == 0) /* the last release destroys it */
                ctx_close(&primary[dev]);
        pthread_mutex_unlock(&primary_lock);
        return VG_CUDA_SUCCESS;
}

_public_ CuResult cuCtxSetCurrent(CuContext ctx) {
        CHECK_INIT();
        if (ctx && !ctx_valid(ctx))
                return VG_CUDA_ERROR_INVALID_CONTEXT;
        current = ctx;
        return VG_CUDA_SUCCESS;
}

_public_ CuResult cuCtxGetCurrent(CuContext *pctx) {
        CHECK_INIT();
        if (!pctx)
                return VG_CUDA_ERROR_INVALID_VALUE;
        *pctx = current;
        return VG_CUDA_SUCCESS;
}

_public_ CuResult cuCtxGetDevice(CuDevice *dev) {
        CHECK_CTX();
        if (!dev)
                return VG_CUDA_ERROR_INVALID_VALUE;
        *dev = current->device;
        return VG_CUDA_SUCCESS;
}

_public_ CuResult cuCtxGetDevice_v2(CuDevice *dev, CuContext ctx) {
        CHECK_INIT();
        if (!dev)
                return VG_CUDA_ERROR_INVALID_VALUE;
        if (!ctx)
                ctx = current;
        if (!ctx_valid(ctx))
                return VG_CUDA_ERROR_INVALID_CONTEXT;
        *dev = ctx->device;
        return VG_CUDA_SUCCESS;
}

static CuResult synchronize(void) {
        FakeDevice *d;
        uint64_t until, now;

        CHECK_CTX();
        d = &st()->devices[current->device];
        until = __atomic_load_n(&d->busy_until_ns, __ATOMIC_RELAXED);
        now = fake_now_ns();
        if (until > now)
                sleep_ns(until - now);
        return VG_CUDA_SUCCESS;
}

_public_ CuResult cuCtxSynchronize(void) {
        return synchronize();
}

_public_ CuResult cuStreamSynchronize(CuStream s) {
        return synchronize();
}

_public_ CuResult cuStreamSynchronize_ptsz(CuStream s) {
        return synchronize();
}

/* ---- memory ---- */

static CuResult devptr_release(CuDevicePtr p) {
        uint64_t size;
        int device;

        if (!ptr_free(p, &size, &device))
                return VG_CUDA_ERROR_INVALID_VALUE;
        memory_give(device, size);
        return VG_CUDA_SUCCESS;
}

static CuResult devptr_alloc(CuDevicePtr *dptr, size_t size, char kind) {
        CuResult r;
        uint64_t p;

        CHECK_CTX();
        if (!dptr || size == 0)
                return VG_CUDA_ERROR_INVALID_VALUE;
        r = memory_take(current->device, size);
        if (r != VG_CUDA_SUCCESS)
                return r;
        r = ptr_new(size, current->device, &p);
        if (r != VG_CUDA_SUCCESS) {
                memory_give(current->device, size);
                return r;
        }
        *dptr = p;
        return r;
}

_public_ CuResult cuMemAlloc_v2(CuDevicePtr *dptr, size_t bytesize) {
        return devptr_alloc(dptr, bytesize, 'd');
}

_public_ CuResult cuMemAllocManaged(CuDevicePtr *dptr, size_t bytesize, unsigned int flags) {
        if (flags != 1 && flags != 2) /* CU_MEM_ATTACH_GLOBAL / HOST */
                return VG_CUDA_ERROR_INVALID_VALUE;
        return devptr_alloc(dptr, bytesize, 'd');
}

_public_ CuResult cuMemAllocPitch_v2(CuDevicePtr *dptr, size_t *pPitch, size_t WidthInBytes, size_t Height,
                                     unsigned int ElementSizeBytes) {
        size_t pitch;

        CHECK_CTX();
        if (!pPitch || (ElementSizeBytes != 4 && ElementSizeBytes != 8 && ElementSizeBytes != 16) || !Height ||
            !WidthInBytes)
                return VG_CUDA_ERROR_INVALID_VALUE;
        pitch = (WidthInBytes + 511) & ~(size_t) 511;
        if (Height > SIZE_MAX / pitch)
                return VG_CUDA_ERROR_OUT_OF_MEMORY;
        *pPitch = pitch;
        return devptr_alloc(dptr, pitch * Height, 'd');
}

_public_ CuResult cuMemFree_v2(CuDevicePtr dptr) {
        CHECK_CTX();
        if (dptr == 0)
                return VG_CUDA_SUCCESS;
        return devptr_release(dptr);
}

_public_ CuResult cuMemAllocAsync(CuDevicePtr *dptr, size_t bytesize, CuStream s) {
        return devptr_alloc(dptr, bytesize, 'd');
}
_public_ CuResult cuMemAllocAsync_ptsz(CuDevicePtr *dptr, size_t bytesize, CuStream s) {
        return devptr_alloc(dptr, bytesize, 'd');
}

static FakeObject pools[FAKE_DEVICES_MAX];

_public_ CuResult cuDeviceGetDefaultMemPool(CuMemoryPool *pool, CuDevice dev) {
        CHECK_INIT();
        if (!pool)
                return VG_CUDA_ERROR_INVALID_VALUE;
        if (!valid_device(dev))
                return VG_CUDA_ERROR_INVALID_DEVICE;
        pools[dev] = (FakeObject) { .magic = OBJ_MAGIC, .kind = 'p', .device = dev };
        *pool = (CuMemoryPool) &pools[dev];
        return VG_CUDA_SUCCESS;
}

static CuResult pool_alloc(CuDevicePtr *dptr, size_t bytesize, CuMemoryPool pool) {
        FakeObject *o = (FakeObject *) pool;

        if (!o || o->magic != OBJ_MAGIC || o->kind != 'p')
                return VG_CUDA_ERROR_INVALID_VALUE;
        return devptr_alloc(dptr, bytesize, 'd');
}

_public_ CuResult cuMemAllocFromPoolAsync(CuDevicePtr *dptr, size_t bytesize, CuMemoryPool pool, CuStream s) {
        return pool_alloc(dptr, bytesize, pool);
}
_public_ CuResult cuMemAllocFromPoolAsync_ptsz(CuDevicePtr *dptr, size_t bytesize, CuMemoryPool pool, CuStream s) {
        return pool_alloc(dptr, bytesize, pool);
}

_public_ CuResult cuMemFreeAsync(CuDevicePtr dptr, CuStream s) {
        CHECK_CTX();
        return devptr_release(dptr);
}
_public_ CuResult cuMemFreeAsync_ptsz(CuDevicePtr dptr, CuStream s) {
        CHECK_CTX();
        return devptr_release(dptr);
}

_public_ CuResult cuMemCreate(CuMemHandle *handle, size_t size, const CuMemAllocationProp *prop,
                              unsigned long long flags) {
        CuResult r;
        uint64_t h;

        CHECK_INIT();
        if (!handle || !prop || size == 0 || flags != 0 || prop->type != VG_CU_MEM_ALLOCATION_TYPE_PINNED ||
            prop->location.type != VG_CU_MEM_LOCATION_TYPE_DEVICE)
                return VG_CUDA_ERROR_INVALID_VALUE;
        if (!valid_device(prop->location.id))
                return VG_CUDA_ERROR_INVALID_DEVICE;
        if (size % (2u << 20) != 0) /* the granularity */
                return VG_CUDA_ERROR_INVALID_VALUE;
        r = memory_take(prop->location.id, size);
        if (r != VG_CUDA_SUCCESS)
                return r;
        h = __atomic_add_fetch(&next_ptr, 256, __ATOMIC_RELAXED);
        r = record(h, size, prop->location.id, 'h');
        if (r == VG_CUDA_SUCCESS)
                *handle = h;
        return r;
}

_public_ CuResult cuMemRelease(CuMemHandle handle) {
        CHECK_INIT();
        return unrecord(handle, 'h');
}

static unsigned element_bytes(CuArrayFormat f) {
        switch (f) {
        case VG_CU_AD_FORMAT_UNSIGNED_INT8:
        case VG_CU_AD_FORMAT_SIGNED_INT8:
                return 1;
        case VG_CU_AD_FORMAT_UNSIGNED_INT16:
        case VG_CU_AD_FORMAT_SIGNED_INT16:
        case VG_CU_AD_FORMAT_HALF:
                return 2;
        case VG_CU_AD_FORMAT_UNSIGNED_INT32:
        case VG_CU_AD_FORMAT_SIGNED_INT32:
        case VG_CU_AD_FORMAT_FLOAT:
                return 4;
        default:
                return 0;
        }
}

static CuResult array_alloc(void **out, size_t w, size_t h, size_t d, CuArrayFormat f, unsigned ch, unsigned levels,
                            char kind) {
        uint64_t size = 0, e = element_bytes(f);
        FakeObject *o;
        CuResult r;

        CHECK_CTX();
        if (!out || e == 0 || (ch != 1 && ch != 2 && ch != 4) || w == 0 || levels == 0)
                return VG_CUDA_ERROR_INVALID_VALUE;
        for (unsigned l = 0; l < levels; l++) {
                uint64_t s = e * ch;
                if (__builtin_mul_overflow(s, w, &s) || __builtin_mul_overflow(s, h ? h : 1, &s) ||
                    __builtin_mul_overflow(s, d ? d : 1, &s) || __builtin_add_overflow(size, s, &size))
                        return VG_CUDA_ERROR_OUT_OF_MEMORY;
                w = w > 1 ? w / 2 : 1;
                h = h > 1 ? h / 2 : h;
                d = d > 1 ? d / 2 : d;
        }
        r = memory_take(current->device, size);
        if (r != VG_CUDA_SUCCESS)
                return r;
        o = calloc(1, sizeof(*o));
        if (!o) {
                memory_give(current->device, size);
                return VG_CUDA_ERROR_OUT_OF_MEMORY;
        }
        *o = (FakeObject) { .magic = OBJ_MAGIC, .kind = kind, .device = current->device, .size = size };
        r = record((uint64_t) (uintptr_t) o, size, current->device, kind);
        if (r != VG_CUDA_SUCCESS) {
                free(o);
                return r;
        }
        *out = o;
        return VG_CUDA_SUCCESS;
}

_public_ CuResult cuArrayCreate_v2(CuArray *pHandle, const CuArrayDescriptor *a) {
        if (!a)
                return VG_CUDA_ERROR_INVALID_VALUE;
        return array_alloc((void **) pHandle, a->Width, a->Height, 0, a->Format, a->NumChannels, 1, 'a');
}

_public_ CuResult cuArray3DCreate_v2(CuArray *pHandle, const CuArray3DDescriptor *a) {
        if (!a)
                return VG_CUDA_ERROR_INVALID_VALUE;
        return array_alloc((void **) pHandle, a->Width, a->Height, a->Depth, a->Format, a->NumChannels, 1, 'a');
}

_public_ CuResult cuMipmappedArrayCreate(CuMipmappedArray *pHandle, const CuArray3DDescriptor *a, unsigned int levels) {
        if (!a)
                return VG_CUDA_ERROR_INVALID_VALUE;
        return array_alloc((void **) pHandle, a->Width, a->Height, a->Depth, a->Format, a->NumChannels, levels, 'm');
}

static CuResult object_free(void *h, char kind) {
        CuResult r;

        CHECK_INIT();
        if (!h)
                return VG_CUDA_ERROR_INVALID_HANDLE;
        r = unrecord((uint64_t) (uintptr_t) h, kind);
        if (r == VG_CUDA_SUCCESS) {
                ((FakeObject *) h)->magic = 0;
                free(h);
        }
        return r;
}

_public_ CuResult cuArrayDestroy(CuArray a) {
        return object_free(a, 'a');
}

_public_ CuResult cuMipmappedArrayDestroy(CuMipmappedArray a) {
        return object_free(a, 'm');
}

_public_ CuResult cuMemGetInfo_v2(size_t *free_, size_t *total) {
        FakeDevice *d;

        CHECK_CTX();
        if (!free_ || !total)
                return VG_CUDA_ERROR_INVALID_VALUE;
        d = &st()->devices[current->device];
        fake_state_reclaim(d); /* the driver frees a dead process's memory at once */
        *total = (size_t) d->total_memory;
        *free_ = (size_t) (d->total_memory - __atomic_load_n(&d->used_memory, __ATOMIC_RELAXED));
        return VG_CUDA_SUCCESS;
}

/* ---- modules, kernels, graphs ---- */

static FakeObject *object_new(char kind) {
        FakeObject *o = calloc(1, sizeof(*o));
        if (o)
                *o = (FakeObject) { .magic = OBJ_MAGIC, .kind = kind };
        return o;
}

static bool object_is(const void *p, char kind) {
        const FakeObject *o = p;
        return o && o->magic == OBJ_MAGIC && o->kind == kind;
}

_public_ CuResult cuModuleLoadData(CuModule *module, const void *image) {
        CHECK_CTX();
        if (!module || !image)
                return VG_CUDA_ERROR_INVALID_VALUE;
        *module = (CuModule) object_new('M');
        return *module ? VG_CUDA_SUCCESS : VG_CUDA_ERROR_OUT_OF_MEMORY;
}

_public_ CuResult cuModuleGetFunction(CuFunction *f, CuModule m, const char *name) {
        CHECK_CTX();
        if (!f || !name || !object_is(m, 'M'))
                return VG_CUDA_ERROR_INVALID_VALUE;
        *f = (CuFunction) object_new('F');
        return *f ? VG_CUDA_SUCCESS : VG_CUDA_ERROR_OUT_OF_MEMORY;
}

static CuResult launch(const void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz) {
        CHECK_CTX();
        if (!object_is(f, 'F') || !gx || !gy || !gz || !bx || !by || !bz || (uint64_t) bx * by * bz > 1024)
                return VG_CUDA_ERROR_INVALID_VALUE;
        fake_state_launch(&st()->devices[current->device], fake_proc_self((unsigned) current->device), kernel_ns,
                          switch_ns, queue_max);
        return VG_CUDA_SUCCESS;
}

_public_ CuResult cuLaunchKernel(CuFunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                                 unsigned bz, unsigned shm, CuStream s, void **params, void **extra) {
        return launch(f, gx, gy, gz, bx, by, bz);
}
_public_ CuResult cuLaunchKernel_ptsz(CuFunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                                      unsigned bz, unsigned shm, CuStream s, void **params, void **extra) {
        return launch(f, gx, gy, gz, bx, by, bz);
}
_public_ CuResult cuLaunchCooperativeKernel(CuFunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                                            unsigned by, unsigned bz, unsigned shm, CuStream s, void **params) {
        return launch(f, gx, gy, gz, bx, by, bz);
}
_public_ CuResult cuLaunchCooperativeKernel_ptsz(CuFunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                                                 unsigned by, unsigned bz, unsigned shm, CuStream s, void **params) {
        return launch(f, gx, gy, gz, bx, by, bz);
}
_public_ CuResult cuLaunchKernelEx(const CuLaunchConfig *c, CuFunction f, void **params, void **extra) {
        if (!c)
                return VG_CUDA_ERROR_INVALID_VALUE;
        return launch(f, c->gridDimX, c->gridDimY, c->gridDimZ, c->blockDimX, c->blockDimY, c->blockDimZ);
}
_public_ CuResult cuLaunchKernelEx_ptsz(const CuLaunchConfig *c, CuFunction f, void **params, void **extra) {
        if (!c)
                return VG_CUDA_ERROR_INVALID_VALUE;
        return launch(f, c->gridDimX, c->gridDimY, c->gridDimZ, c->blockDimX, c->blockDimY, c->blockDimZ);
}

_public_ CuResult cuGraphCreate(CuGraph *g, unsigned int flags) {
        CHECK_CTX();
        if (!g || flags)
                return VG_CUDA_ERROR_INVALID_VALUE;
        *g = (CuGraph) object_new('G');
        return *g ? VG_CUDA_SUCCESS : VG_CUDA_ERROR_OUT_OF_MEMORY;
}

_public_ CuResult cuGraphInstantiateWithFlags(CuGraphExec *e, CuGraph g, unsigned long long flags) {
        CHECK_CTX();
        if (!e || !object_is(g, 'G'))
                return VG_CUDA_ERROR_INVALID_VALUE;
        *e = (CuGraphExec) object_new('E');
        return *e ? VG_CUDA_SUCCESS : VG_CUDA_ERROR_OUT_OF_MEMORY;
}

static CuResult graph_launch(CuGraphExec e) {
        CHECK_CTX();
        if (!object_is(e, 'E'))
                return VG_CUDA_ERROR_INVALID_VALUE;
        fake_state_launch(&st()->devices[current->device], fake_proc_self((unsigned) current->device), kernel_ns,
                          switch_ns, queue_max);
        return VG_CUDA_SUCCESS;
}

_public_ CuResult cuGraphLaunch(CuGraphExec e, CuStream s) {
        return graph_launch(e);
}
_public_ CuResult cuGraphLaunch_ptsz(CuGraphExec e, CuStream s) {
        return graph_launch(e);
}

/* ---- private tables, passed through by the preload ---- */

static const void *export_table[4] = { (void *) (uintptr_t) sizeof(export_table), NULL, NULL, NULL };

_public_ CuResult cuGetExportTable(const void **table, const CuUuid *id) {
        if (!table || !id)
                return VG_CUDA_ERROR_INVALID_VALUE;
        *table = export_table;
        return VG_CUDA_SUCCESS;
}

/* ---- cuGetProcAddress: (name, version, stream) -> entry point ---- */

CuResult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, CuUint64 flags);
CuResult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, CuUint64 flags,
                             CuProcStatus *status);

typedef struct ProcEntry {
        const char *name;
        int version;
        char stream; /* 'n'one, 'l'egacy, 'p'er-thread */
        void *fn;
} ProcEntry;

static const ProcEntry procs[] = {
        { "cuInit", 2000, 'n', (void *) cuInit },
        { "cuDriverGetVersion", 2020, 'n', (void *) cuDriverGetVersion },
        { "cuDeviceGet", 2000, 'n', (void *) cuDeviceGet },
        { "cuDeviceGetCount", 2000, 'n', (void *) cuDeviceGetCount },
        { "cuDeviceGetName", 2000, 'n', (void *) cuDeviceGetName },
        { "cuDeviceGetUuid", 9020, 'n', (void *) cuDeviceGetUuid },
        { "cuDeviceTotalMem", 3020, 'n', (void *) cuDeviceTotalMem_v2 },
        { "cuDeviceGetAttribute", 2000, 'n', (void *) cuDeviceGetAttribute },
        { "cuDeviceGetDefaultMemPool", 11020, 'n', (void *) cuDeviceGetDefaultMemPool },
        { "cuCtxCreate", 3020, 'n', (void *) cuCtxCreate_v2 },
        { "cuCtxDestroy", 4000, 'n', (void *) cuCtxDestroy_v2 },
        { "cuCtxSetCurrent", 4000, 'n', (void *) cuCtxSetCurrent },
        { "cuCtxGetCurrent", 4000, 'n', (void *) cuCtxGetCurrent },
        { "cuCtxGetDevice", 2000, 'n', (void *) cuCtxGetDevice },
        { "cuCtxGetDevice", 13000, 'n', (void *) cuCtxGetDevice_v2 },
        { "cuCtxSynchronize", 2000, 'n', (void *) cuCtxSynchronize },
        { "cuDevicePrimaryCtxRetain", 7000, 'n', (void *) cuDevicePrimaryCtxRetain },
        { "cuDevicePrimaryCtxRelease", 11000, 'n', (void *) cuDevicePrimaryCtxRelease_v2 },
        { "cuStreamSynchronize", 2000, 'l', (void *) cuStreamSynchronize },
        { "cuStreamSynchronize", 7000, 'p', (void *) cuStreamSynchronize_ptsz },
        { "cuModuleLoadData", 2000, 'n', (void *) cuModuleLoadData },
        { "cuModuleGetFunction", 2000, 'n', (void *) cuModuleGetFunction },
        { "cuMemAlloc", 3020, 'n', (void *) cuMemAlloc_v2 },
        { "cuMemAllocManaged", 6000, 'n', (void *) cuMemAllocManaged },
        { "cuMemAllocPitch", 3020, 'n', (void *) cuMemAllocPitch_v2 },
        { "cuMemFree", 3020, 'n', (void *) cuMemFree_v2 },
        { "cuMemGetInfo", 3020, 'n', (void *) cuMemGetInfo_v2 },
        { "cuMemAllocAsync", 11020, 'l', (void *) cuMemAllocAsync },
        { "cuMemAllocAsync", 11020, 'p', (void *) cuMemAllocAsync_ptsz },
        { "cuMemAllocFromPoolAsync", 11020, 'l', (void *) cuMemAllocFromPoolAsync },
        { "cuMemAllocFromPoolAsync", 11020, 'p', (void *) cuMemAllocFromPoolAsync_ptsz },
        { "cuMemFreeAsync", 11020, 'l', (void *) cuMemFreeAsync },
        { "cuMemFreeAsync", 11020, 'p', (void *) cuMemFreeAsync_ptsz },
        { "cuMemCreate", 10020, 'n', (void *) cuMemCreate },
        { "cuMemRelease", 10020, 'n', (void *) cuMemRelease },
        { "cuArrayCreate", 3020, 'n', (void *) cuArrayCreate_v2 },
        { "cuArray3DCreate", 3020, 'n', (void *) cuArray3DCreate_v2 },
        { "cuArrayDestroy", 2000, 'n', (void *) cuArrayDestroy },
        { "cuMipmappedArrayCreate", 5000, 'n', (void *) cuMipmappedArrayCreate },
        { "cuMipmappedArrayDestroy", 5000, 'n', (void *) cuMipmappedArrayDestroy },
        { "cuLaunchKernel", 4000, 'l', (void *) cuLaunchKernel },
        { "cuLaunchKernel", 7000, 'p', (void *) cuLaunchKernel_ptsz },
        { "cuLaunchKernelEx", 11060, 'l', (void *) cuLaunchKernelEx },
        { "cuLaunchKernelEx", 11060, 'p', (void *) cuLaunchKernelEx_ptsz },
        { "cuLaunchCooperativeKernel", 9000, 'l', (void *) cuLaunchCooperativeKernel },
        { "cuLaunchCooperativeKernel", 9000, 'p', (void *) cuLaunchCooperativeKernel_ptsz },
        { "cuGraphCreate", 10000, 'n', (void *) cuGraphCreate },
        { "cuGraphInstantiateWithFlags", 11040, 'n', (void *) cuGraphInstantiateWithFlags },
        { "cuGraphLaunch", 10000, 'l', (void *) cuGraphLaunch },
        { "cuGraphLaunch", 10000, 'p', (void *) cuGraphLaunch_ptsz },
        { "cuGetExportTable", 3000, 'n', (void *) cuGetExportTable },
        { "cuGetProcAddress", 11030, 'n', (void *) cuGetProcAddress },
        { "cuGetProcAddress", 12000, 'n', (void *) cuGetProcAddress_v2 },
};

_public_ CuResult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, CuUint64 flags,
                                      CuProcStatus *status) {
        bool ptds = flags & VG_CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, known = false;
        const ProcEntry *best = NULL;

        if (!symbol || !pfn || flags > 2)
                return VG_CUDA_ERROR_INVALID_VALUE;
        for (size_t i = 0; i < sizeof(procs) / sizeof(procs[0]); i++) {
                const ProcEntry *e = &procs[i];
                if (strcmp(e->name, symbol) != 0)
                        continue;
                known = true;
                if (e->version > cudaVersion || (e->stream != 'n' && (e->stream == 'p') != ptds))
                        continue;
                if (!best || e->version > best->version)
                        best = e;
        }
        *pfn = best ? best->fn : NULL;
        if (status)
                *status = best ? VG_CU_GET_PROC_ADDRESS_SUCCESS
                               : known ? VG_CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT
                                       : VG_CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
        return best ? VG_CUDA_SUCCESS : VG_CUDA_ERROR_NOT_FOUND;
}

_public_ CuResult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, CuUint64 flags) {
        return cuGetProcAddress_v2(symbol, pfn, cudaVersion, flags, NULL);
}

/* For tests: the driver's own answer, under a name no preload intercepts. */
_public_ CuResult fakecuda_get_proc_address(const char *symbol, void **pfn, int cudaVersion, CuUint64 flags,
                                            CuProcStatus *status) {
        return cuGetProcAddress_v2(symbol, pfn, cudaVersion, flags, status);
}
