/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The names of org.projecthami.Dra1 on the system bus: the service, its objects and
 * interfaces, its named errors and the polkit actions of its privileged methods. The
 * contract is dbus/org.projecthami.Dra1.xml and org.projecthami.Dra1(5); the policies
 * are dbus/org.projecthami.Dra1.conf and polkit/org.projecthami.dra1.policy.
 *
 * Both ends include this: the daemon's service (src/dbus/) and hamictl.
 */

#include <stdint.h>

#define BUS_SERVICE_NAME "org.projecthami.Dra1"

#define BUS_MANAGER_PATH "/org/projecthami/Dra1"
#define BUS_DEVICE_PREFIX "/org/projecthami/Dra1/gpu"      /* + /<escaped device name> */
#define BUS_CLAIM_PREFIX "/org/projecthami/Dra1/claim"     /* + /<escaped claim UID> */

#define BUS_MANAGER_INTERFACE "org.projecthami.Dra1.Manager"
#define BUS_DEVICE_INTERFACE "org.projecthami.Dra1.Device"
#define BUS_CLAIM_INTERFACE "org.projecthami.Dra1.Claim"

#define BUS_ERROR_NO_SUCH_CLAIM "org.projecthami.Dra1.Error.NoSuchClaim"
#define BUS_ERROR_NO_SUCH_DEVICE "org.projecthami.Dra1.Error.NoSuchDevice"
#define BUS_ERROR_INVALID_ARGUMENT "org.projecthami.Dra1.Error.InvalidArgument"
#define BUS_ERROR_BUSY "org.projecthami.Dra1.Error.Busy"
#define BUS_ERROR_NOT_READY "org.projecthami.Dra1.Error.NotReady"
#define BUS_ERROR_FAILED "org.projecthami.Dra1.Error.Failed"

/* Claim.Usage and the elements of ListUsage: device, memory used and limit (bytes), SM
 * used (permille of the GPU) and limit (percent), processes, measured processes, flags. */
#define BUS_CLAIM_DEVICE_USAGE_SIGNATURE "(sttuuuuu)"

/* SM used when the node's usage monitor never measured the device. */
#define BUS_USAGE_SM_UNKNOWN UINT32_MAX

/* The flags of a usage entry: what is wrong with it, a bit each. */
enum {
        BUS_USAGE_REGION_UNREADABLE = 1u << 0,     /* the file could not be opened or read: all 0 */
        BUS_USAGE_REGION_INVALID = 1u << 1,        /* it failed validation, or lacks this device: all 0 */
        BUS_USAGE_MEMORY_IMPLAUSIBLE = 1u << 2,    /* more than the limit or the GPU holds: memory 0 */
        BUS_USAGE_DEGRADED_MEMORY_LIMIT = 1u << 3, /* a process could not apply its memory limit */
        BUS_USAGE_DEGRADED_SM_LIMIT = 1u << 4,     /* a process could not apply its SM limit */
};

#define POLKIT_ACTION_RESCAN "org.projecthami.dra1.rescan"
#define POLKIT_ACTION_RELOAD "org.projecthami.dra1.reload"
#define POLKIT_ACTION_RELEASE_CLAIM "org.projecthami.dra1.release-claim"
#define POLKIT_ACTION_SET_DEVICE_SCHEDULABLE "org.projecthami.dra1.set-device-schedulable"
