/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

typedef struct Manager Manager;

/* The usage monitor's timer on the manager's event loop (manager-monitor.c). */
int manager_setup_monitor(Manager *m);
void manager_free_monitor(Manager *m);
