/* SPDX-License-Identifier: Apache-2.0 */

/* Claim JSON from the API server -> decode -> limits -> CDI spec: none of it may crash. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cdi.h"
#include "claim-limits.h"
#include "claim.h"
#include "fuzz.h"

#define DRIVER "hami-core-gpu.project-hami.io"

static void fuzz_plan(const ClaimAllocation *c) {
        static Gpu gpus[2];
        GpuList list = { .gpus = gpus, .n_gpus = 2 };
        HostDeviceNode nodes[CLAIM_RESULTS_MAX];
        HostDriver host = { .n_control = 1 };
        ClaimLimits l;
        char err[256];
        char *json = NULL;

        for (unsigned i = 0; i < 2; i++) {
                snprintf(gpus[i].name, sizeof(gpus[i].name), "hami-gpu-%u", i);
                snprintf(gpus[i].uuid, sizeof(gpus[i].uuid), "GPU-%u", i);
                snprintf(gpus[i].pcie_bus_id, sizeof(gpus[i].pcie_bus_id), "0000:%02x:00.0", i);
                gpus[i].minor = i;
                gpus[i].memory_total = UINT64_C(24) << 30;
        }
        strcpy(host.control[0].path, "/dev/nvidiactl");
        strcpy(host.control[0].host_path, "/dev/nvidiactl");
        if (claim_limits_compute(c, &list, &l, err, sizeof(err)) < 0)
                return;
        for (size_t g = 0; g < l.n_gpus; g++) {
                nodes[g] = (HostDeviceNode) { .major = 195, .minor = l.gpus[g].gpu->minor };
                snprintf(nodes[g].path, sizeof(nodes[g].path), "/dev/nvidia%u", l.gpus[g].gpu->minor);
                strcpy(nodes[g].host_path, nodes[g].path);
        }
        CdiClaimSpec in = {
                .driver_name = DRIVER,
                .claim = c,
                .limits = &l,
                .host = &host,
                .gpu_nodes = nodes,
                .claim_dir = "/var/lib/hami-dra/claims/x",
                .preload_library = "/usr/lib/hami-dra/libvgpu.so",
                .ld_so_preload = "/var/lib/hami-dra/ld.so.preload",
        };
        if (c->n_results > 0 && cdi_spec_build(&in, &json) < 0)
                abort();  /* a decoded claim always makes a valid spec */
        free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        ClaimAllocation c = {};
        char err[512];

        if (claim_allocation_decode((const char *) data, size, DRIVER, "node1", &c, err, sizeof(err)) < 0) {
                if (err[0] == '\0')
                        abort();  /* every reject says why */
                return 0;
        }
        fuzz_plan(&c);
        claim_allocation_done(&c);
        return 0;
}
