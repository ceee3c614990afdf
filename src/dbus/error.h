/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The named errors of org.projecthami.Dra1 (documented in its XML and man page). */

#include <systemd/sd-bus.h>

#define BUS_ERROR_NO_SUCH_CLAIM "org.projecthami.Dra1.Error.NoSuchClaim"
#define BUS_ERROR_NO_SUCH_DEVICE "org.projecthami.Dra1.Error.NoSuchDevice"
#define BUS_ERROR_INVALID_ARGUMENT "org.projecthami.Dra1.Error.InvalidArgument"
#define BUS_ERROR_BUSY "org.projecthami.Dra1.Error.Busy"
#define BUS_ERROR_NOT_READY "org.projecthami.Dra1.Error.NotReady"
#define BUS_ERROR_FAILED "org.projecthami.Dra1.Error.Failed"

/* Registered with sd_bus_error_add_map(): errno <-> name, for both ends. */
extern const sd_bus_error_map bus_error_map[];

/*
 * Turn an operation's negative errno into the reply's named error. `not_found` names
 * the error for -ENOENT (NoSuchClaim or NoSuchDevice); `what` goes into the message.
 * Returns a negative value for the handler to return.
 */
int bus_error_from_errno(sd_bus_error *error, int r, const char *not_found, const char *what);
