/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * CDI spec generation (pure: data in, JSON text out) and the spec files.
 *
 * One spec per claim, kind "k8s.<driver>/claim", one device per allocation result
 * named "<claim uid>-<device>[-<shareID>]". The spec-level edits (applied once when any
 * device of the claim is requested) carry what every container of the claim shares:
 * control nodes, driver files, the preload library with its /etc/ld.so.preload, the
 * claim's shared-region directory. Each device carries its GPU node and its limits.
 * cdiVersion is the lowest version that covers what is emitted (cdi.md §2.4).
 */

#include <stdbool.h>
#include <stddef.h>

#include "claim.h"
#include "macro.h"
#include "host-driver.h"
#include "claim-limits.h"

#define CDI_CLASS "claim"
#define CDI_NAME_MAX 256
#define CDI_CONTAINER_STATE_DIR "/run/hami-dra"            /* where the region file appears inside containers */
#define CDI_SHARED_CACHE_NAME "vgpu.cache"

typedef struct CdiClaimSpec {
        const char *driver_name;
        const ClaimAllocation *claim;
        const ClaimLimits *limits;
        const HostDriver *host;
        const HostDeviceNode *gpu_nodes;  /* one per limits->gpus[] */
        const char *claim_dir;            /* host: <state dir>/claims/<uid> */
        const char *preload_library;      /* host path; mounted read-only at the same path */
        const char *ld_so_preload;        /* host file naming it, mounted read-only on /etc/ld.so.preload */
        bool driver_from_runtime;
} CdiClaimSpec;

/* "<uid>-<device>[-<share>]" into buf; -EINVAL if it would not be a valid CDI device name. */
int cdi_device_name(const char *uid, const char *device, const char *share_id, char *buf, size_t size);

/* "k8s.<driver>/claim=<name>" (malloc'd), or NULL on OOM/invalid. */
char *cdi_device_id(const char *driver_name, const char *device_name);

/* Build the spec. Returns 0 and the JSON text (malloc'd). */
int cdi_spec_build(const CdiClaimSpec *in, char **ret_json);

/*
 * What a spec takes from the host driver, exactly as cdi_spec_build() writes it: the
 * control nodes (a JSON array of deviceNodes) and the driver files (a JSON array of
 * mounts). For rewriting the specs of prepared claims when the driver changes.
 */
int cdi_host_edits_build(const HostDriver *host, char **ret_device_nodes, char **ret_mounts);

/* Those edits of one host driver, parsed once for comparing many specs (cdi-update.c). */
typedef struct CdiHostEdits CdiHostEdits;
int cdi_host_edits_new(const HostDriver *host, CdiHostEdits **ret);
CdiHostEdits *cdi_host_edits_free(CdiHostEdits *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(CdiHostEdits *, cdi_host_edits_free);

/*
 * The spec text json with its claim-wide control nodes and driver-file mounts replaced by
 * those of the host driver e (the region, preload and ld.so.preload mounts and the devices
 * are kept). 1 and the new text in *ret when anything differs; 0 (and *ret NULL) when
 * not; -EBADMSG when json is not a spec with claim-wide edits.
 */
int cdi_spec_update_host(const char *json, const CdiHostEdits *e, char **ret);

/* "k8s.<driver>-claim_<uid>.json" into buf. */
int cdi_spec_file_name(const char *driver_name, const char *uid, char *buf, size_t size);

/* Write atomically (temp file in dir not ending in .json, fsync, rename). */
int cdi_spec_write(const char *dir, const char *driver_name, const char *uid, const char *json);
/* 0, or -ENOENT when there was none. */
int cdi_spec_remove(const char *dir, const char *driver_name, const char *uid);
/* 1 when present, 0 when not. */
int cdi_spec_exists(const char *dir, const char *driver_name, const char *uid);

/* The same relative to the open CDI directory. */
int cdi_spec_write_at(int dir_fd, const char *driver_name, const char *uid, const char *json);
int cdi_spec_remove_at(int dir_fd, const char *driver_name, const char *uid);
int cdi_spec_exists_at(int dir_fd, const char *driver_name, const char *uid);

/* For recovery: if name is one of our spec files, copy the claim UID into uid. */
bool cdi_spec_file_parse(const char *driver_name, const char *name, char *uid, size_t size);

/* Validate the character rules of a CDI kind/name (cdi.md §1). */
bool cdi_name_is_valid(const char *name);
bool cdi_vendor_is_valid(const char *vendor);
