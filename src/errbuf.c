/* SPDX-License-Identifier: Apache-2.0 */

#include <stdarg.h>
#include <stdio.h>

#include "errbuf.h"

int errbuf_fail(ErrBuf *e, int r, const char *format, ...) {
        va_list ap;

        if (e && e->buf && e->size > 0) {
                va_start(ap, format);
                vsnprintf(e->buf, e->size, format, ap);
                va_end(ap);
        }
        return r;
}
