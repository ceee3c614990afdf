#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""What restarts cost the kubelet: 16 kubelet-like clients (tests/restart-load.py) on
long-lived connections loop GetInfo, prepare and unprepare against the real daemon (mock
GPUs, claims from the fake API server over TLS), first for a while without restarts (the
baseline), then across RESTARTS restarts the way systemd does them (held sockets,
SIGTERM, next instance with LISTEN_FDS; every fifth an upgrade). Prints per method the
median and p99 latency of both runs and their ratio, the calls that failed or missed a
deadline, and how long each stop took.

  sudo bench/bench-restart.py [restarts]      (root for the mknod fixtures)
Run from the source tree with HAMI_DRA_BUILD_ROOT pointing at the build directory.
"""

import os
import sys

SRC = os.environ.get("HAMI_DRA_SOURCE_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
os.environ.setdefault("HAMI_DRA_BUILD_ROOT", os.path.join(SRC, "build"))
RESTARTS = int(sys.argv[1]) if len(sys.argv) > 1 else 20
sys.argv = sys.argv[:1]   # harness.py reads argv[1] as the daemon binary

import restarts  # noqa: E402


def main():
    if os.geteuid() != 0:
        print("needs root (mknod fixtures)")
        return 77
    with_restarts, stops = restarts.run(RESTARTS)
    baseline, _ = restarts.run(0, seconds=with_restarts["seconds"])
    print("16 clients, %d restarts (%d upgrades) in %.1f s; baseline: %.1f s without a restart"
          % (RESTARTS, RESTARTS // 5, with_restarts["seconds"], baseline["seconds"]))
    print()
    print("| method | calls (baseline) | median ms (baseline) | p99 ms (baseline) | calls (restarts) "
          "| median ms (restarts) | p99 ms (restarts) | p99 ratio | slowest s (restarts) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m in baseline["calls"]:
        b99, r99 = baseline["p99_ms"][m], with_restarts["p99_ms"][m]
        print("| %s | %d | %.1f | %.1f | %d | %.1f | %.1f | %.2f | %.3f |"
              % (m, baseline["calls"][m], baseline["median_ms"][m], b99, with_restarts["calls"][m],
                 with_restarts["median_ms"][m], r99, r99 / b99 if b99 else 0, with_restarts["slowest_s"][m]))
    s = sorted(stops)
    print()
    print("| | failed calls | missed deadlines | stop median s | stop p99 s | stop max s |")
    print("|---|---|---|---|---|---|")
    print("| baseline | %d | %d | | | |" % (baseline["failed"], baseline["missed_deadlines"]))
    print("| restarts | %d | %d | %.3f | %.3f | %.3f |" % (with_restarts["failed"], with_restarts["missed_deadlines"],
                                                        s[len(s) // 2], s[min(len(s) - 1, int(0.99 * len(s)))], s[-1]))
    return 0 if with_restarts["failed"] == 0 and with_restarts["missed_deadlines"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
