/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * A throwaway host for prepare tests: a temp dir with dev/ (mknod fixtures with the
 * real NVIDIA majors/minors), a driver root with libcuda/nvml/nvidia-smi stand-ins, a
 * preload library file, cdi/ and state/ directories, a mock GPU list, and canned
 * ResourceClaim JSON.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpu.h"
#include "prepare.h"

#define FIXTURE_DRIVER "hami-core-gpu.project-hami.io"
#define FIXTURE_NODE "node1"
#define FIXTURE_BOOT_ID "0123456789abcdef0123456789abcdef"
#define FIXTURE_GPU_MEMORY (UINT64_C(24) << 30)

typedef struct Fixture {
        char root[256];
        char dev_root[300];
        char driver_root[300];
        char cdi_dir[300];
        char state_dir[300];
        char preload[300];
        GpuList gpus;
        PrepareOptions options;
} Fixture;

/* n_gpus mock GPUs hami-gpu-0..n-1; PCI bus ids in reverse minor order (CUDA order test). */
void fixture_init(Fixture *f, unsigned n_gpus);
void fixture_done(Fixture *f);

typedef struct FixtureResult {
        const char *request;
        const char *device;
        const char *share_id;     /* NULL: exclusive */
        const char *memory;       /* NULL: no consumedCapacity */
        const char *cores;
        const char *pool;         /* NULL: FIXTURE_NODE */
        const char *driver;       /* NULL: FIXTURE_DRIVER */
} FixtureResult;

/* A claim JSON (malloc'd). configs_json: the raw JSON array of status config, or NULL. */
char *fixture_claim(const char *uid, const char *name, const FixtureResult *results, size_t n,
                    const char *configs_json);

/* The fixture's preparer with claim uid/name (namespace "default") prepared from results,
 * for programs that set up a prepared claim for a script; fails the test otherwise. */
void fixture_prepare_claim(Fixture *f, const char *uid, const char *name, const FixtureResult *results, size_t n,
                           Preparer **ret_preparer, PreparedClaim *ret_claim);

/* Count regular files/dirs under path (recursively); 0 when absent. */
size_t fixture_count(const char *path);
bool fixture_exists(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
