#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# After `meson install` on the real root (no DESTDIR): create what the tmpfiles.d
# snippet declares (/run/cdi) now, not only at the next boot, so that
# `systemctl enable --now hami-dra-plugin.socket` is all that is left to do; and
# rebuild the journal's catalog database so that `journalctl -x` explains our audit
# entries. Packages do the same from their post-install scripts.
[ -n "${DESTDIR:-}" ] && exit 0
if command -v systemd-tmpfiles >/dev/null 2>&1; then
        systemd-tmpfiles --create "$1" || echo "warning: systemd-tmpfiles --create $1 failed" >&2
fi
if command -v journalctl >/dev/null 2>&1; then
        journalctl --update-catalog || echo "warning: journalctl --update-catalog failed" >&2
fi
exit 0
