#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""One reconciliation pass over many prepared claims: the real daemon (mock GPUs, mknod
fixtures) with N claims prepared, each reserved for a live pod (a pass asks two GETs per
claim: the claim and its pod), against the fake API server over TLS on loopback.

Reports each pass's duration (from the daemon's debug log), the daemon's CPU time per
pass (/proc/<pid>/task/*/schedstat), the GETs/s a pass reaches against what curl(1) gets
from the same fake (8 kept-alive connections, as many as a pass keeps in flight), the cost at start of comparing every
claim's CDI spec with the driver files, and what a pass does to the kubelet: prepare+unprepare pairs with reconciliation off (the baseline)
and while passes run back to back (ReconcileIntervalSec=1, switched on by a reload).

  sudo bench/bench-reconcile.py [claims] [passes] [pairs]     (needs root for mknod)
Run from the source tree with HAMI_DRA_BUILD_ROOT pointing at the build directory.
"""

import atexit
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid

SRC = os.environ.get("HAMI_DRA_SOURCE_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
sys.path.insert(0, os.path.join(SRC, "bench"))
os.environ.setdefault("HAMI_DRA_BUILD_ROOT", os.path.join(SRC, "build"))

CLAIMS = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
PASSES = int(sys.argv[2]) if len(sys.argv) > 2 else 3
PAIRS = int(sys.argv[3]) if len(sys.argv) > 3 else 200
sys.argv = sys.argv[:1]   # harness.py reads argv[1] as the daemon binary

from daemonbench import cpu_seconds, fake_get_rate  # noqa: E402
from fakeapi import FakeApiServer, driver_files, prepare_daemon_root  # noqa: E402
from harness import DRIVER, Daemon  # noqa: E402

NODE = "test-node"
PASS_RE = re.compile(r"Reconciliation pass over (\d+) claim\(s\) done in (\d+) ms")
COMPARE_RE = re.compile(r"Compared the CDI specs of (\d+) claim\(s\) with the driver files in (\d+) ms")


def claim_obj(name, uid, i, pod):
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
            "metadata": {"name": name, "namespace": "default", "uid": uid},
            "status": {"allocation": {"devices": {"results": [
                {"request": "gpu", "driver": DRIVER, "pool": NODE, "device": "hami-gpu-%d" % (i % 8),
                 "shareID": "6f1c2f1e-0000-4000-8000-%012x" % i,
                 "consumedCapacity": {"memory": "64Mi", "cores": "1"}}]}},
                       "reservedFor": [{"resource": "pods", "name": pod["metadata"]["name"],
                                        "uid": pod["metadata"]["uid"]}]}}


def pairs(k, claims, n):
    lat = []
    for i in range(n):
        c = claims[i % len(claims)]
        t = time.monotonic()
        r = k.prepare([c])[c[2]]
        assert not r.error, r.error
        r = k.unprepare([c])[c[2]]
        assert not r.error, r.error
        lat.append((time.monotonic() - t) * 1e6)
    lat.sort()
    return statistics.median(lat), lat[int(len(lat) * 0.99)]


def main():
    tmp = tempfile.mkdtemp(prefix="hami-bench-reconcile-")
    atexit.register(shutil.rmtree, tmp, True)
    fake = FakeApiServer(tmp, NODE, log=False)
    atexit.register(fake.stop)
    kc = fake.write_kubeconfig()
    claims, spare = [], []
    for i in range(CLAIMS + 4):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pod-%d" % i, "namespace": "default",
                                                              "uid": str(uuid.uuid4())}, "spec": {"nodeName": NODE}}
        c = ("default", "bench-%d" % i, str(uuid.uuid4()))
        fake.post("/pods", pod)
        fake.put(claim_obj(c[1], c[2], i, pod))
        (claims if i < CLAIMS else spare).append(c)

    d = Daemon(root=os.path.join(tmp, "daemon"))
    env = prepare_daemon_root(d, kc, plugin="ReconcileIntervalSec=0\nLogLevel=debug\n")
    driver_files(d.root, "550.54.15")
    d.start(env=env)
    k = d.kubelet()
    k.register(DRIVER)
    pid = d.proc.pid
    for i in range(0, CLAIMS, 64):
        res = k.prepare(claims[i:i + 64])
        errors = [r.error for r in res.values() if r.error]
        assert not errors, errors[:3]

    pairs(k, spare, 20)   # warm-up
    off = pairs(k, spare, PAIRS)

    # Reconciliation on, passes back to back (the next one starts at once after a pass that
    # took longer than the interval, or a second later).
    conf = os.path.join(d.root, "hami-dra.conf")
    with open(conf) as f:
        text = f.read()
    with open(conf, "w") as f:
        f.write(text.replace("ReconcileIntervalSec=0", "ReconcileIntervalSec=1"))
    log_mark = len(d.output())
    d.signal(signal.SIGHUP)

    def full_passes():
        return [(int(n), int(ms)) for n, ms in PASS_RE.findall(d.output()[log_mark:]) if int(n) >= CLAIMS]

    def wait_passes(n):
        deadline = time.monotonic() + 600
        while len(full_passes()) < n:
            assert time.monotonic() < deadline and d.alive(), "the passes did not finish"
            time.sleep(0.05)

    wait_passes(1)   # the first one, not measured: it opens the connections
    cpu0 = cpu_seconds(pid)
    wait_passes(1 + PASSES)
    cpu = cpu_seconds(pid) - cpu0
    on = pairs(k, spare, PAIRS)   # while the next passes run
    out = d.output()[log_mark:]
    passes = full_passes()[1:1 + PASSES]
    d.stop()

    # A start with the claims prepared: every spec is compared with the driver files once,
    # unless host-driver.json says they were already compared with these very files.
    compare_ms = []
    for record in (False, True):
        if not record:
            os.unlink(os.path.join(d.root, "state", "host-driver.json"))
        log_mark = len(d.output())
        d.start(env=env)
        deadline = time.monotonic() + 120
        while not COMPARE_RE.search(d.output()[log_mark:]):
            assert time.monotonic() < deadline and d.alive(), "the start-up comparison did not finish"
            time.sleep(0.05)
        compare_ms.append(int(COMPARE_RE.search(d.output()[log_mark:]).group(2)))
        d.stop()
    cleaned = out.count("Cleaned up claim")
    rate = fake_get_rate(tmp, fake.port, claims, 8, 5000)
    fake.stop()

    ms = sorted(p[1] for p in passes)
    n_pass = len(passes)
    gets = 2 * CLAIMS
    print("one reconciliation pass over %d prepared claims (claim + pod GET each), fake API server over TLS"
          % CLAIMS)
    print("%-40s %10s" % ("passes measured", n_pass))
    print("%-40s %10d" % ("pass, median ms", statistics.median(ms)))
    print("%-40s %10d" % ("pass, p99 (max) ms", ms[-1]))
    print("%-40s %10.0f" % ("GETs/s reached by a pass", gets / (statistics.median(ms) / 1000)))
    print("%-40s %10.0f" % ("curl, 8 connections, GETs/s", rate))
    print("%-40s %10.2f" % ("ratio (pass rate / curl's)", gets / (statistics.median(ms) / 1000) / rate))
    print("%-40s %10.0f" % ("daemon CPU ms per pass", cpu * 1000 / max(n_pass, 1)))
    print("%-40s %10.1f" % ("daemon CPU us per claim", cpu * 1e6 / max(n_pass, 1) / CLAIMS))
    print("%-40s %10d" % ("claims cleaned up (must be 0)", cleaned))
    print("%-40s %10d" % ("start: every spec vs the driver, ms", compare_ms[0]))
    print("%-40s %10d" % ("start: the same, host-driver.json, ms", compare_ms[1]))
    print("kubelet prepare+unprepare pairs, %d each" % PAIRS)
    print("%-40s %10s %10s %8s" % ("scenario", "p50 us", "p99 us", "ratio"))
    print("%-40s %10.0f %10.0f %8.2f" % ("reconciliation off (baseline)", off[0], off[1], 1.0))
    print("%-40s %10.0f %10.0f %8.2f" % ("during passes", on[0], on[1], on[0] / off[0]))


main()
