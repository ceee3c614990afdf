# SPDX-License-Identifier: Apache-2.0
"""Restarts under kubelet-like load, shared by test-restart-load.py and
bench/bench-restart.py: the real daemon (mock GPUs) reading claims from the strict fake
API server, started the way systemd starts it (HeldSockets), N clients of
tests/restart-load.py, and `restarts` SIGTERM-and-start cycles, every fifth an upgrade
(a new binary file put in place first)."""

import importlib.util
import os
import shutil
import tempfile
import time
import uuid

from fakeapi import FakeApiServer, claim_object, claim_result, prepare_daemon_root
from harness import DRIVER, SOURCE_ROOT, Daemon, HeldSockets, fail

NODE = "test-node"

_spec = importlib.util.spec_from_file_location("restart_load", os.path.join(SOURCE_ROOT, "tests", "restart-load.py"))
restart_load = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(restart_load)


def run(restarts, clients=16, seconds=None):
    """Returns (the load's summary, the seconds each stop took). With restarts=0 the load
    runs `seconds` without any: the baseline."""
    tmp = tempfile.mkdtemp(prefix="hami-restart-load-")
    fake = FakeApiServer(tmp, NODE, log=False)
    try:
        kubeconfig = fake.write_kubeconfig()
        claims = []
        for i in range(clients):
            c = ("default", "load-%d" % i, str(uuid.uuid4()))
            fake.put(claim_object(c[1], c[2], [claim_result(DRIVER, NODE, "hami-gpu-%d" % (i % 8),
                                                             str(uuid.uuid4()), "1Gi", "10")]))
            claims.append(c)
        with Daemon(root=os.path.join(tmp, "daemon")) as d:
            env = prepare_daemon_root(d, kubeconfig)
            held = HeldSockets(d)
            upgraded = os.path.join(tmp, "hami-dra-plugin.upgraded")
            held.start(d.binary, env)
            load = restart_load.Load(d.reg_sock, claims)
            load.start()
            stops = []
            for n in range(1, restarts + 1):
                before = load.calls()
                while load.calls() - before < 3 * clients:   # every instance serves each client
                    if not d.alive():
                        fail("restart %d: the daemon died:\n%s" % (n, d.output()[-3000:]))
                    time.sleep(0.02)
                binary = d.binary
                if n % 5 == 0:
                    shutil.copy2(d.binary, upgraded + ".new")
                    os.rename(upgraded + ".new", upgraded)
                    binary = upgraded
                t0 = time.monotonic()
                rc = d.stop()
                stops.append(time.monotonic() - t0)
                if rc != 0:
                    fail("restart %d: the instance exited with %s:\n%s" % (n, rc, d.output()[-3000:]))
                held.start(binary, env)
            time.sleep(seconds if restarts == 0 and seconds else 1)
            summary = load.stop()
            if summary["failed"]:
                print(d.output()[-4000:])
            rc = d.stop()
            held.close()
            if rc != 0:
                fail("the last instance exited with %s" % rc)
            return summary, stops
    finally:
        fake.stop()
        shutil.rmtree(tmp, ignore_errors=True)
