/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Parsers of libvgpu's environment values. Pure (strings in, numbers out) so the fuzzer
 * reaches them; every input is untrusted. */

#include <stddef.h>
#include <stdint.h>

#define VGPU_VISIBLE_DEVICES_MAX 16

/* "1073741824", "1024m", "10g", "512k" (also upper case, and HAMi-core's "Mi"/"Gi"
 * spellings). 0 or -EINVAL / -ERANGE. */
int vgpu_parse_size(const char *s, uint64_t *ret);

/* "0".."100". 0 or -EINVAL / -ERANGE. */
int vgpu_parse_percent(const char *s, unsigned *ret);

/* LIBCUDA_LOG_LEVEL: "0".."4". */
int vgpu_parse_log_level(const char *s, int *ret);

/* CUDA_VISIBLE_DEVICES as the driver reads it: comma-separated ordinals; parsing stops
 * at the first entry that is not a valid ordinal (the driver ignores the rest); UUID
 * entries ("GPU-...") are reported as -1 for the caller to resolve. Returns how many
 * entries were stored in ret_map (at most n), or -EINVAL. */
int vgpu_parse_visible_devices(const char *s, int *ret_map, size_t n);
