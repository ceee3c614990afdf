/* SPDX-License-Identifier: Apache-2.0 */

/*
 * Test and benchmark driver: runs the API client and the slice publisher on an
 * sd-event loop, as the daemon does, with N mock GPUs. Prints one JSON line per
 * status change on stdout and takes commands on stdin:
 *   unhealthy NAME REASON... | healthy NAME | maintenance NAME | schedulable NAME
 *   claim NAMESPACE NAME | status | quit
 * --exit-when-synced ends the loop at the first synced status (benchmarks).
 */

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "kube-client.h"
#include "kubeconfig.h"
#include "log.h"
#include "resourceslice.h"
#include "slice-publisher.h"

#define MIB (UINT64_C(1) << 20)

static bool arg_exit_when_synced = false;

static void print_status(const SlicePublisherStatus *s) {
        json_object *o = json_object_new_object();
        char line[2048];

        slice_publisher_status_format(s, line, sizeof(line));
        json_object_object_add(o, "event", json_object_new_string("status"));
        json_object_object_add(o, "api_reachable", json_object_new_boolean(s->api_reachable));
        json_object_object_add(o, "synced", json_object_new_boolean(s->synced));
        json_object_object_add(o, "consumable", json_object_new_int(s->consumable_capacity));
        json_object_object_add(o, "taints", json_object_new_int(s->device_taints));
        json_object_object_add(o, "generation", json_object_new_int64(s->generation));
        json_object_object_add(o, "slices", json_object_new_int((int) s->n_slices));
        json_object_object_add(o, "devices", json_object_new_int((int) s->n_devices));
        json_object_object_add(o, "writes", json_object_new_int64((int64_t) s->n_writes));
        json_object_object_add(o, "error", s->last_error ? json_object_new_string(s->last_error) : NULL);
        json_object_object_add(o, "consumable_reason",
                               s->consumable_reason ? json_object_new_string(s->consumable_reason) : NULL);
        json_object_object_add(o, "line", json_object_new_string(line));
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        fflush(stdout);
        json_object_put(o);
}

static void on_status(SlicePublisher *p, const SlicePublisherStatus *s, void *userdata) {
        sd_event *e = userdata;

        print_status(s);
        if (arg_exit_when_synced && s->synced)
                sd_event_exit(e, 0);
}

typedef struct Driver {
        sd_event *event;
        KubeClient *client;
        SlicePublisher *publisher;
        char buf[4096];
        size_t n;
        char claim[256];          /* the name of the claim last asked for */
} Driver;

static void on_claim(KubeClient *c, const KubeResponse *r, void *userdata) {
        json_object *o = json_object_new_object();
        Driver *d = userdata;

        json_object_object_add(o, "event", json_object_new_string("claim"));
        json_object_object_add(o, "status", json_object_new_int((int) r->status));
        json_object_object_add(o, "error", json_object_new_int(r->error));
        json_object_object_add(o, "message", json_object_new_string(r->message ?: ""));
        /* A claim comes as its body only (the daemon decodes it on a worker): assert that too. */
        json_object *claim = r->body ? json_tokener_parse(r->body) : NULL;
        json_object_object_add(o, "uid", claim && !r->json ? json_object_get(json_get(claim, "metadata.uid")) : NULL);
        json_object_put(claim);
        /* Would the daemon forget a recovered claim on this answer? */
        json_object_object_add(o, "proves_not_found",
                               json_object_new_boolean(r->status == 404 &&
                                                       kube_status_proves_not_found(r->body, r->body_size,
                                                                                    "resource.k8s.io",
                                                                                    "resourceclaims", d->claim)));
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        fflush(stdout);
        json_object_put(o);
}

static void driver_command(Driver *d, char *line) {
        char *cmd = strtok(line, " "), *a = strtok(NULL, " "), *b = strtok(NULL, "");
        int r = 0;

        if (!cmd)
                return;
        if (streq(cmd, "quit"))
                sd_event_exit(d->event, 0);
        else if (streq(cmd, "status")) {
                SlicePublisherStatus s;
                slice_publisher_get_status(d->publisher, &s);
                print_status(&s);
        } else if (streq(cmd, "unhealthy") && a)
                r = slice_publisher_set_device_health(d->publisher, a, GPU_HEALTH_UNHEALTHY, b ?: "");
        else if (streq(cmd, "healthy") && a)
                r = slice_publisher_set_device_health(d->publisher, a, GPU_HEALTH_HEALTHY, "");
        else if (streq(cmd, "maintenance") && a)
                r = slice_publisher_set_device_schedulable(d->publisher, a, false);
        else if (streq(cmd, "schedulable") && a)
                r = slice_publisher_set_device_schedulable(d->publisher, a, true);
        else if (streq(cmd, "claim") && a && b) {
                snprintf(d->claim, sizeof(d->claim), "%s", b);
                r = kube_client_get_resource_claim(d->client, a, b, on_claim, d);
        }
        else
                log_error("Unknown command: %s", cmd);
        if (r < 0)
                log_error_errno(r, "Command %s failed: %m", cmd);
}

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Driver *d = userdata;
        ssize_t k = read(fd, d->buf + d->n, sizeof(d->buf) - 1 - d->n);
        char *nl;

        if (k <= 0) {
                sd_event_source_set_enabled(s, SD_EVENT_OFF);
                return 0;
        }
        d->n += (size_t) k;
        d->buf[d->n] = '\0';
        while ((nl = strchr(d->buf, '\n'))) {
                *nl = '\0';
                driver_command(d, d->buf);
                d->n -= (size_t) (nl + 1 - d->buf);
                memmove(d->buf, nl + 1, d->n + 1);
        }
        if (d->n >= sizeof(d->buf) - 1)
                d->n = 0;
        return 0;
}

static GpuList mock_gpus(unsigned n) {
        GpuList l = { .gpus = calloc(n ?: 1, sizeof(Gpu)), .n_gpus = n };

        for (unsigned i = 0; l.gpus && i < n; i++) {
                Gpu *g = &l.gpus[i];
                *g = (Gpu) { .minor = i, .memory_total = 24 * 1024 * MIB, .cores = GPU_CORES_TOTAL,
                             .health = GPU_HEALTH_HEALTHY };
                snprintf(g->name, sizeof(g->name), "hami-gpu-%u", i);
                snprintf(g->uuid, sizeof(g->uuid), "GPU-00000000-0000-4000-8000-%012x", i);
                strcpy(g->product_name, "NVIDIA A10");
                strcpy(g->brand, "Nvidia");
                strcpy(g->architecture, "Ampere");
                strcpy(g->cuda_compute_capability, "8.6.0");
                strcpy(g->driver_version, "550.144.3");
                strcpy(g->cuda_driver_version, "12.4.0");
                snprintf(g->pcie_bus_id, sizeof(g->pcie_bus_id), "0000:%02x:%02x.0", 0x10 + i / 32, i % 32);
                strcpy(g->pcie_root, "pci0000:00");
        }
        return l;
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "kubeconfig", required_argument, NULL, 'k' },
                { "node", required_argument, NULL, 'n' },
                { "driver", required_argument, NULL, 'd' },
                { "gpus", required_argument, NULL, 'g' },
                { "timeout-ms", required_argument, NULL, 't' },
                { "backoff-ms", required_argument, NULL, 'b' },
                { "exit-when-synced", no_argument, NULL, 'x' },
                { "watch-timeout-sec", required_argument, NULL, 'w' },
                {}
        };
        const char *kubeconfig = NULL, *node = "node1", *driver = "hami-core-gpu.project-hami.io";
        unsigned n_gpus = 8;
        uint64_t timeout_ms = 0, backoff_ms = 0;
        unsigned watch_timeout = 0;
        KubeCredentials creds = {};
        Driver d = {};
        GpuList gpus;
        int c, r;

        log_set_max_level(secure_getenv("DRIVER_DEBUG") ? LOG_DEBUG : LOG_INFO);
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'k': kubeconfig = optarg; break;
                case 'n': node = optarg; break;
                case 'd': driver = optarg; break;
                case 'g': n_gpus = (unsigned) strtoul(optarg, NULL, 10); break;
                case 't': timeout_ms = strtoull(optarg, NULL, 10); break;
                case 'b': backoff_ms = strtoull(optarg, NULL, 10); break;
                case 'x': arg_exit_when_synced = true; break;
                case 'w': watch_timeout = (unsigned) strtoul(optarg, NULL, 10); break;
                default: return 2;
                }

        r = kube_credentials_load(kubeconfig, &creds);
        if (r < 0)
                return 1;
        r = sd_event_default(&d.event);
        if (r < 0)
                return 1;
        KubeClientOptions copts = { .timeout_usec = timeout_ms * 1000, .backoff_base_usec = backoff_ms * 1000,
                                    .backoff_cap_usec = backoff_ms * 8000 };
        r = kube_client_new(d.event, &creds, &copts, &d.client);
        kube_credentials_done(&creds);
        if (r < 0)
                return 1;
        SlicePublisherOptions popts = { .backoff_base_usec = backoff_ms * 1000, .backoff_cap_usec = backoff_ms * 8000,
                                        .debounce_usec = 10000, .watch_timeout_sec = watch_timeout };
        r = slice_publisher_new(d.event, d.client, driver, node, &popts, &d.publisher);
        if (r < 0)
                return 1;
        slice_publisher_set_status_handler(d.publisher, on_status, d.event);
        gpus = mock_gpus(n_gpus);
        r = slice_publisher_set_devices(d.publisher, &gpus);
        free(gpus.gpus);
        if (r < 0)
                return 1;
        (void) sd_event_add_io(d.event, NULL, STDIN_FILENO, EPOLLIN, on_stdin, &d);
        slice_publisher_start(d.publisher);

        r = sd_event_loop(d.event);
        slice_publisher_free(d.publisher);
        kube_client_free(d.client);
        sd_event_unref(d.event);
        return r < 0 ? 1 : 0;
}
