#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Restarts and upgrades under load lose no call: 16 kubelet-like clients on long-lived
connections (tests/restart-load.py) loop GetInfo (1 s deadline), prepare and unprepare
against the real daemon while it is restarted RESTARTS times (20 by default) the way
systemd does it: we hold the listening sockets, SIGTERM the running instance, wait for
it to exit and start the next with LISTEN_FDS. Every fifth start is an upgrade: another
binary file (a copy). Every call must succeed within its deadline."""

import json
import os

from harness import check, require_real_daemon_as_root

RESTARTS = int(os.environ.get("RESTARTS", "20"))
CLIENTS = 16

require_real_daemon_as_root()

import restarts  # noqa: E402 - after the skips: it loads the kubelet simulator's stubs

summary, stops = restarts.run(RESTARTS, CLIENTS)
print("# " + json.dumps(summary))
print("# stop took: median %.3f s, max %.3f s" % (sorted(stops)[len(stops) // 2], max(stops)))
check(summary["stuck_clients"] == 0, "every client finished")
check(min(summary["calls"].values()) >= RESTARTS * CLIENTS,
      "%d restarts under load: %s calls" % (RESTARTS, summary["calls"]))
check(summary["missed_deadlines"] == 0, "no call missed its deadline (slowest %s)" % summary["slowest_s"])
check(summary["failed"] == 0, "no call failed: %s" % summary["failures"])
