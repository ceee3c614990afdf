#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Restarts and upgrades under load lose no call: 16 kubelet-like clients on long-lived
connections (tests/restart-load.py) loop GetInfo (1 s deadline), prepare and unprepare
against the real daemon while it is restarted RESTARTS times (20 by default) the way
systemd does it: we hold the listening sockets, SIGTERM the running instance, wait for
it to exit and start the next with LISTEN_FDS. Every fifth start is an upgrade: another
binary file (a copy). Every call must succeed within its deadline."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

from fakeapi import FakeApiServer, claim_object, claim_result, prepare_daemon_root
from harness import DRIVER, SOURCE_ROOT, Daemon, check, fail, is_real_daemon, listening_socket

NODE = "test-node"
CLIENTS = 16
RESTARTS = int(os.environ.get("RESTARTS", "20"))

if not is_real_daemon():
    print("SKIP: needs the real daemon")
    sys.exit(77)
if os.geteuid() != 0:
    print("SKIP: mknod fixtures need root")
    sys.exit(77)

_spec = importlib.util.spec_from_file_location("restart_load", os.path.join(SOURCE_ROOT, "tests", "restart-load.py"))
restart_load = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(restart_load)

tmp = tempfile.mkdtemp(prefix="hami-restart-load-")
fake = FakeApiServer(tmp, NODE, log=False)
try:
    kubeconfig = fake.write_kubeconfig()
    claims = []
    for i in range(CLIENTS):
        c = ("default", "load-%d" % i, str(uuid.uuid4()))
        fake.put(claim_object(c[1], c[2], [claim_result(DRIVER, NODE, "hami-gpu-%d" % (i % 8), str(uuid.uuid4()),
                                                         "1Gi", "10")]))
        claims.append(c)

    with Daemon(root=os.path.join(tmp, "daemon")) as d:
        env = prepare_daemon_root(d, kubeconfig)
        os.makedirs(d.registry_dir)
        os.makedirs(os.path.dirname(d.dra_sock))
        reg = listening_socket(d.reg_sock)
        dra = listening_socket(d.dra_sock)
        hi_reg = os.dup2(reg.fileno(), 100)
        hi_dra = os.dup2(dra.fileno(), 101)
        upgraded = os.path.join(tmp, "hami-dra-plugin.upgraded")

        def child_setup():
            os.dup2(hi_reg, 3)
            os.dup2(hi_dra, 4)

        def start(binary):
            argv = d.argv()
            argv[0] = binary
            e = dict(env, LISTEN_FDS="2", LISTEN_FDNAMES="registration:dra")
            d.log = open(d.log_path, "ab")
            d.proc = subprocess.Popen(["sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"'] + argv, env=e,
                                      stdout=d.log, stderr=subprocess.STDOUT, pass_fds=(3, 4),
                                      preexec_fn=child_setup)

        start(d.binary)
        load = restart_load.Load(d.reg_sock, claims)
        load.start()
        stops = []
        for n in range(1, RESTARTS + 1):
            before = load.calls()
            while load.calls() - before < 3 * CLIENTS:   # every instance serves each client
                if not d.alive():
                    fail("restart %d: the daemon died:\n%s" % (n, d.output()[-3000:]))
                time.sleep(0.02)
            binary = d.binary
            if n % 5 == 0:   # an upgrade: the new file is in place, then the restart
                shutil.copy2(d.binary, upgraded + ".new")
                os.rename(upgraded + ".new", upgraded)
                binary = upgraded
            t0 = time.monotonic()
            rc = d.stop()
            stops.append(time.monotonic() - t0)
            if rc != 0:
                fail("restart %d: the instance exited with %s:\n%s" % (n, rc, d.output()[-3000:]))
            start(binary)
        time.sleep(1)
        summary = load.stop()
        print("# " + json.dumps(summary))
        print("# stop took: median %.3f s, max %.3f s" % (sorted(stops)[len(stops) // 2], max(stops)))
        check(summary["stuck_clients"] == 0, "every client finished")
        check(min(summary["calls"].values()) >= RESTARTS * CLIENTS,
              "%d restarts under load: %s calls" % (RESTARTS, summary["calls"]))
        if summary["failed"]:
            print(d.output()[-4000:])
        check(summary["missed_deadlines"] == 0, "no call missed its deadline (slowest %s)" % summary["slowest_s"])
        check(summary["failed"] == 0, "no call failed: %s" % summary["failures"])
        check(d.stop() == 0, "the last instance exits cleanly")
        reg.close()
        dra.close()
finally:
    fake.stop()
    shutil.rmtree(tmp, ignore_errors=True)
