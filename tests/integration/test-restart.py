#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Zero-downtime restart: like systemd, we hold the listening sockets and start the daemon
with LISTEN_FDS; calls made while it is down wait in the backlog and the next instance
serves them."""

import os
import subprocess
import threading

from harness import DRIVER, Daemon, check, fail, listening_socket, sim

with Daemon() as d:
    reg = listening_socket(d.reg_sock)
    dra = listening_socket(d.dra_sock)
    hi_reg = os.dup2(reg.fileno(), 100)
    hi_dra = os.dup2(dra.fileno(), 101)

    def child_setup():
        os.dup2(hi_reg, 3)
        os.dup2(hi_dra, 4)

    def start():
        env = dict(os.environ, LISTEN_FDS="2", LISTEN_FDNAMES="registration:dra")
        env.pop("NOTIFY_SOCKET", None)
        d.log = open(d.log_path, "ab")
        d.proc = subprocess.Popen(["sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"'] + d.argv(), env=env,
                                  stdout=d.log, stderr=subprocess.STDOUT, pass_fds=(3, 4),
                                  preexec_fn=child_setup)

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
    reg.close()
    dra.close()
