/* SPDX-License-Identifier: Apache-2.0 */

#include <ctype.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>

#include "cdi.h"
#include "fsutil.h"
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
        int version;          /* minimum required so far */
        int error;
} Builder;

static void need(Builder *b, int v) {
        b->version = MAX(b->version, v);
}

static json_object *jstr(Builder *b, const char *s) {
        json_object *o = json_object_new_string(s);
        if (!o)
                b->error = -ENOMEM;
        return o;
}

static void add(Builder *b, json_object *obj, const char *key, json_object *v) {
        if (!v || !obj) {
                b->error = -ENOMEM;
                json_object_put(v);
                return;
        }
        json_object_object_add(obj, key, v);
}

static void push(Builder *b, json_object *arr, json_object *v) {
        if (!v || !arr || json_object_array_add(arr, v) < 0) {
                b->error = -ENOMEM;
                json_object_put(v);
        }
}

static void push_env(Builder *b, json_object *env, const char *format, ...) _printf_(3, 4);
static void push_env(Builder *b, json_object *env, const char *format, ...) {
        _cleanup_free_ char *s = NULL;
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(&s, format, ap);
        va_end(ap);
        if (r < 0) {
                b->error = -ENOMEM;
                return;
        }
        push(b, env, jstr(b, s));
}

static json_object *device_node(Builder *b, const HostDeviceNode *n) {
        json_object *o = json_object_new_object();

        add(b, o, "path", jstr(b, n->path));
        if (!streq(n->path, n->host_path)) {
                add(b, o, "hostPath", jstr(b, n->host_path));
                need(b, CDI_V050);
        }
        add(b, o, "type", jstr(b, "c"));
        add(b, o, "major", json_object_new_int64(n->major));
        add(b, o, "minor", json_object_new_int64(n->minor));
        return o;
}

static json_object *bind_mount(Builder *b, const char *host, const char *container, bool ro, bool exec) {
        json_object *o = json_object_new_object(), *opts = json_object_new_array();

        add(b, o, "hostPath", jstr(b, host));
        add(b, o, "containerPath", jstr(b, container));
        push(b, opts, jstr(b, ro ? "ro" : "rw"));
        push(b, opts, jstr(b, "nosuid"));
        push(b, opts, jstr(b, "nodev"));
        if (!exec)
                push(b, opts, jstr(b, "noexec"));
        push(b, opts, jstr(b, "bind"));
        add(b, o, "options", opts);
        add(b, o, "type", jstr(b, "bind"));
        need(b, CDI_V040);
        return o;
}

/* The claim-wide edits: control nodes, driver files, preload, shared-region directory. */
static json_object *spec_edits(Builder *b, const CdiClaimSpec *in) {
        json_object *edits = json_object_new_object(), *nodes = json_object_new_array(),
                    *mounts = json_object_new_array(), *env = json_object_new_array();
        char path[HOST_PATH_MAX + 64];

        for (size_t i = 0; i < in->host->n_control; i++)
                push(b, nodes, device_node(b, &in->host->control[i]));
        for (size_t i = 0; i < in->host->n_files; i++)
                push(b, mounts, bind_mount(b, in->host->files[i].host_path, in->host->files[i].container_path,
                                           true, true));

        snprintf(path, sizeof(path), "%s/vgpu", in->claim_dir);
        push(b, mounts, bind_mount(b, path, CDI_CONTAINER_STATE_DIR, false, false));
        push_env(b, env, "CUDA_DEVICE_MEMORY_SHARED_CACHE=" CDI_CONTAINER_STATE_DIR "/" CDI_SHARED_CACHE_NAME);

        if (in->preload_library && in->ld_so_preload) {
                push(b, mounts, bind_mount(b, in->preload_library, in->preload_library, true, true));
                push(b, mounts, bind_mount(b, in->ld_so_preload, "/etc/ld.so.preload", true, false));
        }

        if (in->driver_from_runtime) {
                /* The NVIDIA runtime injects the driver for the GPUs this names (UUIDs, CUDA order). */
                _cleanup_free_ char *list = NULL;
                size_t len = 0;
                const Gpu *order[CLAIM_RESULTS_MAX];
                size_t n = in->limits->n_gpus;

                for (size_t g = 0; g < n; g++)
                        order[g] = in->limits->gpus[g].gpu;
                for (size_t i = 1; i < n; i++)
                        for (size_t j = i; j > 0 && strcmp(order[j - 1]->pcie_bus_id, order[j]->pcie_bus_id) > 0; j--) {
                                const Gpu *t = order[j];
                                order[j] = order[j - 1];
                                order[j - 1] = t;
                        }
                list = calloc(n + 1, GPU_STRING_MAX + 1);
                if (!list) {
                        b->error = -ENOMEM;
                } else {
                        for (size_t g = 0; g < n; g++)
                                len += (size_t) sprintf(list + len, "%s%s", g ? "," : "", order[g]->uuid);
                        push_env(b, env, "NVIDIA_VISIBLE_DEVICES=%s", list);
                }
        }

        if (json_object_array_length(nodes) > 0)
                add(b, edits, "deviceNodes", nodes);
        else
                json_object_put(nodes);
        add(b, edits, "mounts", mounts);
        add(b, edits, "env", env);
        return edits;
}

/* One device per result: its GPU node and the limits HAMi-core reads for CUDA index i. */
static json_object *device(Builder *b, const CdiClaimSpec *in, size_t i) {
        const ClaimResult *res = &in->claim->results[i];
        const ResultPlacement *pl = &in->limits->results[i];
        const GpuLimit *gl = &in->limits->gpus[pl->gpu];
        json_object *o = json_object_new_object(), *edits = json_object_new_object(),
                    *nodes = json_object_new_array(), *env = json_object_new_array();
        char name[CDI_NAME_MAX];
        int r;

        r = cdi_device_name(in->claim->uid, res->device, res->share_id, name, sizeof(name));
        if (r < 0) {
                b->error = r;
                name[0] = '\0';
        }
        if (isdigit((unsigned char) name[0]))
                need(b, CDI_V050);
        add(b, o, "name", jstr(b, name));

        push(b, nodes, device_node(b, &in->gpu_nodes[pl->gpu]));
        if (gl->memory_policy == LIMIT_POLICY_HARD) {
                push_env(b, env, "CUDA_DEVICE_MEMORY_LIMIT_%u=%" PRIu64 "m", pl->cuda_index, gl->memory_mib);
                if (pl->view_size == 1)
                        push_env(b, env, "CUDA_DEVICE_MEMORY_LIMIT=%" PRIu64 "m", gl->memory_mib);
        }
        if (gl->sm_policy == LIMIT_POLICY_HARD) {
                push_env(b, env, "CUDA_DEVICE_SM_LIMIT_%u=%u", pl->cuda_index, gl->cores);
                if (pl->view_size == 1)
                        push_env(b, env, "CUDA_DEVICE_SM_LIMIT=%u", gl->cores);
        }
        if (gl->oversubscription)
                push_env(b, env, "CUDA_OVERSUBSCRIBE=true");

        add(b, edits, "deviceNodes", nodes);
        if (json_object_array_length(env) > 0)
                add(b, edits, "env", env);
        else
                json_object_put(env);
        add(b, o, "containerEdits", edits);
        return o;
}

int cdi_spec_build(const CdiClaimSpec *in, char **ret_json) {
        Builder b = { .version = CDI_V030 };
        json_object *root, *devices;
        char kind[300], version[16];
        const char *text;
        char *copy;

        if (!in->claim || in->claim->n_results == 0 || in->limits->n_results != in->claim->n_results)
                return -EINVAL;
        if (snprintf(kind, sizeof(kind), "k8s.%s", in->driver_name) >= (int) sizeof(kind) ||
            !cdi_vendor_is_valid(kind))
                return -EINVAL;
        strcat(kind, "/" CDI_CLASS);

        root = json_object_new_object();
        devices = json_object_new_array();
        for (size_t i = 0; i < in->claim->n_results; i++)
                push(&b, devices, device(&b, in, i));
        add(&b, root, "kind", jstr(&b, kind));
        add(&b, root, "devices", devices);
        add(&b, root, "containerEdits", spec_edits(&b, in));

        snprintf(version, sizeof(version), "%d.%d.%d", b.version / 1000, b.version / 100 % 10, b.version % 100);
        /* cdiVersion first, for the reader's sake: rebuild the order. */
        json_object *ordered = json_object_new_object();
        add(&b, ordered, "cdiVersion", jstr(&b, version));
        json_object_object_foreach(root, key, val)
                add(&b, ordered, key, json_object_get(val));
        json_object_put(root);

        if (b.error < 0) {
                json_object_put(ordered);
                return b.error;
        }
        text = json_object_to_json_string_ext(ordered, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        copy = text ? strdup(text) : NULL;
        json_object_put(ordered);
        if (!copy)
                return -ENOMEM;
        *ret_json = copy;
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
