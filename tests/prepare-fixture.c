/* SPDX-License-Identifier: Apache-2.0 */

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "fsutil.h"
#include "macro.h"
#include "prepare-fixture.h"
#include "tests.h"

static void mknod_at(const char *dir, const char *name, unsigned maj, unsigned min) {
        char path[512];

        if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int) sizeof(path))
                TEST_FAIL("path too long: %s/%s", dir, name);
        if (mknod(path, S_IFCHR | 0666, makedev(maj, min)) < 0)
                TEST_FAIL("mknod %s: %m", path);
}

static void write_at(const char *path, const char *text, mode_t mode) {
        FILE *f = fopen(path, "we");
        ASSERT_NOT_NULL(f);
        fputs(text, f);
        fclose(f);
        chmod(path, mode);
}

void fixture_init(Fixture *f, unsigned n_gpus) {
        char path[512];
        const char *tmp = getenv("TMPDIR") ?: "/var/tmp";

        *f = (Fixture) {};
        snprintf(f->root, sizeof(f->root), "%s/hami-prepare-XXXXXX", tmp);
        ASSERT_NOT_NULL(mkdtemp(f->root));
        snprintf(f->dev_root, sizeof(f->dev_root), "%s/devroot", f->root);
        snprintf(f->driver_root, sizeof(f->driver_root), "%s/driverroot", f->root);
        snprintf(f->cdi_dir, sizeof(f->cdi_dir), "%s/cdi", f->root);
        snprintf(f->state_dir, sizeof(f->state_dir), "%s/state", f->root);
        snprintf(f->preload, sizeof(f->preload), "%s/libvgpu.so", f->root);

        snprintf(path, sizeof(path), "%s/dev", f->dev_root);
        ASSERT_OK(mkdir_parents(path, 0755));
        for (unsigned i = 0; i < n_gpus; i++) {
                char name[32];
                snprintf(name, sizeof(name), "nvidia%u", i);
                mknod_at(path, name, 195, i);
        }
        mknod_at(path, "nvidiactl", 195, 255);
        mknod_at(path, "nvidia-uvm", 509, 0);
        mknod_at(path, "nvidia-uvm-tools", 509, 1);

        snprintf(path, sizeof(path), "%s/usr/lib/x86_64-linux-gnu", f->driver_root);
        ASSERT_OK(mkdir_parents(path, 0755));
        snprintf(path, sizeof(path), "%s/usr/lib/x86_64-linux-gnu/libcuda.so.570.86.15", f->driver_root);
        write_at(path, "not really libcuda\n", 0644);
        snprintf(path, sizeof(path), "%s/usr/lib/x86_64-linux-gnu/libcuda.so.1", f->driver_root);
        ASSERT_OK(symlink("libcuda.so.570.86.15", path) < 0 ? -errno : 0);
        snprintf(path, sizeof(path), "%s/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1", f->driver_root);
        write_at(path, "not really nvml\n", 0644);
        snprintf(path, sizeof(path), "%s/usr/bin", f->driver_root);
        ASSERT_OK(mkdir_parents(path, 0755));
        snprintf(path, sizeof(path), "%s/usr/bin/nvidia-smi", f->driver_root);
        write_at(path, "#!/bin/sh\necho fake nvidia-smi\n", 0755);
        write_at(f->preload, "not really libvgpu\n", 0644);

        f->gpus.gpus = calloc(MAX(n_gpus, 1u), sizeof(Gpu));
        ASSERT_NOT_NULL(f->gpus.gpus);
        f->gpus.n_gpus = n_gpus;
        for (unsigned i = 0; i < n_gpus; i++) {
                Gpu *g = &f->gpus.gpus[i];
                snprintf(g->name, sizeof(g->name), "hami-gpu-%u", i);
                snprintf(g->uuid, sizeof(g->uuid), "GPU-00000000-0000-0000-0000-%012u", i);
                /* Reverse order: minor 0 has the highest bus id, so CUDA index != minor. */
                snprintf(g->pcie_bus_id, sizeof(g->pcie_bus_id), "0000:%02x:00.0", 0x80 - i);
                g->minor = i;
                g->memory_total = FIXTURE_GPU_MEMORY;
                g->cores = GPU_CORES_TOTAL;
        }

        f->options = (PrepareOptions) {
                .driver_name = FIXTURE_DRIVER,
                .node_name = FIXTURE_NODE,
                .cdi_dir = f->cdi_dir,
                .state_dir = f->state_dir,
                .preload_library = f->preload,
                .dev_root = f->dev_root,
                .driver_root = f->driver_root,
                .boot_id = FIXTURE_BOOT_ID,
        };
}

void fixture_done(Fixture *f) {
        if (!getenv("HAMI_KEEP_FIXTURE"))
                (void) rm_rf(f->root);
        free(f->gpus.gpus);
        *f = (Fixture) {};
}

char *fixture_claim(const char *uid, const char *name, const FixtureResult *results, size_t n,
                    const char *configs_json) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        ASSERT_NOT_NULL(f);
        fprintf(f, "{\"apiVersion\":\"resource.k8s.io/v1\",\"kind\":\"ResourceClaim\","
                   "\"metadata\":{\"name\":\"%s\",\"namespace\":\"default\",\"uid\":\"%s\"},"
                   "\"status\":{\"allocation\":{\"devices\":{\"results\":[", name, uid);
        for (size_t i = 0; i < n; i++) {
                const FixtureResult *r = &results[i];
                fprintf(f, "%s{\"request\":\"%s\",\"driver\":\"%s\",\"pool\":\"%s\",\"device\":\"%s\"", i ? "," : "",
                        r->request ?: "gpu", r->driver ?: FIXTURE_DRIVER, r->pool ?: FIXTURE_NODE, r->device);
                if (r->share_id)
                        fprintf(f, ",\"shareID\":\"%s\"", r->share_id);
                if (r->memory || r->cores)
                        fprintf(f, ",\"consumedCapacity\":{\"memory\":\"%s\",\"cores\":\"%s\"}", r->memory ?: "0",
                                r->cores ?: "0");
                fputc('}', f);
        }
        fprintf(f, "]%s%s}}}}", configs_json ? ",\"config\":" : "", configs_json ?: "");
        fclose(f);
        return buf;
}

size_t fixture_count(const char *path) {
        struct stat st;
        size_t n = 0;
        DIR *d;
        struct dirent *de;

        if (lstat(path, &st) < 0)
                return 0;
        if (!S_ISDIR(st.st_mode))
                return 1;
        d = opendir(path);
        if (!d)
                return 0;
        while ((de = readdir(d))) {
                char sub[1024];
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
                n += fixture_count(sub);
        }
        closedir(d);
        return n;
}

bool fixture_exists(const char *fmt, ...) {
        char path[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(path, sizeof(path), fmt, ap);
        va_end(ap);
        return access(path, F_OK) >= 0;
}

void fixture_prepare_claim(Fixture *f, const char *uid, const char *name, const FixtureResult *results, size_t n,
                           Preparer **ret_preparer, PreparedClaim *ret_claim) {
        _cleanup_free_ char *json = fixture_claim(uid, name, results, n, NULL);
        PrepareClaimRef ref = { .namespace_ = "default", .name = name, .uid = uid };
        char err[512];

        ASSERT_OK(preparer_new(&f->options, &f->gpus, ret_preparer));
        *ret_claim = (PreparedClaim) {};
        if (preparer_prepare(*ret_preparer, &ref, json, strlen(json), ret_claim, err, sizeof(err)) < 0)
                TEST_FAIL("prepare: %s", err);
}
