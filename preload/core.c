/* SPDX-License-Identifier: Apache-2.0 */

/*
 * Start-up of libvgpu.so: resolve the real driver (once, at the first hook call, not in
 * a constructor: with /etc/ld.so.preload every process of the container loads us), read
 * the environment, attach the shared region. Also the dlsym hook, the recursion guard,
 * logging and the fork handler.
 */

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "alloc-map.h"
#include "env.h"
#include "vgpu.h"

#define _public_ __attribute__((visibility("default")))

VgpuRealCuda vgpu_real;
VgpuRealNvml vgpu_nvml;
VgpuConfig vgpu_config;
SharedRegion vgpu_region = { .lock_fd = -1 };
int vgpu_log_level = VGPU_LOG_WARNING;

static void *(*real_dlsym)(void *, const char *);
static void *cuda_handle;
static bool cuda_ok;

/* Initial-exec: no __tls_get_addr call on every hook (we are loaded at start-up; a
 * late dlopen takes one word of the static TLS surplus). */
__thread unsigned vgpu_guard_depth __attribute__((tls_model("initial-exec")));

__attribute__((format(printf, 2, 0))) static void log_write(const char *prefix, const char *fmt, va_list ap) {
        char buf[512];
        int n, k;

        n = snprintf(buf, sizeof(buf), "libvgpu[%d]: %s", (int) getpid(), prefix);
        k = vsnprintf(buf + n, sizeof(buf) - (size_t) n - 1, fmt, ap);
        if (k < 0)
                return;
        n = (int) strnlen(buf, sizeof(buf) - 2);
        buf[n++] = '\n';
        (void) !write(STDERR_FILENO, buf, (size_t) n);
}

void vgpu_log(int level, const char *fmt, ...) {
        va_list ap;

        if (level > vgpu_log_level)
                return;
        va_start(ap, fmt);
        log_write("", fmt, ap);
        va_end(ap);
}

void vgpu_report_degraded(unsigned what, const char *fmt, ...) {
        static unsigned said;
        va_list ap;

        if (vgpu_region.header && !vgpu_region.private_mapping)
                __atomic_fetch_or(&vgpu_region.header->degraded, what, __ATOMIC_RELAXED);
        if (__atomic_fetch_or(&said, what, __ATOMIC_RELAXED) & what)
                return;
        va_start(ap, fmt);
        log_write("LIMIT NOT ENFORCED: ", fmt, ap);
        va_end(ap);
}

/* ---- dlsym ---- */

static void dlsym_resolve(void) {
        /* Our own references to dlsym bind to our hook, so ask for glibc's by the version
         * our libc exported it under at build time (meson checks it). */
        real_dlsym = (void *(*)(void *, const char *)) dlvsym(RTLD_NEXT, "dlsym", VGPU_DLSYM_VERSION);
}

static void *real_dlsym_get(void *handle, const char *symbol) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;

        pthread_once(&once, dlsym_resolve);
        return real_dlsym ? real_dlsym(handle, symbol) : NULL;
}

/* RTLD_NEXT is relative to the caller, which would be us: walk the objects loaded after
 * the caller ourselves, and take the first that defines the symbol itself. */
static void *dlsym_next(const void *caller, const char *symbol) {
        struct link_map *self = NULL;
        Dl_info info;

        if (!dladdr1(caller, &info, (void **) &self, RTLD_DL_LINKMAP) || !self)
                return NULL;
        for (struct link_map *m = self->l_next; m; m = m->l_next) {
                struct link_map *owner = NULL;
                void *h, *p;

                /* A link_map is not a handle unless dlopen() made it one. */
                if (!m->l_name || !m->l_name[0])
                        continue;
                h = dlopen(m->l_name, RTLD_LAZY | RTLD_NOLOAD);
                if (!h)
                        continue;
                p = real_dlsym_get(h, symbol);
                dlclose(h);
                if (p && dladdr1(p, &info, (void **) &owner, RTLD_DL_LINKMAP) && owner == m)
                        return p;
        }
        return NULL;
}

static void *real_symbol_of(const char *symbol);

_public_ void *dlsym(void *restrict handle, const char *restrict symbol) {
        void *p, *hook;

        if (handle == RTLD_NEXT)
                p = dlsym_next(__builtin_return_address(0), symbol);
        else
                p = real_dlsym_get(handle, symbol);
        if (!p || vgpu_guard_depth > 0)
                return p;
        hook = vgpu_hook_by_symbol(symbol);
        if (!hook || hook == p)
                return p;
        /* Stand in only for the real driver's own entry point. */
        if (real_symbol_of(symbol) == p)
                return hook;
        return p;
}

/* ---- the symbol table ---- */

typedef struct HookEntry {
        const char *symbol;
        const char *name;     /* cuGetProcAddress name; NULL for NVML */
        int version;
        VgpuStream stream;
        void *hook;
        size_t real_offset;
        bool nvml;
} HookEntry;

static const HookEntry hook_table[] = {
#define CUDA_ENTRY(sym, nm, ver, st, params)                                                     \
        { #sym, nm, ver, VGPU_STREAM_##st, (void *) sym, offsetof(VgpuRealCuda, sym), false },
        VGPU_CUDA_HOOKS(CUDA_ENTRY)
#undef CUDA_ENTRY
#define NVML_ENTRY(sym, params) { #sym, NULL, 0, VGPU_STREAM_NONE, (void *) sym, offsetof(VgpuRealNvml, sym), true },
        VGPU_NVML_HOOKS(NVML_ENTRY)
#undef NVML_ENTRY
};

static const HookEntry *hook_entry(const char *symbol) {
        if (!symbol || !((symbol[0] == 'c' && symbol[1] == 'u') || strncmp(symbol, "nvml", 4) == 0))
                return NULL;
        for (size_t i = 0; i < sizeof(hook_table) / sizeof(hook_table[0]); i++)
                if (strcmp(hook_table[i].symbol, symbol) == 0)
                        return &hook_table[i];
        return NULL;
}

void *vgpu_hook_by_symbol(const char *symbol) {
        const HookEntry *e = hook_entry(symbol);
        return e ? e->hook : NULL;
}

static void *real_symbol_of(const char *symbol) {
        const HookEntry *e = hook_entry(symbol);

        if (!e)
                return NULL;
        if (e->nvml)
                return vgpu_nvml_init() ? *(void **) ((char *) &vgpu_nvml + e->real_offset) : NULL;
        return vgpu_init() ? *(void **) ((char *) &vgpu_real + e->real_offset) : NULL;
}

/* The driver's rule: among the variants of name, the newest whose version is at most
 * cudaVersion, in the stream flavour flags ask for (the default is the legacy stream). */
void *vgpu_hook_by_request(const char *name, int cuda_version, CuUint64 flags) {
        bool ptds = flags & VG_CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM;
        const HookEntry *best = NULL;

        if (!name)
                return NULL;
        for (size_t i = 0; i < sizeof(hook_table) / sizeof(hook_table[0]); i++) {
                const HookEntry *e = &hook_table[i];

                if (!e->name || strcmp(e->name, name) != 0 || e->version > cuda_version)
                        continue;
                if (e->stream != VGPU_STREAM_NONE && (e->stream == VGPU_STREAM_PTDS) != ptds)
                        continue;
                if (!best || e->version > best->version)
                        best = e;
        }
        return best ? best->hook : NULL;
}

/* ---- configuration ---- */

static const char *env_indexed(const char *base, unsigned i, char *buf, size_t size) {
        snprintf(buf, size, "%s_%u", base, i);
        return secure_getenv(buf);
}

static void config_read_limits(VgpuConfig *c) {
        const char *all_mem = secure_getenv("CUDA_DEVICE_MEMORY_LIMIT");
        const char *all_sm = secure_getenv("CUDA_DEVICE_SM_LIMIT");
        char name[64];

        for (unsigned i = 0; i < SHARED_REGION_DEVICES_MAX; i++) {
                const char *m = env_indexed("CUDA_DEVICE_MEMORY_LIMIT", i, name, sizeof(name)) ?: all_mem;
                const char *s = env_indexed("CUDA_DEVICE_SM_LIMIT", i, name, sizeof(name)) ?: all_sm;
                unsigned pct = 0;

                if (m && vgpu_parse_size(m, &c->memory_limit[i]) < 0) {
                        vgpu_log(VGPU_LOG_ERROR, "Invalid memory limit \"%s\" for device %u", m, i);
                        c->memory_limit[i] = 0;
                        c->invalid[i] |= SHARED_REGION_DEGRADED_MEMORY_LIMIT;
                }
                if (s && vgpu_parse_percent(s, &pct) < 0) {
                        vgpu_log(VGPU_LOG_ERROR, "Invalid SM limit \"%s\" for device %u", s, i);
                        pct = 0;
                        c->invalid[i] |= SHARED_REGION_DEGRADED_SM_LIMIT;
                }
                c->sm_limit[i] = pct >= 100 ? 0 : pct;
                if (c->sm_limit[i] > 0)
                        c->sm_limit_any = true;
        }
}

static bool uuid_is_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n >= VGPU_UUID_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                      s[i] == '-'))
                        return false;
        return true;
}

static void config_read_uuids(VgpuConfig *c) {
        char name[64];

        for (unsigned i = 0; i < SHARED_REGION_DEVICES_MAX; i++) {
                const char *u = env_indexed("CUDA_DEVICE_UUID", i, name, sizeof(name));

                if (!u)
                        continue;
                if (!uuid_is_valid(u)) {
                        vgpu_log(VGPU_LOG_ERROR, "Invalid GPU UUID \"%.100s\" for device %u", u, i);
                        c->invalid[i] |= SHARED_REGION_DEGRADED_MEMORY_LIMIT | SHARED_REGION_DEGRADED_SM_LIMIT;
                        continue;
                }
                memcpy(c->uuid[i], u, strlen(u) + 1);
                c->by_uuid = true;
        }
}

int vgpu_device_of_uuid(const char *uuid) {
        for (unsigned i = 0; i < SHARED_REGION_DEVICES_MAX; i++)
                if (vgpu_config.uuid[i][0] && strcasecmp(vgpu_config.uuid[i], uuid) == 0)
                        return (int) i;
        return -1;
}

static void config_read_visible_devices(VgpuConfig *c) {
        const char *cvd = secure_getenv("CUDA_VISIBLE_DEVICES");
        int map[VGPU_VISIBLE_DEVICES_MAX];
        int n;

        for (unsigned i = 0; i < SHARED_REGION_DEVICES_MAX; i++)
                c->ordinal_map[i] = (int) i;
        c->n_ordinals = SHARED_REGION_DEVICES_MAX;
        if (!cvd)
                return;
        n = vgpu_parse_visible_devices(cvd, map, VGPU_VISIBLE_DEVICES_MAX);
        if (n < 0)
                return;
        c->n_ordinals = (unsigned) n;
        for (int i = 0; i < n; i++) {
                int idx = map[i];

                if (idx < 0) {
                        /* A UUID: NVML (in the container) knows its index. */
                        const char *u = cvd;
                        for (int k = 0; k < i && u; k++)
                                u = strchr(u, ',') ? strchr(u, ',') + 1 : NULL;
                        idx = i;
                        if (u && vgpu_nvml_init() && vgpu_nvml.nvmlDeviceGetIndex &&
                            vgpu_nvml.nvmlDeviceGetHandleByUUID && vgpu_nvml.nvmlInit_v2 &&
                            vgpu_nvml.nvmlInit_v2() == VG_NVML_SUCCESS) {
                                char uuid[96];
                                size_t len = strcspn(u, ",");
                                NvmlDevice d;
                                unsigned ix;
                                if (len < sizeof(uuid)) {
                                        memcpy(uuid, u, len);
                                        uuid[len] = 0;
                                        if (vgpu_nvml.nvmlDeviceGetHandleByUUID(uuid, &d) == VG_NVML_SUCCESS &&
                                            vgpu_nvml.nvmlDeviceGetIndex(d, &ix) == VG_NVML_SUCCESS)
                                                idx = (int) ix;
                                }
                        }
                }
                c->ordinal_map[i] = idx >= 0 && idx < (int) SHARED_REGION_DEVICES_MAX ? idx : -1;
        }
}

static int device_of_ordinal_by_position(CuDevice ordinal) {
        if (ordinal < 0 || (unsigned) ordinal >= vgpu_config.n_ordinals ||
            (unsigned) ordinal >= SHARED_REGION_DEVICES_MAX)
                return -1;
        return vgpu_config.ordinal_map[ordinal];
}

/* cuDeviceGetUuid_v2 where the driver has it (MIG-aware), else the original. */
typedef CuResult (*device_get_uuid_fn)(CuUuid *uuid, CuDevice dev);
static device_get_uuid_fn real_device_get_uuid;

/* An ordinal's device by the UUID the driver gives it: whatever CUDA_VISIBLE_DEVICES and
 * the container's set of GPUs make of the ordinals. Cached: value + 2 (1: none of ours). */
static int device_of_ordinal_by_uuid(CuDevice ordinal) {
        static int cache[SHARED_REGION_DEVICES_MAX];
        const unsigned char *b;
        char text[64];
        CuUuid u;
        int v, dev;

        v = __atomic_load_n(&cache[ordinal], __ATOMIC_RELAXED);
        if (v != 0)
                return v - 2;
        if (!real_device_get_uuid || real_device_get_uuid(&u, ordinal) != VG_CUDA_SUCCESS)
                return -1;  /* not initialised yet: ask again next time */
        b = (const unsigned char *) u.bytes;
        snprintf(text, sizeof(text), "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
                 b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
        dev = vgpu_device_of_uuid(text);
        if (dev < 0) {
                /* A UUID the driver spells otherwise (or a GPU from elsewhere): never left
                 * unlimited for that, it gets the limits of its position as before. */
                dev = device_of_ordinal_by_position(ordinal);
                vgpu_log(VGPU_LOG_WARNING, "CUDA device %d (%s) matches no CUDA_DEVICE_UUID_<i>: using device %d's "
                         "limits, by its position", (int) ordinal, text, dev);
        }
        __atomic_store_n(&cache[ordinal], dev + 2, __ATOMIC_RELAXED);
        return dev;
}

int vgpu_device_of_ordinal(CuDevice ordinal) {
        if (vgpu_config.by_uuid)
                return ordinal >= 0 && (unsigned) ordinal < SHARED_REGION_DEVICES_MAX ? device_of_ordinal_by_uuid(ordinal)
                                                                                      : -1;
        return device_of_ordinal_by_position(ordinal);
}

int vgpu_current_device(void) {
        CuDevice d;

        if (!vgpu_real.cuCtxGetDevice || vgpu_real.cuCtxGetDevice(&d) != VG_CUDA_SUCCESS)
                return -1;
        return vgpu_device_of_ordinal(d);
}

/* ---- the region ---- */

static void region_attach(void) {
        const char *path = secure_getenv("CUDA_DEVICE_MEMORY_SHARED_CACHE");
        int r;

        if (path && *path) {
                r = shared_region_attach(&vgpu_region, path, 0);
                if (r == -ENOENT) {
                        /* No daemon made it (tests, or a bare container): make it ourselves. */
                        r = shared_region_create(path, SHARED_REGION_DEVICES_MAX, SHARED_REGION_SLOTS_DEFAULT,
                                                 vgpu_config.memory_limit, vgpu_config.sm_limit, 0600);
                        if (r >= 0 || r == -EEXIST)
                                r = shared_region_attach(&vgpu_region, path, 0);
                }
                if (r >= 0) {
                        SharedRegionHeader *h = vgpu_region.header;
                        for (unsigned i = 0; i < h->n_devices; i++) {
                                if (vgpu_config.memory_limit[i] == 0)
                                        vgpu_config.memory_limit[i] = h->devices[i].limit;
                                if (vgpu_config.sm_limit[i] == 0 && h->devices[i].sm_limit < 100 &&
                                    h->devices[i].sm_limit > 0) {
                                        vgpu_config.sm_limit[i] = h->devices[i].sm_limit;
                                        vgpu_config.sm_limit_any = true;
                                }
                        }
                        return;
                }
                vgpu_log(VGPU_LOG_ERROR, "Cannot use shared region %s (%s): limits hold per process only",
                         path, strerror(-r));
        }
        r = shared_region_attach(&vgpu_region, NULL, SHARED_REGION_DEVICES_MAX);
        if (r < 0)
                vgpu_log(VGPU_LOG_ERROR, "Cannot set up accounting (%s): allocations are refused", strerror(-r));
}

/* A limit asked for that neither the environment nor the region could give. */
static void report_unusable_limits(const VgpuConfig *c) {
        for (unsigned i = 0; i < SHARED_REGION_DEVICES_MAX; i++) {
                if ((c->invalid[i] & SHARED_REGION_DEGRADED_MEMORY_LIMIT) && c->memory_limit[i] == 0)
                        vgpu_report_degraded(SHARED_REGION_DEGRADED_MEMORY_LIMIT,
                                             "device %u: the memory limit is unreadable and the region records none", i);
                if ((c->invalid[i] & SHARED_REGION_DEGRADED_SM_LIMIT) && c->sm_limit[i] == 0)
                        vgpu_report_degraded(SHARED_REGION_DEGRADED_SM_LIMIT,
                                             "device %u: the SM limit is unreadable and the region records none", i);
        }
}

static void after_fork_child(void) {
        alloc_map_reset();
        if (shared_region_reattach_after_fork(&vgpu_region) < 0)
                vgpu_log(VGPU_LOG_ERROR, "Cannot claim a region slot after fork");
}

/* ---- init ---- */

static void *open_library(const char *name) {
        return dlopen(name, RTLD_NOW | RTLD_LOCAL);
}

static void init_once(void) {
        const char *lvl = secure_getenv("LIBCUDA_LOG_LEVEL");
        const char *lib = secure_getenv("LIBVGPU_CUDA_LIBRARY");

        vgpu_guard_depth++;
        if (lvl && vgpu_parse_log_level(lvl, &vgpu_log_level) < 0)
                vgpu_log(VGPU_LOG_ERROR, "Invalid LIBCUDA_LOG_LEVEL \"%s\"", lvl);

        cuda_handle = open_library(lib && *lib ? lib : "libcuda.so.1");
        if (!cuda_handle)
                vgpu_log(VGPU_LOG_ERROR, "Cannot load the CUDA driver: %s", dlerror());
        else {
#define RESOLVE(sym, ...) vgpu_real.sym = (sym##_fn) real_dlsym_get(cuda_handle, #sym);
                VGPU_CUDA_HOOKS(RESOLVE)
                VGPU_CUDA_REAL(RESOLVE)
#undef RESOLVE
                real_device_get_uuid = (device_get_uuid_fn) real_dlsym_get(cuda_handle, "cuDeviceGetUuid_v2");
                if (!real_device_get_uuid)
                        real_device_get_uuid = (device_get_uuid_fn) real_dlsym_get(cuda_handle, "cuDeviceGetUuid");
                cuda_ok = true;
        }

        config_read_limits(&vgpu_config);
        config_read_uuids(&vgpu_config);
        config_read_visible_devices(&vgpu_config);
        region_attach();
        pthread_atfork(NULL, NULL, after_fork_child);
        report_unusable_limits(&vgpu_config);

        for (unsigned i = 0; i < SHARED_REGION_DEVICES_MAX; i++)
                if (vgpu_config.memory_limit[i] || vgpu_config.sm_limit[i])
                        vgpu_log(VGPU_LOG_INFO, "device %u: memory limit %llu bytes, SM limit %u%%", i,
                                 (unsigned long long) vgpu_config.memory_limit[i], vgpu_config.sm_limit[i]);
        vgpu_guard_depth--;
}

bool vgpu_init(void) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;

        pthread_once(&once, init_once);
        return cuda_ok;
}

static bool nvml_ok;

static void nvml_init_once(void) {
        const char *lib = secure_getenv("LIBVGPU_NVML_LIBRARY");
        void *h;

        vgpu_guard_depth++;
        h = open_library(lib && *lib ? lib : "libnvidia-ml.so.1");
        if (h) {
#define RESOLVE(sym, ...) vgpu_nvml.sym = (sym##_fn) real_dlsym_get(h, #sym);
                VGPU_NVML_HOOKS(RESOLVE)
                VGPU_NVML_REAL(RESOLVE)
#undef RESOLVE
                nvml_ok = true;
        }
        vgpu_guard_depth--;
}

bool vgpu_nvml_init(void) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;

        pthread_once(&once, nvml_init_once);
        return nvml_ok;
}
