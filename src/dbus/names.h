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

#define POLKIT_ACTION_RESCAN "org.projecthami.dra1.rescan"
#define POLKIT_ACTION_RELOAD "org.projecthami.dra1.reload"
#define POLKIT_ACTION_RELEASE_CLAIM "org.projecthami.dra1.release-claim"
#define POLKIT_ACTION_SET_DEVICE_SCHEDULABLE "org.projecthami.dra1.set-device-schedulable"
