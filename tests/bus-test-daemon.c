/* SPDX-License-Identifier: Apache-2.0 */

/*
 * bus-test-daemon: serves org.projecthami.Dra1 (the real bus objects of libhami-core)
 * over an in-memory model, without the manager, GPUs or Kubernetes.
 *
 *   bus-test-daemon MODEL.json [CALLS.log]
 *
 * MODEL.json: {"properties": {...}, "devices": [...], "claims": [...]} (see
 * tests/integration/model.json). The bus is $DBUS_SYSTEM_BUS_ADDRESS.
 *
 * Stdin takes one JSON command per line, and each gets "ok" or "error <why>" on stdout:
 *   {"op": "prepare", "claim": {...}}          simulate NodePrepareResources
 *   {"op": "prepare", "claims": [...]}         several at once
 *   {"op": "unprepare", "uid": "..."}
 *   {"op": "properties", "properties": {...}}  change Manager properties
 *   {"op": "devices", "devices": [...]}        replace the GPU list
 * The privileged methods, once authorized, append "<method> <args>" lines to CALLS.log.
 * $BUS_TEST_USAGE_CACHE_USEC sets how long usage readings are reused (default 500 ms).
 *
 * Usage comes from a test reader: a claim's shared-region file is a real region (read
 * by the daemon's reader), or holds one decimal byte count per line, line i for the
 * region's device i; all lines must be good.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/stat.h>

#include "dbus/server.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"

typedef struct TestDaemon {
        sd_event *event;
        BusServer *server;
        const char *calls_log;
        BusDevice *devices;
        size_t n_devices;
        uint64_t slice_generation;
        BusManagerProps props;
        char driver_name[256], node_name[256], state_reason[512];
        char line[65536];
        size_t line_len;
} TestDaemon;

static void log_call(TestDaemon *t, const char *fmt, ...) _printf_(2, 3);
static void log_call(TestDaemon *t, const char *fmt, ...) {
        _cleanup_fclose_ FILE *f = NULL;
        va_list ap;

        if (!t->calls_log)
                return;
        f = fopen(t->calls_log, "ae");
        if (!f)
                return;
        va_start(ap, fmt);
        vfprintf(f, fmt, ap);
        va_end(ap);
        fputc('\n', f);
}

/* ---- JSON -> model ---- */

static const char *json_str(struct json_object *o, const char *key, const char *def) {
        return json_get_string(o, key) ?: def;
}

static GpuHealth health_from_string(const char *s) {
        if (streq(s, "healthy"))
                return GPU_HEALTH_HEALTHY;
        if (streq(s, "unhealthy"))
                return GPU_HEALTH_UNHEALTHY;
        return GPU_HEALTH_UNKNOWN;
}

static int parse_devices(TestDaemon *t, struct json_object *a) {
        size_t n = json_object_array_length(a);
        BusDevice *d = calloc(n ?: 1, sizeof *d);

        if (!d)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                struct json_object *o = json_object_array_get_idx(a, i);
                snprintf(d[i].name, sizeof d[i].name, "%s", json_str(o, "name", ""));
                snprintf(d[i].uuid, sizeof d[i].uuid, "%s", json_str(o, "uuid", ""));
                snprintf(d[i].model, sizeof d[i].model, "%s", json_str(o, "model", ""));
                snprintf(d[i].health_reason, sizeof d[i].health_reason, "%s", json_str(o, "healthReason", ""));
                d[i].memory_total = json_get_uint64(o, "memoryTotal", 0);
                d[i].cores = (uint32_t) json_get_uint64(o, "cores", 100);
                d[i].health = health_from_string(json_str(o, "health", "healthy"));
                d[i].schedulable = json_get_bool(o, "schedulable", true);
        }
        free(t->devices);
        t->devices = d;
        t->n_devices = n;
        return bus_server_set_devices(t->server, t->devices, t->n_devices);
}

static int parse_claim(struct json_object *o, BusClaim *c) {
        struct json_object *a;
        size_t n = 0;

        *c = (BusClaim) {
                .uid = (char *) json_str(o, "uid", NULL),
                .namespace_ = (char *) json_str(o, "namespace", NULL),
                .name = (char *) json_str(o, "name", NULL),
                .shared_region = (char *) json_str(o, "sharedRegion", NULL),
                .prepared_usec = json_get_uint64(o, "preparedUsec", 0),
        };
        if (json_object_object_get_ex(o, "devices", &a) && json_object_is_type(a, json_type_array))
                n = json_object_array_length(a);
        if (n > BUS_CLAIM_DEVICES_MAX)
                return -E2BIG;
        c->devices = calloc(n ?: 1, sizeof *c->devices);
        if (!c->devices)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                struct json_object *d = json_object_array_get_idx(a, i);
                snprintf(c->devices[i].device, sizeof c->devices[i].device, "%s", json_str(d, "device", ""));
                c->devices[i].memory_limit = json_get_uint64(d, "memory", 0);
                c->devices[i].cores_limit = (uint32_t) json_get_uint64(d, "cores", 0);
                c->devices[i].region_index = (uint32_t) json_get_uint64(d, "regionIndex", i);
                snprintf(c->devices[i].uuid, sizeof c->devices[i].uuid, "%s", json_str(d, "uuid", ""));
        }
        c->n_devices = n;
        return 0;
}

static int prepare_claim(TestDaemon *t, struct json_object *o) {
        BusClaim c;
        int r;

        r = parse_claim(o, &c);
        if (r < 0)
                return r;
        r = bus_server_claim_prepared(t->server, &c);
        free(c.devices); /* the strings belong to the JSON object */
        return r;
}

static int parse_properties(TestDaemon *t, struct json_object *o) {
        static const char *const states[] = { "starting", "ready", "degraded" };
        const char *state = json_str(o, "state", bus_state_to_string(t->props.state));

        for (size_t i = 0; i < ELEMENTSOF(states); i++)
                if (streq(state, states[i]))
                        t->props.state = (BusState) i;
        snprintf(t->driver_name, sizeof t->driver_name, "%s",
                 json_str(o, "driverName", isempty(t->driver_name) ? "hami-core-gpu.project-hami.io" : t->driver_name));
        snprintf(t->node_name, sizeof t->node_name, "%s",
                 json_str(o, "nodeName", isempty(t->node_name) ? "node-1" : t->node_name));
        snprintf(t->state_reason, sizeof t->state_reason, "%s", json_str(o, "stateReason", ""));
        t->props.driver_name = t->driver_name;
        t->props.node_name = t->node_name;
        t->props.state_reason = t->state_reason;
        t->props.api_server_reachable = json_get_bool(o, "apiServerReachable", t->props.api_server_reachable);
        t->props.api_server_consumable_capacity =
                json_get_bool(o, "apiServerConsumableCapacity", t->props.api_server_consumable_capacity);
        t->props.kubelet_registered = json_get_bool(o, "kubeletRegistered", t->props.kubelet_registered);
        t->slice_generation = json_get_uint64(o, "sliceGeneration", t->slice_generation);
        t->props.slice_generation = t->slice_generation;
        return bus_server_set_properties(t->server, &t->props);
}

static int load_model(TestDaemon *t, const char *path) {
        struct json_object *root, *v;
        int r = 0;

        root = json_object_from_file(path);
        if (!root)
                return log_error_errno(EINVAL, "Failed to parse %s: %s", path, json_util_get_last_err() ?: "");

        if (json_object_object_get_ex(root, "properties", &v))
                r = parse_properties(t, v);
        if (r >= 0 && json_object_object_get_ex(root, "devices", &v))
                r = parse_devices(t, v);
        if (r >= 0 && json_object_object_get_ex(root, "claims", &v))
                for (size_t i = 0; r >= 0 && i < json_object_array_length(v); i++)
                        r = prepare_claim(t, json_object_array_get_idx(v, i));
        json_object_put(root);
        return r;
}

/* ---- the privileged operations ---- */

static int op_rescan(void *userdata) {
        TestDaemon *t = userdata;

        log_call(t, "Rescan");
        t->props.slice_generation = ++t->slice_generation;
        return bus_server_set_properties(t->server, &t->props);
}

static int op_reload(void *userdata) {
        log_call(userdata, "Reload");
        return 0;
}

static int op_release_claim(void *userdata, const char *uid) {
        TestDaemon *t = userdata;

        log_call(t, "ReleaseClaim %s", uid);
        return bus_server_claim_unprepared(t->server, uid);
}

static int op_set_device_schedulable(void *userdata, const char *name, bool schedulable) {
        TestDaemon *t = userdata;

        log_call(t, "SetDeviceSchedulable %s %s", name, schedulable ? "true" : "false");
        for (size_t i = 0; i < t->n_devices; i++)
                if (streq(t->devices[i].name, name)) {
                        t->devices[i].schedulable = schedulable;
                        return bus_server_set_devices(t->server, t->devices, t->n_devices);
                }
        return -ENOENT;
}

static const BusModelOps test_ops = {
        .rescan = op_rescan,
        .reload = op_reload,
        .release_claim = op_release_claim,
        .set_device_schedulable = op_set_device_schedulable,
};

/* A real region (it starts with the magic): the daemon's own reader. Anything else: one
 * decimal byte count per line, line i for the region's device i. Strict: anything else is
 * -EBADMSG, no line at all -ENODATA. */
static int test_usage_reader(const char *path, SharedRegionUsage *ret) {
        _cleanup_fclose_ FILE *f = NULL;
        struct stat st;
        char line[64];
        int fd, r;

        /* As the real reader opens: a FIFO or a symlink planted there must not hang or lead
         * us; anything but a regular file is the real reader's to refuse. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                safe_close(fd);
                return shared_region_read_usage(path, ret);
        }
        f = fdopen(fd, "r");
        if (!f) {
                r = -errno;
                safe_close(fd);
                return r;
        }
        if (fread(line, 1, strlen(SHARED_REGION_MAGIC), f) == strlen(SHARED_REGION_MAGIC) &&
            memcmp(line, SHARED_REGION_MAGIC, strlen(SHARED_REGION_MAGIC)) == 0)
                return shared_region_read_usage(path, ret);
        rewind(f);

        *ret = (SharedRegionUsage) {};
        while (ret->n_devices < SHARED_REGION_DEVICES_MAX && fgets(line, sizeof line, f)) {
                unsigned long long v;
                char *end;

                errno = 0;
                v = strtoull(line, &end, 10);
                if (errno != 0 || end == line || (*end != '\n' && *end != 0) || line[0] == '-')
                        return -EBADMSG;
                ret->used[ret->n_devices++] = v;
        }
        return ret->n_devices > 0 ? 0 : -ENODATA;
}

/* ---- stdin commands ---- */

static int run_command(TestDaemon *t, const char *line) {
        struct json_object *o, *v;
        const char *op;
        int r = -EINVAL;

        o = json_tokener_parse(line);
        if (!o)
                return -EINVAL;
        op = json_str(o, "op", "");
        if (streq(op, "prepare") && json_object_object_get_ex(o, "claim", &v))
                r = prepare_claim(t, v);
        else if (streq(op, "prepare") && json_object_object_get_ex(o, "claims", &v) &&
                 json_object_is_type(v, json_type_array)) {
                /* Several in one loop iteration: their PropertiesChanged come out as one. */
                r = 0;
                for (size_t i = 0; r >= 0 && i < json_object_array_length(v); i++)
                        r = prepare_claim(t, json_object_array_get_idx(v, i));
        }
        else if (streq(op, "unprepare"))
                r = bus_server_claim_unprepared(t->server, json_str(o, "uid", ""));
        else if (streq(op, "properties") && json_object_object_get_ex(o, "properties", &v)) {
                r = parse_properties(t, v);
        } else if (streq(op, "devices") && json_object_object_get_ex(o, "devices", &v))
                r = parse_devices(t, v);
        json_object_put(o);
        return r;
}

static int on_stdin(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        TestDaemon *t = userdata;
        ssize_t n;
        char *nl;

        n = read(fd, t->line + t->line_len, sizeof t->line - 1 - t->line_len);
        if (n <= 0)
                return sd_event_exit(t->event, 0); /* the test closed our stdin: done */
        t->line_len += (size_t) n;
        t->line[t->line_len] = 0;

        while ((nl = strchr(t->line, '\n'))) {
                *nl = 0;
                int r = run_command(t, t->line);
                if (r < 0)
                        printf("error %s\n", strerror(-r));
                else
                        printf("ok\n");
                fflush(stdout);
                t->line_len -= (size_t) (nl + 1 - t->line);
                memmove(t->line, nl + 1, t->line_len + 1);
        }
        if (t->line_len >= sizeof t->line - 1)
                t->line_len = 0; /* an overlong line: drop it */
        return 0;
}

int main(int argc, char *argv[]) {
        _cleanup_(bus_server_freep) BusServer *server = NULL;
        sd_event *event = NULL;
        TestDaemon t = { .props.state = BUS_STATE_READY };
        const char *e;
        int r;

        if (argc < 2) {
                fprintf(stderr, "Usage: %s MODEL.json [CALLS.log]\n", argv[0]);
                return 2;
        }
        log_set_ident("bus-test-daemon");
        log_set_target(LOG_TARGET_CONSOLE);
        if (secure_getenv("BUS_TEST_DEBUG"))
                log_set_max_level(LOG_DEBUG);
        t.calls_log = argc > 2 ? argv[2] : NULL;

        r = sd_event_default(&event);
        if (r < 0)
                return 1;
        t.event = event;
        (void) sd_event_add_signal(event, NULL, SIGTERM | SD_EVENT_SIGNAL_PROCMASK, NULL, NULL);
        (void) sd_event_add_signal(event, NULL, SIGINT | SD_EVENT_SIGNAL_PROCMASK, NULL, NULL);

        r = bus_server_new(event, &test_ops, &t, &server);
        if (r < 0)
                return 1;
        t.server = server;
        bus_server_set_usage_reader(server, test_usage_reader);
        /* The benchmark measures reads with the usage caches off. */
        e = secure_getenv("BUS_TEST_USAGE_CACHE_USEC");
        if (e)
                bus_server_set_usage_cache(server, strtoull(e, NULL, 10));

        r = load_model(&t, argv[1]);
        if (r < 0) {
                log_error_errno(r, "Failed to load the model: %m");
                return 1;
        }

        r = bus_server_connect(server);
        if (r < 0)
                return 1;

        r = sd_event_add_io(event, NULL, STDIN_FILENO, EPOLLIN, on_stdin, &t);
        if (r < 0)
                return 1;

        r = sd_event_loop(event);
        server = bus_server_free(server);
        sd_event_unref(event);
        free(t.devices);
        return r < 0 ? 1 : 0;
}
