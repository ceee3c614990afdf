/* SPDX-License-Identifier: Apache-2.0 */

#include <errno.h>
#include <string.h>

#include "dbus/error.h"

const sd_bus_error_map bus_error_map[] = {
        SD_BUS_ERROR_MAP(BUS_ERROR_NO_SUCH_CLAIM, ENOENT),
        SD_BUS_ERROR_MAP(BUS_ERROR_NO_SUCH_DEVICE, ENODEV),
        SD_BUS_ERROR_MAP(BUS_ERROR_INVALID_ARGUMENT, EINVAL),
        SD_BUS_ERROR_MAP(BUS_ERROR_BUSY, EBUSY),
        SD_BUS_ERROR_MAP(BUS_ERROR_NOT_READY, EAGAIN),
        SD_BUS_ERROR_MAP(BUS_ERROR_FAILED, EIO),
        SD_BUS_ERROR_MAP_END,
};

int bus_error_from_errno(sd_bus_error *error, int r, const char *not_found, const char *what) {
        switch (r) {
        case -ENOENT:
        case -ENODEV:
                return sd_bus_error_setf(error, not_found, "%s: not found", what);
        case -EINVAL:
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT, "%s: invalid argument", what);
        case -EBUSY:
        case -EALREADY:
                return sd_bus_error_setf(error, BUS_ERROR_BUSY, "%s: operation already in progress", what);
        case -EAGAIN:
                return sd_bus_error_setf(error, BUS_ERROR_NOT_READY, "%s: the daemon is not ready yet", what);
        default:
                return sd_bus_error_setf(error, BUS_ERROR_FAILED, "%s: %s", what, strerror(r < 0 ? -r : EIO));
        }
}
