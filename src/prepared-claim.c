/* SPDX-License-Identifier: Apache-2.0 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cdi.h"
#include "macro.h"
#include "prepared-claim.h"

static void prepared_claim_device_done(PreparedClaimDevice *d) {
        free(d->request);
        free(d->pool);
        free(d->device);
        free(d->cdi_device_id);
        free(d->share_id);
        free(d->gpu_uuid);
}

void prepared_claim_done(PreparedClaim *c) {
        if (!c)
                return;
        free(c->uid);
        free(c->namespace_);
        free(c->name);
        free(c->pod);
        for (size_t i = 0; i < c->n_devices; i++)
                prepared_claim_device_done(&c->devices[i]);
        free(c->devices);
        free(c->cdi_spec);
        *c = (PreparedClaim) {};
}

int prepared_claim_copy(const PreparedClaim *src, bool with_spec, PreparedClaim *ret) {
        _cleanup_(prepared_claim_done) PreparedClaim c = {};

        memcpy(c.boot_id, src->boot_id, sizeof(c.boot_id));
        c.last_call_usec = src->last_call_usec;
        if (strdup_or_null(src->uid, &c.uid) < 0 || strdup_or_null(src->namespace_, &c.namespace_) < 0 ||
            strdup_or_null(src->name, &c.name) < 0 || strdup_or_null(src->pod, &c.pod) < 0 ||
            (with_spec && strdup_or_null(src->cdi_spec, &c.cdi_spec) < 0))
                return -ENOMEM;
        if (src->n_devices > 0) {
                c.devices = calloc(src->n_devices, sizeof(PreparedClaimDevice));
                if (!c.devices)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < src->n_devices; i++) {
                const PreparedClaimDevice *s = &src->devices[i];
                PreparedClaimDevice *d = &c.devices[c.n_devices++];

                d->memory_mib = s->memory_mib;
                d->cores = s->cores;
                d->cuda_index = s->cuda_index;
                if (strdup_or_null(s->request, &d->request) < 0 || strdup_or_null(s->pool, &d->pool) < 0 ||
                    strdup_or_null(s->device, &d->device) < 0 ||
                    strdup_or_null(s->cdi_device_id, &d->cdi_device_id) < 0 ||
                    strdup_or_null(s->share_id, &d->share_id) < 0 || strdup_or_null(s->gpu_uuid, &d->gpu_uuid) < 0)
                        return -ENOMEM;
        }
        *ret = c;
        c = (PreparedClaim) {};
        return 0;
}

char *prepared_claim_region_path(const char *state_dir, const char *uid) {
        char *p;

        if (asprintf(&p, "%s/claims/%s/vgpu/" CDI_SHARED_CACHE_NAME, state_dir, uid) < 0)
                return NULL;
        return p;
}
