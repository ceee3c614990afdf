#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Crash safety of the real daemon: kubelet simulators storm it with prepares and
unprepares of a dozen claims (read from the fake API server) while it is SIGKILLed at
random moments, at least 50 times. After each restart, once it serves again, every
claim is fully prepared (checkpoint, CDI spec, shared region) or fully absent, and a
retried call converges. Every tenth round is a "reboot": a new boot ID cannot be faked
for a real process, so the CDI directory is emptied (as a tmpfs /run would be) and the
restart must write the specs back. HAMI_CRASH_KILLS sets the rounds (default 60)."""

import atexit
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from fakeapi import FakeApiServer, claim_object, claim_result, prepare_daemon_root
from harness import DRIVER, Daemon, check, is_real_daemon

SRC = os.environ.get("HAMI_DRA_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "../.."))
NODE = "test-node"
KILLS = int(os.environ.get("HAMI_CRASH_KILLS", "60"))

if not is_real_daemon():
    print("SKIP: needs the real daemon")
    sys.exit(77)
if not os.path.exists(os.path.join(SRC, "tests/fakes/fake-apiserver.py")):
    print("SKIP: needs the fake API server and the API client (kube branch)")
    sys.exit(77)
if os.geteuid() != 0:
    print("SKIP: mknod fixtures need root")
    sys.exit(77)

tmp = tempfile.mkdtemp(prefix="hami-prepare-crash-")
atexit.register(shutil.rmtree, tmp, True)
fake = FakeApiServer(tmp, NODE, log=False)
atexit.register(fake.stop)
put = fake.put
kubeconfig = fake.write_kubeconfig()

claims = []
for i in range(12):
    c = ("default", "storm-%d" % i, str(uuid.uuid4()))
    put(claim_object(c[1], c[2], [claim_result(DRIVER, NODE, "hami-gpu-%d" % (i % 4),
                                               "6f1c2f1e-0000-4000-8000-%012x" % i, "1Gi", "5")]))
    claims.append(c)

d = Daemon(root=os.path.join(tmp, "daemon"))
env = prepare_daemon_root(d, kubeconfig, plugin="LogLevel=warning\n")
cdi = os.path.join(d.root, "cdi")
ckpt_dir = os.path.join(d.root, "state", "checkpoints")
claims_dir = os.path.join(d.root, "state", "claims")


def state_of(c):
    uid = c[2]
    ckpt = os.path.exists(os.path.join(ckpt_dir, uid + ".ckpt"))
    spec = os.path.exists(os.path.join(cdi, "k8s.%s-claim_%s.json" % (DRIVER, uid)))
    cache = os.path.exists(os.path.join(claims_dir, uid, "vgpu", "vgpu.cache"))
    dir_ = os.path.exists(os.path.join(claims_dir, uid))
    if ckpt and spec and cache:
        return 1
    if not ckpt and not spec and not dir_:
        return 0
    check(False, "claim %s half there: checkpoint %s spec %s cache %s dir %s" % (uid, ckpt, spec, cache, dir_))


def storm(k, stop, seed):
    rnd = random.Random(seed)
    while not stop.is_set():
        c = rnd.choice(claims)
        try:
            if rnd.random() < 0.5:
                k.prepare([c], timeout=5)
            else:
                k.unprepare([c], timeout=5)
        except Exception:
            time.sleep(0.005)  # the daemon is dead or restarting


rnd = random.Random()
seen = [0, 0]
with d:
    for round_ in range(KILLS):
        d.start(env=env)
        k = d.kubelet()
        k.register(DRIVER)
        # Served again: every claim is whole or gone (recovery ran before the sockets).
        states = [state_of(c) for c in claims]
        for s in states:
            seen[s] += 1
        stop = threading.Event()
        threads = [threading.Thread(target=storm, args=(k, stop, rnd.random())) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(rnd.uniform(0.02, 0.3))
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        stop.set()
        for t in threads:
            t.join()
        d.log.close()
        if round_ % 10 == 9:
            for name in os.listdir(cdi):
                os.unlink(os.path.join(cdi, name))
    check(True, "%d SIGKILLs: never a half-prepared claim (%d seen prepared, %d absent)" % (KILLS, seen[1], seen[0]))

    # Converge: the kubelet retries, whatever it last asked.
    d.start(env=env)
    k = d.kubelet()
    k.register(DRIVER)
    for c in claims:
        if rnd.random() < 0.5:
            r = k.prepare([c])[c[2]]
            check(not r.error and state_of(c) == 1, "a retried prepare of %s converges" % c[1])
        else:
            r = k.unprepare([c])[c[2]]
            check(not r.error and state_of(c) == 0, "a retried unprepare of %s converges" % c[1])
    check(d.stop() == 0, "the daemon stops cleanly")
    check(seen[1] > 0 and seen[0] > 0, "the storm left both prepared and absent claims behind")

fake.stop()
subprocess.run(["rm", "-rf", tmp])
