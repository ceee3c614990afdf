#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""GetInfo does not depend on the main loop: while the daemon's main loop is blocked
(the test server sleeps 15 s in a prepare callback), new connections are accepted and
GetInfo is answered. A main loop that was needed could not answer before the sleep ends."""

import sys
import threading
import time

from harness import DRIVER, Daemon, check, is_real_daemon

if is_real_daemon():
    print("only the test server can block its main loop on request")
    sys.exit(77)

with Daemon() as d:
    d.start()
    k = d.kubelet()
    info = k.register(DRIVER)
    done = {}

    def blocker():
        done["prepare"] = k.prepare([("default", "block-main-1", "uid-block")], "v1", timeout=60)

    t = threading.Thread(target=blocker)
    t0 = time.monotonic()
    t.start()
    time.sleep(1)  # let the prepare reach the callback; if not yet, the check below is merely weaker
    answers = []
    for _ in range(5):
        fresh = d.kubelet()  # a new connection each time, as the kubelet's poll dials anew
        answers.append(fresh.get_info(timeout=5))
        fresh.close()
    blocked = "prepare" not in done
    check(all(a == info for a in answers), "GetInfo on new connections answered (main loop still blocked: %s)" % blocked)
    check(blocked, "the answers came while the main loop was blocked")
    t.join(60)
    check("uid-block" in done.get("prepare", {}), "the blocking prepare is answered afterwards")
    k.close()
    check(d.stop() == 0, "clean exit")
