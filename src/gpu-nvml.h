/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The NVML backend's pure helpers, exposed for tests. The backend itself is gpu_backend_nvml. */

#include <stdbool.h>

/* XIDs NVIDIA's device plugin treats as application errors (13, 31, 43, 45, 68, 109). */
bool nvml_xid_is_application_error(unsigned long long xid);
/* A short description of a well-known XID, "critical error" otherwise. Never NULL. */
const char *nvml_xid_describe(unsigned long long xid);
/* go-nvlib's spelling ("Nvidia", "Tesla", "Ada Lovelace", ...); NULL for values we do not know. */
const char *nvml_brand_to_string(unsigned brand);
const char *nvml_architecture_to_string(unsigned arch);
/* nvmlReturn_t -> negative errno (0 for NVML_SUCCESS). */
int nvml_return_to_errno(int r);
