#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Binding our own sockets: a dead socket is replaced; a regular file, a symlink or a live
socket at our path is refused with a clear error and left alone; SIGINT/SIGTERM exit
cleanly and remove only what we bound."""

import os
import signal
import socket

from harness import DRIVER, Daemon, check, listening_socket


def expect_refusal(d, what, needle):
    d.start(wait=False)
    try:
        rc = d.proc.wait(20)
    except Exception:  # noqa: BLE001
        d.proc.kill()
        d.proc.wait()
        rc = None
    out = d.output()
    check(rc not in (0, None) and needle in out, "%s: refused (exit %s) saying %r" % (what, rc, needle))


with Daemon() as d:
    # A dead socket left by a crashed instance.
    for path in (d.reg_sock, d.dra_sock):
        s = listening_socket(path)
        s.close()
    d.start()
    k = d.kubelet()
    check(k.register(DRIVER).endpoint == d.dra_sock, "dead sockets from a crashed instance are replaced")
    k.close()

    # A second instance must not steal the live sockets.
    with Daemon(root=d.root, binary=d.binary) as second:
        second.log_path = os.path.join(d.root, "second.log")
        expect_refusal(second, "a second instance on live sockets", "served by another process")
    k = d.kubelet()
    check(k.register(DRIVER) is not None, "the first instance keeps serving")
    k.close()
    d.signal(signal.SIGINT)
    check(d.stop() == 0, "SIGINT gives a clean exit")
    check(not os.path.exists(d.reg_sock) and not os.path.exists(d.dra_sock), "our sockets are removed")

with Daemon() as d:
    os.makedirs(os.path.dirname(d.dra_sock))
    with open(d.dra_sock, "w") as f:
        f.write("precious")
    expect_refusal(d, "a regular file at the DRA socket path", "not a socket")
    check(open(d.dra_sock).read() == "precious", "the regular file is untouched")
    check(not os.path.exists(d.reg_sock), "no registration socket appears when the DRA socket failed")

with Daemon() as d:
    os.makedirs(os.path.dirname(d.reg_sock))
    target = os.path.join(d.root, "target")
    with open(target, "w") as f:
        f.write("precious")
    os.symlink(target, d.reg_sock)
    expect_refusal(d, "a symlink at the registration socket path", "not a socket")
    check(os.path.islink(d.reg_sock) and open(target).read() == "precious", "the symlink and its target are untouched")
    check(not os.path.exists(d.dra_sock), "the DRA socket we bound is removed again after the failure")

with Daemon() as d:
    foreign = listening_socket(d.dra_sock)
    expect_refusal(d, "a live socket of another program", "served by another process")
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(d.dra_sock)
    c.close()
    check(True, "the other program's socket still works")
    foreign.close()

with Daemon() as d:
    d.registry_dir = os.path.join(d.root, "r" * 120)
    d.reg_sock = os.path.join(d.registry_dir, DRIVER + "-reg.sock")
    if os.path.basename(d.binary) == "grpc-test-server":
        expect_refusal(d, "a socket path over 107 bytes", "longer than")
