/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The named errors of org.projecthami.Dra1 (names in dbus/names.h; documented in its XML
 * and man page): how the service turns an errno into one. */

#include <systemd/sd-bus.h>

#include "dbus/names.h"

/* Registered with sd_bus_error_add_map(): errno <-> name, for both ends. */
extern const sd_bus_error_map bus_error_map[];

/*
 * Turn an operation's negative errno into the reply's named error. `not_found` names
 * the error for -ENOENT (NoSuchClaim or NoSuchDevice); `what` goes into the message.
 * Returns a negative value for the handler to return.
 */
int bus_error_from_errno(sd_bus_error *error, int r, const char *not_found, const char *what);
