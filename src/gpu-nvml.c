/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The NVML backend: libnvidia-ml.so.1 is dlopen()ed at run time (no link-time
 * dependency), every symbol resolved once from the list in nvml-abi.h. Health comes
 * from an NVML event set that a thread waits on; the thread hands events to the
 * sd-event loop through an eventfd, so callbacks run on the loop like everything else.
 */

#include <ctype.h>
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>

#include "gpu-backend.h"
#include "gpu-nvml.h"
#include "log.h"
#include "macro.h"
#include "nvml-abi.h"

#define NVML_LIBRARY "libnvidia-ml.so.1"
#define NVML_GPUS_MAX 128             /* a ResourceSlice holds at most 128 devices */
#define NVML_EVENT_WAIT_MS 250        /* how long stopping the health thread may take */
#define NVML_EVENT_ERROR_BACKOFF_MS 1000
#define NVML_EVENT_QUEUE_MAX 256
/* Corrected (single-bit) ECC errors are no reason to stop using a GPU: not registered. */
#define NVML_HEALTH_EVENT_MASK (nvmlEventTypeXidCriticalError | nvmlEventTypeDoubleBitEccError)

typedef struct NvmlLibrary {
        void *dl;
#define NVML_FIELD(required, ret, name, params) ret(*name) params;
        NVML_FUNCTIONS(NVML_FIELD)
#undef NVML_FIELD
} NvmlLibrary;

static const struct {
        const char *name;
        size_t offset;
        bool required;
} nvml_symbols[] = {
#define NVML_SYMBOL(req, ret, n, params) { #n, offsetof(NvmlLibrary, n), req },
        NVML_FUNCTIONS(NVML_SYMBOL)
#undef NVML_SYMBOL
};

/* One GPU whose events we listen to. */
typedef struct NvmlWatched {
        nvmlDevice_t device;
        char name[GPU_NAME_MAX];
        GpuHealth health;
        char reason[GPU_HEALTH_REASON_MAX];
        time_t changed;
} NvmlWatched;

/* What the thread hands to the loop. */
typedef struct NvmlHealthEvent {
        nvmlReturn_t wait_error;      /* != NVML_SUCCESS: the wait itself failed */
        nvmlDevice_t device;
        unsigned long long type;
        unsigned long long data;
} NvmlHealthEvent;

typedef struct NvmlState {
        NvmlLibrary lib;
        bool initialized;
        char *sysfs_root;
        time_t opened;

        /* health */
        GpuBackend *backend;
        nvmlEventSet_t event_set;
        NvmlWatched *watched;
        size_t n_watched;
        sd_event_source *event_source;
        int event_fd;
        pthread_t thread;
        bool thread_running;
        atomic_bool stop;
        pthread_mutex_t lock;                 /* protects the queue below */
        NvmlHealthEvent queue[NVML_EVENT_QUEUE_MAX];
        size_t n_queued;
        unsigned long dropped;
} NvmlState;

/* XIDs that blame the application, not the GPU: the list NVIDIA's device plugin skips. */
static const unsigned long long nvml_application_xids[] = { 13, 31, 43, 45, 68, 109 };

bool nvml_xid_is_application_error(unsigned long long xid) {
        for (size_t i = 0; i < ELEMENTSOF(nvml_application_xids); i++)
                if (nvml_application_xids[i] == xid)
                        return true;
        return false;
}

const char *nvml_xid_describe(unsigned long long xid) {
        /* The common ones, from NVIDIA's XID catalogue; others are just numbers. */
        switch (xid) {
        case 13: return "graphics engine exception";
        case 31: return "GPU memory page fault";
        case 43: return "GPU stopped processing";
        case 45: return "preemptive cleanup, due to previous errors";
        case 48: return "double-bit ECC error";
        case 61: return "internal micro-controller breakpoint/warning";
        case 62: return "internal micro-controller halt";
        case 63: return "ECC page retirement or row remapping recording event";
        case 64: return "ECC page retirement or row remapper recording failure";
        case 68: return "video processor exception";
        case 74: return "NVLink error";
        case 79: return "GPU has fallen off the bus";
        case 92: return "high single-bit ECC error rate";
        case 94: return "contained ECC error";
        case 95: return "uncontained ECC error";
        case 109: return "context switch timeout";
        case 119: return "GSP RPC timeout";
        case 120: return "GSP error";
        case 999: return "unknown XID";
        default: return "critical error";
        }
}

const char *nvml_brand_to_string(unsigned brand) {
        /* The spelling NVIDIA's go-nvlib (and so its DRA driver and HAMi) publishes. */
        static const char *const table[] = {
                [NVML_BRAND_UNKNOWN] = "Unknown",
                [NVML_BRAND_QUADRO] = "Quadro",
                [NVML_BRAND_TESLA] = "Tesla",
                [NVML_BRAND_NVS] = "NVS",
                [NVML_BRAND_GRID] = "Grid",
                [NVML_BRAND_GEFORCE] = "GeForce",
                [NVML_BRAND_TITAN] = "Titan",
                [NVML_BRAND_NVIDIA_VAPPS] = "NvidiaVApps",
                [NVML_BRAND_NVIDIA_VPC] = "NvidiaVPC",
                [NVML_BRAND_NVIDIA_VCS] = "NvidiaVCS",
                [NVML_BRAND_NVIDIA_VWS] = "NvidiaVWS",
                [NVML_BRAND_NVIDIA_CLOUD_GAMING] = "NvidiaCloudGaming",
                [NVML_BRAND_QUADRO_RTX] = "QuadroRTX",
                [NVML_BRAND_NVIDIA_RTX] = "NvidiaRTX",
                [NVML_BRAND_NVIDIA] = "Nvidia",
                [NVML_BRAND_GEFORCE_RTX] = "GeForceRTX",
                [NVML_BRAND_TITAN_RTX] = "TitanRTX",
        };

        return brand < ELEMENTSOF(table) ? table[brand] : NULL;
}

const char *nvml_architecture_to_string(unsigned arch) {
        switch (arch) {
        case NVML_DEVICE_ARCH_KEPLER: return "Kepler";
        case NVML_DEVICE_ARCH_MAXWELL: return "Maxwell";
        case NVML_DEVICE_ARCH_PASCAL: return "Pascal";
        case NVML_DEVICE_ARCH_VOLTA: return "Volta";
        case NVML_DEVICE_ARCH_TURING: return "Turing";
        case NVML_DEVICE_ARCH_AMPERE: return "Ampere";
        case NVML_DEVICE_ARCH_ADA: return "Ada Lovelace";
        case NVML_DEVICE_ARCH_HOPPER: return "Hopper";
        case NVML_DEVICE_ARCH_BLACKWELL: return "Blackwell";
        case NVML_DEVICE_ARCH_UNKNOWN: return "Unknown";
        default: return NULL; /* newer than we know: publish nothing rather than guess */
        }
}

int nvml_return_to_errno(int r) {
        switch (r) {
        case NVML_SUCCESS: return 0;
        case NVML_ERROR_UNINITIALIZED: return -EBADFD;
        case NVML_ERROR_INVALID_ARGUMENT: return -EINVAL;
        case NVML_ERROR_NOT_SUPPORTED: return -EOPNOTSUPP;
        case NVML_ERROR_NO_PERMISSION: return -EACCES;
        case NVML_ERROR_NOT_FOUND: return -ENOENT;
        case NVML_ERROR_INSUFFICIENT_SIZE: return -ENOBUFS;
        case NVML_ERROR_DRIVER_NOT_LOADED: return -ENXIO;
        case NVML_ERROR_TIMEOUT: return -ETIMEDOUT;
        case NVML_ERROR_LIBRARY_NOT_FOUND: return -ENOENT;
        case NVML_ERROR_FUNCTION_NOT_FOUND: return -ENOSYS;
        case NVML_ERROR_GPU_IS_LOST: return -ENODEV;
        case NVML_ERROR_OPERATING_SYSTEM: return -EPERM;
        case NVML_ERROR_LIB_RM_VERSION_MISMATCH: return -EPROTO;
        case NVML_ERROR_IN_USE: return -EBUSY;
        case NVML_ERROR_MEMORY: return -ENOMEM;
        default: return -EIO;
        }
}

/* The driver lacks the function: fall back or leave the attribute out. */
static bool nvml_function_missing(nvmlReturn_t r) {
        return r == NVML_ERROR_FUNCTION_NOT_FOUND || r == NVML_ERROR_NOT_SUPPORTED;
}

static const char *nvml_strerror(NvmlState *s, nvmlReturn_t r) {
        const char *m = s->lib.nvmlErrorString ? s->lib.nvmlErrorString(r) : NULL;
        return m ?: "unknown NVML error";
}

static int nvml_library_load(NvmlLibrary *lib) {
        void *dl;

        dl = dlopen(NVML_LIBRARY, RTLD_NOW | RTLD_LOCAL);
        if (!dl)
                return log_error_errno(-ENOENT,
                                       "Cannot load %s, the NVIDIA driver's management library: %s. "
                                       "Is the NVIDIA driver installed? Hosts without GPUs can use Backend=mock.",
                                       NVML_LIBRARY, dlerror());

        *lib = (NvmlLibrary) { .dl = dl };
        for (size_t i = 0; i < ELEMENTSOF(nvml_symbols); i++) {
                void *f = dlsym(dl, nvml_symbols[i].name);

                if (!f && nvml_symbols[i].required) {
                        log_error("%s lacks %s: the NVIDIA driver is too old for hami-dra.",
                                  NVML_LIBRARY, nvml_symbols[i].name);
                        dlclose(dl);
                        *lib = (NvmlLibrary) {};
                        return -ENOSYS;
                }
                memcpy((uint8_t *) lib + nvml_symbols[i].offset, &f, sizeof(f));
        }
        return 0;
}

static void nvml_state_free(NvmlState *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(NvmlState *, nvml_state_free);

static int nvml_open(const Config *c, void **ret_state) {
        _cleanup_(nvml_state_freep) NvmlState *s = NULL;
        const char *root;
        nvmlReturn_t nr;
        int r;

        s = calloc(1, sizeof(NvmlState));
        if (!s)
                return log_oom();
        s->event_fd = -EBADF;
        s->opened = time(NULL);
        pthread_mutex_init(&s->lock, NULL);

        root = secure_getenv("HAMI_DRA_SYSFS_ROOT");
        s->sysfs_root = strdup(isempty(root) ? "/sys" : root);
        if (!s->sysfs_root)
                return log_oom();

        r = nvml_library_load(&s->lib);
        if (r < 0)
                return r;

        nr = s->lib.nvmlInit_v2();
        if (nr != NVML_SUCCESS)
                return log_error_errno(nvml_return_to_errno(nr),
                                       "Failed to initialise NVML from %s: nvmlInit_v2: %s.",
                                       NVML_LIBRARY, nvml_strerror(s, nr));
        s->initialized = true;

        *ret_state = TAKE_PTR(s);
        return 0;
}

/* "pci0000:64", or a longer domain as behind Intel VMD: "pci10000:00". */
static bool pcie_root_name_valid(const char *p, size_t n) {
        size_t domain = n - strlen("pci") - strlen(":00");

        if (n < strlen("pci0000:00") || n > strlen("pci00000000:00") || strncmp(p, "pci", 3) != 0 ||
            p[3 + domain] != ':')
                return false;
        for (size_t i = 3; i < n; i++)
                if (i != 3 + domain && !isxdigit((unsigned char) p[i]))
                        return false;
        return true;
}

/* realpath(<sysfs>/bus/pci/devices/<bus id>) = <sysfs>/devices/pci0000:64/.../<bus id> */
static int nvml_pcie_root(const char *sysfs_root, const char *bus_id, char *out, size_t size) {
        _cleanup_free_ char *link = NULL, *resolved = NULL, *root = NULL;
        const char *p;
        size_t n;

        if (asprintf(&link, "%s/bus/pci/devices/%s", sysfs_root, bus_id) < 0)
                return -ENOMEM;
        resolved = realpath(link, NULL);
        if (!resolved)
                return -errno;
        root = realpath(sysfs_root, NULL);
        if (!root)
                return -errno;

        n = strlen(root);
        if (strncmp(resolved, root, n) != 0 || strncmp(resolved + n, "/devices/", 9) != 0)
                return -EBADMSG;
        p = resolved + n + 9;
        n = strcspn(p, "/");
        if (!pcie_root_name_valid(p, n) || n >= size)
                return -EBADMSG; /* e.g. a VM's bus that is not PCI at the top */
        memcpy(out, p, n);
        out[n] = '\0';
        return 0;
}

static bool string_is_printable(const char *s) {
        if (isempty(s))
                return false;
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || (unsigned char) *s >= 0x7f)
                        return false;
        return true;
}

/* Record why GPU <index> could not be described; returns the errno. */
static int nvml_problem(NvmlState *s, GpuProblem *p, unsigned index, const char *function, nvmlReturn_t nr) {
        *p = (GpuProblem) { .index = index };
        snprintf(p->what, sizeof(p->what), "%s: %s", function, nvml_strerror(s, nr));
        return nvml_return_to_errno(nr) ?: -EIO;
}

static int nvml_problem_text(GpuProblem *p, unsigned index, const char *what) {
        *p = (GpuProblem) { .index = index };
        snprintf(p->what, sizeof(p->what), "%s", what);
        return -EBADMSG;
}

typedef struct NvmlSystem {
        char driver_version[GPU_STRING_MAX];
        char cuda_driver_version[GPU_STRING_MAX];
} NvmlSystem;

static void nvml_system_describe(NvmlState *s, NvmlSystem *ret) {
        char buf[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE] = {};
        nvmlReturn_t nr;
        int cuda = 0, r;

        *ret = (NvmlSystem) {};

        nr = s->lib.nvmlSystemGetDriverVersion(buf, sizeof(buf));
        buf[sizeof(buf) - 1] = '\0';
        if (nr != NVML_SUCCESS)
                log_warning("nvmlSystemGetDriverVersion: %s; driverVersion will not be published.",
                            nvml_strerror(s, nr));
        else if ((r = version_to_semver(buf, ret->driver_version, sizeof(ret->driver_version))) < 0)
                log_warning_errno(r, "NVML reported driver version \"%.32s\", which is not a version: %m", buf);

        nr = NVML_ERROR_FUNCTION_NOT_FOUND;
        if (s->lib.nvmlSystemGetCudaDriverVersion_v2)
                nr = s->lib.nvmlSystemGetCudaDriverVersion_v2(&cuda);
        if (nvml_function_missing(nr))
                nr = s->lib.nvmlSystemGetCudaDriverVersion(&cuda);
        if (nr != NVML_SUCCESS)
                log_warning("nvmlSystemGetCudaDriverVersion: %s; cudaDriverVersion will not be published.",
                            nvml_strerror(s, nr));
        else if ((r = cuda_version_to_semver(cuda, ret->cuda_driver_version, sizeof(ret->cuda_driver_version))) < 0)
                log_warning_errno(r, "NVML reported CUDA driver version %d, which is not a version: %m", cuda);
}

static int nvml_describe_identity(NvmlState *s, unsigned index, nvmlDevice_t d, Gpu *g, GpuProblem *p) {
        nvmlReturn_t nr;
        unsigned minor;

        nr = s->lib.nvmlDeviceGetMinorNumber(d, &minor);
        if (nr != NVML_SUCCESS)
                return nvml_problem(s, p, index, "nvmlDeviceGetMinorNumber", nr);
        g->minor = minor;
        (void) gpu_name_from_minor(minor, g->name, sizeof(g->name));

        nr = s->lib.nvmlDeviceGetUUID(d, g->uuid, sizeof(g->uuid));
        g->uuid[sizeof(g->uuid) - 1] = '\0';
        if (nr != NVML_SUCCESS)
                return nvml_problem(s, p, index, "nvmlDeviceGetUUID", nr);
        if (!string_is_printable(g->uuid) || strlen(g->uuid) > 64)
                return nvml_problem_text(p, index, "nvmlDeviceGetUUID returned a malformed UUID");

        nr = s->lib.nvmlDeviceGetName(d, g->product_name, sizeof(g->product_name));
        g->product_name[sizeof(g->product_name) - 1] = '\0';
        if (nr != NVML_SUCCESS)
                return nvml_problem(s, p, index, "nvmlDeviceGetName", nr);
        if (!string_is_printable(g->product_name))
                return nvml_problem_text(p, index, "nvmlDeviceGetName returned a malformed name");
        return 0;
}

static int nvml_describe_model(NvmlState *s, unsigned index, nvmlDevice_t d, Gpu *g, GpuProblem *p) {
        nvmlBrandType_t brand;
        nvmlDeviceArchitecture_t arch;
        nvmlReturn_t nr;
        int major, minor;
        const char *t;

        nr = s->lib.nvmlDeviceGetBrand(d, &brand);
        if (nr == NVML_SUCCESS) {
                t = nvml_brand_to_string((unsigned) brand);
                if (t)
                        snprintf(g->brand, sizeof(g->brand), "%s", t);
                else
                        log_debug("GPU %u: brand %u is unknown to us, not publishing it.", index, (unsigned) brand);
        } else if (nr != NVML_ERROR_NOT_SUPPORTED)
                return nvml_problem(s, p, index, "nvmlDeviceGetBrand", nr);

        nr = s->lib.nvmlDeviceGetArchitecture ? s->lib.nvmlDeviceGetArchitecture(d, &arch)
                                              : NVML_ERROR_FUNCTION_NOT_FOUND;
        if (nr == NVML_SUCCESS) {
                t = nvml_architecture_to_string(arch);
                if (t)
                        snprintf(g->architecture, sizeof(g->architecture), "%s", t);
                else
                        log_debug("GPU %u: architecture %u is unknown to us, not publishing it.", index, arch);
        } else if (!nvml_function_missing(nr))
                return nvml_problem(s, p, index, "nvmlDeviceGetArchitecture", nr);

        nr = s->lib.nvmlDeviceGetCudaComputeCapability(d, &major, &minor);
        if (nr == NVML_SUCCESS) {
                if (compute_capability_to_semver(major, minor, g->cuda_compute_capability,
                                                 sizeof(g->cuda_compute_capability)) < 0)
                        return nvml_problem_text(p, index, "nvmlDeviceGetCudaComputeCapability returned a negative version");
        } else if (nr != NVML_ERROR_NOT_SUPPORTED)
                return nvml_problem(s, p, index, "nvmlDeviceGetCudaComputeCapability", nr);
        return 0;
}

static int nvml_describe_location(NvmlState *s, unsigned index, nvmlDevice_t d, Gpu *g, GpuProblem *p) {
        nvmlPciInfo_t pci = {};
        nvmlMemory_t mem = {};
        nvmlReturn_t nr;
        int r;

        nr = s->lib.nvmlDeviceGetPciInfo_v3(d, &pci);
        if (nr != NVML_SUCCESS)
                return nvml_problem(s, p, index, "nvmlDeviceGetPciInfo_v3", nr);
        pci.busId[sizeof(pci.busId) - 1] = '\0';
        if (pci_bus_id_normalize(pci.busId, g->pcie_bus_id, sizeof(g->pcie_bus_id)) < 0)
                return nvml_problem_text(p, index, "nvmlDeviceGetPciInfo_v3 returned a malformed PCI bus id");

        r = nvml_pcie_root(s->sysfs_root, g->pcie_bus_id, g->pcie_root, sizeof(g->pcie_root));
        if (r < 0) {
                log_debug_errno(r, "Cannot find the PCIe root of %s under %s: %m", g->pcie_bus_id, s->sysfs_root);
                g->pcie_root[0] = '\0';
        }

        nr = s->lib.nvmlDeviceGetMemoryInfo(d, &mem);
        if (nr != NVML_SUCCESS)
                return nvml_problem(s, p, index, "nvmlDeviceGetMemoryInfo", nr);
        if (mem.total == 0)
                return nvml_problem_text(p, index, "nvmlDeviceGetMemoryInfo reported no memory");
        g->memory_total = mem.total;
        return 0;
}

static void nvml_apply_health(NvmlState *s, Gpu *g) {
        g->health = GPU_HEALTH_HEALTHY;
        g->health_changed = s->opened;
        for (size_t i = 0; i < s->n_watched; i++)
                if (streq(s->watched[i].name, g->name)) {
                        g->health = s->watched[i].health;
                        snprintf(g->health_reason, sizeof(g->health_reason), "%s", s->watched[i].reason);
                        g->health_changed = s->watched[i].changed;
                }
}

static int nvml_describe_gpu(NvmlState *s, unsigned index, const NvmlSystem *sys, Gpu *ret, GpuProblem *p) {
        nvmlDevice_t d = NULL;
        nvmlReturn_t nr;
        Gpu g = {};
        int r;

        nr = s->lib.nvmlDeviceGetHandleByIndex_v2(index, &d);
        if (nr != NVML_SUCCESS)
                return nvml_problem(s, p, index, "nvmlDeviceGetHandleByIndex_v2", nr);

        r = nvml_describe_identity(s, index, d, &g, p);
        if (r < 0)
                return r;
        r = nvml_describe_model(s, index, d, &g, p);
        if (r < 0)
                return r;
        r = nvml_describe_location(s, index, d, &g, p);
        if (r < 0)
                return r;

        memcpy(g.driver_version, sys->driver_version, sizeof(g.driver_version));
        memcpy(g.cuda_driver_version, sys->cuda_driver_version, sizeof(g.cuda_driver_version));
        g.cores = GPU_CORES_TOTAL;
        nvml_apply_health(s, &g);

        *ret = g;
        return 0;
}

static int nvml_enumerate(void *state, GpuList *ret) {
        NvmlState *s = state;
        _cleanup_(gpu_list_done) GpuList l = {};
        unsigned count = 0, n;
        NvmlSystem sys;
        nvmlReturn_t nr;

        nr = s->lib.nvmlDeviceGetCount_v2(&count);
        if (nr != NVML_SUCCESS)
                return log_error_errno(nvml_return_to_errno(nr), "nvmlDeviceGetCount_v2: %s", nvml_strerror(s, nr));

        n = MIN(count, (unsigned) NVML_GPUS_MAX);
        /* One problem slot per GPU, plus one for those beyond the limit. */
        l.gpus = calloc(MAX(n, 1u), sizeof(Gpu));
        l.problems = calloc(n + 1, sizeof(GpuProblem));
        if (!l.gpus || !l.problems)
                return log_oom();

        nvml_system_describe(s, &sys);

        for (unsigned i = 0; i < n; i++) {
                GpuProblem *p = &l.problems[l.n_problems];
                Gpu *g = &l.gpus[l.n_gpus];

                if (nvml_describe_gpu(s, i, &sys, g, p) < 0) {
                        log_error("GPU %u (NVML index) cannot be used: %s", i, p->what);
                        l.n_problems++;
                        continue;
                }
                if (gpu_list_find(&l, g->name)) {
                        nvml_problem_text(p, i, "another GPU has the same minor number");
                        log_error("GPU %u (NVML index) cannot be used: %s (%u)", i, p->what, g->minor);
                        l.n_problems++;
                        continue;
                }
                l.n_gpus++;
        }

        if (count > n) {
                GpuProblem *p = &l.problems[l.n_problems++];
                *p = (GpuProblem) { .index = n };
                snprintf(p->what, sizeof(p->what), "%u GPUs beyond the limit of %u are not used", count - n, n);
                log_error("%s.", p->what);
        }

        gpu_list_sort(&l);
        log_info("NVML: %zu GPU(s) usable, %zu with problems.", l.n_gpus, l.n_problems);
        *ret = l;
        l = (GpuList) {};
        return 0;
}

/* ---- health ---------------------------------------------------------------------- */

static void nvml_health_queue(NvmlState *s, const NvmlHealthEvent *ev) {
        uint64_t one = 1;

        pthread_mutex_lock(&s->lock);
        if (s->n_queued < NVML_EVENT_QUEUE_MAX)
                s->queue[s->n_queued++] = *ev;
        else
                s->dropped++;
        pthread_mutex_unlock(&s->lock);

        (void) !write(s->event_fd, &one, sizeof(one)); /* EAGAIN: already signalled */
}

static bool nvml_sleep_unless_stopped(NvmlState *s, unsigned ms) {
        for (unsigned slept = 0; slept < ms; slept += 50) {
                if (atomic_load(&s->stop))
                        return false;
                nanosleep(&(struct timespec) { .tv_nsec = 50 * 1000 * 1000 }, NULL);
        }
        return !atomic_load(&s->stop);
}

static void *nvml_health_thread(void *userdata) {
        NvmlState *s = userdata;

        while (!atomic_load(&s->stop)) {
                nvmlEventData_t data = {};
                nvmlReturn_t nr;

                nr = s->lib.nvmlEventSetWait_v2(s->event_set, &data, NVML_EVENT_WAIT_MS);
                if (nr == NVML_ERROR_TIMEOUT)
                        continue;
                if (nr != NVML_SUCCESS) {
                        nvml_health_queue(s, &(NvmlHealthEvent) { .wait_error = nr });
                        if (!nvml_sleep_unless_stopped(s, NVML_EVENT_ERROR_BACKOFF_MS))
                                break;
                        continue;
                }
                nvml_health_queue(s, &(NvmlHealthEvent) {
                        .device = data.device,
                        .type = data.eventType,
                        .data = data.eventData,
                });
        }
        return NULL;
}

static void nvml_mark(NvmlState *s, NvmlWatched *w, const char *reason) {
        if (w->health == GPU_HEALTH_UNHEALTHY)
                return; /* stays unhealthy until the GPU is reset and the daemon restarted */

        w->health = GPU_HEALTH_UNHEALTHY;
        w->changed = time(NULL);
        snprintf(w->reason, sizeof(w->reason), "%s", reason);
        log_struct(LOG_WARNING,
                   LOG_MESSAGE("GPU %s is unhealthy: %s", w->name, reason),
                   LOG_FIELD("GPU=%s", w->name),
                   LOG_FIELD("GPU_HEALTH_REASON=%s", reason),
                   NULL);
        gpu_backend_report_health(s->backend, w->name, w->health, w->reason);
}

static NvmlWatched *nvml_watched_find(NvmlState *s, nvmlDevice_t d) {
        for (size_t i = 0; i < s->n_watched; i++)
                if (s->watched[i].device == d)
                        return &s->watched[i];
        return NULL;
}

static void nvml_health_handle(NvmlState *s, const NvmlHealthEvent *ev) {
        char reason[GPU_HEALTH_REASON_MAX];
        NvmlWatched *w;

        if (ev->wait_error != NVML_SUCCESS) {
                /* As NVIDIA's device plugin does: if we cannot watch, we cannot vouch. */
                snprintf(reason, sizeof(reason), "nvmlEventSetWait_v2: %s", nvml_strerror(s, ev->wait_error));
                log_error("Waiting for GPU events failed (%s); marking every GPU unhealthy.", reason);
                for (size_t i = 0; i < s->n_watched; i++)
                        nvml_mark(s, &s->watched[i], reason);
                return;
        }

        w = nvml_watched_find(s, ev->device);
        if (!w) {
                log_warning("NVML event 0x%llx for a device we did not register, ignoring.", ev->type);
                return;
        }

        if (ev->type & nvmlEventTypeXidCriticalError) {
                if (nvml_xid_is_application_error(ev->data)) {
                        log_info("GPU %s: XID %llu (%s) blames the application; the GPU stays healthy.",
                                 w->name, ev->data, nvml_xid_describe(ev->data));
                        return;
                }
                snprintf(reason, sizeof(reason), "XID %llu: %s", ev->data, nvml_xid_describe(ev->data));
                nvml_mark(s, w, reason);
        } else if (ev->type & nvmlEventTypeDoubleBitEccError)
                nvml_mark(s, w, "double-bit ECC error");
        else
                log_debug("GPU %s: NVML event 0x%llx ignored.", w->name, ev->type);
}

static int nvml_health_dispatch(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        NvmlState *s = userdata;
        NvmlHealthEvent batch[NVML_EVENT_QUEUE_MAX];
        unsigned long dropped;
        uint64_t counter;
        size_t n;

        (void) !read(fd, &counter, sizeof(counter));

        pthread_mutex_lock(&s->lock);
        n = s->n_queued;
        memcpy(batch, s->queue, n * sizeof(NvmlHealthEvent));
        s->n_queued = 0;
        dropped = s->dropped;
        s->dropped = 0;
        pthread_mutex_unlock(&s->lock);

        if (dropped > 0)
                log_warning("%lu GPU events were dropped: more arrived than we could handle.", dropped);
        for (size_t i = 0; i < n; i++)
                nvml_health_handle(s, &batch[i]);
        return 0;
}

/* Register one GPU in the event set; false when it cannot be watched. */
static bool nvml_watch_register(NvmlState *s, NvmlWatched *w) {
        unsigned long long supported = 0, mask;
        char reason[GPU_HEALTH_REASON_MAX];
        nvmlReturn_t nr;

        nr = s->lib.nvmlDeviceGetSupportedEventTypes(w->device, &supported);
        if (nr == NVML_SUCCESS)
                mask = supported & NVML_HEALTH_EVENT_MASK;
        else if (nr == NVML_ERROR_NOT_SUPPORTED)
                mask = 0;
        else {
                snprintf(reason, sizeof(reason), "nvmlDeviceGetSupportedEventTypes: %s", nvml_strerror(s, nr));
                nvml_mark(s, w, reason);
                return false;
        }
        if (mask == 0) {
                log_warning("GPU %s reports no XID or ECC events: its health cannot be watched.", w->name);
                return false;
        }

        nr = s->lib.nvmlDeviceRegisterEvents(w->device, mask, s->event_set);
        if (nr == NVML_ERROR_NOT_SUPPORTED) {
                log_warning("GPU %s is too old for health events: its health cannot be watched.", w->name);
                return false;
        }
        if (nr != NVML_SUCCESS) {
                snprintf(reason, sizeof(reason), "nvmlDeviceRegisterEvents: %s", nvml_strerror(s, nr));
                nvml_mark(s, w, reason);
                return false;
        }
        return true;
}

/* Fill s->watched with every GPU we can name; returns how many are registered. */
static int nvml_watch_collect(NvmlState *s) {
        unsigned count = 0, n;
        nvmlReturn_t nr;
        int registered = 0;

        nr = s->lib.nvmlDeviceGetCount_v2(&count);
        if (nr != NVML_SUCCESS)
                return log_error_errno(nvml_return_to_errno(nr), "nvmlDeviceGetCount_v2: %s", nvml_strerror(s, nr));
        n = MIN(count, (unsigned) NVML_GPUS_MAX);

        s->watched = calloc(MAX(n, 1u), sizeof(NvmlWatched));
        if (!s->watched)
                return log_oom();

        for (unsigned i = 0; i < n; i++) {
                NvmlWatched *w = &s->watched[s->n_watched];
                unsigned minor;

                /* A GPU we cannot name is already in the enumeration's problems. */
                if (s->lib.nvmlDeviceGetHandleByIndex_v2(i, &w->device) != NVML_SUCCESS ||
                    s->lib.nvmlDeviceGetMinorNumber(w->device, &minor) != NVML_SUCCESS)
                        continue;
                (void) gpu_name_from_minor(minor, w->name, sizeof(w->name));
                w->health = GPU_HEALTH_HEALTHY;
                w->changed = s->opened;
                s->n_watched++;

                if (nvml_watch_register(s, w))
                        registered++;
        }
        return registered;
}

static int nvml_thread_start(NvmlState *s) {
        sigset_t all, saved;
        int r;

        /* The thread must never take a signal meant for the loop. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &saved);
        r = -pthread_create(&s->thread, NULL, nvml_health_thread, s);
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to start the GPU health thread: %m");
        s->thread_running = true;
        return 0;
}

static int nvml_watch_health(void *state, sd_event *e, GpuBackend *b) {
        NvmlState *s = state;
        nvmlReturn_t nr;
        int r, registered;

        if (s->backend)
                return -EBUSY;
        s->backend = b;

        nr = s->lib.nvmlEventSetCreate(&s->event_set);
        if (nr != NVML_SUCCESS) {
                s->event_set = NULL;
                return log_error_errno(nvml_return_to_errno(nr), "nvmlEventSetCreate: %s", nvml_strerror(s, nr));
        }

        registered = nvml_watch_collect(s);
        if (registered < 0)
                return registered;
        if (registered == 0) {
                log_warning("No GPU supports health events; GPUs are reported healthy unless enumeration fails.");
                return 0;
        }

        s->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->event_fd < 0)
                return log_error_errno(negative_errno(), "Failed to create an eventfd: %m");
        r = sd_event_add_io(e, &s->event_source, s->event_fd, EPOLLIN, nvml_health_dispatch, s);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the GPU health eventfd: %m");
        (void) sd_event_source_set_description(s->event_source, "gpu-nvml-health");

        r = nvml_thread_start(s);
        if (r < 0)
                return r;
        log_info("Watching %d GPU(s) for XID and ECC errors.", registered);
        return 0;
}

static void nvml_state_free(NvmlState *s) {
        if (!s)
                return;
        if (s->thread_running) {
                atomic_store(&s->stop, true);
                pthread_join(s->thread, NULL);
        }
        s->event_source = sd_event_source_disable_unref(s->event_source);
        safe_close(s->event_fd);
        if (s->event_set)
                s->lib.nvmlEventSetFree(s->event_set);
        if (s->initialized)
                s->lib.nvmlShutdown();
        if (s->lib.dl)
                dlclose(s->lib.dl);
        pthread_mutex_destroy(&s->lock);
        free(s->watched);
        free(s->sysfs_root);
        free(s);
}

static void nvml_close(void *state) {
        nvml_state_free(state);
}

const GpuBackendOps gpu_backend_nvml = {
        .name = "nvml",
        .open = nvml_open,
        .enumerate = nvml_enumerate,
        .watch_health = nvml_watch_health,
        .close = nvml_close,
};
