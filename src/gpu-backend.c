/* SPDX-License-Identifier: Apache-2.0 */

#include <stdlib.h>

#include "gpu-backend.h"
#include "log.h"
#include "macro.h"

static const GpuBackendOps *gpu_backend_ops_for(GpuBackendKind kind) {
        switch (kind) {
        case GPU_BACKEND_NVML:
                return &gpu_backend_nvml;
        case GPU_BACKEND_MOCK:
                return &gpu_backend_mock;
        default:
                return NULL;
        }
}

int gpu_backend_open(const Config *c, GpuBackend **ret) {
        _cleanup_free_ GpuBackend *b = NULL;
        const GpuBackendOps *ops;
        int r;

        if (!c || !ret)
                return -EINVAL;
        ops = gpu_backend_ops_for(c->backend);
        if (!ops)
                return log_error_errno(-EINVAL, "Unknown GPU backend %d.", (int) c->backend);

        b = calloc(1, sizeof(GpuBackend));
        if (!b)
                return log_oom();
        b->ops = ops;

        r = ops->open(c, &b->state);
        if (r < 0)
                return r; /* the backend said why */

        log_debug("GPU backend '%s' opened.", ops->name);
        *ret = TAKE_PTR(b);
        return 0;
}

int gpu_backend_enumerate(GpuBackend *b, GpuList *ret) {
        if (!b || !ret)
                return -EINVAL;
        return b->ops->enumerate(b->state, ret);
}

int gpu_backend_watch_health(GpuBackend *b, sd_event *e, GpuHealthCallback cb, void *userdata) {
        if (!b || !e)
                return -EINVAL;
        b->health_cb = cb;
        b->health_userdata = userdata;
        return b->ops->watch_health(b->state, e, b);
}

GpuBackend *gpu_backend_free(GpuBackend *b) {
        if (!b)
                return NULL;
        if (b->ops && b->state)
                b->ops->close(b->state);
        free(b);
        return NULL;
}

void gpu_backend_report_health(GpuBackend *b, const char *gpu_name, GpuHealth health, const char *reason) {
        if (!b || !gpu_name)
                return;
        if (b->health_cb)
                b->health_cb(b, gpu_name, health, reason ?: "", b->health_userdata);
}
