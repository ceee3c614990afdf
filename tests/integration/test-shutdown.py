#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""SIGTERM with everything in flight: open health streams, a stalled call, idle
connections and (on the test server) a prepare the daemon is still holding. The daemon
exits 0 (under ASan: without leaks), every client gets an answer, our sockets go."""

import os
import threading

import grpc

import h2raw
from harness import DRIVER, Daemon, check, is_real_daemon

with Daemon() as d:
    d.start()
    k = d.kubelet()
    k.register(DRIVER)
    streams = [k.watch_health(v, timeout=60) for v in ("v1alpha1", "v1")]
    for s in streams:
        next(s)
    stalled = h2raw.start(d.dra_sock)
    h2raw.send_call(stalled, "/k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin/NodePrepareResources", None)
    idle = [h2raw.start(d.reg_sock) for _ in range(20)]

    held = {}
    if not is_real_daemon():
        def hold():
            try:
                held["result"] = k.prepare([("default", "hold-1", "uid-hold")], "v1", timeout=60)
            except grpc.RpcError as e:
                held["result"] = e.code()
        t = threading.Thread(target=hold)
        t.start()
        # Wait until the daemon holds it: a second call is answered after the first arrived.
        k.unprepare([("default", "x", "uid-x")], "v1")

    rc = d.stop()
    check(rc == 0, "SIGTERM with calls in flight gives a clean exit (status %s)" % rc)
    for s in streams:
        try:
            for _ in s:
                pass
            ended = "OK"
        except grpc.RpcError as e:
            ended = e.code().name
        check(ended in ("OK", "CANCELLED", "UNAVAILABLE"), "a health stream ends with %s" % ended)
    if not is_real_daemon():
        t.join(60)
        check(held.get("result") in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED),
              "the held prepare is answered %s" % held.get("result"))
    check(not os.path.exists(d.reg_sock) and not os.path.exists(d.dra_sock), "our sockets are removed")
    check("exited cleanly" in d.output() or is_real_daemon(), "the server was freed, not abandoned")
    stalled.close()
    for c in idle:
        c.close()
    k.close()
