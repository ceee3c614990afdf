#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Connections that stall before the HTTP/2 handshake cannot take the daemon's file
descriptors from the kubelet. Started with a soft fd limit of 256 (hard 4,096), the
daemon raises the soft limit to the hard one; 5,000 connections that send nothing or half
the client preface later, the kubelet's GetInfo and a prepare on new connections are still
answered, every stalled connection is closed by the server within the handshake timeout,
and the daemon's fd count comes back to where it was."""

import os
import resource
import select
import socket
import time

import h2raw
from harness import BUILD_ROOT, DRIVER, Daemon, check, fail, is_real_daemon, sim

SOFT, HARD = 256, 4096
STALLED = 5000
HANDSHAKE_TIMEOUT = 5  # GRPC_HANDSHAKE_TIMEOUT_USEC in src/grpc-server.c
FD_SLACK = 16  # fds the daemon may open meanwhile (health poll, timers)


def nofile_limits(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    fail("no 'Max open files' in /proc/%d/limits" % pid)


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def low_limit():
    resource.setrlimit(resource.RLIMIT_NOFILE, (SOFT, HARD))


def stall(path, i):
    """Connects and sends nothing, or a third of the time half the client preface."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(path)
        if i % 3 == 0:
            s.sendall(h2raw.PREFACE[:10])
    except OSError as e:
        s.close()
        fail("stalled connection %d to %s: %s (the daemon stopped accepting)" % (i, path, e))
    return s


def wait_closed(socks, timeout):
    """Until the server closed every socket (EOF or reset); returns how many it left open."""
    p = select.poll()
    by_fd = {}
    for s in socks:
        s.setblocking(False)
        p.register(s, select.POLLIN | select.POLLHUP | select.POLLERR)
        by_fd[s.fileno()] = s
    deadline = time.monotonic() + timeout
    while by_fd and time.monotonic() < deadline:
        for fd, _ in p.poll(200):
            try:
                data = by_fd[fd].recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:  # closed by the server; bytes (a SETTINGS frame) are not
                p.unregister(fd)
                by_fd.pop(fd).close()
    return len(by_fd)


if is_real_daemon():
    unit = os.path.join(BUILD_ROOT, "units", "hami-dra-plugin.service")
    with open(unit) as f:
        lines = [line.strip() for line in f if line.startswith("LimitNOFILE=")]
    check(lines == ["LimitNOFILE=65536"], "the unit sets LimitNOFILE=65536: %s" % lines)

# Our own side needs an fd per stalled connection.
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

with Daemon() as d:
    d.start(preexec_fn=low_limit)
    pid = d.proc.pid
    check(nofile_limits(pid) == (HARD, HARD),
          "the daemon raised its soft fd limit to the hard limit: %s" % (nofile_limits(pid),))
    k = d.kubelet()
    info = k.register(DRIVER)
    k.close()
    # A client whose preface comes in pieces is served once it is complete.
    slow = h2raw.connect(d.reg_sock)
    slow.sendall(h2raw.PREFACE[:10])
    time.sleep(0.5)
    slow.sendall(h2raw.PREFACE[10:] + h2raw.frame(h2raw.SETTINGS, 0, 0))
    h2raw.send_call(slow, "/pluginregistration.Registration/GetInfo", b"\x00\x00\x00\x00\x00")
    check(h2raw.read_outcome(slow) == "headers", "GetInfo answered after a preface sent in two pieces")
    slow.close()
    baseline = fd_count(pid)

    start = time.monotonic()
    held = [stall(d.reg_sock if i % 2 else d.dra_sock, i) for i in range(STALLED)]
    print("%d stalled connections opened in %.1f s; the daemon holds %d fds (%d before)" %
          (STALLED, time.monotonic() - start, fd_count(pid), baseline), flush=True)

    k = d.kubelet()  # new connections, after all the stalled ones
    try:
        t = time.monotonic()
        got = k.register(DRIVER)  # GetInfo and NotifyRegistrationStatus
        elapsed = time.monotonic() - t
        check(got == info, "registration on new connections with %d stalled ones (%.3f s)" % (STALLED, elapsed))
        t = time.monotonic()
        res = k.prepare([("default", "fd", "uid-fd")], "v1", timeout=10)
        check("uid-fd" in res, "prepare on a new connection with %d stalled ones (%.3f s)" %
              (STALLED, time.monotonic() - t))
    except sim.grpc.RpcError as e:
        fail("a new connection with %d stalled ones: %s %s" % (STALLED, e.code(), e.details()))
    k.close()

    left = wait_closed(held, HANDSHAKE_TIMEOUT * 3)
    check(left == 0, "the server closed all %d stalled connections within %d s (%d left open; %.1f s after the first)" %
          (STALLED, HANDSHAKE_TIMEOUT * 3, left, time.monotonic() - start))
    deadline = time.monotonic() + 10
    while fd_count(pid) > baseline + FD_SLACK and time.monotonic() < deadline:
        time.sleep(0.1)
    check(fd_count(pid) <= baseline + FD_SLACK,
          "the daemon's fds came back: %d, %d before the flood" % (fd_count(pid), baseline))

    k = d.kubelet()
    check(k.get_info() == info, "GetInfo after the flood")
    k.close()
    check(d.alive(), "daemon still running")
    check(d.stop() == 0, "clean exit")
