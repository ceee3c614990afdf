/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The mock backend's pure parts, exposed for tests and fuzzers.
 *
 * <state_dir>/mock-health lets tests flip mock GPUs unhealthy and back. It is the whole
 * desired state, re-read whenever it is written, renamed into place or removed:
 *
 *   # comment
 *   hami-gpu-3 unhealthy XID 79: GPU has fallen off the bus
 *   hami-gpu-5 healthy
 *
 * One GPU per line: its name, "healthy" or "unhealthy", then an optional reason (the
 * rest of the line). GPUs not named are healthy; a missing file means all healthy.
 * Blank lines and lines starting with '#' are ignored. The file may be at most
 * MOCK_HEALTH_FILE_MAX bytes and a line MOCK_HEALTH_LINE_MAX; bad lines (unknown GPU,
 * unknown state, control characters, too long) are logged and skipped.
 */

#include <stddef.h>
#include <stdint.h>

#include "gpu.h"

#define MOCK_HEALTH_FILE "mock-health"
#define MOCK_HEALTH_FILE_MAX (64u * 1024u)
#define MOCK_HEALTH_LINE_MAX 1024u
#define MOCK_HEALTH_DEFAULT_REASON "marked unhealthy in " MOCK_HEALTH_FILE

typedef struct MockHealth {
        GpuHealth health;
        char reason[GPU_HEALTH_REASON_MAX];
} MockHealth;

/*
 * Parse the file's contents (size bytes, not NUL-terminated, may hold anything) for the
 * GPUs in gpus[n_gpus]; ret[i] describes gpus[i]. Returns the number of lines skipped,
 * or -EFBIG when the text is larger than MOCK_HEALTH_FILE_MAX (ret untouched).
 */
int mock_health_parse(const char *text, size_t size, const Gpu *gpus, size_t n_gpus, MockHealth *ret);

/* "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", the same for the same node and index. */
int mock_gpu_uuid(const char *node_name, unsigned index, char *out, size_t size);
