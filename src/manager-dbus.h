/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The manager's side of org.projecthami.Dra1: turns Manager state into the plain data of
 * dbus/model.h and routes the privileged D-Bus calls to manager_*(). The manager keeps
 * one BusServer and calls:
 *
 *   manager_dbus_start(m, &bus)      in manager_start(), after the GPUs are known; a
 *                                    failure is a warning (no system bus in a container
 *                                    is not a reason to stop serving the kubelet)
 *   manager_dbus_sync(m, bus)        wherever state, registration or GPUs change: at the
 *                                    end of manager_update_status(), of
 *                                    manager_on_gpu_health() and of SetDeviceSchedulable;
 *                                    it diffs, so it is cheap
 *   bus_server_claim_prepared()/..._unprepared()   per claim, from the DRA service's
 *                                    observer (manager_on_claim_changed(), with
 *                                    manager_dbus_claim_from_prepared())
 *   bus_server_free(bus)             in manager_free(), before the event loop goes
 */

#include "dbus/server.h"
#include "manager.h"

extern const BusModelOps manager_dbus_ops;

int manager_dbus_start(Manager *m, BusServer **ret);
int manager_dbus_sync(Manager *m, BusServer *s);

/* The pure part: what the bus shows for a Manager. */
void manager_dbus_props(const Manager *m, BusManagerProps *ret);
int manager_dbus_devices(const Manager *m, BusDevice **ret, size_t *ret_n);
