/* SPDX-License-Identifier: Apache-2.0 */

#include <inttypes.h>
#include <stdio.h>

#include "claim-limits.h"
#include "errbuf.h"
#include "macro.h"

#define MIB (UINT64_C(1) << 20)

static const Gpu *find_gpu(const GpuList *l, const char *name) {
        for (size_t i = 0; i < l->n_gpus; i++)
                if (streq(l->gpus[i].name, name))
                        return &l->gpus[i];
        return NULL;
}

/* CUDA's order: PCI bus id ("0000:65:00.0", fixed width lower-case hex), then minor. */
static int gpu_cuda_compare(const Gpu *a, const Gpu *b) {
        int r = strcmp(a->pcie_bus_id, b->pcie_bus_id);
        if (r != 0)
                return r;
        return a->minor < b->minor ? -1 : a->minor > b->minor;
}

static int add_result(ClaimLimits *l, const ClaimResult *res, size_t idx, const Gpu *gpu,
                      const ClaimParams *cfg, bool *first_seen, ErrBuf *e) {
        size_t g;
        uint64_t memory = res->has_consumed_capacity ? res->consumed_memory : gpu->memory_total;
        uint64_t cores = res->has_consumed_capacity ? res->consumed_cores : GPU_CORES_TOTAL;

        for (g = 0; g < l->n_gpus; g++)
                if (l->gpus[g].gpu == gpu)
                        break;
        if (g == l->n_gpus) {
                l->gpus[g] = (GpuLimit) { .gpu = gpu };
                first_seen[g] = true;
                l->n_gpus++;
        }
        GpuLimit *gl = &l->gpus[g];
        l->results[idx].gpu = g;

        /* The policies: hard unless every result on this GPU says otherwise. */
        LimitPolicy mem_policy = res->admin_access ? LIMIT_POLICY_DISABLED : cfg->memory_limit_policy;
        LimitPolicy sm_policy = res->admin_access ? LIMIT_POLICY_DISABLED : cfg->sm_limit_policy;
        if (first_seen[g]) {
                gl->memory_policy = mem_policy;
                gl->sm_policy = sm_policy;
                gl->oversubscription = cfg->oversubscription;
                first_seen[g] = false;
        } else {
                if (mem_policy == LIMIT_POLICY_HARD)
                        gl->memory_policy = LIMIT_POLICY_HARD;
                if (sm_policy == LIMIT_POLICY_HARD)
                        gl->sm_policy = LIMIT_POLICY_HARD;
                gl->oversubscription = gl->oversubscription && cfg->oversubscription;
        }

        if (res->admin_access)
                return 0;  /* admin access does not consume capacity */
        if (memory > gpu->memory_total || gl->memory > gpu->memory_total - memory)
                return errbuf_fail(e, -ERANGE,
                                   "consumedCapacity exceeds the device: %s has %" PRIu64 " bytes of memory, "
                                   "the claim's results on it ask for more", gpu->name, gpu->memory_total);
        if (cores > GPU_CORES_TOTAL || gl->cores + cores > GPU_CORES_TOTAL)
                return errbuf_fail(e, -ERANGE,
                                   "consumedCapacity exceeds the device: %s has %u cores, the claim's results "
                                   "on it ask for more", gpu->name, GPU_CORES_TOTAL);
        gl->memory += memory;
        gl->cores += (unsigned) cores;
        return 0;
}

/*
 * Each GPU's index: the rank of its PCI bus id among all the claim's GPUs, the same
 * for every result on it whichever request the result belongs to. It is the GPU's
 * device in the claim's shared region and the <i> of its CDI environment, and the CUDA
 * index the GPU has in a container that gets the whole claim; a container that gets
 * only some requests finds its GPUs by UUID (CUDA_DEVICE_UUID_<i>), so the indices of
 * two requests never meet on one region device.
 */
static void place_results(const ClaimAllocation *c, ClaimLimits *l) {
        for (size_t i = 0; i < c->n_results; i++) {
                const Gpu *mine = l->gpus[l->results[i].gpu].gpu;
                unsigned rank = 0;

                for (size_t g = 0; g < l->n_gpus; g++)
                        if (gpu_cuda_compare(l->gpus[g].gpu, mine) < 0)
                                rank++;
                l->results[i].cuda_index = rank;
        }
}

/* The parameters that apply to one result: the class's, as the claim's may tighten them. */
static int result_params(const ClaimResult *res, ClaimParams *ret, char *reason, size_t size) {
        ClaimParams class_params, claim_params;
        int r;

        if (res->class_parameters_json) {
                r = claim_params_parse(res->class_parameters_json, strlen(res->class_parameters_json), &class_params,
                                       reason, size);
                if (r < 0)
                        return r == -ENOMEM ? r : -EBADMSG;
        }
        if (res->claim_parameters_json) {
                r = claim_params_parse(res->claim_parameters_json, strlen(res->claim_parameters_json), &claim_params,
                                       reason, size);
                if (r < 0)
                        return r == -ENOMEM ? r : -EBADMSG;
        }
        return claim_params_merge(res->class_parameters_json ? &class_params : NULL,
                                  res->claim_parameters_json ? &claim_params : NULL, ret, reason, size);
}

int claim_limits_compute(const ClaimAllocation *c, const GpuList *gpus, ClaimLimits *ret,
                         char *error, size_t size) {
        ErrBuf e = { error, size };
        ClaimLimits l = {};
        bool first_seen[CLAIM_RESULTS_MAX] = {};
        int r;

        if (c->n_results > CLAIM_RESULTS_MAX)
                return errbuf_fail(&e, -E2BIG, "too many results");

        for (size_t i = 0; i < c->n_results; i++) {
                const ClaimResult *res = &c->results[i];
                char reason[256] = "";
                const Gpu *gpu;
                ClaimParams cfg;

                gpu = find_gpu(gpus, res->device);
                if (!gpu)
                        return errbuf_fail(&e, -ENODEV,
                                           "the allocation names device %s, which this node does not have", res->device);
                r = result_params(res, &cfg, reason, sizeof(reason));
                if (r == -ENOMEM)
                        return r;
                if (r == -EPERM)
                        return errbuf_fail(&e, r, "config for request %s refused: %s", res->request, reason);
                if (r < 0)
                        return errbuf_fail(&e, -EBADMSG, "malformed opaque config for request %s: %s",
                                           res->request, reason);
                r = add_result(&l, res, i, gpu, &cfg, first_seen, &e);
                if (r < 0)
                        return r;
        }
        l.n_results = c->n_results;

        for (size_t g = 0; g < l.n_gpus; g++) {
                GpuLimit *gl = &l.gpus[g];
                gl->memory_mib = gl->memory / MIB;
                if (gl->memory_policy == LIMIT_POLICY_HARD && gl->memory_mib == 0)
                        return errbuf_fail(&e, -ERANGE,
                                           "consumedCapacity.memory on %s is %" PRIu64 " bytes, less than 1 MiB: "
                                           "HAMi-core cannot enforce it", gl->gpu->name, gl->memory);
                if (gl->sm_policy == LIMIT_POLICY_HARD && gl->cores == 0)
                        return errbuf_fail(&e, -ERANGE,
                                           "consumedCapacity.cores on %s is 0: HAMi-core cannot enforce it "
                                           "(0 means no limit)", gl->gpu->name);
        }
        place_results(c, &l);

        *ret = l;
        return 0;
}
