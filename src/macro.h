/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The handful of idioms the whole tree shares, in systemd's spelling:
 * _cleanup_ attributes, TAKE_PTR/TAKE_FD, ELEMENTSOF and friends.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _pure_ __attribute__((pure))
#define _const_ __attribute__((const))
#define _sentinel_ __attribute__((sentinel))
#define _likely_(x) (__builtin_expect(!!(x), 1))
#define _unlikely_(x) (__builtin_expect(!!(x), 0))
#define _noreturn_ __attribute__((noreturn))
#define _warn_unused_result_ __attribute__((warn_unused_result))

#define ELEMENTSOF(x)                                                                            \
        (__builtin_choose_expr(!__builtin_types_compatible_p(typeof(x), typeof(&*(x))),           \
                               sizeof(x) / sizeof((x)[0]), (void) 0))

#define sizeof_field(type, member) sizeof(((type *) 0)->member)

/* IN_SET(r, -EFBIG, -EBADFD): x equals one of the values. */
#define IN_SET(x, ...)                                                                           \
        ({                                                                                       \
                typeof(x) _x_ = (x);                                                             \
                const typeof(x) _set_[] = { __VA_ARGS__ };                                       \
                bool _found_ = false;                                                            \
                for (size_t _i_ = 0; _i_ < ELEMENTSOF(_set_); _i_++)                             \
                        if (_set_[_i_] == _x_)                                                   \
                                _found_ = true;                                                  \
                _found_;                                                                         \
        })

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Exchange one field of two structs of the same type. */
#define SWAP_FIELD(a, b, f)                                                                      \
        do {                                                                                     \
                typeof((a).f) _t_ = (a).f;                                                       \
                (a).f = (b).f;                                                                   \
                (b).f = _t_;                                                                     \
        } while (0)

#define STRINGIFY(x) XSTRINGIFY(x)
#define XSTRINGIFY(x) #x

/* Take ownership of a pointer or fd: the cleanup handler of the old name then does nothing. */
#define TAKE_PTR(p)                                                                              \
        ({                                                                                       \
                typeof(p) *_pp_ = &(p);                                                          \
                typeof(p) _p_ = *_pp_;                                                           \
                *_pp_ = NULL;                                                                    \
                _p_;                                                                             \
        })

#define TAKE_FD(fd)                                                                              \
        ({                                                                                       \
                int *_fdp_ = &(fd);                                                              \
                int _fd_ = *_fdp_;                                                               \
                *_fdp_ = -EBADF;                                                                 \
                _fd_;                                                                            \
        })

#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                  \
        static inline void func##p(type *p) {                                                    \
                if (*p)                                                                          \
                        func(*p);                                                                \
        }

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

static inline void strv_free(char **l) {
        if (!l)
                return;
        for (char **i = l; *i; i++)
                free(*i);
        free(l);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free);
#define _cleanup_strv_free_ _cleanup_(strv_freep)

/* Clear a pointer after freeing: p = mfree(p). */
static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                close(fd);
                errno = saved;
        }
        return -EBADF;
}

static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}
#define streq(a, b) (strcmp((a), (b)) == 0)

/* *ret = a copy of s, or NULL when s is NULL: 0, or -ENOMEM. */
static inline int strdup_or_null(const char *s, char **ret) {
        if (!s) {
                *ret = NULL;
                return 0;
        }
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}
#define isempty(s) (!(s) || !(s)[0])

/* errno as a negative return value, never 0 even when errno was clobbered. */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}
