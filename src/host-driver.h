/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * What a container needs from the host besides its GPUs: the NVIDIA control device
 * nodes (major/minor from stat) and the driver's user-space libraries and binaries.
 * Both roots can be moved for tests (mknod fixtures in a temporary directory); in
 * production they are "/".
 */

#include <stdbool.h>
#include <stddef.h>

#define HOST_DRIVER_FILES_MAX 64
#define HOST_PATH_MAX 512

typedef struct HostDeviceNode {
        char path[64];                /* inside the container: "/dev/nvidia0" */
        char host_path[HOST_PATH_MAX];/* <dev root>/dev/nvidia0 */
        unsigned major, minor;
} HostDeviceNode;

typedef struct HostFile {
        char container_path[HOST_PATH_MAX];  /* "/usr/lib/x86_64-linux-gnu/libcuda.so.1" */
        char host_path[HOST_PATH_MAX];       /* the resolved file under the driver root */
} HostFile;

typedef struct HostDriver {
        HostDeviceNode control[3];    /* nvidiactl (required), nvidia-uvm, nvidia-uvm-tools (if present) */
        size_t n_control;
        HostFile files[HOST_DRIVER_FILES_MAX];
        size_t n_files;
} HostDriver;

/*
 * Look up the control nodes under dev_root and, unless driver_from_runtime, the driver
 * files under driver_root. -ENOENT (with a reason) when /dev/nvidiactl is missing.
 */
int host_driver_discover(const char *dev_root, const char *driver_root, bool driver_from_runtime,
                         HostDriver *ret, char *error, size_t error_size);

/* stat <dev_root>/dev/nvidia<minor>: -ENOENT when absent, -ENOTTY when not a char device. */
int host_gpu_node(const char *dev_root, unsigned minor, HostDeviceNode *ret);

/* Whether container_path is where a driver file goes (one of the libraries or binaries
 * looked for, in one of the directories searched): such mounts of a spec are the driver's. */
bool host_driver_is_file_path(const char *container_path);

/* The i-th directory (inside the driver root) searched for driver files; NULL past the last. */
const char *host_driver_dir(size_t i);

/* Same control nodes and driver files, in the same order. */
bool host_driver_equal(const HostDriver *a, const HostDriver *b);
