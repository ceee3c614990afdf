/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * A caller's buffer for a one-line reason, and the one way to fill it. Functions that
 * take `char *error, size_t error_size` wrap them once and hand the ErrBuf down:
 *
 *     ErrBuf e = { error, error_size };
 *     ...
 *     return errbuf_fail(&e, -EINVAL, "unknown field \"%s\"", key);
 */

#include <stddef.h>

#include "macro.h"

typedef struct ErrBuf {
        char *buf;      /* NULL: the caller wants no reason */
        size_t size;
} ErrBuf;

/* Write the reason into e (truncated to fit; nothing when it has no buffer) and return r. */
int errbuf_fail(ErrBuf *e, int r, const char *format, ...) _printf_(3, 4);
