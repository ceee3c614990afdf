/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The memory hooks. Every allocation reserves its size in the shared region first
 * (failing with CUDA_ERROR_OUT_OF_MEMORY past the limit), then calls the driver, then
 * records (kind, handle) -> (size, device) or rolls the reservation back. Every free
 * gives back what its allocation recorded, once the driver accepted the free.
 */

#include <errno.h>

#include "alloc-map.h"
#include "vgpu.h"

#define _public_ __attribute__((visibility("default")))

/* Enter a hook: make sure we are initialised, and pass through when re-entered. */
#define HOOK_ENTER(sym, ...)                                                                     \
        do {                                                                                     \
                if (!vgpu_init() || !vgpu_real.sym)                                              \
                        return VG_CUDA_ERROR_NOT_INITIALIZED;                                    \
                if (!vgpu_guard_enter()) {                                                       \
                        vgpu_guard_leave();                                                      \
                        return vgpu_real.sym(__VA_ARGS__);                                       \
                }                                                                                \
        } while (0)

static uint64_t device_limit(int dev) {
        return dev >= 0 && dev < (int) SHARED_REGION_DEVICES_MAX ? vgpu_config.memory_limit[dev] : 0;
}

/* The limit left for our reservations: what the driver holds beyond them (the monitor
 * measures it) counts too. 0 means no limit, so a footprint already past it leaves 1. */
static uint64_t reservation_limit(int dev) {
        uint64_t limit = device_limit(dev), extra;

        if (limit == 0 || !vgpu_region.header || (unsigned) dev >= vgpu_region.header->n_devices)
                return limit;
        extra = __atomic_load_n(&vgpu_region.header->devices[dev].footprint_extra, __ATOMIC_RELAXED);
        return extra < limit ? limit - extra : 1;
}

static CuResult reserve(int dev, uint64_t size) {
        int r;

        if (dev < 0)
                return VG_CUDA_SUCCESS; /* no context: the driver will say so */
        r = shared_region_reserve(&vgpu_region, (uint32_t) dev, size, reservation_limit(dev));
        if (r == -ENOMEM) {
                vgpu_log(VGPU_LOG_INFO, "device %d: allocation of %llu bytes refused: %llu of %llu in use", dev,
                         (unsigned long long) size, (unsigned long long) shared_region_footprint(&vgpu_region, (uint32_t) dev),
                         (unsigned long long) device_limit(dev));
                return VG_CUDA_ERROR_OUT_OF_MEMORY;
        }
        if (r < 0 && device_limit(dev) > 0)
                return VG_CUDA_ERROR_OUT_OF_MEMORY; /* cannot account: refuse rather than overshoot */
        return VG_CUDA_SUCCESS;
}

static void release(int dev, uint64_t size) {
        if (dev >= 0)
                shared_region_release(&vgpu_region, (uint32_t) dev, size);
}

/* After the driver's answer r to an allocation of size on dev: record it, or roll back. */
static CuResult settle(CuResult r, AllocKind kind, uint64_t key, int dev, uint64_t size) {
        if (r != VG_CUDA_SUCCESS) {
                release(dev, size);
                return r;
        }
        if (dev >= 0 && alloc_map_put(kind, key, size, dev) < 0) {
                /* Cannot remember it (the table is at its cap): undo it rather than let
                 * it go uncounted. */
                switch (kind) {
                case ALLOC_DEVPTR:
                        vgpu_real.cuMemFree_v2(key);
                        break;
                case ALLOC_HANDLE:
                        vgpu_real.cuMemRelease(key);
                        break;
                case ALLOC_ARRAY:
                        vgpu_real.cuArrayDestroy((CuArray) (uintptr_t) key);
                        break;
                case ALLOC_MIPMAP:
                        vgpu_real.cuMipmappedArrayDestroy((CuMipmappedArray) (uintptr_t) key);
                        break;
                }
                release(dev, size);
                return VG_CUDA_ERROR_OUT_OF_MEMORY;
        }
        return VG_CUDA_SUCCESS;
}

static void forget(CuResult r, AllocKind kind, uint64_t key) {
        uint64_t size;
        int dev;

        if (r == VG_CUDA_SUCCESS && alloc_map_take(kind, key, &size, &dev))
                release(dev, size);
}

static CuResult devptr_alloc_common(CuResult (*call)(CuDevicePtr *, size_t, void *, void *), CuDevicePtr *dptr,
                                    size_t size, void *a, void *b) {
        int dev = vgpu_current_device();
        CuResult r;

        if (!dptr)
                return call(dptr, size, a, b); /* let the driver reject it */
        r = reserve(dev, size);
        if (r != VG_CUDA_SUCCESS)
                return r;
        r = call(dptr, size, a, b);
        return settle(r, ALLOC_DEVPTR, *dptr, dev, size);
}

static CuResult call_alloc(CuDevicePtr *p, size_t s, void *a, void *b) {
        return vgpu_real.cuMemAlloc_v2(p, s);
}

_public_ CuResult cuMemAlloc_v2(CuDevicePtr *dptr, size_t bytesize) {
        CuResult r;

        HOOK_ENTER(cuMemAlloc_v2, dptr, bytesize);
        r = devptr_alloc_common(call_alloc, dptr, bytesize, NULL, NULL);
        vgpu_guard_leave();
        return r;
}

static CuResult call_managed(CuDevicePtr *p, size_t s, void *a, void *b) {
        return vgpu_real.cuMemAllocManaged(p, s, *(unsigned *) a);
}

_public_ CuResult cuMemAllocManaged(CuDevicePtr *dptr, size_t bytesize, unsigned int flags) {
        CuResult r;

        HOOK_ENTER(cuMemAllocManaged, dptr, bytesize, flags);
        r = devptr_alloc_common(call_managed, dptr, bytesize, &flags, NULL);
        vgpu_guard_leave();
        return r;
}

static CuResult call_async(CuDevicePtr *p, size_t s, void *a, void *b) {
        return vgpu_real.cuMemAllocAsync(p, s, (CuStream) a);
}
static CuResult call_async_ptsz(CuDevicePtr *p, size_t s, void *a, void *b) {
        return vgpu_real.cuMemAllocAsync_ptsz(p, s, (CuStream) a);
}
static CuResult call_pool(CuDevicePtr *p, size_t s, void *a, void *b) {
        return vgpu_real.cuMemAllocFromPoolAsync(p, s, (CuMemoryPool) a, (CuStream) b);
}
static CuResult call_pool_ptsz(CuDevicePtr *p, size_t s, void *a, void *b) {
        return vgpu_real.cuMemAllocFromPoolAsync_ptsz(p, s, (CuMemoryPool) a, (CuStream) b);
}

_public_ CuResult cuMemAllocAsync(CuDevicePtr *dptr, size_t bytesize, CuStream hStream) {
        CuResult r;

        HOOK_ENTER(cuMemAllocAsync, dptr, bytesize, hStream);
        r = devptr_alloc_common(call_async, dptr, bytesize, hStream, NULL);
        vgpu_guard_leave();
        return r;
}

_public_ CuResult cuMemAllocAsync_ptsz(CuDevicePtr *dptr, size_t bytesize, CuStream hStream) {
        CuResult r;

        HOOK_ENTER(cuMemAllocAsync_ptsz, dptr, bytesize, hStream);
        r = devptr_alloc_common(call_async_ptsz, dptr, bytesize, hStream, NULL);
        vgpu_guard_leave();
        return r;
}

_public_ CuResult cuMemAllocFromPoolAsync(CuDevicePtr *dptr, size_t bytesize, CuMemoryPool pool, CuStream hStream) {
        CuResult r;

        HOOK_ENTER(cuMemAllocFromPoolAsync, dptr, bytesize, pool, hStream);
        r = devptr_alloc_common(call_pool, dptr, bytesize, pool, hStream);
        vgpu_guard_leave();
        return r;
}

_public_ CuResult cuMemAllocFromPoolAsync_ptsz(CuDevicePtr *dptr, size_t bytesize, CuMemoryPool pool,
                                               CuStream hStream) {
        CuResult r;

        HOOK_ENTER(cuMemAllocFromPoolAsync_ptsz, dptr, bytesize, pool, hStream);
        r = devptr_alloc_common(call_pool_ptsz, dptr, bytesize, pool, hStream);
        vgpu_guard_leave();
        return r;
}

_public_ CuResult cuMemAllocPitch_v2(CuDevicePtr *dptr, size_t *pPitch, size_t WidthInBytes, size_t Height,
                                     unsigned int ElementSizeBytes) {
        int dev;
        uint64_t size, actual;
        CuResult r;

        HOOK_ENTER(cuMemAllocPitch_v2, dptr, pPitch, WidthInBytes, Height, ElementSizeBytes);
        dev = vgpu_current_device();
        if (!dptr || !pPitch || __builtin_mul_overflow((uint64_t) WidthInBytes, (uint64_t) Height, &size)) {
                r = vgpu_real.cuMemAllocPitch_v2(dptr, pPitch, WidthInBytes, Height, ElementSizeBytes);
                goto finish;
        }
        /* The pitch is only known afterwards: reserve the minimum, then the padding. */
        r = reserve(dev, size);
        if (r != VG_CUDA_SUCCESS)
                goto finish;
        r = vgpu_real.cuMemAllocPitch_v2(dptr, pPitch, WidthInBytes, Height, ElementSizeBytes);
        if (r == VG_CUDA_SUCCESS && !__builtin_mul_overflow((uint64_t) *pPitch, (uint64_t) Height, &actual) &&
            actual > size) {
                if (reserve(dev, actual - size) != VG_CUDA_SUCCESS) {
                        vgpu_real.cuMemFree_v2(*dptr);
                        release(dev, size);
                        r = VG_CUDA_ERROR_OUT_OF_MEMORY;
                        goto finish;
                }
                size = actual;
        }
        r = settle(r, ALLOC_DEVPTR, *dptr, dev, size);
finish:
        vgpu_guard_leave();
        return r;
}

_public_ CuResult cuMemFree_v2(CuDevicePtr dptr) {
        CuResult r;

        HOOK_ENTER(cuMemFree_v2, dptr);
        r = vgpu_real.cuMemFree_v2(dptr);
        forget(r, ALLOC_DEVPTR, dptr);
        vgpu_guard_leave();
        return r;
}

_public_ CuResult cuMemFreeAsync(CuDevicePtr dptr, CuStream hStream) {
        CuResult r;

        HOOK_ENTER(cuMemFreeAsync, dptr, hStream);
        r = vgpu_real.cuMemFreeAsync(dptr, hStream);
        forget(r, ALLOC_DEVPTR, dptr);
        vgpu_guard_leave();
        return r;
}

_public_ CuResult cuMemFreeAsync_ptsz(CuDevicePtr dptr, CuStream hStream) {
        CuResult r;

        HOOK_ENTER(cuMemFreeAsync_ptsz, dptr, hStream);
        r = vgpu_real.cuMemFreeAsync_ptsz(dptr, hStream);
        forget(r, ALLOC_DEVPTR, dptr);
        vgpu_guard_leave();
        return r;
}

_public_ CuResult cuMemCreate(CuMemHandle *handle, size_t size, const CuMemAllocationProp *prop,
                              unsigned long long flags) {
        int dev = -1;
        CuResult r;

        HOOK_ENTER(cuMemCreate, handle, size, prop, flags);
        if (handle && prop && prop->location.type == VG_CU_MEM_LOCATION_TYPE_DEVICE)
                dev = vgpu_device_of_ordinal(prop->location.id);
        r = reserve(dev, size);
        if (r == VG_CUDA_SUCCESS) {
                r = vgpu_real.cuMemCreate(handle, size, prop, flags);
                r = settle(r, ALLOC_HANDLE, r == VG_CUDA_SUCCESS ? *handle : 0, dev, size);
        }
        vgpu_guard_leave();
        return r;
}

_public_ CuResult cuMemRelease(CuMemHandle handle) {
        CuResult r;

        HOOK_ENTER(cuMemRelease, handle);
        r = vgpu_real.cuMemRelease(handle);
        forget(r, ALLOC_HANDLE, handle);
        vgpu_guard_leave();
        return r;
}

/* Bytes per element of an array format; unknown formats count as 16 (over, not under). */
static uint64_t format_bytes(CuArrayFormat f) {
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
                return 16;
        }
}

static bool array_size(size_t w, size_t h, size_t d, CuArrayFormat f, unsigned channels, uint64_t *ret) {
        uint64_t s = format_bytes(f);

        if (__builtin_mul_overflow(s, (uint64_t) (channels ? channels : 1), &s) ||
            __builtin_mul_overflow(s, (uint64_t) (w ? w : 1), &s) ||
            __builtin_mul_overflow(s, (uint64_t) (h ? h : 1), &s) ||
            __builtin_mul_overflow(s, (uint64_t) (d ? d : 1), &s))
                return false;
        *ret = s;
        return true;
}

_public_ CuResult cuArrayCreate_v2(CuArray *pHandle, const CuArrayDescriptor *desc) {
        uint64_t size = 0;
        CuResult r;
        int dev;

        HOOK_ENTER(cuArrayCreate_v2, pHandle, desc);
        dev = vgpu_current_device();
        if (!pHandle || !desc || !array_size(desc->Width, desc->Height, 1, desc->Format, desc->NumChannels, &size))
                dev = -1;
        r = reserve(dev, size);
        if (r == VG_CUDA_SUCCESS) {
                r = vgpu_real.cuArrayCreate_v2(pHandle, desc);
                r = settle(r, ALLOC_ARRAY, r == VG_CUDA_SUCCESS ? (uint64_t) (uintptr_t) *pHandle : 0, dev, size);
        }
        vgpu_guard_leave();
        return r;
}

_public_ CuResult cuArray3DCreate_v2(CuArray *pHandle, const CuArray3DDescriptor *desc) {
        uint64_t size = 0;
        CuResult r;
        int dev;

        HOOK_ENTER(cuArray3DCreate_v2, pHandle, desc);
        dev = vgpu_current_device();
        if (!pHandle || !desc ||
            !array_size(desc->Width, desc->Height, desc->Depth, desc->Format, desc->NumChannels, &size))
                dev = -1;
        r = reserve(dev, size);
        if (r == VG_CUDA_SUCCESS) {
                r = vgpu_real.cuArray3DCreate_v2(pHandle, desc);
                r = settle(r, ALLOC_ARRAY, r == VG_CUDA_SUCCESS ? (uint64_t) (uintptr_t) *pHandle : 0, dev, size);
        }
        vgpu_guard_leave();
        return r;
}

_public_ CuResult cuArrayDestroy(CuArray hArray) {
        CuResult r;

        HOOK_ENTER(cuArrayDestroy, hArray);
        r = vgpu_real.cuArrayDestroy(hArray);
        forget(r, ALLOC_ARRAY, (uint64_t) (uintptr_t) hArray);
        vgpu_guard_leave();
        return r;
}

/* Sum of the levels, each halving every extent down to 1. */
static bool mipmap_size(const CuArray3DDescriptor *d, unsigned levels, uint64_t *ret) {
        size_t w = d->Width, h = d->Height, z = d->Depth;
        uint64_t total = 0;

        for (unsigned l = 0; l < levels && l < 64; l++) {
                uint64_t s;
                if (!array_size(w, h, z, d->Format, d->NumChannels, &s) || __builtin_add_overflow(total, s, &total))
                        return false;
                w = w > 1 ? w / 2 : 1;
                h = h > 1 ? h / 2 : h;
                z = z > 1 ? z / 2 : z;
        }
        *ret = total;
        return true;
}

_public_ CuResult cuMipmappedArrayCreate(CuMipmappedArray *pHandle, const CuArray3DDescriptor *desc,
                                         unsigned int numMipmapLevels) {
        uint64_t size = 0;
        CuResult r;
        int dev;

        HOOK_ENTER(cuMipmappedArrayCreate, pHandle, desc, numMipmapLevels);
        dev = vgpu_current_device();
        if (!pHandle || !desc || !mipmap_size(desc, numMipmapLevels, &size))
                dev = -1;
        r = reserve(dev, size);
        if (r == VG_CUDA_SUCCESS) {
                r = vgpu_real.cuMipmappedArrayCreate(pHandle, desc, numMipmapLevels);
                r = settle(r, ALLOC_MIPMAP, r == VG_CUDA_SUCCESS ? (uint64_t) (uintptr_t) *pHandle : 0, dev, size);
        }
        vgpu_guard_leave();
        return r;
}

_public_ CuResult cuMipmappedArrayDestroy(CuMipmappedArray h) {
        CuResult r;

        HOOK_ENTER(cuMipmappedArrayDestroy, h);
        r = vgpu_real.cuMipmappedArrayDestroy(h);
        forget(r, ALLOC_MIPMAP, (uint64_t) (uintptr_t) h);
        vgpu_guard_leave();
        return r;
}

/* ---- what the process is told about memory ---- */

static void limited_view(int dev, uint64_t real_free, uint64_t real_total, uint64_t *ret_free, uint64_t *ret_total) {
        uint64_t limit = device_limit(dev), used, total, free_;

        if (limit == 0) {
                *ret_free = real_free;
                *ret_total = real_total;
                return;
        }
        total = limit < real_total || real_total == 0 ? limit : real_total;
        used = shared_region_footprint(&vgpu_region, (uint32_t) dev);
        free_ = used < total ? total - used : 0;
        *ret_free = free_ < real_free ? free_ : real_free;
        *ret_total = total;
}

_public_ CuResult cuMemGetInfo_v2(size_t *free_, size_t *total) {
        size_t rf = 0, rt = 0;
        uint64_t f, t;
        CuResult r;

        HOOK_ENTER(cuMemGetInfo_v2, free_, total);
        if (!free_ || !total) {
                r = vgpu_real.cuMemGetInfo_v2(free_, total);
                goto finish;
        }
        r = vgpu_real.cuMemGetInfo_v2(&rf, &rt);
        if (r == VG_CUDA_SUCCESS) {
                limited_view(vgpu_current_device(), rf, rt, &f, &t);
                *free_ = (size_t) f;
                *total = (size_t) t;
        }
finish:
        vgpu_guard_leave();
        return r;
}

_public_ CuResult cuDeviceTotalMem_v2(size_t *bytes, CuDevice dev) {
        uint64_t limit;
        CuResult r;

        HOOK_ENTER(cuDeviceTotalMem_v2, bytes, dev);
        r = vgpu_real.cuDeviceTotalMem_v2(bytes, dev);
        if (r == VG_CUDA_SUCCESS && bytes) {
                limit = device_limit(vgpu_device_of_ordinal(dev));
                if (limit > 0 && limit < *bytes)
                        *bytes = (size_t) limit;
        }
        vgpu_guard_leave();
        return r;
}

/* ---- NVML ---- */

static int nvml_device(NvmlDevice d) {
        unsigned idx;

        if (vgpu_config.by_uuid) {
                char uuid[VGPU_UUID_MAX];
                int dev;
                if (vgpu_nvml.nvmlDeviceGetUUID && vgpu_nvml.nvmlDeviceGetUUID(d, uuid, sizeof(uuid)) == VG_NVML_SUCCESS) {
                        uuid[sizeof(uuid) - 1] = 0;
                        dev = vgpu_device_of_uuid(uuid);
                        if (dev >= 0)
                                return dev;
                }
                /* Unmatched: by its position, as CUDA's devices are. */
        }

        if (!vgpu_nvml.nvmlDeviceGetIndex || vgpu_nvml.nvmlDeviceGetIndex(d, &idx) != VG_NVML_SUCCESS ||
            idx >= SHARED_REGION_DEVICES_MAX)
                return -1;
        return (int) idx;
}

/*
 * The container's view of a device's memory, for both NVML structure versions: the limit
 * is the total and the container's usage the used part. Returns whether it rewrote
 * anything (a device without a limit shows what the driver said).
 */
static bool nvml_limited_view(NvmlDevice device, unsigned long long *total, unsigned long long *free_,
                              unsigned long long *used) {
        int dev = nvml_device(device);
        uint64_t f, t;

        limited_view(dev, *free_, *total, &f, &t);
        if (device_limit(dev) == 0)
                return false;
        *total = t;
        *free_ = f;
        *used = t - f;
        return true;
}

_public_ NvmlReturn nvmlDeviceGetMemoryInfo(NvmlDevice device, NvmlMemory *memory) {
        NvmlReturn r;

        if (!vgpu_nvml_init() || !vgpu_nvml.nvmlDeviceGetMemoryInfo)
                return VG_NVML_ERROR_FUNCTION_NOT_FOUND;
        vgpu_init();
        r = vgpu_nvml.nvmlDeviceGetMemoryInfo(device, memory);
        if (r == VG_NVML_SUCCESS && memory)
                (void) nvml_limited_view(device, &memory->total, &memory->free, &memory->used);
        return r;
}

_public_ NvmlReturn nvmlDeviceGetMemoryInfo_v2(NvmlDevice device, NvmlMemoryV2 *memory) {
        NvmlReturn r;

        if (!vgpu_nvml_init() || !vgpu_nvml.nvmlDeviceGetMemoryInfo_v2)
                return VG_NVML_ERROR_FUNCTION_NOT_FOUND;
        vgpu_init();
        r = vgpu_nvml.nvmlDeviceGetMemoryInfo_v2(device, memory);
        if (r == VG_NVML_SUCCESS && memory &&
            nvml_limited_view(device, &memory->total, &memory->free, &memory->used))
                memory->reserved = 0; /* the driver's reservation is outside the container's share */
        return r;
}

/* ---- contexts ----
 * A context costs device memory the driver takes itself (about 520 MiB on an H200). The
 * monitor learns that cost per GPU (context_bytes); before the first context of this
 * process on a device, reserve it, so a process that cannot even have its context
 * within the limit is told so instead of pushing the container over it. Once per
 * process and device; the monitor then replaces the estimate by the measured footprint.
 */
static bool context_reserved[SHARED_REGION_DEVICES_MAX];

static CuResult context_reserve(CuDevice ordinal) {
        int dev = vgpu_device_of_ordinal(ordinal);
        uint64_t cost;
        int r;

        if (dev < 0 || !vgpu_region.header || (unsigned) dev >= vgpu_region.header->n_devices ||
            __atomic_exchange_n(&context_reserved[dev], true, __ATOMIC_RELAXED))
                return VG_CUDA_SUCCESS;
        cost = __atomic_load_n(&vgpu_region.header->devices[dev].context_bytes, __ATOMIC_RELAXED);
        if (cost == 0 || device_limit(dev) == 0)
                return VG_CUDA_SUCCESS;
        r = shared_region_reserve_context(&vgpu_region, (uint32_t) dev, cost, reservation_limit(dev));
        if (r == -ENOMEM) {
                uint64_t limit = device_limit(dev), held = shared_region_footprint(&vgpu_region, (uint32_t) dev);

                __atomic_store_n(&context_reserved[dev], false, __ATOMIC_RELAXED);
                vgpu_log(VGPU_LOG_ERROR,
                         "device %d: a CUDA context needs about %llu MiB; the container's limit has %llu of %llu MiB left",
                         dev, (unsigned long long) (cost >> 20),
                         (unsigned long long) ((held < limit ? limit - held : 0) >> 20),
                         (unsigned long long) (limit >> 20));
                return VG_CUDA_ERROR_OUT_OF_MEMORY;
        }
        return VG_CUDA_SUCCESS;
}

_public_ CuResult cuCtxCreate_v2(CuContext *pctx, unsigned int flags, CuDevice dev) {
        CuResult r;

        HOOK_ENTER(cuCtxCreate_v2, pctx, flags, dev);
        r = pctx ? context_reserve(dev) : VG_CUDA_SUCCESS;
        if (r == VG_CUDA_SUCCESS)
                r = vgpu_real.cuCtxCreate_v2(pctx, flags, dev);
        vgpu_guard_leave();
        return r;
}

_public_ CuResult cuDevicePrimaryCtxRetain(CuContext *pctx, CuDevice dev) {
        CuResult r;

        HOOK_ENTER(cuDevicePrimaryCtxRetain, pctx, dev);
        r = pctx ? context_reserve(dev) : VG_CUDA_SUCCESS;
        if (r == VG_CUDA_SUCCESS)
                r = vgpu_real.cuDevicePrimaryCtxRetain(pctx, dev);
        vgpu_guard_leave();
        return r;
}
