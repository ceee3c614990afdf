#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""DRAResourceHealth/NodeWatchResources, v1alpha1 and v1: every device, at once, and on change."""

import time

import grpc

from harness import DRIVER, Daemon, check

GPUS = 8

with Daemon(gpus=GPUS) as d:
    d.start()
    k = d.kubelet()
    k.register(DRIVER)
    names = ["hami-gpu-%d" % i for i in range(GPUS)]

    streams = {}
    for version in ("v1alpha1", "v1"):
        call = k.watch_health(version, timeout=30)
        first = next(call)
        got = sorted(x.device.device_name for x in first.devices)
        check(got == sorted(names), "%s: the first message lists all %d devices" % (version, GPUS))
        check(all(x.health == 1 for x in first.devices), "%s: all devices healthy" % version)
        check(all(x.device.pool_name for x in first.devices), "%s: every device names its pool" % version)
        check(all(x.last_updated_time > 0 for x in first.devices), "%s: last_updated_time is set" % version)
        streams[version] = call

    d.set_gpu1_unhealthy()
    for version, call in streams.items():
        # The real daemon may send more than one update; read until hami-gpu-1 turns.
        for msg in call:
            health = {x.device.device_name: x.health for x in msg.devices}
            if health.get("hami-gpu-1") == 2:
                break
        check(health["hami-gpu-1"] == 2 and health["hami-gpu-0"] == 1 and len(health) == GPUS,
              "%s: an update carries the complete list with hami-gpu-1 unhealthy" % version)
        bad = [x for x in msg.devices if x.device.device_name == "hami-gpu-1"][0]
        check("XID" in bad.message, "%s: the unhealthy device says why: %s" % (version, bad.message))

    for call in streams.values():
        call.cancel()

    # The streams are capped; when clients go away their slots come back.
    opened = []
    refused = None
    for i in range(40):
        c = k.watch_health("v1", timeout=30)
        try:
            next(c)
            opened.append(c)
        except grpc.RpcError as e:
            refused = e.code()
            break
    check(refused == grpc.StatusCode.RESOURCE_EXHAUSTED,
          "health streams are capped (%d opened, then %s)" % (len(opened), refused))
    for c in opened:
        c.cancel()
    k.close()

    k = d.kubelet()
    k.register(DRIVER)
    # Cancellation reaches the daemon asynchronously: retry until the slots are back.
    for attempt in range(200):
        c = k.watch_health("v1alpha1", timeout=30)
        try:
            n = len(next(c).devices)
            break
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise
            time.sleep(0.05)
    check(n == GPUS, "after the clients left, a new stream is served")
    c.cancel()
    k.close()
    check(d.stop() == 0, "clean exit with streams having been open")
