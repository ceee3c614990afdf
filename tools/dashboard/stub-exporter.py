#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A STAND-IN for hami-dra-plugin's /metrics: a simulated node, for developing the
dashboard and its renderer without the daemon. Nothing here is measured.

It serves, on loopback, the exact families of deploy/grafana/metric-families.txt for
one node of --gpus GPUs, following a fixed two-minute story from its start: claims are
prepared and unprepared (their pods' memory and SM use rising and falling), a prepare
fails, one GPU goes unhealthy and is no longer schedulable, the shared-region reader
trips once. tools/dashboard-demo.sh uses it only when asked (--stub).

Usage: stub-exporter.py [--port N] [--node NAME] [--gpus N]
"""

import argparse
import http.server
import math
import random
import threading
import time

GIB = 1 << 30
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# (start s, end s, namespace, claim, pod, gpu index, memory limit GiB, core limit %, processes)
CLAIMS = [
    (3, 200, "ml-train", "bert-finetune", "bert-finetune-0", 0, 16, 60, 2),
    (8, 200, "ml-train", "resnet-sweep-a", "resnet-sweep-a-7f9c", 1, 10, 50, 1),
    (12, 70, "ml-train", "resnet-sweep-b", "resnet-sweep-b-2k4d", 1, 10, 50, 1),
    (20, 200, "inference", "llm-serve-0", "llm-serve-6d8b-x2p", 2, 20, 30, 4),
    (24, 200, "inference", "llm-serve-1", "llm-serve-6d8b-q7v", 3, 20, 30, 4),
    (35, 95, "notebooks", "jupyter-alice", "jupyter-alice", 0, 4, 20, 1),
    (50, 200, "inference", "whisper", "whisper-58c6-tt9", 2, 2, 20, 1),
    (80, 200, "notebooks", "jupyter-bob", "jupyter-bob", 1, 8, 40, 1),
]
UNHEALTHY_AT = 60  # GPU 3 goes unhealthy (an XID), unschedulable from then on
PREPARE_ERROR_AT = 42  # a claim whose parameters are refused
REGION_ERROR_AT = 66


class Node:
    def __init__(self, name, gpus):
        self.name, self.gpus, self.t0 = name, gpus, time.monotonic()
        self.lock = threading.Lock()
        self.rng = random.Random(16)
        self.counters = {}
        self.hist = {"prepare": [0] * (len(BUCKETS) + 1), "unprepare": [0] * (len(BUCKETS) + 1)}
        self.hsum = {"prepare": 0.0, "unprepare": 0.0}
        self.done = set()
        self.in_flight = 0
        self.inc("apiserver", ("create", "201"))
        self.inc("slice", ("create", "success"))

    def inc(self, name, key, by=1):
        self.counters[(name, key)] = self.counters.get((name, key), 0) + by

    def observe(self, op, seconds):
        self.hsum[op] += seconds
        for i, le in enumerate(BUCKETS):
            if seconds <= le:
                self.hist[op][i] += 1
        self.hist[op][-1] += 1

    def advance(self):
        """Run the story's events up to now, once each."""
        t = time.monotonic() - self.t0
        events = []
        for c in CLAIMS:
            events.append((c[0], "prepare", c))
            events.append((c[1], "unprepare", c))
        events += [(PREPARE_ERROR_AT, "prepare-error", None), (UNHEALTHY_AT, "unhealthy", None),
                   (REGION_ERROR_AT, "region-error", None)]
        for at, what, c in events:
            if at > t or (at, what, c) in self.done:
                continue
            self.done.add((at, what, c))
            if what == "prepare":
                self.inc("prepare", "success")
                self.observe("prepare", self.rng.uniform(0.02, 0.09))
                self.inc("apiserver", ("get", "200"))
                self.inc("apiserver", ("update", "200"))
                self.inc("slice", ("update", "success"))
            elif what == "unprepare":
                self.inc("unprepare", "success")
                self.observe("unprepare", self.rng.uniform(0.004, 0.02))
                self.inc("apiserver", ("update", "200"))
                self.inc("slice", ("update", "success"))
            elif what == "prepare-error":
                self.inc("prepare", "error")
                self.observe("prepare", 0.31)
                self.inc("apiserver", ("get", "404"))
            elif what == "unhealthy":
                self.inc("apiserver", ("update", "409"))
                self.inc("apiserver", ("get", "200"))
                self.inc("apiserver", ("update", "200"))
                self.inc("slice", ("update", "error"))
                self.inc("slice", ("update", "success"))
            elif what == "region-error":
                self.inc("region", None)
        # the slice publisher's periodic resync and the watch
        self.inc("apiserver", ("get", "200"), 0)
        return t

    def render(self):
        with self.lock:
            t = self.advance()
            self.in_flight = 1 if any(abs(t - c[0]) < 1.5 or abs(t - c[1]) < 1.5 for c in CLAIMS) else 0
            return self.exposition(t)

    def exposition(self, t):
        node = self.name
        out = []

        def family(name, kind, help_):
            out.append("# HELP %s %s" % (name, help_))
            out.append("# TYPE %s %s" % (name, kind))

        def sample(name, labels, value):
            lab = ",".join('%s="%s"' % kv for kv in labels)
            out.append("%s{%s} %s" % (name, lab, repr(float(value)) if not isinstance(value, int) else value))

        gpus = [{"uuid": "GPU-%08x-stub-4e1d-9a6b-%012d" % (0x5eed0000 + i, i), "index": i,
                 "name": "hami-gpu-%d" % i, "mem": 24 * GIB} for i in range(self.gpus)]
        active = [c for c in CLAIMS if c[0] <= t < c[1] and c[5] < self.gpus]
        alloc_mem = [0] * self.gpus
        alloc_core = [0.0] * self.gpus
        for c in active:
            alloc_mem[c[5]] += c[6] * GIB
            alloc_core[c[5]] += c[7] / 100

        def gpu_labels(g):
            return [("node", node), ("device_uuid", g["uuid"]), ("device_index", g["index"]),
                    ("device_name", g["name"]), ("device_type", "NVIDIA-A10")]

        for name, help_, value in [
                ("hami_dra_gpu_memory_limit_bytes", "Device memory of the GPU.", lambda g: g["mem"]),
                ("hami_dra_gpu_core_limit_ratio", "The GPU's cores, as a ratio (1 = all SMs).", lambda g: 1.0),
                ("hami_dra_gpu_memory_allocated_bytes", "Sum of the memory limits of the claims prepared on the GPU.",
                 lambda g: alloc_mem[g["index"]]),
                ("hami_dra_gpu_core_allocated_ratio", "Sum of the core limits of the claims prepared on the GPU.",
                 lambda g: round(alloc_core[g["index"]], 4))]:
            family(name, "gauge", help_)
            for g in gpus:
                sample(name, gpu_labels(g), value(g))

        family("hami_dra_vgpu_memory_allocated_bytes", "gauge", "Memory limit of a pod's claim on the GPU.")
        for c in active:
            sample("hami_dra_vgpu_memory_allocated_bytes",
                   [("node", node), ("device_uuid", gpus[c[5]]["uuid"]), ("namespace", c[2]), ("pod", c[4])],
                   c[6] * GIB)
        family("hami_dra_vgpu_core_allocated_ratio", "gauge", "Core limit of a pod's claim on the GPU.")
        for c in active:
            sample("hami_dra_vgpu_core_allocated_ratio",
                   [("node", node), ("device_uuid", gpus[c[5]]["uuid"]), ("namespace", c[2]), ("pod", c[4])],
                   c[7] / 100)

        def claim_labels(c):
            uid = "%08x-0000-4000-8000-%012x" % (hash(c[3]) & 0xffffffff, CLAIMS.index(c))
            return [("node", node), ("device_uuid", gpus[c[5]]["uuid"]), ("namespace", c[2]), ("claim", c[3]),
                    ("claim_uid", uid), ("pod", c[4])]

        def usage(c):
            age = t - c[0]
            ramp = min(1.0, age / 15)
            wobble = 0.5 + 0.5 * math.sin((t + 7 * CLAIMS.index(c)) / 6)
            mem = c[6] * GIB * ramp * (0.55 + 0.35 * wobble)
            sm = c[7] / 100 * ramp * (0.6 + 0.38 * wobble)
            return int(mem) & ~0xfffff, round(sm, 3), age

        family("hami_dra_claim_memory_used_bytes", "gauge", "Device memory the claim's processes use.")
        for c in active:
            sample("hami_dra_claim_memory_used_bytes", claim_labels(c), usage(c)[0])
        family("hami_dra_claim_memory_limit_bytes", "gauge", "The claim's memory limit on the GPU.")
        for c in active:
            sample("hami_dra_claim_memory_limit_bytes", claim_labels(c), c[6] * GIB)
        family("hami_dra_claim_core_used_ratio", "gauge", "Measured share of the GPU's SMs the claim uses.")
        for c in active:
            mem, sm, age = usage(c)
            if age >= 4:  # absent until first measured
                sample("hami_dra_claim_core_used_ratio", claim_labels(c), sm)
        family("hami_dra_claim_core_limit_ratio", "gauge", "The claim's core limit, as a ratio.")
        for c in active:
            sample("hami_dra_claim_core_limit_ratio", claim_labels(c), c[7] / 100)
        family("hami_dra_claim_processes", "gauge", "Processes of the claim's containers on the GPU.")
        for c in active:
            sample("hami_dra_claim_processes", claim_labels(c), c[8] if t - c[0] > 5 else 1)
        family("hami_dra_shared_region_errors_total", "counter", "Shared regions that could not be read.")
        sample("hami_dra_shared_region_errors_total", [("node", node)], self.counters.get(("region", None), 0))

        for op in ("prepare", "unprepare"):
            name = "hami_dra_%s_total" % op
            family(name, "counter", "Node%sResources claims, by result." % op.capitalize())
            for result in ("success", "error"):
                sample(name, [("node", node), ("result", result)], self.counters.get((op, result), 0))
        for op in ("prepare", "unprepare"):
            name = "hami_dra_%s_duration_seconds" % op
            family(name, "histogram", "Time to %s one claim." % op)
            for i, le in enumerate(BUCKETS):
                sample(name + "_bucket", [("node", node), ("le", repr(float(le)))], self.hist[op][i])
            sample(name + "_bucket", [("node", node), ("le", "+Inf")], self.hist[op][-1])
            sample(name + "_sum", [("node", node)], round(self.hsum[op], 6))
            sample(name + "_count", [("node", node)], self.hist[op][-1])
        family("hami_dra_grpc_requests_in_flight", "gauge", "kubelet gRPC requests being served.")
        sample("hami_dra_grpc_requests_in_flight", [("node", node)], self.in_flight)
        family("hami_dra_apiserver_requests_total", "counter", "Requests to the API server, by verb and code.")
        base = int(t / 10)  # the periodic resync
        for (name, key), v in sorted(self.counters.items()):
            if name == "apiserver":
                sample("hami_dra_apiserver_requests_total",
                       [("node", node), ("verb", key[0]), ("code", key[1])], v + (base if key == ("get", "200") else 0))
        family("hami_dra_resourceslice_writes_total", "counter", "ResourceSlice writes, by operation and result.")
        for (name, key), v in sorted(self.counters.items()):
            if name == "slice":
                sample("hami_dra_resourceslice_writes_total",
                       [("node", node), ("operation", key[0]), ("result", key[1])], v)
        healthy = [0 if g["index"] == 3 and t >= UNHEALTHY_AT else 1 for g in gpus]
        family("hami_dra_device_healthy", "gauge", "1 when the GPU is healthy.")
        for g in gpus:
            sample("hami_dra_device_healthy", [("node", node), ("device_uuid", g["uuid"]),
                                               ("device_name", g["name"])], healthy[g["index"]])
        family("hami_dra_device_schedulable", "gauge", "1 when the GPU is published as schedulable.")
        for g in gpus:
            sample("hami_dra_device_schedulable", [("node", node), ("device_uuid", g["uuid"]),
                                                   ("device_name", g["name"])], healthy[g["index"]])
        family("hami_dra_prepared_claims", "gauge", "Claims prepared now.")
        sample("hami_dra_prepared_claims", [("node", node)], len(active))
        family("hami_dra_build_info", "gauge", "The daemon's version; always 1.")
        sample("hami_dra_build_info", [("node", node), ("version", "0.0.0-stub"),
                                       ("driver", "hami-core-gpu.project-hami.io")], 1)
        return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=9400)
    ap.add_argument("--node", default="demo-node")
    ap.add_argument("--gpus", type=int, default=8)
    args = ap.parse_args()
    node = Node(args.node, args.gpus)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = node.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
