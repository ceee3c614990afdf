/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Assertions for unit tests: print where and what, then abort (meson counts it as a failure). */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_FAIL(...)                                                                           \
        do {                                                                                     \
                fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__, __func__);                   \
                fprintf(stderr, __VA_ARGS__);                                                    \
                fputc('\n', stderr);                                                             \
                abort();                                                                         \
        } while (0)

#define ASSERT_TRUE(expr)                                                                        \
        do {                                                                                     \
                if (!(expr))                                                                     \
                        TEST_FAIL("assertion failed: %s", #expr);                                \
        } while (0)
#define ASSERT_FALSE(expr) ASSERT_TRUE(!(expr))

#define ASSERT_OK(expr)                                                                          \
        do {                                                                                     \
                long _r_ = (long) (expr);                                                        \
                if (_r_ < 0)                                                                     \
                        TEST_FAIL("%s failed: %ld (%s)", #expr, _r_, strerror((int) -_r_));      \
        } while (0)

#define ASSERT_ERROR(expr, err)                                                                  \
        do {                                                                                     \
                long _r_ = (long) (expr);                                                        \
                if (_r_ != -(long) (err))                                                        \
                        TEST_FAIL("%s: expected -%s, got %ld", #expr, #err, _r_);               \
        } while (0)

#define ASSERT_EQ(a, b)                                                                          \
        do {                                                                                     \
                intmax_t _a_ = (intmax_t) (a), _b_ = (intmax_t) (b);                             \
                if (_a_ != _b_)                                                                  \
                        TEST_FAIL("%s == %s: %jd != %jd", #a, #b, _a_, _b_);                     \
        } while (0)

#define ASSERT_EQ_U(a, b)                                                                        \
        do {                                                                                     \
                uintmax_t _a_ = (uintmax_t) (a), _b_ = (uintmax_t) (b);                          \
                if (_a_ != _b_)                                                                  \
                        TEST_FAIL("%s == %s: %ju != %ju", #a, #b, _a_, _b_);                     \
        } while (0)

#define ASSERT_STREQ(a, b)                                                                       \
        do {                                                                                     \
                const char *_a_ = (a), *_b_ = (b);                                               \
                if (!_a_ || !_b_ || strcmp(_a_, _b_) != 0)                                       \
                        TEST_FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, _a_ ? _a_ : "(null)",    \
                                  _b_ ? _b_ : "(null)");                                         \
        } while (0)

#define ASSERT_NULL(p) ASSERT_TRUE((p) == NULL)
#define ASSERT_NOT_NULL(p) ASSERT_TRUE((p) != NULL)

/* Run a test function and say so: TEST(test_foo); */
#define TEST(fn)                                                                                 \
        do {                                                                                     \
                fprintf(stderr, "== %s\n", #fn);                                                 \
                fn();                                                                            \
        } while (0)
