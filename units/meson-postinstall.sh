#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# After `meson install` on the real root (no DESTDIR): create what the tmpfiles.d
# snippet declares (/run/cdi) now, not only at the next boot, so that
# `systemctl enable --now hami-dra-plugin.socket` is all that is left to do.
# Packages do the same from their post-install scripts.
[ -n "${DESTDIR:-}" ] && exit 0
command -v systemd-tmpfiles >/dev/null 2>&1 || exit 0
systemd-tmpfiles --create "$1" || echo "warning: systemd-tmpfiles --create $1 failed" >&2
exit 0
