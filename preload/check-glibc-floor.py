#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Fail if a shared library needs more than an old glibc gives: any GLIBC_x.y symbol
version newer than FLOOR, or a library other than libc.so.6, libdl.so.2 and
libpthread.so.0 (what glibc 2.17 splits its C library into). Reads the dynamic section
and the version-needs table with readelf, the way the dynamic loader reads them.

  check-glibc-floor.py LIBRARY FLOOR [STAMP]

Prints every offending symbol with its version; writes STAMP (for the build) on success.
"""

import re
import subprocess
import sys

ALLOWED_NEEDED = {"libc.so.6", "libdl.so.2", "libpthread.so.0"}


def version_tuple(name):
    return tuple(int(x) for x in name[len("GLIBC_"):].split("."))


def readelf(*args):
    return subprocess.run(["readelf", "-W", *args], capture_output=True, text=True, check=True).stdout


def main():
    try:
        return check()
    except (OSError, subprocess.CalledProcessError) as e:
        print("check-glibc-floor: cannot read %s: %s" % (sys.argv[1], getattr(e, "stderr", None) or e),
              file=sys.stderr)
        return 2


def check():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: check-glibc-floor.py LIBRARY FLOOR [STAMP]")
    lib, floor = sys.argv[1], version_tuple(sys.argv[2])
    problems = []

    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", readelf("-d", lib))
    problems += ["needs %s (only %s allowed)" % (n, ", ".join(sorted(ALLOWED_NEEDED)))
                 for n in needed if n not in ALLOWED_NEEDED]

    versions = set(re.findall(r"Name: (GLIBC_[0-9.]+)", readelf("-V", lib)))
    too_new = {v for v in versions if version_tuple(v) > floor}
    if too_new:
        for line in readelf("--dyn-syms", lib).splitlines():
            m = re.search(r"\sUND\s+(\S+)@(GLIBC_[0-9.]+)", line)
            if m and m.group(2) in too_new:
                problems.append("%s@%s is newer than %s" % (m.group(1), m.group(2), sys.argv[2]))
        problems += ["needs version %s (newer than %s)" % (v, sys.argv[2]) for v in sorted(too_new)]
    if not versions:
        problems.append("no GLIBC version needs at all: is this a glibc library?")

    for p in problems:
        print("%s: %s" % (lib, p), file=sys.stderr)
    if problems:
        return 1
    print("%s: needs %s; newest glibc version %s (floor %s)" % (
        lib, " ".join(needed), max(versions, key=version_tuple), sys.argv[2]))
    if len(sys.argv) == 4:
        open(sys.argv[3], "w").close()
    return 0


sys.exit(main())
