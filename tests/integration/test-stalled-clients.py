#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""No caller blocks the others: stalled clients and hundreds of idle connections do not
keep GetInfo (the kubelet gives it 1 s) or prepare from another client."""

import h2raw
from harness import DRIVER, Daemon, check, sim

IDLE = 300

with Daemon() as d:
    d.start()
    held = []
    # Connects and sends nothing; sends half the preface; starts a call and stalls in its message.
    held.append(h2raw.connect(d.reg_sock))
    half = h2raw.connect(d.reg_sock)
    half.sendall(h2raw.PREFACE[:10])
    held.append(half)
    for sock, method in ((d.reg_sock, "/pluginregistration.Registration/GetInfo"),
                         (d.dra_sock, "/k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin/NodePrepareResources")):
        c = h2raw.start(sock)
        h2raw.send_call(c, method, b"\x00\x00\x00\x00\x10\x0a", end_stream=False)  # 6 of 21 bytes
        held.append(c)
    # Many streams on one connection, each stalled before its message.
    c = h2raw.start(d.dra_sock)
    for stream in range(1, 2 * 60, 2):
        h2raw.send_call(c, "/k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin/NodeUnprepareResources", None, stream=stream)
    held.append(c)
    # Idle HTTP/2 connections on both sockets.
    for i in range(IDLE):
        held.append(h2raw.start(d.reg_sock if i % 2 else d.dra_sock))

    k = d.kubelet()
    info = k.register(DRIVER)
    answers = [k.get_info() for _ in range(20)]
    check(all(a == info for a in answers),
          "20 GetInfo calls answered with %d other connections held" % len(held))
    res = k.prepare([("default", "x", "uid-x")], "v1")
    check("uid-x" in res, "prepare is answered with the stalled calls in flight")
    health = k.watch_health("v1", timeout=10)
    check(len(next(health).devices) == 8, "the health stream is served too")
    health.cancel()

    # Fill the budget for DRA calls with 1,140 calls stalled before their message (19
    # connections x 60 streams): prepare is refused, GetInfo has its own budget and is not.
    for _ in range(19):
        c = h2raw.start(d.dra_sock)
        for stream in range(1, 2 * 60, 2):
            h2raw.send_call(c, "/k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin/NodePrepareResources", None, stream=stream)
        held.append(c)
    try:
        for _ in range(100):  # the streams reach the daemon asynchronously
            k.prepare([("default", "y", "uid-y")], "v1")
        check(False, "prepare is refused once 1,024 DRA calls are in flight")
    except sim.grpc.RpcError as e:
        check(e.code() == sim.grpc.StatusCode.RESOURCE_EXHAUSTED,
              "prepare is refused with RESOURCE_EXHAUSTED once 1,024 DRA calls are in flight")
    check(k.get_info() == info, "GetInfo is still answered: it has its own budget")
    k.close()

    for c in held:
        c.close()
    k = d.kubelet()
    check(k.get_info() == info, "GetInfo after the stalled clients went away")
    k.close()
    check(d.alive(), "daemon still running")
    check(d.stop() == 0, "clean exit")
