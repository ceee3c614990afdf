/* SPDX-License-Identifier: Apache-2.0 */

#include <errno.h>

#include "log.h"
#include "macro.h"
#include "manager-dbus.h"

static BusState bus_state_from_manager(ManagerState s) {
        switch (s) {
        case MANAGER_READY:
                return BUS_STATE_READY;
        case MANAGER_DEGRADED:
                return BUS_STATE_DEGRADED;
        case MANAGER_STOPPING:
                return BUS_STATE_STOPPING;
        default:
                return BUS_STATE_STARTING;
        }
}

void manager_dbus_props(const Manager *m, BusManagerProps *ret) {
        *ret = (BusManagerProps) {
                .driver_name = m->config.driver_name,
                .node_name = m->config.node_name,
                .state = bus_state_from_manager(m->state),
                .state_reason = m->state == MANAGER_DEGRADED || m->state == MANAGER_STOPPING ? m->degraded_reason
                                                                                  : m->registration_error,
                .kubelet_registered = m->kubelet_registered,
        };
        if (m->publisher) {
                SlicePublisherStatus st;

                slice_publisher_get_status(m->publisher, &st);
                ret->api_server_reachable = st.api_reachable;
                ret->api_server_consumable_capacity = st.consumable_capacity == 1;
                ret->slice_generation = st.synced && st.generation > 0 ? (uint64_t) st.generation : 0;
        }
}

int manager_dbus_devices(const Manager *m, BusDevice **ret, size_t *ret_n) {
        size_t n = MIN(m->gpus.n_gpus, (size_t) BUS_DEVICES_MAX);
        BusDevice *d = calloc(n ?: 1, sizeof *d);

        if (!d)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                bus_device_from_gpu(&d[i], &m->gpus.gpus[i]);
                if (m->publisher)
                        d[i].schedulable = slice_publisher_device_schedulable(m->publisher, d[i].name);
        }
        *ret = d;
        *ret_n = n;
        return 0;
}

int manager_dbus_sync(Manager *m, BusServer *s) {
        _cleanup_free_ BusDevice *devices = NULL;
        BusManagerProps props;
        size_t n;
        int r;

        if (!s)
                return 0;

        manager_dbus_props(m, &props);
        r = bus_server_set_properties(s, &props);
        if (r < 0)
                return log_warning_errno(r, "Failed to update the D-Bus properties: %m");

        r = manager_dbus_devices(m, &devices, &n);
        if (r >= 0)
                r = bus_server_set_devices(s, devices, n);
        if (r < 0)
                return log_warning_errno(r, "Failed to update the D-Bus device objects: %m");
        return 0;
}
