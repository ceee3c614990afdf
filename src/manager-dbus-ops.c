/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The privileged D-Bus calls routed to the manager, and the service's start. Kept apart
 * from manager-dbus.c so that the pure mapping there links without the whole manager.
 */

#include <errno.h>

#include "log.h"
#include "macro.h"
#include "manager-dbus.h"

static int op_rescan(void *userdata) {
        return manager_rescan(userdata);
}

static int op_reload(void *userdata) {
        return manager_reload(userdata);
}

static int op_release_claim(void *userdata, const char *uid) {
        Manager *m = userdata;

        /* The DRA service's observer sends bus_server_claim_unprepared(). */
        if (!m->dra_service)
                return -EAGAIN;
        return dra_service_release(m->dra_service, uid);
}

static int op_set_device_schedulable(void *userdata, const char *name, bool schedulable) {
        Manager *m = userdata;
        int r;

        /* The taint reaches the ResourceSlice asynchronously; the property changes now. */
        r = manager_set_device_schedulable(m, name, schedulable);
        if (r < 0)
                return r;
        (void) manager_dbus_sync(m, m->bus);
        return 0;
}

const BusModelOps manager_dbus_ops = {
        .rescan = op_rescan,
        .reload = op_reload,
        .release_claim = op_release_claim,
        .set_device_schedulable = op_set_device_schedulable,
};

int manager_dbus_start(Manager *m, BusServer **ret) {
        _cleanup_(bus_server_freep) BusServer *s = NULL;
        int r;

        r = bus_server_new(m->event, &manager_dbus_ops, m, &s);
        if (r < 0)
                return log_oom();
        r = manager_dbus_sync(m, s);
        if (r < 0)
                return r;
        r = bus_server_connect(s);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(s);
        return 0;
}
