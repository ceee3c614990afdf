#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A restart loses no call of a client that is slow to read: after its last GOAWAY gRPC
closes an idle connection at once, and a client that starts a call before it has read
that GOAWAY would write into a closed socket ("Broken pipe", a call it cannot retry).
The daemon keeps such a connection open and hands it to systemd's file-descriptor store
(here: our own notify socket) when it exits, so the client's write goes through and it
reads the GOAWAY, whose last stream ID tells it to retry the call elsewhere.

The client here is raw HTTP/2 (tests/integration/h2raw.py): it makes a call, acks the
PING that comes with the first GOAWAY (so gRPC sends its last GOAWAY and closes the
connection), and only after the daemon has exited starts its next call."""

import array
import os
import signal
import socket
import struct
import time

import h2raw
from harness import Daemon, HeldSockets, check, fail

DRA_V1 = "/k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin/"
EMPTY_MESSAGE = b"\x00\x00\x00\x00\x00"
MAX_STREAM_ID = 0x7FFFFFFF


class FdStore:
    """What systemd does with FDSTORE=1: keep the descriptors that come with it."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages, self.fds = [], []

    def drain(self):
        while True:
            try:
                data, ancdata, _, _ = self.sock.recvmsg(4096, socket.CMSG_LEN(253 * 4))
            except socket.timeout:
                return
            self.messages.append(data.decode())
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds = array.array("i")
                    fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
                    if "FDSTORE=1" in data.decode():
                        self.fds.extend(fds)
                    else:
                        for fd in fds:
                            os.close(fd)

    def close(self):
        for fd in self.fds:
            os.close(fd)
        self.fds = []
        self.sock.close()


def read_frames(s, seconds, until=None, answer=True):
    """Reads frames for `seconds`, or until until(type, flags, stream, payload) is true, and
    returns them all (fails when until never was). answer: as a client library does, ack
    the server's SETTINGS and PINGs (gRPC sends a BDP ping with its answers, and one not
    answered holds up the next)."""
    s.settimeout(0.05)
    buf, seen, deadline = b"", [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            fail("the connection ended; frames read: %s" % [(t, fl, sid, p.hex()) for t, fl, sid, p in seen])
        frames, buf = h2raw.split_frames(buf + chunk)
        for f in frames:
            ftype, flags, _, payload = f
            seen.append(f)
            if answer and ftype == h2raw.PING and not flags & 1:
                s.sendall(h2raw.frame(h2raw.PING, 1, 0, payload))
            elif answer and ftype == h2raw.SETTINGS and not flags & 1:
                s.sendall(h2raw.frame(h2raw.SETTINGS, 1, 0))
            if until and until(*f):
                return seen
    if until:
        fail("no such frame within %.1f s; frames read: %s" % (seconds, [(t, fl, sid, p.hex()) for t, fl, sid, p in seen]))
    return seen


def goaway_last_stream(payload):
    return struct.unpack(">I", payload[:4])[0] & MAX_STREAM_ID


with Daemon() as d:
    held = HeldSockets(d)
    store = FdStore(os.path.join(d.root, "notify.sock"))
    held.start(notify_socket=store.sock.getsockname())
    d.wait_socket(d.dra_sock)

    c = h2raw.start(d.dra_sock)
    h2raw.send_call(c, DRA_V1 + "NodeUnprepareResources", EMPTY_MESSAGE, stream=1)
    # The slow client's first call is answered (its trailers come), or the test fails here.
    read_frames(c, 10, lambda t, fl, sid, p: t == h2raw.HEADERS and fl & 1 and sid == 1)
    read_frames(c, 0.3)

    d.signal(signal.SIGTERM)
    got = read_frames(c, 5, lambda t, fl, sid, p: t == h2raw.PING and not fl & 1, answer=False)
    goaways = [goaway_last_stream(p) for t, _, _, p in got if t == h2raw.GOAWAY]
    check(goaways == [MAX_STREAM_ID], "the stop sends the first GOAWAY (last stream %s) with a PING" % goaways)
    ping = next(p for t, fl, _, p in got if t == h2raw.PING and not fl & 1)
    c.sendall(h2raw.frame(h2raw.PING, 1, 0, ping))    # now gRPC sends its last GOAWAY and closes

    try:
        rc = d.proc.wait(20)
    except Exception:  # noqa: BLE001 - reported
        fail("the daemon did not exit:\n" + d.output())
    d.log.close()
    check(rc == 0, "the daemon exits cleanly (%s)" % rc)
    store.drain()
    check(any("FDSTORE=1" in m and "FDNAME=connection" in m for m in store.messages) and len(store.fds) == 1,
          "the connection its client had not closed went to the store: %s, %d fd(s)"
          % ([m.replace("\n", " ") for m in store.messages if "FDSTORE" in m], len(store.fds)))
    check("kept in systemd's file descriptor store" in d.output(), "the journal says so")

    # The client, not having read the last GOAWAY, starts its next call.
    try:
        h2raw.send_call(c, DRA_V1 + "NodeUnprepareResources", EMPTY_MESSAGE, stream=3)
        wrote = "ok"
    except (BrokenPipeError, ConnectionResetError) as e:
        wrote = repr(e)
    check(wrote == "ok", "its next call goes through, not into a closed socket (%s)" % wrote)
    got = read_frames(c, 5, lambda t, fl, sid, p: t == h2raw.GOAWAY and goaway_last_stream(p) < MAX_STREAM_ID,
                      answer=False)
    last = goaway_last_stream(got[-1][3])
    check(last == 1, "it reads the last GOAWAY: stream 1 was the last served, so stream 3 may be retried (%d)"
          % last)

    store.close()    # systemd closes its copy when the client hangs up; here: the other way round
    c.settimeout(5)
    try:
        end = c.recv(65536)      # its unread call makes the close a reset
    except ConnectionResetError:
        end = b""
    check(end == b"", "with the store's copy closed the client sees the connection end")
    c.close()
    held.close()
