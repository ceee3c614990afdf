#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Socket activation through systemd-socket-activate (FileDescriptorName= registration, dra).
systemd-socket-activate starts the daemon only on the first connection, so the kubelet's
first GetInfo is made before the daemon exists: it waits in the backlog and is served."""

import os
import shutil
import stat

from harness import DRIVER, Daemon, check

with Daemon() as d:
    os.makedirs(os.path.dirname(d.reg_sock))
    os.makedirs(os.path.dirname(d.dra_sock))
    ssa = shutil.which("systemd-socket-activate")
    d.start(wait=False, prefix=[ssa, "-l", d.reg_sock, "-l", d.dra_sock, "--fdname=registration:dra"])
    d.wait_socket(d.reg_sock, connect=False)  # a connection would start the daemon
    d.wait_socket(d.dra_sock, connect=False)
    reg_ino, dra_ino = os.lstat(d.reg_sock).st_ino, os.lstat(d.dra_sock).st_ino

    k = d.kubelet()
    info = k.get_info(timeout=30)  # this connection starts the daemon
    check(info.endpoint == d.dra_sock, "GetInfo made before the daemon ran is served; endpoint %s" % info.endpoint)
    info = k.register(DRIVER)
    res = k.prepare([("default", "a", "uid-a")], "v1")
    check("uid-a" in res, "v1 prepare over the systemd DRA socket")
    res = k.unprepare([("default", "a", "uid-a")], "v1beta1")
    check("uid-a" in res, "v1beta1 unprepare over the systemd DRA socket")
    h = k.watch_health("v1alpha1", timeout=10)
    check(len(next(h).devices) == 8, "health stream over the systemd DRA socket")
    h.cancel()
    k.close()

    check(os.lstat(d.reg_sock).st_ino == reg_ino and os.lstat(d.dra_sock).st_ino == dra_ino,
          "the daemon used systemd's sockets, did not re-bind them")
    check(d.stop() == 0, "SIGTERM gives a clean exit")
    check(stat.S_ISSOCK(os.lstat(d.reg_sock).st_mode) and stat.S_ISSOCK(os.lstat(d.dra_sock).st_mode),
          "systemd's socket files are left in place")
