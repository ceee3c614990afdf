#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""/metrics of the real daemon: hami-dra-plugin (mock GPUs, mknod fixtures, the fake API
server over TLS), socket-activated with a TCP socket named "metrics" as
hami-dra-metrics.socket passes it, scraped over HTTP on loopback (one kept-alive
connection, the body read whole). Rows, all in one run: the baseline (8 GPUs, no
claim), then 5,000 prepared claims scraped more than a second apart (every region read:
no usage monitor here, there is no NVML) and back to back (regions cached).

Reports scrape latency p50/p99 (client side, the body read included), body size, and the
daemon's CPU per scrape from /proc/<pid>/task/*/schedstat, less what it spends idle
(measured over 3 s before each row), so timers and the client are not counted.

  sudo bench/bench-metrics-daemon.py [claims] [scrapes]     (root for mknod; 5000, 100)
Run from the source tree with HAMI_DRA_BUILD_ROOT pointing at the build directory.
"""

import atexit
import http.client
import os
import shutil
import socket
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
SCRAPES = int(sys.argv[2]) if len(sys.argv) > 2 else 100
sys.argv = sys.argv[:1]   # harness.py reads argv[1] as the daemon binary

from daemonbench import cpu_seconds  # noqa: E402
from fakeapi import FakeApiServer, claim_object, claim_result, prepare_daemon_root  # noqa: E402
from harness import DRIVER, Daemon  # noqa: E402
from promserver import free_port  # noqa: E402

NODE = "test-node"


def daemon_pid(ssa_pid):
    """systemd-socket-activate execs the daemon in its child: the same PID."""
    return ssa_pid


def user_system(pid):
    """utime and stime of /proc/<pid>/stat, in seconds (10 ms ticks): the split."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def idle_rate(pid, seconds=3.0):
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def row(pid, port, n, gap):
    """n scrapes, gap seconds apart: latency p50/p99 (ms), bytes, daemon CPU per scrape (ms)."""
    idle = idle_rate(pid)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    lat, size = [], 0
    c0, t0, us0 = cpu_seconds(pid), time.monotonic(), user_system(pid)
    for _ in range(n):
        t = time.monotonic()
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        body = r.read()
        assert r.status == 200, r.status
        lat.append((time.monotonic() - t) * 1e3)
        size = len(body)
        if gap:
            time.sleep(gap)
    elapsed = time.monotonic() - t0
    cpu = (cpu_seconds(pid) - c0 - idle * elapsed) / n * 1e3
    us1 = user_system(pid)
    user, system = (us1[0] - us0[0]) / n * 1e3, (us1[1] - us0[1]) / n * 1e3
    conn.close()
    lat.sort()
    return statistics.median(lat), lat[min(len(lat) - 1, int(len(lat) * 0.99))], size, cpu, user, system


def main():
    tmp = tempfile.mkdtemp(prefix="hami-bench-metrics-")
    atexit.register(shutil.rmtree, tmp, True)
    fake = FakeApiServer(tmp, NODE, log=False)
    atexit.register(fake.stop)
    claims = []
    for i in range(CLAIMS):
        c = ("bench-ns-%d" % (i % 50), "bench-%d" % i, str(uuid.uuid4()))
        obj = claim_object(c[1], c[2], [claim_result(DRIVER, NODE, "hami-gpu-%d" % (i % 8),
                                                     "6f1c2f1e-0000-4000-8000-%012x" % i, "64Mi", "1")],
                           namespace=c[0])
        obj["status"]["reservedFor"] = [{"resource": "pods", "name": "pod-%d" % i, "uid": str(uuid.uuid4())}]
        fake.put(obj)
        claims.append(c)

    d = Daemon(root=os.path.join(tmp, "daemon"))
    env = prepare_daemon_root(d, fake.write_kubeconfig())
    os.makedirs(os.path.dirname(d.reg_sock))
    os.makedirs(os.path.dirname(d.dra_sock))
    port = free_port()
    d.start(env=env, wait=False, prefix=[shutil.which("systemd-socket-activate"), "-l", d.reg_sock, "-l", d.dra_sock,
                                         "-l", "127.0.0.1:%d" % port, "--fdname=registration:dra:metrics",
                                         "-E", "HAMI_DRA_DEV_ROOT", "-E", "HAMI_DRA_DRIVER_ROOT"])
    d.wait_socket(d.reg_sock, connect=False)
    k = d.kubelet()
    k.get_info(timeout=30)
    k.register(DRIVER)
    pid = daemon_pid(d.proc.pid)
    time.sleep(1)

    rows = [("baseline: 8 GPUs, no claims", row(pid, port, SCRAPES, 0))]
    for i in range(0, CLAIMS, 64):
        res = k.prepare(claims[i:i + 64])
        errors = [r.error for r in res.values() if r.error]
        assert not errors, errors[:3]
    n_slow = max(10, SCRAPES // 5)
    rows.append(("%d claims, every region read (1.1 s apart)" % CLAIMS, row(pid, port, n_slow, 1.1)))
    rows.append(("%d claims, back to back (regions cached)" % CLAIMS, row(pid, port, SCRAPES, 0)))
    k.close()
    d.stop()
    fake.stop()

    print("hami-dra-plugin GET /metrics over HTTP on loopback, 8 mock GPUs")
    print("%-48s %9s %9s %8s %10s %14s %16s" % ("scrape", "p50 ms", "p99 ms", "x base", "body MB", "daemon CPU ms",
                                                 "user/system ms"))
    base = rows[0][1][0]
    for name, (p50, p99, size, cpu, user, system) in rows:
        print("%-48s %9.2f %9.2f %7.1fx %10.2f %14.2f %8.1f/%-7.1f" % (name, p50, p99, p50 / base, size / 1e6, cpu,
                                                                       user, system))


main()
