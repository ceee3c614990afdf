/* SPDX-License-Identifier: Apache-2.0 */

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "host-driver.h"
#include "macro.h"

/* Where distributions and the NVIDIA installer put the driver's libraries. */
static const char *const lib_dirs[] = {
        "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
        "/lib/x86_64-linux-gnu",     "/lib64",                     "/usr/local/nvidia/lib64",
};
static const char *const libs[] = {
        "libcuda.so.1",           "libnvidia-ml.so.1",        "libnvidia-ptxjitcompiler.so.1",
        "libnvidia-nvvm.so.4",    "libcudadebugger.so.1",     "libnvidia-allocator.so.1",
        "libnvidia-cfg.so.1",     "libnvidia-opencl.so.1",    "libnvidia-fatbinaryloader.so.1",
        "libnvidia-compiler.so.1",
};
static const char *const bin_dirs[] = { "/usr/bin", "/usr/local/bin", "/usr/local/nvidia/bin" };
static const char *const bins[] = {
        "nvidia-smi", "nvidia-debugdump", "nvidia-persistenced", "nvidia-cuda-mps-control",
        "nvidia-cuda-mps-server",
};

static int node_stat(const char *dev_root, const char *name, HostDeviceNode *ret) {
        HostDeviceNode n = {};
        struct stat st;

        snprintf(n.path, sizeof(n.path), "/dev/%s", name);
        if (snprintf(n.host_path, sizeof(n.host_path), "%s/dev/%s",
                     streq(dev_root, "/") ? "" : dev_root, name) >= (int) sizeof(n.host_path))
                return -ENAMETOOLONG;
        if (stat(n.host_path, &st) < 0)
                return negative_errno();
        if (!S_ISCHR(st.st_mode))
                return -ENOTTY;
        n.major = major(st.st_rdev);
        n.minor = minor(st.st_rdev);
        *ret = n;
        return 0;
}

int host_gpu_node(const char *dev_root, unsigned minor_, HostDeviceNode *ret) {
        char name[32];

        snprintf(name, sizeof(name), "nvidia%u", minor_);
        return node_stat(dev_root, name, ret);
}

/* The first dir (under root) that has name as a regular file (after symlinks) wins. */
static int find_file(const char *root, const char *const *dirs, size_t n_dirs, const char *name,
                     HostFile *ret) {
        const char *prefix = streq(root, "/") ? "" : root;

        for (size_t i = 0; i < n_dirs; i++) {
                char path[HOST_PATH_MAX];
                _cleanup_free_ char *resolved = NULL;
                struct stat st;

                if (snprintf(path, sizeof(path), "%s%s/%s", prefix, dirs[i], name) >= (int) sizeof(path))
                        continue;
                if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
                        continue;
                resolved = realpath(path, NULL);
                if (!resolved || strlen(resolved) >= sizeof(ret->host_path))
                        continue;
                snprintf(ret->container_path, sizeof(ret->container_path), "%s/%s", dirs[i], name);
                snprintf(ret->host_path, sizeof(ret->host_path), "%s", resolved);
                return 1;
        }
        return 0;
}

static bool path_in(const char *path, const char *const *dirs, size_t n_dirs, const char *const *names,
                    size_t n_names) {
        const char *slash = strrchr(path, '/');

        if (!slash)
                return false;
        for (size_t i = 0; i < n_dirs; i++) {
                size_t l = strlen(dirs[i]);
                if ((size_t) (slash - path) != l || strncmp(path, dirs[i], l) != 0)
                        continue;
                for (size_t j = 0; j < n_names; j++)
                        if (streq(slash + 1, names[j]))
                                return true;
        }
        return false;
}

bool host_driver_is_file_path(const char *container_path) {
        return container_path &&
               (path_in(container_path, lib_dirs, ELEMENTSOF(lib_dirs), libs, ELEMENTSOF(libs)) ||
                path_in(container_path, bin_dirs, ELEMENTSOF(bin_dirs), bins, ELEMENTSOF(bins)));
}

const char *host_driver_dir(size_t i) {
        if (i < ELEMENTSOF(lib_dirs))
                return lib_dirs[i];
        i -= ELEMENTSOF(lib_dirs);
        return i < ELEMENTSOF(bin_dirs) ? bin_dirs[i] : NULL;
}

bool host_driver_equal(const HostDriver *a, const HostDriver *b) {
        if (a->n_control != b->n_control || a->n_files != b->n_files)
                return false;
        for (size_t i = 0; i < a->n_control; i++)
                if (!streq(a->control[i].path, b->control[i].path) ||
                    !streq(a->control[i].host_path, b->control[i].host_path) ||
                    a->control[i].major != b->control[i].major || a->control[i].minor != b->control[i].minor)
                        return false;
        for (size_t i = 0; i < a->n_files; i++)
                if (!streq(a->files[i].container_path, b->files[i].container_path) ||
                    !streq(a->files[i].host_path, b->files[i].host_path))
                        return false;
        return true;
}

int host_driver_discover(const char *dev_root, const char *driver_root, bool driver_from_runtime,
                         HostDriver *ret, char *error, size_t error_size) {
        static const char *const control[] = { "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools" };
        HostDriver *h;
        int r;

        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(control); i++) {
                r = node_stat(dev_root, control[i], &h->control[h->n_control]);
                if (r >= 0)
                        h->n_control++;
                else if (i == 0) {
                        if (error && error_size > 0)
                                snprintf(error, error_size, "%s/dev/nvidiactl is missing or not a character device",
                                         streq(dev_root, "/") ? "" : dev_root);
                        free(h);
                        return r;
                }
        }
        if (!driver_from_runtime) {
                for (size_t i = 0; i < ELEMENTSOF(libs) && h->n_files < HOST_DRIVER_FILES_MAX; i++)
                        h->n_files += find_file(driver_root, lib_dirs, ELEMENTSOF(lib_dirs), libs[i],
                                                &h->files[h->n_files]);
                for (size_t i = 0; i < ELEMENTSOF(bins) && h->n_files < HOST_DRIVER_FILES_MAX; i++)
                        h->n_files += find_file(driver_root, bin_dirs, ELEMENTSOF(bin_dirs), bins[i],
                                                &h->files[h->n_files]);
        }
        *ret = *h;
        free(h);
        return 0;
}
