/* SPDX-License-Identifier: Apache-2.0 */

#include <ctype.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>

#include "cdi.h"
#include "fsutil.h"
#include "json-writer.h"
#include "macro.h"

/* ---------------------------------------------------------------- names */

static bool cdi_char_ok(char c, bool colon) {
        return isascii(c) && (isalnum(c) || c == '_' || c == '-' || c == '.' || (colon && c == ':'));
}

bool cdi_name_is_valid(const char *name) {
        size_t n = name ? strlen(name) : 0;

        if (n == 0 || !isascii(name[0]) || !isalnum(name[0]) || !isalnum(name[n - 1]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!cdi_char_ok(name[i], true))
                        return false;
        return true;
}

bool cdi_vendor_is_valid(const char *vendor) {
        size_t n = vendor ? strlen(vendor) : 0;

        if (n == 0 || n > 253 || !isascii(vendor[0]) || !isalpha(vendor[0]) || !isalnum(vendor[n - 1]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!cdi_char_ok(vendor[i], false))
                        return false;
        return true;
}

int cdi_device_name(const char *uid, const char *device, const char *share_id, char *buf, size_t size) {
        int n;

        if (share_id)
                n = snprintf(buf, size, "%s-%s-%s", uid, device, share_id);
        else
                n = snprintf(buf, size, "%s-%s", uid, device);
        if (n < 0 || (size_t) n >= size)
                return -ENAMETOOLONG;
        return cdi_name_is_valid(buf) ? 0 : -EINVAL;
}

char *cdi_device_id(const char *driver_name, const char *device_name) {
        char *s;

        if (asprintf(&s, "k8s.%s/" CDI_CLASS "=%s", driver_name, device_name) < 0)
                return NULL;
        return s;
}

int cdi_spec_file_name(const char *driver_name, const char *uid, char *buf, size_t size) {
        int n = snprintf(buf, size, "k8s.%s-" CDI_CLASS "_%s.json", driver_name, uid);
        return n < 0 || (size_t) n >= size ? -ENAMETOOLONG : 0;
}

bool cdi_spec_file_parse(const char *driver_name, const char *name, char *uid, size_t size) {
        char prefix[300];
        size_t lp, ln = strlen(name);
        int n;

        n = snprintf(prefix, sizeof(prefix), "k8s.%s-" CDI_CLASS "_", driver_name);
        if (n < 0 || (size_t) n >= sizeof(prefix))
                return false;
        lp = (size_t) n;
        if (ln <= lp + 5 || strncmp(name, prefix, lp) != 0 || !streq(name + ln - 5, ".json"))
                return false;
        if (ln - lp - 5 >= size)
                return false;
        memcpy(uid, name + lp, ln - lp - 5);
        uid[ln - lp - 5] = '\0';
        return claim_uid_is_valid(uid);
}

/* ---------------------------------------------------------------- JSON building */

/* Version numbers as 3-digit groups: 0.5.0 -> 500. */
#define CDI_V030 300
#define CDI_V040 400
#define CDI_V050 500

typedef struct Builder {
        JsonWriter *w;
        int version;          /* minimum required so far */
} Builder;

static void need(Builder *b, int v) {
        b->version = MAX(b->version, v);
}

static void device_node(Builder *b, const HostDeviceNode *n) {
        jw_object_begin(b->w);
        jw_kv_string(b->w, "path", n->path);
        if (!streq(n->path, n->host_path)) {
                jw_kv_string(b->w, "hostPath", n->host_path);
                need(b, CDI_V050);
        }
        jw_kv_string(b->w, "type", "c");
        jw_kv_uint(b->w, "major", n->major);
        jw_kv_uint(b->w, "minor", n->minor);
        jw_object_end(b->w);
}

static void bind_mount(Builder *b, const char *host, const char *container, bool ro, bool exec) {
        jw_object_begin(b->w);
        jw_kv_string(b->w, "hostPath", host);
        jw_kv_string(b->w, "containerPath", container);
        jw_key(b->w, "options");
        jw_array_begin(b->w);
        jw_string(b->w, ro ? "ro" : "rw");
        jw_string(b->w, "nosuid");
        jw_string(b->w, "nodev");
        if (!exec)
                jw_string(b->w, "noexec");
        jw_string(b->w, "bind");
        jw_array_end(b->w);
        jw_kv_string(b->w, "type", "bind");
        jw_object_end(b->w);
        need(b, CDI_V040);
}

/* NVIDIA_VISIBLE_DEVICES for the NVIDIA runtime: the claim's GPUs by UUID, in CUDA (PCI) order. */
static void nvidia_visible_devices(Builder *b, const ClaimLimits *l) {
        const Gpu *order[CLAIM_RESULTS_MAX];
        char list[CLAIM_RESULTS_MAX * (GPU_STRING_MAX + 1) + 1];
        size_t n = l->n_gpus, len = 0;

        for (size_t g = 0; g < n; g++)
                order[g] = l->gpus[g].gpu;
        for (size_t i = 1; i < n; i++)
                for (size_t j = i; j > 0 && strcmp(order[j - 1]->pcie_bus_id, order[j]->pcie_bus_id) > 0; j--) {
                        const Gpu *t = order[j];
                        order[j] = order[j - 1];
                        order[j - 1] = t;
                }
        list[0] = '\0';
        for (size_t g = 0; g < n; g++)
                len += (size_t) snprintf(list + len, sizeof(list) - len, "%s%s", g ? "," : "", order[g]->uuid);
        jw_stringf(b->w, "NVIDIA_VISIBLE_DEVICES=%s", list);
}

/* The claim-wide edits: control nodes, driver files, preload, shared-region directory. */
static void spec_edits(Builder *b, const CdiClaimSpec *in) {
        char path[HOST_PATH_MAX + 64];

        jw_object_begin(b->w);
        if (in->host->n_control > 0) {
                jw_key(b->w, "deviceNodes");
                jw_array_begin(b->w);
                for (size_t i = 0; i < in->host->n_control; i++)
                        device_node(b, &in->host->control[i]);
                jw_array_end(b->w);
        }

        jw_key(b->w, "mounts");
        jw_array_begin(b->w);
        for (size_t i = 0; i < in->host->n_files; i++)
                bind_mount(b, in->host->files[i].host_path, in->host->files[i].container_path, true, true);
        /* The region file alone, not vgpu/: the container may write the region (libvgpu
         * maps it), but nothing it does can add a file on the host (issue 14). */
        snprintf(path, sizeof(path), "%s/vgpu/" CDI_SHARED_CACHE_NAME, in->claim_dir);
        bind_mount(b, path, CDI_CONTAINER_STATE_DIR "/" CDI_SHARED_CACHE_NAME, false, false);
        if (in->preload_library && in->ld_so_preload) {
                bind_mount(b, in->preload_library, in->preload_library, true, true);
                bind_mount(b, in->ld_so_preload, "/etc/ld.so.preload", true, false);
        }
        jw_array_end(b->w);

        jw_key(b->w, "env");
        jw_array_begin(b->w);
        jw_string(b->w, "CUDA_DEVICE_MEMORY_SHARED_CACHE=" CDI_CONTAINER_STATE_DIR "/" CDI_SHARED_CACHE_NAME);
        if (in->driver_from_runtime)
                nvidia_visible_devices(b, in->limits);
        jw_array_end(b->w);
        jw_object_end(b->w);
}

/*
 * One device per result: its GPU node, its UUID and the limits libvgpu reads for the
 * GPU's index i in the claim (ClaimLimits). Every result on a GPU carries the same i,
 * and the GPUs of one claim never share one, so the devices of several requests merge
 * into one container without clashing; the unsuffixed limits only when the claim has a
 * single GPU, where they cannot be taken for another GPU's.
 */
static int device(Builder *b, const CdiClaimSpec *in, size_t i) {
        const ClaimResult *res = &in->claim->results[i];
        const ResultPlacement *pl = &in->limits->results[i];
        const GpuLimit *gl = &in->limits->gpus[pl->gpu];
        bool memory = gl->memory_policy == LIMIT_POLICY_HARD, sm = gl->sm_policy == LIMIT_POLICY_HARD;
        bool single = in->limits->n_gpus == 1;
        char name[CDI_NAME_MAX];
        int r;

        r = cdi_device_name(in->claim->uid, res->device, res->share_id, name, sizeof(name));
        if (r < 0)
                return r;
        if (isdigit((unsigned char) name[0]))
                need(b, CDI_V050);

        jw_object_begin(b->w);
        jw_kv_string(b->w, "name", name);
        jw_key(b->w, "containerEdits");
        jw_object_begin(b->w);
        jw_key(b->w, "deviceNodes");
        jw_array_begin(b->w);
        device_node(b, &in->gpu_nodes[pl->gpu]);
        jw_array_end(b->w);
        jw_key(b->w, "env");
        jw_array_begin(b->w);
        jw_stringf(b->w, "CUDA_DEVICE_UUID_%u=%s", pl->cuda_index, gl->gpu->uuid);
        if (memory) {
                jw_stringf(b->w, "CUDA_DEVICE_MEMORY_LIMIT_%u=%" PRIu64 "m", pl->cuda_index, gl->memory_mib);
                if (single)
                        jw_stringf(b->w, "CUDA_DEVICE_MEMORY_LIMIT=%" PRIu64 "m", gl->memory_mib);
        }
        if (sm) {
                jw_stringf(b->w, "CUDA_DEVICE_SM_LIMIT_%u=%u", pl->cuda_index, gl->cores);
                if (single)
                        jw_stringf(b->w, "CUDA_DEVICE_SM_LIMIT=%u", gl->cores);
        }
        if (gl->oversubscription)
                jw_string(b->w, "CUDA_OVERSUBSCRIBE=true");
        jw_array_end(b->w);
        jw_object_end(b->w);
        jw_object_end(b->w);
        return 0;
}

int cdi_spec_build(const CdiClaimSpec *in, char **ret_json) {
        _cleanup_(json_writer_freep) JsonWriter *w = NULL;
        Builder b = { .version = CDI_V030 };
        char kind[300], head[64];
        const char *body;
        size_t body_len;
        int hlen, r;
        char *text;

        if (!in->claim || in->claim->n_results == 0 || in->limits->n_results != in->claim->n_results)
                return -EINVAL;
        if (snprintf(kind, sizeof(kind), "k8s.%s", in->driver_name) >= (int) sizeof(kind) ||
            !cdi_vendor_is_valid(kind))
                return -EINVAL;
        strcat(kind, "/" CDI_CLASS);

        w = b.w = json_writer_new();
        if (!w)
                return -ENOMEM;
        jw_object_begin(w);
        jw_kv_string(w, "kind", kind);
        jw_key(w, "devices");
        jw_array_begin(w);
        for (size_t i = 0; i < in->claim->n_results; i++) {
                r = device(&b, in, i);
                if (r < 0)
                        return r;
        }
        jw_array_end(w);
        jw_key(w, "containerEdits");
        spec_edits(&b, in);
        jw_object_end(w);
        r = json_writer_finish(w, &body, &body_len);
        if (r < 0)
                return r;

        /*
         * cdiVersion first, for the reader's sake, though only the content decides it: put
         * it in front of the object just written ("{" + the rest).
         */
        hlen = snprintf(head, sizeof(head), "{\"cdiVersion\":\"%d.%d.%d\",", b.version / 1000,
                        b.version / 100 % 10, b.version % 100);
        text = malloc((size_t) hlen + body_len);
        if (!text)
                return -ENOMEM;
        memcpy(text, head, (size_t) hlen);
        memcpy(text + hlen, body + 1, body_len - 1);
        text[hlen + body_len - 1] = '\0';
        *ret_json = text;
        return 0;
}

/* The control nodes (mounts false) or the driver-file mounts of host, as one JSON array. */
static int host_edits_array(const HostDriver *host, bool mounts, char **ret) {
        _cleanup_(json_writer_freep) JsonWriter *w = json_writer_new();
        Builder b = { .w = w, .version = CDI_V030 };
        const char *text;
        size_t len;
        int r;

        if (!w)
                return -ENOMEM;
        jw_array_begin(w);
        if (mounts)
                for (size_t i = 0; i < host->n_files; i++)
                        bind_mount(&b, host->files[i].host_path, host->files[i].container_path, true, true);
        else
                for (size_t i = 0; i < host->n_control; i++)
                        device_node(&b, &host->control[i]);
        jw_array_end(w);
        r = json_writer_finish(w, &text, &len);
        if (r < 0)
                return r;
        *ret = strndup(text, len);
        return *ret ? 0 : -ENOMEM;
}

int cdi_host_edits_build(const HostDriver *host, char **ret_device_nodes, char **ret_mounts) {
        _cleanup_free_ char *nodes = NULL;
        int r;

        r = host_edits_array(host, false, &nodes);
        if (r >= 0)
                r = host_edits_array(host, true, ret_mounts);
        if (r < 0)
                return r;
        *ret_device_nodes = TAKE_PTR(nodes);
        return 0;
}

/* ---------------------------------------------------------------- files */

int cdi_spec_write_at(int dfd, const char *driver_name, const char *uid, const char *json) {
        char name[400];
        int r;

        r = cdi_spec_file_name(driver_name, uid, name, sizeof(name));
        if (r < 0)
                return r;
        /*
         * The temp name ends in .tmp: runtimes only read *.json and *.yaml. No fsync: the
         * CDI dir is a tmpfs in production, and after a reboot recovery rewrites every spec
         * from the (durable) checkpoint.
         */
        return write_file_atomic_at(dfd, name, json, strlen(json), 0644, 0);
}

int cdi_spec_remove_at(int dfd, const char *driver_name, const char *uid) {
        char name[400];
        int r;

        r = cdi_spec_file_name(driver_name, uid, name, sizeof(name));
        if (r < 0)
                return r;
        return unlinkat(dfd, name, 0) < 0 ? negative_errno() : 0;
}

int cdi_spec_exists_at(int dfd, const char *driver_name, const char *uid) {
        char name[400];
        int r;

        r = cdi_spec_file_name(driver_name, uid, name, sizeof(name));
        if (r < 0)
                return r;
        return faccessat(dfd, name, F_OK, AT_SYMLINK_NOFOLLOW) >= 0;
}

int cdi_spec_write(const char *dir, const char *driver_name, const char *uid, const char *json) {
        _cleanup_close_ int dfd = open_directory(dir);
        return dfd < 0 ? dfd : cdi_spec_write_at(dfd, driver_name, uid, json);
}

int cdi_spec_remove(const char *dir, const char *driver_name, const char *uid) {
        _cleanup_close_ int dfd = open_directory(dir);
        return dfd < 0 ? dfd : cdi_spec_remove_at(dfd, driver_name, uid);
}

int cdi_spec_exists(const char *dir, const char *driver_name, const char *uid) {
        _cleanup_close_ int dfd = open_directory(dir);
        return dfd < 0 ? dfd : cdi_spec_exists_at(dfd, driver_name, uid);
}
