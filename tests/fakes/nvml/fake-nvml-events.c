/* SPDX-License-Identifier: Apache-2.0 */

/*
 * Event sets. Tests inject events by writing the file named by FAKE_NVML_EVENTS (best
 * written elsewhere and renamed into place); the next nvmlEventSetWait_v2 consumes it:
 * it reads the file, deletes it and queues the events the set registered for. Events of
 * types a set did not register for are dropped, as the real library does.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fake-nvml.h"

#define EXPORT __attribute__((visibility("default")))
#define FAKE_EVENT_SETS_MAX 8
#define FAKE_EVENT_QUEUE_MAX 256
#define FAKE_EVENT_POLL_MS 10

struct nvmlEventSet_st {
        bool used;
        unsigned long long registered[FAKE_NVML_GPUS_MAX];
        nvmlEventData_t queue[FAKE_EVENT_QUEUE_MAX];
        unsigned n_queued;
        nvmlReturn_t wait_error; /* injected: the next wait returns it */
};

static struct nvmlEventSet_st event_sets[FAKE_EVENT_SETS_MAX];

void fake_nvml_events_reset(void) {
        pthread_mutex_lock(&fake_nvml_lock);
        memset(event_sets, 0, sizeof(event_sets));
        pthread_mutex_unlock(&fake_nvml_lock);
}

static bool event_set_valid(nvmlEventSet_t set) {
        for (unsigned i = 0; i < FAKE_EVENT_SETS_MAX; i++)
                if (set == &event_sets[i])
                        return set->used;
        return false;
}

EXPORT nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set) {
        nvmlReturn_t r;

        if ((r = fake_nvml_enter(__func__, NULL, false, NULL)) != NVML_SUCCESS)
                return r;
        r = set ? NVML_ERROR_MEMORY : NVML_ERROR_INVALID_ARGUMENT;
        for (unsigned i = 0; set && i < FAKE_EVENT_SETS_MAX; i++)
                if (!event_sets[i].used) {
                        event_sets[i] = (struct nvmlEventSet_st) { .used = true };
                        *set = &event_sets[i];
                        r = NVML_SUCCESS;
                        break;
                }
        fake_nvml_leave();
        return r;
}

EXPORT nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
        nvmlReturn_t r;

        if ((r = fake_nvml_enter(__func__, NULL, false, NULL)) != NVML_SUCCESS)
                return r;
        if (event_set_valid(set))
                set->used = false;
        else
                r = NVML_ERROR_INVALID_ARGUMENT;
        fake_nvml_leave();
        return r;
}

EXPORT nvmlReturn_t nvmlDeviceGetSupportedEventTypes(nvmlDevice_t device, unsigned long long *types) {
        FakeGpu *g;
        nvmlReturn_t r;

        if ((r = fake_nvml_enter(__func__, device, true, &g)) != NVML_SUCCESS)
                return r;
        if (types)
                *types = g->supported_events;
        else
                r = NVML_ERROR_INVALID_ARGUMENT;
        fake_nvml_leave();
        return r;
}

EXPORT nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t device, unsigned long long types, nvmlEventSet_t set) {
        FakeGpu *g;
        nvmlReturn_t r;

        if ((r = fake_nvml_enter(__func__, device, true, &g)) != NVML_SUCCESS)
                return r;
        if (!event_set_valid(set))
                r = NVML_ERROR_INVALID_ARGUMENT;
        else if (types == 0 || (types & ~g->supported_events) != 0)
                r = NVML_ERROR_NOT_SUPPORTED;
        else
                set->registered[fake_gpu_index(device)] |= types;
        fake_nvml_leave();
        return r;
}

static void queue_event(nvmlEventSet_t set, unsigned index, unsigned long long type, unsigned long long data) {
        if (index >= fake_nvml.n_gpus || !(set->registered[index] & type) || set->n_queued >= FAKE_EVENT_QUEUE_MAX)
                return;
        set->queue[set->n_queued++] = (nvmlEventData_t) {
                .device = fake_gpu_handle(index),
                .eventType = type,
                .eventData = data,
                .gpuInstanceId = 0xFFFFFFFFu,
                .computeInstanceId = 0xFFFFFFFFu,
        };
}

static void parse_event_line(nvmlEventSet_t set, const char *path, const char *line) {
        char what[64] = "";
        unsigned index;
        unsigned long long xid;
        int r;

        if (line[strspn(line, " \t\r\n")] == '\0' || line[strspn(line, " \t")] == '#')
                return;
        if (sscanf(line, "wait-error %63s", what) == 1 && (r = fake_nvml_return_from_string(what)) >= 0)
                set->wait_error = (nvmlReturn_t) r;
        else if (sscanf(line, "%u xid %llu", &index, &xid) == 2)
                queue_event(set, index, nvmlEventTypeXidCriticalError, xid);
        else if (sscanf(line, "%u %63s", &index, what) == 2 && strcmp(what, "dbe") == 0)
                queue_event(set, index, nvmlEventTypeDoubleBitEccError, 0);
        else if (sscanf(line, "%u %63s", &index, what) == 2 && strcmp(what, "sbe") == 0)
                queue_event(set, index, nvmlEventTypeSingleBitEccError, 0);
        else
                fprintf(stderr, "fake-nvml: %s: cannot parse event line: %s", path, line);
}

/* Lock held. */
static void consume_events_file(nvmlEventSet_t set) {
        const char *path = getenv("FAKE_NVML_EVENTS");
        char line[256];
        FILE *f;

        if (!path)
                return;
        f = fopen(path, "re");
        if (!f)
                return;
        (void) unlink(path);
        while (fgets(line, sizeof(line), f))
                parse_event_line(set, path, line);
        fclose(f);
}

static long long now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* SUCCESS with an event, TIMEOUT, or an error: decided under the lock. */
static nvmlReturn_t try_take_event(nvmlEventSet_t set, nvmlEventData_t *data) {
        nvmlReturn_t r;

        if ((r = fake_nvml_enter("nvmlEventSetWait_v2", NULL, false, NULL)) != NVML_SUCCESS)
                return r;
        if (!event_set_valid(set) || !data)
                r = NVML_ERROR_INVALID_ARGUMENT;
        else {
                consume_events_file(set);
                if (set->wait_error != NVML_SUCCESS) {
                        r = set->wait_error;
                        set->wait_error = NVML_SUCCESS;
                } else if (set->n_queued > 0) {
                        *data = set->queue[0];
                        memmove(set->queue, set->queue + 1, --set->n_queued * sizeof(nvmlEventData_t));
                } else
                        r = NVML_ERROR_TIMEOUT;
        }
        fake_nvml_leave();
        return r;
}

EXPORT nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeoutms) {
        long long deadline = now_ms() + timeoutms;

        for (;;) {
                nvmlReturn_t r = try_take_event(set, data);

                if (r != NVML_ERROR_TIMEOUT || now_ms() >= deadline)
                        return r;
                nanosleep(&(struct timespec) { .tv_nsec = FAKE_EVENT_POLL_MS * 1000 * 1000 }, NULL);
        }
}
