#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Benchmark: `hamictl top --once` with 5,000 prepared claims, against `hamictl claims`
(the baseline) measured in the same run, and the D-Bus calls behind them.

The real bus objects (tests/bus-test-daemon) serve N claims on one GPU through a private
dbus-daemon. Each claim's shared-region file is a real region (1 device, 16 slots, one
slot ACTIVE with 1 GiB reserved by a process that is gone: checked with F_OFD_GETLK and
not counted; and the monitor's measurement), read with the daemon's own validating
reader. The daemon runs with its reuse of usage readings off, so every ListUsage reads
N files, as each refresh of `hamictl top` (1 s apart, the reuse lasts 500 ms) does; a
last row restarts it as shipped (500 ms) and runs `hamictl top --once` back to back, so
most calls are served from the reuse. The one-Get-per-claim row is what a client pays
without ListUsage: 5,000 round trips (from Python, whose own cost is part of it).
Prints median and p99 per row and the ratio of each median to the baseline's.

Usage: bench-top.py [BUILD_DIR] [N_CLAIMS] [RUNS]   (defaults: build, 5000, 20)"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import dbus

BUILD = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("HAMI_DRA_BUILD_ROOT", "build")
N = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
RUNS = int(sys.argv[3]) if len(sys.argv) > 3 else 20
DAEMON = os.path.join(BUILD, "tests", "bus-test-daemon")
HAMICTL = os.path.join(BUILD, "src", "hamictl")
WRITER = os.path.join(BUILD, "tests", "region-writer")
GIB = 1 << 30

BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:path={dir}/bus</listen><auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*"/><allow own="*"/><allow user="*"/>
<allow receive_type="method_call"/><allow receive_type="method_return"/><allow receive_type="error"/>
<allow receive_type="signal"/></policy></busconfig>
"""


def template_region(tmp):
    """One real region: a process reserved 1 GiB and exited; the monitor measured it."""
    path = os.path.join(tmp, "template.region")
    p = subprocess.run([WRITER, path], input="create 1\nattach\nreserve 0 0 %d\nmeasure 0 250 1 %d\n" % (GIB, GIB // 4),
                       capture_output=True, text=True, check=True)
    assert p.stdout.split("\n")[:4] == ["ok", "ok 0", "ok", "ok"], p.stdout
    with open(path, "rb") as f:
        return f.read()


def model(tmp):
    data = template_region(tmp)
    claims = []
    for i in range(N):
        region = os.path.join(tmp, "regions", "r%d" % i)
        with open(region, "wb") as f:
            f.write(data)
        claims.append({"uid": "%08x-9f4e-4c61-8d3a-%012x" % (i, i), "namespace": "bench", "name": "claim-%d" % i,
                       "sharedRegion": region, "preparedUsec": 1763900000000000,
                       "devices": [{"device": "hami-gpu-0", "memory": 4 * GIB, "cores": 30}]})
    path = os.path.join(tmp, "model.json")
    with open(path, "w") as f:
        json.dump({"properties": {"driverName": "hami-core-gpu.project-hami.io", "nodeName": "bench",
                                  "state": "ready"},
                   "devices": [{"name": "hami-gpu-0", "uuid": "GPU-00000000-0000-0000-0000-000000000000",
                                "model": "NVIDIA A10", "memoryTotal": 24 * GIB, "cores": 100}],
                   "claims": claims}, f)
    return path


def timed(fn, runs):
    fn()  # warm up
    t = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        t.append((time.perf_counter() - start) * 1000)
    t.sort()
    return statistics.median(t), t[min(len(t) - 1, int(len(t) * 0.99))]


def main():
    for exe in (DAEMON, HAMICTL, WRITER):
        if not os.access(exe, os.X_OK):
            print("%s is not built" % exe)
            return 1
    tmp = tempfile.mkdtemp(prefix="bench-top.")
    procs = []
    try:
        os.mkdir(os.path.join(tmp, "regions"))
        with open(os.path.join(tmp, "bus.conf"), "w") as f:
            f.write(BUS_CONF.format(dir=tmp))
        r, w = os.pipe()
        procs.append(subprocess.Popen(["dbus-daemon", "--config-file=" + os.path.join(tmp, "bus.conf"), "--nofork",
                                       "--nopidfile", "--print-address=%d" % w], pass_fds=[w]))
        os.close(w)
        with os.fdopen(r) as f:
            address = f.readline().strip()
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=address)
        bus = dbus.bus.BusConnection(address)
        path = model(tmp)

        manager = [None]

        def start(cache_usec):
            daemon = subprocess.Popen([DAEMON, path], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                      env=dict(env, BUS_TEST_USAGE_CACHE_USEC=cache_usec))
            procs.append(daemon)
            deadline = time.monotonic() + 60
            while not bus.name_has_owner("org.projecthami.Dra1"):
                if time.monotonic() > deadline:
                    raise RuntimeError("bus-test-daemon never appeared")
                time.sleep(0.05)
            manager[0] = bus.get_object("org.projecthami.Dra1", "/org/projecthami/Dra1", introspect=False)
            return daemon

        def stop(daemon):
            daemon.terminate()
            daemon.wait(30)
            while bus.name_has_owner("org.projecthami.Dra1"):
                time.sleep(0.05)

        def hamictl(*args):
            def run():
                subprocess.run([HAMICTL, "--timeout=30"] + list(args), stdout=subprocess.DEVNULL, env=env,
                               check=True)
            return run

        def call(method):
            return lambda: manager[0].get_dbus_method(method, "org.projecthami.Dra1.Manager")(timeout=60)

        daemon = start("0")
        paths = [str(c[0]) for c in call("ListClaims")()]
        check = call("ListUsage")()
        assert len(check) == N and tuple(check[0][4][0]) == ("hami-gpu-0", GIB // 4, 4 * GIB, 250, 30, 0, 1, 0), \
            check[0][4][0]

        def get_each():
            for p in paths:
                bus.get_object("org.projecthami.Dra1", p, introspect=False).Get(
                    "org.projecthami.Dra1.Claim", "Usage", dbus_interface="org.freedesktop.DBus.Properties")

        rows = [
            ("hamictl claims (baseline)", RUNS, timed(hamictl("claims"), RUNS)),
            ("hamictl top --once", RUNS, timed(hamictl("top", "--once"), RUNS)),
            ("hamictl --json top --once", RUNS, timed(hamictl("--json", "top", "--once"), RUNS)),
            ("Get Usage of each claim (python-dbus)", 3, timed(get_each, 3)),
        ]
        stop(daemon)
        start("500000")
        rows.append(("hamictl top --once, readings reused", RUNS, timed(hamictl("top", "--once"), RUNS)))
        base = rows[0][2][0]
        print("%d claims, one GPU, real regions; %d runs per row (3 for one Get per claim)" % (N, RUNS))
        print("%-40s %5s %9s %9s %8s" % ("what", "n", "p50 ms", "p99 ms", "p50 x"))
        for name, n, (p50, p99) in rows:
            print("%-40s %5d %9.1f %9.1f %7.1fx" % (name, n, p50, p99, p50 / base))
        return 0
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
