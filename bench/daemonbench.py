# SPDX-License-Identifier: Apache-2.0
"""Shared by the benchmarks that drive the real daemon against the fake API server
(bench-prepare-daemon.py, bench-reconcile.py)."""

import os
import subprocess
import time


def cpu_seconds(pid):
    """The daemon's CPU time, all threads, in ns from /proc/<pid>/task/*/schedstat (what
    utime+stime in /proc/<pid>/stat are scaled from, there rounded to 10 ms ticks)."""
    ns = 0
    for task in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, task)) as f:
                ns += int(f.read().split()[0])
        except OSError:
            pass   # a thread that just ended
    return ns / 1e9


def fake_get_rate(tmp, port, claims, clients, n=1000):
    """The fake's own limit: claim GETs from curl(1) (C, kept-alive TLS connections, as
    the daemon does), `clients` in parallel, with nothing else running. claims: (namespace,
    name, uid) tuples; tmp holds the fake's certificates."""
    cfg = os.path.join(tmp, "curl.cfg")
    with open(cfg, "w") as f:
        for i in range(n):
            f.write('url = "https://127.0.0.1:%d/apis/resource.k8s.io/v1/namespaces/default/resourceclaims/%s"\n'
                    'output = "/dev/null"\n' % (port, claims[i % len(claims)][1]))
    argv = ["curl", "-sSf", "--no-progress-meter", "--cacert", os.path.join(tmp, "ca.crt"), "--cert",
            os.path.join(tmp, "client.crt"), "--key", os.path.join(tmp, "client.key"), "-K", cfg]
    if clients > 1:
        argv += ["-Z", "--parallel-max", str(clients)]
    t0 = time.monotonic()
    subprocess.run(argv, check=True)
    return n / (time.monotonic() - t0)
