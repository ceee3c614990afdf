#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The real daemon's prepare path: kubelet simulator (gRPC) -> hami-dra-plugin (mock GPUs,
mknod fixtures) -> fake API server over TLS on loopback. Prepare+unprepare pairs,
sequential and with 16 concurrent clients, with 10 and then 5,000 claims already prepared.
Reports p50/p99 pair latency, pairs/s, and the daemon's CPU time per pair from
/proc/<pid>/task/*/schedstat, so the Python clients' cost is not counted.

  sudo bench/bench-prepare-daemon.py [pairs] [claims]     (needs root for mknod)
Run from the source tree with HAMI_DRA_BUILD_ROOT pointing at the build directory.
"""

import atexit
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

SRC = os.environ.get("HAMI_DRA_SOURCE_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
sys.path.insert(0, os.path.join(SRC, "bench"))
os.environ.setdefault("HAMI_DRA_BUILD_ROOT", os.path.join(SRC, "build"))

PAIRS = int(sys.argv[1]) if len(sys.argv) > 1 else 300
LARGE = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
sys.argv = sys.argv[:1]   # harness.py reads argv[1] as the daemon binary

from daemonbench import cpu_seconds, fake_get_rate  # noqa: E402
from fakeapi import FakeApiServer, prepare_daemon_root  # noqa: E402
from harness import DRIVER, Daemon, sim  # noqa: E402

NODE = "test-node"


def claim_obj(name, uid, i):
    share = "6f1c2f1e-0000-4000-8000-%012x" % i
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
            "metadata": {"name": name, "namespace": "default", "uid": uid},
            "status": {"allocation": {"devices": {"results": [
                {"request": "gpu", "driver": DRIVER, "pool": NODE, "device": "hami-gpu-%d" % (i % 8),
                 "shareID": share, "consumedCapacity": {"memory": "64Mi", "cores": "1"}}]}}}}


def spread(clients, n, work):
    """Call work(i) n times in all from `clients` threads, i being the calling thread's index
    (each client keeps its own claim)."""
    left = [n]
    lock = threading.Lock()

    def client(i):
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            work(i)

    ts = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def floor(k, d, pid, calls=3000):
    """What the daemon spends on a call that does no work, from the same simulator: GetInfo
    (answered on gRPC's completion-queue thread) and NodeUnprepareResources of a claim it
    does not know (through the main loop, nothing to do). A pair is two calls."""
    s = sim.stubs()
    ch = sim._channel(d.reg_sock)
    stub = s.pluginregistration_pb2_grpc.RegistrationStub(ch)
    unknown = ("default", "not-prepared", str(uuid.uuid4()))
    rows = []
    for name, call in (("GetInfo", lambda: stub.GetInfo(s.pluginregistration_pb2.InfoRequest(), timeout=10)),
                       ("unprepare, unknown claim", lambda: k.unprepare([unknown]))):
        for clients in (1, 16):
            cpu0 = cpu_seconds(pid)
            spread(clients, calls, lambda i: call())
            rows.append(("%s, %d client%s" % (name, clients, "s" if clients > 1 else ""),
                         (cpu_seconds(pid) - cpu0) / calls * 1e6))
    ch.close()
    return rows


def main():
    tmp = tempfile.mkdtemp(prefix="hami-bench-prepare-")
    atexit.register(shutil.rmtree, tmp, True)
    fake = FakeApiServer(tmp, NODE, log=False)
    atexit.register(fake.stop)
    put = fake.put
    kc = fake.write_kubeconfig()
    claims = []
    for i in range(LARGE + 16):
        c = ("default", "bench-%d" % i, str(uuid.uuid4()))
        put(claim_obj(c[1], c[2], i))
        claims.append(c)

    d = Daemon(root=os.path.join(tmp, "daemon"))
    # The default log level: every prepare and unprepare writes its audit entry, as in production.
    # Under a profiler, no sandbox: valgrind's own system calls are not on the allow list.
    env = prepare_daemon_root(d, kc, extra="[Sandbox]\nEnabled=false\n" if os.environ.get("HAMI_BENCH_PREFIX") else "")
    # HAMI_BENCH_PREFIX="valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out" profiles the daemon
    d.start(env=env, prefix=os.environ.get("HAMI_BENCH_PREFIX", "").split())
    k = d.kubelet()
    k.register(DRIVER)
    pid = d.proc.pid

    def run(clients, pairs):
        lat = []

        def pair(i):
            c = claims[LARGE + i]
            t = time.monotonic()
            r = k.prepare([c])[c[2]]
            assert not r.error, r.error
            r = k.unprepare([c])[c[2]]
            assert not r.error, r.error
            lat.append((time.monotonic() - t) * 1e6)

        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        spread(clients, pairs, pair)
        el = time.monotonic() - t0
        lat.sort()
        return (statistics.median(lat), lat[int(len(lat) * 0.99)], pairs / el,
                (cpu_seconds(pid) - cpu0) / pairs * 1e6)

    # warm-up, not measured: the first burst of 16 opens the daemon's connections to the fake
    # (one TLS handshake each) and starts the fake's and the simulator's threads
    run(16, 64)
    rows = []
    prepared = 0
    for target in (10, LARGE):
        for i in range(prepared, target, 64):
            batch = claims[i:min(target, i + 64)]
            res = k.prepare(batch)
            errors = [r.error for r in res.values() if r.error]
            assert not errors, errors[:3]
        prepared = target
        for clients in (1, 16):
            rows.append(("%s, %d prepared" % ("sequential" if clients == 1 else "16 clients", target),
                         run(clients, PAIRS)))
    floor_rows = floor(k, d, pid)
    d.stop()
    fake_rows = [(clients, fake_get_rate(tmp, fake.port, claims, clients)) for clients in (1, 4, 16)]
    fake.stop()
    subprocess.run(["rm", "-rf", tmp])

    print("hami-dra-plugin prepare+unprepare through gRPC and the fake API server (TLS, loopback), %d pairs/row"
          % PAIRS)
    print("%-28s %10s %10s %9s %14s" % ("scenario", "p50 us", "p99 us", "pairs/s", "daemon cpu us"))
    for name, (p50, p99, rate, cpu) in rows:
        print("%-28s %10.0f %10.0f %9.0f %14.0f" % (name, p50, p99, rate, cpu))
    print("calls that do no work: daemon cpu us per call (a pair is two calls)")
    for name, cpu in floor_rows:
        print("%-34s %8.0f" % (name, cpu))
    print("the fake API server alone (curl, kept-alive TLS): claim GETs/s")
    for clients, rate in fake_rows:
        print("%-28s %9.0f" % ("%d client%s" % (clients, "s" if clients > 1 else ""), rate))


main()
