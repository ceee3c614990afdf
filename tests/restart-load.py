#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Kubelet-like load across restarts: N clients, each with its own long-lived connections
to the registration and DRA sockets (as the kubelet keeps them), loop GetInfo (the
kubelet's 1 s deadline), NodePrepareResources and NodeUnprepareResources (45 s) of a
claim of their own, and count every call that failed or missed its deadline.

Library:  load = restart_load.Load(reg_sock, claims); load.start(); ...; summary = load.stop()
CLI:      restart-load.py --registration SOCK --claims FILE --stop-file PATH [--clients N]
          [--seconds S]: runs until the stop file appears (or S seconds), then prints the
          summary as one JSON object. FILE: a JSON list of [namespace, name, uid].
Exit status 0 when no call failed and none missed its deadline.
"""

import argparse
import importlib.util
import json
import os
import sys
import threading
import time

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("kubelet_sim", os.path.join(HERE, "kubelet-sim.py"))
sim = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sim)

GET_INFO_DEADLINE = sim.GET_INFO_TIMEOUT   # the kubelet's 1 s
CALL_DEADLINE = sim.CALL_TIMEOUT           # defaultClientCallTimeout, 45 s


def _channel(path):
    # Each client its own connection, as each kubelet has its own; default client options
    # (transparent retries of streams the server refused, as in grpc-go).
    return grpc.insecure_channel("unix:" + path, options=[("grpc.use_local_subchannel_pool", 1)])


class Client(threading.Thread):
    def __init__(self, load, index, claim):
        super().__init__(daemon=True, name="client-%d" % index)
        self.load = load
        self.claim = tuple(claim)
        self.calls = {"GetInfo": 0, "NodePrepareResources": 0, "NodeUnprepareResources": 0}
        self.failures = []          # (time since start, method, what, wall-clock time)
        self.slowest = {m: 0.0 for m in self.calls}
        self.latencies = {m: [] for m in self.calls}

    def _call(self, method, fn, deadline):
        t0 = time.monotonic()
        try:
            reply = fn(deadline)
        except grpc.RpcError as e:
            code = e.code()
            what = "%s: %s" % (code.name if code else "?", e.details())
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                what = "missed its %.0f s deadline: %s" % (deadline, what)
            self.failures.append((round(t0 - self.load.t0, 3), method, what, round(time.time(), 3)))
            return None
        finally:
            elapsed = time.monotonic() - t0
            self.calls[method] += 1
            self.slowest[method] = max(self.slowest[method], elapsed)
            self.latencies[method].append(elapsed)
        return reply

    def run(self):
        s = sim.stubs()
        reg = _channel(self.load.registration)
        info_stub = s.pluginregistration_pb2_grpc.RegistrationStub(reg)
        info = info_stub.GetInfo(s.pluginregistration_pb2.InfoRequest(), timeout=30, wait_for_ready=True)
        dra = _channel(info.endpoint)
        stub = s.dra_v1_pb2_grpc.DRAPluginStub(dra)
        mod = s.dra_v1_pb2
        ns, name, uid = self.claim
        claims = [mod.Claim(namespace=ns, name=name, uid=uid)]
        self.load.ready.release()
        try:
            while not self.load.stopping.is_set():
                self._call("GetInfo", lambda d: info_stub.GetInfo(s.pluginregistration_pb2.InfoRequest(), timeout=d),
                           GET_INFO_DEADLINE)
                for method, fn in (
                        ("NodePrepareResources",
                         lambda d: stub.NodePrepareResources(mod.NodePrepareResourcesRequest(claims=claims), timeout=d)),
                        ("NodeUnprepareResources",
                         lambda d: stub.NodeUnprepareResources(mod.NodeUnprepareResourcesRequest(claims=claims),
                                                               timeout=d))):
                        reply = self._call(method, fn, CALL_DEADLINE)
                        if reply is not None and reply.claims[uid].error:
                            self.failures.append((round(time.monotonic() - self.load.t0, 3), method,
                                                  "claim error: " + reply.claims[uid].error, round(time.time(), 3)))
        finally:
            reg.close()
            dra.close()


class Load:
    def __init__(self, registration, claims):
        self.registration = registration
        self.clients = [Client(self, i, c) for i, c in enumerate(claims)]
        self.stopping = threading.Event()
        self.ready = threading.Semaphore(0)
        self.t0 = time.monotonic()

    def start(self, timeout=60):
        """Start the clients; returns once each has its connections and the endpoint."""
        for c in self.clients:
            c.start()
        for c in self.clients:
            if not self.ready.acquire(timeout=timeout):
                raise RuntimeError("a client did not connect within %d s" % timeout)
        self.t0 = time.monotonic()

    def calls(self):
        return sum(sum(c.calls.values()) for c in self.clients)

    def stop(self, timeout=90):
        self.stopping.set()
        for c in self.clients:
            c.join(timeout)
        calls = {m: sum(c.calls[m] for c in self.clients) for m in self.clients[0].calls}
        failures = sorted(f for c in self.clients for f in c.failures)

        def pct(m, q):
            v = sorted(x for c in self.clients for x in c.latencies[m])
            return round(v[min(len(v) - 1, int(q * len(v)))] * 1000, 1) if v else None
        return {"clients": len(self.clients), "seconds": round(time.monotonic() - self.t0, 1), "calls": calls,
                "failed": len(failures), "missed_deadlines": sum("deadline" in f[2] for f in failures),
                "slowest_s": {m: round(max(c.slowest[m] for c in self.clients), 3) for m in calls},
                "median_ms": {m: pct(m, 0.5) for m in calls}, "p99_ms": {m: pct(m, 0.99) for m in calls},
                "failures": failures[:20], "stuck_clients": sum(c.is_alive() for c in self.clients)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--registration", required=True)
    ap.add_argument("--claims", required=True)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--stop-file")
    ap.add_argument("--seconds", type=float, default=600)
    a = ap.parse_args()
    with open(a.claims) as f:
        claims = json.load(f)[:a.clients]
    load = Load(a.registration, claims)
    load.start()
    print("started %d clients" % len(claims), file=sys.stderr, flush=True)
    end = time.monotonic() + a.seconds
    while time.monotonic() < end and not (a.stop_file and os.path.exists(a.stop_file)):
        time.sleep(0.1)
    summary = load.stop()
    print(json.dumps(summary))
    return 0 if summary["failed"] == 0 and summary["stuck_clients"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
