#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Zero-downtime restart: like systemd, we hold the listening sockets and start the daemon
with LISTEN_FDS; calls made while it is down wait in the backlog and the next instance
serves them."""

import os
import threading

from harness import DRIVER, Daemon, HeldSockets, check, fail, sim

with Daemon() as d:
    held = HeldSockets(d)
    start = held.start

    start()
    k = d.kubelet()
    info = k.register(DRIVER)
    check(info.endpoint == d.dra_sock, "first instance serves the inherited sockets")
    k.close()

    for round_ in (1, 2):
        check(d.stop() == 0, "round %d: the running instance exits cleanly" % round_)
        check(os.path.exists(d.reg_sock) and os.path.exists(d.dra_sock), "round %d: socket files stay" % round_)

        results = {}

        def get_info():
            try:
                results["info"] = sim.Kubelet(d.reg_sock).get_info(timeout=30)
            except Exception as e:  # noqa: BLE001 - reported below
                results["info"] = e

        def prepare():
            try:
                kk = sim.Kubelet(d.reg_sock)
                kk.info = info
                results["prepare"] = kk.prepare([("default", "r", "uid-r%d" % round_)], "v1", timeout=30)
                kk.close()
            except Exception as e:  # noqa: BLE001
                results["prepare"] = e

        threads = [threading.Thread(target=get_info), threading.Thread(target=prepare)]
        for t in threads:
            t.start()
        threads[0].join(0.5)
        check(not results, "round %d: calls made while no daemon runs are waiting, not refused" % round_)
        start()
        for t in threads:
            t.join(60)
        if isinstance(results.get("info"), Exception) or isinstance(results.get("prepare"), Exception):
            fail("round %d: %r\n%s" % (round_, results, d.output()))
        check(results["info"] == info, "round %d: the waiting GetInfo is served by the new instance" % round_)
        check("uid-r%d" % round_ in results["prepare"], "round %d: the waiting prepare is served" % round_)

    check(d.stop() == 0, "final clean exit")
    held.close()
