#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Benchmark: time from publisher start to "slice stored" with 8 and 64 mock GPUs, and
API writes across 100 restarts with unchanged devices (goal: 0 after the first).

Runs tests/kube-publisher-driver (API client + slice publisher on an sd-event loop, as
in the daemon) against tests/fakes/fake-apiserver.py over TLS on loopback.
Baseline, measured in the same run: a restart with 8 unchanged GPUs (GET node, LIST,
compare, zero writes). Usage: bench-apiserver.py [BUILD_DIR] [RUNS]"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("HAMI_DRA_SOURCE_ROOT", os.path.join(HERE, ".."))
if len(sys.argv) > 1:
    os.environ["HAMI_DRA_BUILD_ROOT"] = sys.argv[1]
import importlib.util  # noqa: E402

spec = importlib.util.spec_from_file_location("t", os.path.join(HERE, "..", "tests", "integration", "test-apiserver.py"))
t = importlib.util.module_from_spec(spec)
spec.loader.exec_module(t)

RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 20


def run(kc, gpus):
    start = time.monotonic()
    p = subprocess.run([t.DRIVER, "--kubeconfig", kc, "--gpus", str(gpus), "--exit-when-synced"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert p.returncode == 0
    return time.monotonic() - start


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def main():
    tmp = tempfile.mkdtemp(prefix="hami-bench-apiserver-")
    subprocess.run(["sh", t.MAKE_CERTS, tmp], check=True)
    fake = t.Fake(tmp)
    try:
        kc = t.kubeconfig(tmp, fake)
        rows = {}
        run(kc, 8)
        rows["restart, 8 GPUs, unchanged (baseline)"] = [run(kc, 8) for _ in range(RUNS)]
        for gpus in (8, 64):
            xs = []
            for _ in range(RUNS):
                fake.call("POST", "/delete-slices")
                xs.append(run(kc, gpus))
            rows["first publish, %d GPUs" % gpus] = xs
        base = statistics.median(rows["restart, 8 GPUs, unchanged (baseline)"])
        print("%-42s %10s %10s %8s" % ("start -> slice stored", "median ms", "p99 ms", "ratio"))
        for name, xs in rows.items():
            m = statistics.median(xs)
            print("%-42s %10.1f %10.1f %8.2f" % (name, m * 1000, pct(xs, 99) * 1000, m / base))

        fake.call("POST", "/delete-slices")
        before = fake.stats().get("writes", 0)
        run(kc, 8)
        first = fake.stats().get("writes", 0)
        for _ in range(100):
            run(kc, 8)
        after = fake.stats().get("writes", 0) - first
        print("\nAPI writes, 8 GPUs: first start %d; 100 restarts with unchanged devices %d (goal 0)"
              % (first - before, after))
        return 0 if after == 0 else 1
    finally:
        fake.stop()
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    sys.exit(main())
