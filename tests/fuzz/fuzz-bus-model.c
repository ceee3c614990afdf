/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The claim store behind the D-Bus objects, driven by arbitrary operations, one per line:
 *   +UID NAMESPACE NAME [DEVICE:MEMORY:CORES ...]    add a claim
 *   -UID                                             remove one
 *   ?UID                                             look one up
 * After each step the store must be sorted and consistent, and every UID the store
 * accepted must survive the object-path escaping round trip.
 */

#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "dbus/model.h"
#include "fuzz.h"
#include "macro.h"

#define FUZZ_LINE_MAX 4096

static void check_store(const BusModel *m) {
        for (size_t i = 1; i < m->n_claims; i++)
                if (strcmp(m->claims[i - 1].uid, m->claims[i].uid) >= 0)
                        abort();
        for (size_t i = 0; i < m->n_claims; i++) {
                if (bus_claim_validate(&m->claims[i]) < 0)
                        abort();
                if (bus_model_find_claim(m, m->claims[i].uid) != &m->claims[i])
                        abort();
        }
        if (m->n_claims > BUS_CLAIMS_MAX)
                abort();
}

static void check_path_round_trip(const char *uid) {
        _cleanup_free_ char *path = NULL, *back = NULL;

        if (sd_bus_path_encode("/org/projecthami/Dra1/claim", uid, &path) < 0)
                return;
        if (sd_bus_path_decode(path, "/org/projecthami/Dra1/claim", &back) <= 0 || !streq(back, uid))
                abort();
}

static void run_add(BusModel *m, char *args) {
        BusClaimDevice devices[BUS_CLAIM_DEVICES_MAX + 2];
        BusClaim c = { .devices = devices };
        char *save = NULL, *tok;

        c.uid = strtok_r(args, " ", &save);
        c.namespace_ = strtok_r(NULL, " ", &save);
        c.name = strtok_r(NULL, " ", &save);
        while ((tok = strtok_r(NULL, " ", &save)) && c.n_devices < ELEMENTSOF(devices)) {
                BusClaimDevice *d = &devices[c.n_devices++];
                char *mem = strchr(tok, ':'), *cores = NULL;

                *d = (BusClaimDevice) {};
                if (mem) {
                        *mem++ = 0;
                        cores = strchr(mem, ':');
                        if (cores)
                                *cores++ = 0;
                        d->memory_limit = strtoull(mem, NULL, 10);
                        d->cores_limit = cores ? (uint32_t) strtoul(cores, NULL, 10) : 0;
                }
                snprintf(d->device, sizeof d->device, "%s", tok);
        }

        if (bus_model_add_claim(m, &c) >= 0) {
                BusDeviceUsage u;
                const char **uids = NULL;

                check_path_round_trip(c.uid);
                for (size_t i = 0; i < c.n_devices; i++) {
                        bus_model_device_usage(m, devices[i].device, &u);
                        if (u.n_claims == 0 || u.memory_allocated < devices[i].memory_limit)
                                abort();
                        if (bus_model_device_claims(m, devices[i].device, &uids) < 0)
                                continue;
                        size_t n = 0;
                        while (uids[n])
                                n++;
                        if (n != u.n_claims)
                                abort();
                        free(uids);
                }
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(bus_model_done) BusModel m = {};
        char line[FUZZ_LINE_MAX];
        size_t pos = 0;

        while (pos < size) {
                const uint8_t *nl = memchr(data + pos, '\n', size - pos);
                size_t len = (nl ? (size_t) (nl - data) : size) - pos;

                if (len < sizeof line) {
                        memcpy(line, data + pos, len);
                        line[len] = 0;
                        if (line[0] == '+')
                                run_add(&m, line + 1);
                        else if (line[0] == '-')
                                (void) bus_model_remove_claim(&m, line + 1, NULL);
                        else if (line[0] == '?') {
                                const BusClaim *c = bus_model_find_claim(&m, line + 1);
                                if (c && !streq(c->uid, line + 1))
                                        abort();
                        }
                        check_store(&m);
                }
                pos += len + 1;
        }
        return 0;
}
