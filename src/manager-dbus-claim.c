/* SPDX-License-Identifier: Apache-2.0 */

#include <stdio.h>
#include <time.h>

#include "macro.h"
#include "manager-dbus-claim.h"

int manager_dbus_claim_from_prepared(const PreparedClaim *c, const char *state_dir, BusClaim *ret) {
        _cleanup_(bus_claim_done) BusClaim b = {};
        struct timespec ts;

        b.uid = strdup(c->uid);
        b.namespace_ = strdup(c->namespace_);
        b.name = strdup(c->name);
        b.shared_region = prepared_claim_region_path(state_dir, c->uid);
        b.devices = calloc(MAX(c->n_devices, 1u), sizeof(BusClaimDevice));
        if (!b.uid || !b.namespace_ || !b.name || !b.shared_region || !b.devices)
                return -ENOMEM;
        clock_gettime(CLOCK_REALTIME, &ts);
        b.prepared_usec = (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;

        for (size_t i = 0; i < c->n_devices; i++) {
                const PreparedClaimDevice *d = &c->devices[i];
                bool seen = false;

                for (size_t k = 0; k < b.n_devices && !seen; k++)
                        seen = streq(b.devices[k].device, d->device);
                if (seen)
                        continue;
                BusClaimDevice *bd = &b.devices[b.n_devices++];
                snprintf(bd->device, sizeof(bd->device), "%s", d->device);
                bd->memory_limit = d->memory_mib << 20;
                bd->cores_limit = d->cores;
                bd->region_index = d->cuda_index;
                snprintf(bd->uuid, sizeof(bd->uuid), "%s", d->gpu_uuid ?: "");
        }
        *ret = b;
        b = (BusClaim) {};
        return 0;
}
