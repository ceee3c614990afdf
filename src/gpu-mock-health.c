/* SPDX-License-Identifier: Apache-2.0 */

/* The mock-health file parser (see gpu-mock.h): untrusted text in, per-GPU state out. */

#include <stdio.h>
#include <string.h>

#include "gpu-mock.h"
#include "log.h"
#include "macro.h"

#define MOCK_HEALTH_WARNINGS_MAX 8 /* a garbage file logs a few lines, not thousands */

static bool is_blank(char c) {
        return c == ' ' || c == '\t';
}

static bool line_is_clean(const char *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (((unsigned char) p[i] < 0x20 && p[i] != '\t') || (unsigned char) p[i] >= 0x7f)
                        return false;
        return true;
}

/* Take the next blank-separated word of [*p, end); returns its length (0 at the end). */
static size_t next_word(const char **p, const char *end, const char **ret_word) {
        const char *w;

        while (*p < end && is_blank(**p))
                (*p)++;
        w = *p;
        while (*p < end && !is_blank(**p))
                (*p)++;
        *ret_word = w;
        return (size_t) (*p - w);
}

static bool word_is(const char *w, size_t n, const char *s) {
        return strlen(s) == n && memcmp(w, s, n) == 0;
}

static ssize_t gpu_index_by_name(const Gpu *gpus, size_t n_gpus, const char *w, size_t n) {
        for (size_t i = 0; i < n_gpus; i++)
                if (word_is(w, n, gpus[i].name))
                        return (ssize_t) i;
        return -1;
}

/* One line without its newline; false when it is bad. */
static bool mock_health_parse_line(const char *p, const char *end, const Gpu *gpus, size_t n_gpus,
                                   MockHealth *ret) {
        const char *name, *state;
        size_t name_len, state_len;
        ssize_t idx;
        MockHealth h = {};

        if (end > p && end[-1] == '\r')
                end--;
        if ((size_t) (end - p) > MOCK_HEALTH_LINE_MAX || !line_is_clean(p, (size_t) (end - p)))
                return false;

        name_len = next_word(&p, end, &name);
        if (name_len == 0 || name[0] == '#')
                return true; /* blank or comment */

        state_len = next_word(&p, end, &state);
        if (word_is(state, state_len, "healthy"))
                h.health = GPU_HEALTH_HEALTHY;
        else if (word_is(state, state_len, "unhealthy"))
                h.health = GPU_HEALTH_UNHEALTHY;
        else
                return false;

        idx = gpu_index_by_name(gpus, n_gpus, name, name_len);
        if (idx < 0)
                return false;

        while (p < end && is_blank(*p))
                p++;
        while (end > p && is_blank(end[-1]))
                end--;
        if (h.health == GPU_HEALTH_UNHEALTHY) {
                if (p == end)
                        snprintf(h.reason, sizeof(h.reason), "%s", MOCK_HEALTH_DEFAULT_REASON);
                else
                        snprintf(h.reason, sizeof(h.reason), "%.*s",
                                 (int) MIN((size_t) (end - p), sizeof(h.reason) - 1), p);
        }

        ret[idx] = h; /* a later line for the same GPU wins */
        return true;
}

int mock_health_parse(const char *text, size_t size, const Gpu *gpus, size_t n_gpus, MockHealth *ret) {
        const char *p = text, *end = text + size;
        unsigned line = 0;
        int bad = 0;

        if (size > MOCK_HEALTH_FILE_MAX)
                return -EFBIG;

        for (size_t i = 0; i < n_gpus; i++)
                ret[i] = (MockHealth) { .health = GPU_HEALTH_HEALTHY };

        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                const char *eol = nl ?: end;

                line++;
                if (!mock_health_parse_line(p, eol, gpus, n_gpus, ret)) {
                        if (bad < MOCK_HEALTH_WARNINGS_MAX)
                                log_warning("%s:%u: not \"hami-gpu-<n> healthy|unhealthy [reason]\" "
                                            "for a GPU we have, line skipped.", MOCK_HEALTH_FILE, line);
                        bad++;
                }
                p = nl ? nl + 1 : end;
        }
        return bad;
}
