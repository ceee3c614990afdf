/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Asynchronous polkit checks for D-Bus method handlers, in systemd's way: the handler
 * asks, and while polkit thinks the call is parked; when the answer arrives the
 * original message is put back into the bus's read queue, so the same handler runs
 * again and this time gets the answer at once:
 *
 *     r = bus_polkit_verify_async(&s->polkit, m, "org.projecthami.dra1.reload", error);
 *     if (r < 0)
 *             return r;      denied, or polkit failed: error is set
 *     if (r == 0)
 *             return 1;      asked polkit; we will be called again
 *     ... authorized ...
 *
 * The subject is the caller's unique bus name ("system-bus-name"), and the caller's
 * ALLOW_INTERACTIVE_AUTHORIZATION flag becomes polkit's AllowUserInteraction. Callers
 * with effective uid 0 are authorized without asking (as systemd's services do).
 * At most BUS_POLKIT_QUERIES_PER_USER_MAX checks of one uid wait for polkit (more get
 * org.freedesktop.DBus.Error.LimitsExceeded), so one user cannot fill the queue for the
 * others; at most BUS_POLKIT_QUERIES_MAX wait in all (more get Busy). A check whose
 * caller disconnects while polkit thinks is dropped at once (sd_bus_track on its unique
 * name): nobody is left to answer, and it no longer counts.
 */

#include <stddef.h>
#include <systemd/sd-bus.h>

#define BUS_POLKIT_QUERIES_MAX 128u
#define BUS_POLKIT_QUERIES_PER_USER_MAX 8u

typedef struct BusPolkitQuery BusPolkitQuery;

typedef struct BusPolkitRegistry {
        BusPolkitQuery *queries;
        size_t n_queries;
} BusPolkitRegistry;

int bus_polkit_verify_async(BusPolkitRegistry *reg, sd_bus_message *call, const char *action,
                            sd_bus_error *error);

/* Cancel every outstanding query (their callers get no reply: the bus is going away). */
void bus_polkit_registry_done(BusPolkitRegistry *reg);
