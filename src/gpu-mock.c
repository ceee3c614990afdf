/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The mock backend: [Mock] GPUs= identical GPUs of Model= with Memory= each, so a host
 * without GPUs runs the whole flow. UUIDs derive from the node name, so they are stable
 * across restarts and differ between nodes. Health follows <state_dir>/mock-health.
 */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>

#include "gpu-backend.h"
#include "fsutil.h"
#include "gpu-mock.h"
#include "log.h"
#include "macro.h"

#define MOCK_DEFAULT_MODEL "NVIDIA A10"
#define MOCK_DEFAULT_MEMORY (23028ULL << 20)
#define MOCK_DRIVER_VERSION "570.86.15"
#define MOCK_CUDA_DRIVER_VERSION 12080
#define MOCK_MODEL_MAX 64

typedef struct MockState {
        GpuList gpus;            /* with the current health */
        char *state_dir;
        char *health_path;
        GpuBackend *backend;
        sd_event_source *inotify_source;
} MockState;

typedef struct MockModel {
        const char *prefix;      /* of a word of the model: "A100" matches "NVIDIA A100-SXM4-80GB" */
        const char *architecture;
        int cc_major, cc_minor;
} MockModel;

/* Longer prefixes first: "A100" before "A10". */
static const MockModel mock_models[] = {
        { "GB200", "Blackwell", 10, 0 },
        { "B200", "Blackwell", 10, 0 },
        { "B100", "Blackwell", 10, 0 },
        { "H100", "Hopper", 9, 0 },
        { "H200", "Hopper", 9, 0 },
        { "H800", "Hopper", 9, 0 },
        { "H20", "Hopper", 9, 0 },
        { "L40", "Ada Lovelace", 8, 9 },
        { "L20", "Ada Lovelace", 8, 9 },
        { "L4", "Ada Lovelace", 8, 9 },
        { "A100", "Ampere", 8, 0 },
        { "A800", "Ampere", 8, 0 },
        { "A30", "Ampere", 8, 0 },
        { "A10", "Ampere", 8, 6 },
        { "A40", "Ampere", 8, 6 },
        { "A16", "Ampere", 8, 6 },
        { "A2", "Ampere", 8, 6 },
        { "V100", "Volta", 7, 0 },
        { "T4", "Turing", 7, 5 },
};

static const MockModel *mock_model_lookup(const char *model) {
        static const MockModel fallback = { "", "Ampere", 8, 6 };

        /* The first word that starts like a known model: "NVIDIA H100 80GB HBM3" is an H100. */
        for (const char *w = model; *w; w += strcspn(w, " "), w += strspn(w, " "))
                for (size_t i = 0; i < ELEMENTSOF(mock_models); i++)
                        if (strncmp(w, mock_models[i].prefix, strlen(mock_models[i].prefix)) == 0)
                                return &mock_models[i];
        return &fallback;
}

static uint64_t fnv1a64(const char *s, uint64_t h) {
        for (; *s; s++) {
                h ^= (unsigned char) *s;
                h *= 0x100000001b3ULL;
        }
        return h;
}

static uint64_t splitmix64(uint64_t x) {
        x += 0x9e3779b97f4a7c15ULL;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
        return x ^ (x >> 31);
}

int mock_gpu_uuid(const char *node_name, unsigned index, char *out, size_t size) {
        char key[320];
        uint64_t hi, lo;
        int n;

        n = snprintf(key, sizeof(key), "hami-dra-mock-gpu\n%s\n%u", node_name ?: "", index);
        if (n < 0 || (size_t) n >= sizeof(key))
                return -EINVAL;
        hi = splitmix64(fnv1a64(key, 0xcbf29ce484222325ULL));
        lo = splitmix64(hi ^ fnv1a64(key, 0x84222325cbf29ce4ULL));

        n = snprintf(out, size, "GPU-%08x-%04x-%04x-%04x-%012llx",
                     (unsigned) (hi >> 32), (unsigned) (hi >> 16) & 0xffffu, (unsigned) hi & 0xffffu,
                     (unsigned) (lo >> 48), (unsigned long long) (lo & 0xffffffffffffULL));
        if (n < 0 || (size_t) n >= size)
                return -ENOBUFS;
        return 0;
}

static void mock_gpu_fill(const Config *c, const char *model, unsigned i, time_t now, Gpu *g) {
        const MockModel *m = mock_model_lookup(model);
        unsigned bus = 0x18 + 3 * i;              /* plausible: 0000:18:00.0, 0000:1b:00.0, ... */
        unsigned root = 0x17 + 6 * (i / 2);       /* two GPUs behind each root port */

        *g = (Gpu) {
                .minor = i,
                .memory_total = c->mock_memory > 0 ? c->mock_memory : MOCK_DEFAULT_MEMORY,
                .cores = GPU_CORES_TOTAL,
                .health = GPU_HEALTH_HEALTHY,
                .health_changed = now,
        };
        (void) gpu_name_from_minor(i, g->name, sizeof(g->name));
        (void) mock_gpu_uuid(c->node_name, i, g->uuid, sizeof(g->uuid));
        snprintf(g->product_name, sizeof(g->product_name), "%s", model);
        snprintf(g->brand, sizeof(g->brand), "Nvidia");
        snprintf(g->architecture, sizeof(g->architecture), "%s", m->architecture);
        (void) compute_capability_to_semver(m->cc_major, m->cc_minor, g->cuda_compute_capability,
                                            sizeof(g->cuda_compute_capability));
        (void) version_to_semver(MOCK_DRIVER_VERSION, g->driver_version, sizeof(g->driver_version));
        (void) cuda_version_to_semver(MOCK_CUDA_DRIVER_VERSION, g->cuda_driver_version,
                                      sizeof(g->cuda_driver_version));
        snprintf(g->pcie_bus_id, sizeof(g->pcie_bus_id), "0000:%02x:00.0", bus);
        snprintf(g->pcie_root, sizeof(g->pcie_root), "pci0000:%02x", root);
}

static void mock_state_free(MockState *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(MockState *, mock_state_free);

static int mock_open(const Config *c, void **ret_state) {
        _cleanup_(mock_state_freep) MockState *s = NULL;
        const char *model = isempty(c->mock_model) ? MOCK_DEFAULT_MODEL : c->mock_model;
        time_t now = time(NULL);

        if (c->mock_gpus > MOCK_GPUS_MAX)
                return log_error_errno(-EINVAL, "[Mock] GPUs=%u is more than the %u allowed.",
                                       c->mock_gpus, MOCK_GPUS_MAX);
        if (strlen(model) > MOCK_MODEL_MAX)
                return log_error_errno(-EINVAL, "[Mock] Model= is longer than %u characters.", MOCK_MODEL_MAX);
        if (isempty(c->state_dir))
                return log_error_errno(-EINVAL, "The mock backend needs a state directory.");

        s = calloc(1, sizeof(MockState));
        if (!s)
                return log_oom();
        s->state_dir = strdup(c->state_dir);
        if (!s->state_dir || asprintf(&s->health_path, "%s/%s", c->state_dir, MOCK_HEALTH_FILE) < 0)
                return log_oom();

        s->gpus.gpus = calloc(MAX(c->mock_gpus, 1u), sizeof(Gpu));
        if (!s->gpus.gpus)
                return log_oom();
        for (unsigned i = 0; i < c->mock_gpus; i++)
                mock_gpu_fill(c, model, i, now, &s->gpus.gpus[i]);
        s->gpus.n_gpus = c->mock_gpus;
        gpu_list_sort(&s->gpus);

        log_info("Mock backend: %u x %s with %llu MiB each.", c->mock_gpus, model,
                 (unsigned long long) ((c->mock_memory > 0 ? c->mock_memory : MOCK_DEFAULT_MEMORY) >> 20));
        *ret_state = TAKE_PTR(s);
        return 0;
}

static int mock_enumerate(void *state, GpuList *ret) {
        MockState *s = state;
        int r;

        r = gpu_list_copy(&s->gpus, ret);
        if (r < 0)
                return log_oom();
        return 0;
}

/* The file's contents, at most MOCK_HEALTH_FILE_MAX bytes; *ret_size = 0 when it is missing. */
static int mock_health_read(const char *path, char **ret, size_t *ret_size) {
        int r = read_file_bounded_at(AT_FDCWD, path, MOCK_HEALTH_FILE_MAX, READ_FILE_NOFOLLOW, ret, ret_size);

        if (r == -ENOENT) {
                *ret = NULL;
                *ret_size = 0;
                return 0;
        }
        return r;
}

static void mock_health_apply(MockState *s, const MockHealth *h) {
        for (size_t i = 0; i < s->gpus.n_gpus; i++) {
                Gpu *g = &s->gpus.gpus[i];

                if (g->health == h[i].health && streq(g->health_reason, h[i].reason))
                        continue;
                g->health = h[i].health;
                g->health_changed = time(NULL);
                snprintf(g->health_reason, sizeof(g->health_reason), "%s", h[i].reason);
                log_struct(g->health == GPU_HEALTH_HEALTHY ? LOG_INFO : LOG_WARNING,
                           LOG_MESSAGE("Mock GPU %s is %s%s%s", g->name, gpu_health_to_string(g->health),
                                       g->health_reason[0] ? ": " : "", g->health_reason),
                           LOG_FIELD("GPU=%s", g->name),
                           LOG_FIELD("GPU_HEALTH_REASON=%s", g->health_reason),
                           NULL);
                gpu_backend_report_health(s->backend, g->name, g->health, g->health_reason);
        }
}

static void mock_health_reload(MockState *s) {
        _cleanup_free_ MockHealth *h = NULL;
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        int r;

        r = mock_health_read(s->health_path, &text, &size);
        if (r < 0) {
                log_warning_errno(r, "Cannot read %s, keeping the GPUs' health as it is: %m", s->health_path);
                return;
        }

        h = calloc(MAX(s->gpus.n_gpus, (size_t) 1), sizeof(MockHealth));
        if (!h) {
                log_oom();
                return;
        }
        r = mock_health_parse(text ?: "", size, s->gpus.gpus, s->gpus.n_gpus, h);
        if (r < 0) {
                log_warning_errno(r, "Cannot parse %s, keeping the GPUs' health as it is: %m", s->health_path);
                return;
        }
        mock_health_apply(s, h);
}

static int mock_on_inotify(sd_event_source *source, const struct inotify_event *ev, void *userdata) {
        MockState *s = userdata;

        if ((ev->mask & IN_Q_OVERFLOW) || (ev->len > 0 && streq(ev->name, MOCK_HEALTH_FILE)))
                mock_health_reload(s);
        return 0;
}

static int mock_watch_health(void *state, sd_event *e, GpuBackend *b) {
        MockState *s = state;
        int r;

        if (s->backend)
                return -EBUSY;
        s->backend = b;

        if (mkdir(s->state_dir, 0755) < 0 && errno != EEXIST)
                return log_error_errno(negative_errno(), "Cannot create %s for %s: %m", s->state_dir,
                                       MOCK_HEALTH_FILE);

        /* On the directory: the file may not exist yet and may be replaced by rename(). */
        r = sd_event_add_inotify(e, &s->inotify_source, s->state_dir,
                                 IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR,
                                 mock_on_inotify, s);
        if (r < 0)
                return log_error_errno(r, "Cannot watch %s: %m", s->state_dir);
        (void) sd_event_source_set_description(s->inotify_source, "gpu-mock-health");

        mock_health_reload(s);
        return 0;
}

static void mock_state_free(MockState *s) {
        if (!s)
                return;
        s->inotify_source = sd_event_source_disable_unref(s->inotify_source);
        gpu_list_done(&s->gpus);
        free(s->health_path);
        free(s->state_dir);
        free(s);
}

static void mock_close(void *state) {
        mock_state_free(state);
}

const GpuBackendOps gpu_backend_mock = {
        .name = "mock",
        .open = mock_open,
        .enumerate = mock_enumerate,
        .watch_health = mock_watch_health,
        .close = mock_close,
};
