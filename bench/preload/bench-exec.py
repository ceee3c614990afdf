#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""What /etc/ld.so.preload costs a program that never touches CUDA: the start and exit
of /bin/true, spawned N times without a preload and with each library given, the runs
interleaved so that the machine's load falls on all alike. Prints median and p99 in
microseconds and the ratio to no preload.

  bench-exec.py [-n N] LABEL=LIBRARY [LABEL=LIBRARY ...]
"""

import argparse
import os
import statistics
import time

PROGRAM = "/bin/true"


def spawn_once(env):
    t0 = time.perf_counter_ns()
    pid = os.posix_spawn(PROGRAM, [PROGRAM], env)
    _, status = os.waitpid(pid, 0)
    t1 = time.perf_counter_ns()
    if status != 0:
        raise SystemExit("%s failed under %s" % (PROGRAM, env.get("LD_PRELOAD", "no preload")))
    return (t1 - t0) / 1000.0


def p99(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=3000)
    ap.add_argument("libraries", nargs="+", metavar="LABEL=LIBRARY")
    a = ap.parse_args()
    base = {"PATH": "/usr/bin:/bin"}
    variants = [("no preload", base)]
    for item in a.libraries:
        label, lib = item.split("=", 1)
        variants.append((label, dict(base, LD_PRELOAD=os.path.abspath(lib))))
    times = {label: [] for label, _ in variants}
    for _ in range(50):  # warm the page cache
        for _, env in variants:
            spawn_once(env)
    for _ in range(a.n):
        for label, env in variants:
            times[label].append(spawn_once(env))
    base_median = statistics.median(times["no preload"])
    print("%-28s %12s %10s %8s" % ("%s, %d runs each" % (PROGRAM, a.n), "median µs", "p99 µs", "ratio"))
    for label, _ in variants:
        med = statistics.median(times[label])
        print("%-28s %12.0f %10.0f %7.2fx" % (label, med, p99(times[label]), med / base_median))


main()
