#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# make-root.sh SUITE: print the path of a Debian SUITE root (debootstrap minbase, plus a
# C compiler to build the fake driver and the test programs against that root's glibc),
# made once and kept under $HAMI_DRA_ROOT_CACHE (default /var/cache/hami-dra-tests).
# Callers copy it; nobody writes to it. Concurrent callers wait on a lock. Needs root,
# debootstrap and Debian's mirror ($HAMI_DRA_DEBIAN_MIRROR, default deb.debian.org).
set -euo pipefail

suite=${1:?usage: make-root.sh SUITE}
case "$suite" in *[!a-z0-9]*) echo "make-root.sh: bad suite name: $suite" >&2; exit 2 ;; esac
cache=${HAMI_DRA_ROOT_CACHE:-/var/cache/hami-dra-tests}
mirror=${HAMI_DRA_DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=gcc,libc6-dev
# The package list is part of the name: change it and a fresh root is made.
root=$cache/$suite-$(printf %s "$packages" | sha256sum | cut -c1-12)

mkdir -p "$cache"
exec 9>"$cache/.lock-$suite"
flock 9
if [ ! -e "$root/.complete" ]; then
        rm -rf "$root" "$root.new"
        echo "make-root.sh: debootstrap $suite from $mirror (once; cached in $root)" >&2
        if ! debootstrap --variant=minbase --include="$packages" "$suite" "$root.new" "$mirror" \
                >"$cache/debootstrap-$suite.log" 2>&1; then
                tail -n 20 "$cache/debootstrap-$suite.log" >&2
                rm -rf "$root.new"
                exit 1
        fi
        rm -rf "$root.new/var/cache/apt/archives/"*.deb
        mv "$root.new" "$root"
        touch "$root/.complete"
fi
echo "$root"
