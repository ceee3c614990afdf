/* SPDX-License-Identifier: Apache-2.0 */

#include <stdlib.h>

#include "dra-types.h"
#include "macro.h"

void dra_device_done(DraDevice *d) {
        if (!d)
                return;
        strv_free(d->request_names);
        free(d->pool_name);
        free(d->device_name);
        strv_free(d->cdi_device_ids);
        free(d->share_id);
        *d = (DraDevice) {};
}
