/* SPDX-License-Identifier: Apache-2.0 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "proc-locks.h"

/* Next whitespace-separated word of [*p, end): its start and length; false at the end. */
static bool next_word(const char **p, const char *end, const char **ret, size_t *ret_len) {
        const char *s = *p;

        while (s < end && (*s == ' ' || *s == '\t'))
                s++;
        if (s >= end)
                return false;
        *ret = s;
        while (s < end && *s != ' ' && *s != '\t')
                s++;
        *ret_len = (size_t) (s - *ret);
        *p = s;
        return true;
}

static bool word_is(const char *w, size_t len, const char *lit) {
        return len == strlen(lit) && memcmp(w, lit, len) == 0;
}

/* An unsigned number in base (10 or 16) filling the whole word, at most max. */
static bool word_number(const char *w, size_t len, unsigned base, uint64_t max, uint64_t *ret) {
        uint64_t v = 0;

        if (len == 0 || len > 20)
                return false;
        for (size_t i = 0; i < len; i++) {
                unsigned digit;
                char c = w[i];

                if (c >= '0' && c <= '9')
                        digit = (unsigned) (c - '0');
                else if (base == 16 && c >= 'a' && c <= 'f')
                        digit = (unsigned) (c - 'a' + 10);
                else
                        return false;
                if (__builtin_mul_overflow(v, base, &v) || __builtin_add_overflow(v, digit, &v))
                        return false;
        }
        if (v > max)
                return false;
        *ret = v;
        return true;
}

/* "fe:00:10952785" */
static bool parse_file_id(const char *w, size_t len, dev_t *ret_dev, uint64_t *ret_ino) {
        const char *c1 = memchr(w, ':', len), *c2;
        uint64_t major, minor;

        if (!c1)
                return false;
        c2 = memchr(c1 + 1, ':', len - (size_t) (c1 + 1 - w));
        if (!c2 || !word_number(w, (size_t) (c1 - w), 16, 0xfff, &major) ||
            !word_number(c1 + 1, (size_t) (c2 - c1 - 1), 16, 0xfffff, &minor) ||
            !word_number(c2 + 1, len - (size_t) (c2 + 1 - w), 10, UINT64_MAX, ret_ino))
                return false;
        *ret_dev = makedev((unsigned) major, (unsigned) minor);
        return true;
}

/* One line, without its newline. false: not a granted POSIX lock with a visible owner. */
static bool parse_line(const char *p, const char *end, ProcLock *ret) {
        const char *w;
        size_t len;
        uint64_t pid;
        ProcLock l = {};

        if (!next_word(&p, end, &w, &len) || len < 2 || w[len - 1] != ':')  /* "1:" */
                return false;
        if (!next_word(&p, end, &w, &len) || !word_is(w, len, "POSIX"))     /* not "->", not OFD */
                return false;
        if (!next_word(&p, end, &w, &len) || !(word_is(w, len, "ADVISORY") || word_is(w, len, "MANDATORY")))
                return false;
        if (!next_word(&p, end, &w, &len))
                return false;
        if (word_is(w, len, "WRITE"))
                l.write = true;
        else if (!word_is(w, len, "READ"))
                return false;
        if (!next_word(&p, end, &w, &len) || !word_number(w, len, 10, INT32_MAX, &pid) || pid == 0)
                return false;
        l.pid = (pid_t) pid;
        if (!next_word(&p, end, &w, &len) || !parse_file_id(w, len, &l.dev, &l.ino))
                return false;
        if (!next_word(&p, end, &w, &len) || !word_number(w, len, 10, UINT64_MAX, &l.start))
                return false;
        if (!next_word(&p, end, &w, &len))
                return false;
        if (word_is(w, len, "EOF"))
                l.end = UINT64_MAX;
        else if (!word_number(w, len, 10, UINT64_MAX, &l.end) || l.end < l.start)
                return false;
        *ret = l;
        return true;
}

int proc_locks_parse(const char *text, size_t size, ProcLockCallback cb, void *userdata) {
        const char *p = text, *end;
        int n = 0;

        if (!text && size > 0)
                return -EINVAL;
        end = text + size;  /* only now: NULL + size is undefined even unused */
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                const char *line_end = nl ? nl : end;
                ProcLock l;

                if (parse_line(p, line_end, &l)) {
                        int r = cb ? cb(&l, userdata) : 0;
                        if (r < 0)
                                return r;
                        if (n < INT32_MAX)
                                n++;
                }
                p = nl ? nl + 1 : end;
        }
        return n;
}

int proc_locks_read(const char *path, size_t max, char **ret_text, size_t *ret_size) {
        size_t size = 0, cap = 16384;
        char *buf;
        int fd, r = 0;

        if (!path || !ret_text || max == 0)
                return -EINVAL;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        buf = malloc(cap + 1);
        while (buf) {
                ssize_t k;

                if (size == cap) {
                        char *bigger;
                        if (cap >= max) {
                                r = -EFBIG;
                                break;
                        }
                        cap = cap * 2 < max ? cap * 2 : max;
                        bigger = realloc(buf, cap + 1);
                        if (!bigger)
                                break;
                        buf = bigger;
                }
                k = read(fd, buf + size, cap - size);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = -errno;
                        break;
                }
                if (k == 0) {
                        buf[size] = 0;
                        close(fd);
                        *ret_text = buf;
                        if (ret_size)
                                *ret_size = size;
                        return 0;
                }
                size += (size_t) k;
        }
        close(fd);
        free(buf);
        return r < 0 ? r : -ENOMEM;
}
