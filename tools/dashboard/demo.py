#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The workload behind docs/dashboard.png: the real hami-dra-plugin on mock GPUs,
socket-activated with its metrics socket, a real Prometheus scraping it on loopback, and
a story of about two minutes driven as a kubelet would (tests/kubelet-sim.py) against
the fake API server: claims prepared and unprepared, one refused, a GPU going unhealthy;
and, in the claims on hami-gpu-0, real processes under libvgpu.so on the fake CUDA
driver (tests/preload/tenant-worker), which the daemon's usage monitor measures through
the fake NVML. Then tools/render-dashboard draws deploy/grafana/hami-dra.json.

With --stub, tools/dashboard/stub-exporter.py stands in for the daemon instead.

Run by tools/dashboard-demo.sh, which builds and sets the environment: HAMI_DRA_BUILD_ROOT,
HAMI_DRA_LIBVGPU, HAMI_DRA_TENANT_WORKER, HAMI_DRA_PRELOAD_LIB_PATH.
Usage: demo.py [--stub] [--seconds N] --png OUT [--keep DIR]
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
os.environ.setdefault("HAMI_DRA_SOURCE_ROOT", SRC)
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
from promserver import PrometheusServer, free_port  # noqa: E402

NODE = "gpu-node-1"
GPUS = 4
SCRAPE = 3  # seconds
GIB = 1 << 30


def say(msg):
    print("dashboard-demo: " + msg, flush=True)


# The mock backend's GPU UUIDs (src/gpu-mock.c: mock_gpu_uuid), so the fake NVML can
# show the daemon's usage monitor the same GPUs.
def _fnv1a64(s, h):
    for b in s.encode():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def _splitmix64(x):
    m = 0xFFFFFFFFFFFFFFFF
    x = (x + 0x9e3779b97f4a7c15) & m
    x = ((x ^ (x >> 30)) * 0xbf58476d1ce4e5b9) & m
    x = ((x ^ (x >> 27)) * 0x94d049bb133111eb) & m
    return x ^ (x >> 31)


def mock_uuid(node, index):
    key = "hami-dra-mock-gpu\n%s\n%u" % (node, index)
    hi = _splitmix64(_fnv1a64(key, 0xcbf29ce484222325))
    lo = _splitmix64(hi ^ _fnv1a64(key, 0x84222325cbf29ce4))
    return "GPU-%08x-%04x-%04x-%04x-%012x" % (hi >> 32, (hi >> 16) & 0xffff, hi & 0xffff, lo >> 48,
                                              lo & 0xffffffffffff)


class Prometheus(PrometheusServer):
    def __init__(self, tmp, target):
        try:
            super().__init__(tmp, [target], interval=SCRAPE)
        except RuntimeError as e:
            raise SystemExit("dashboard-demo: " + str(e))

    def up(self):
        q = urllib.parse.urlencode({"query": 'up{job="hami-dra"}'})
        try:
            with urllib.request.urlopen(self.url + "/api/v1/query?" + q, timeout=5) as r:
                import json
                res = json.load(r)["data"]["result"]
            return bool(res) and res[0]["value"][1] == "1"
        except OSError:
            return False


class Story:
    """Events at seconds from the start, run in order; tenants are processes of a claim."""

    def __init__(self, seconds):
        self.scale = seconds / 120.0
        self.events = []
        self.tenants = []

    def at(self, t, fn, *args, **kw):
        self.events.append((t * self.scale, fn, args, kw))

    def run(self, t0):
        for t, fn, args, kw in sorted(self.events, key=lambda e: e[0]):
            delay = t0 + t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            fn(*args, **kw)

    def stop(self):
        for p in self.tenants:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.tenants:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def real(args, tmp):
    argv, sys.argv = sys.argv, sys.argv[:1]  # harness.py takes an argument as the daemon to test
    from fakeapi import FakeApiServer, claim_object, claim_result, prepare_daemon_root
    from harness import DRIVER, Daemon
    sys.argv = argv

    for var in ("HAMI_DRA_BUILD_ROOT", "HAMI_DRA_LIBVGPU", "HAMI_DRA_TENANT_WORKER", "HAMI_DRA_PRELOAD_LIB_PATH"):
        if not os.environ.get(var):
            raise SystemExit("dashboard-demo: %s is not set: run tools/dashboard-demo.sh" % var)
    fake = FakeApiServer(tmp, NODE)
    prom = None
    story = Story(args.seconds)
    try:
        kubeconfig = fake.write_kubeconfig()
        nvml_conf = os.path.join(tmp, "fake-nvml.conf")
        with open(nvml_conf, "w") as f:
            f.write("driver-version 580.65.06\ncuda-driver-version 13000\n")
            for i in range(GPUS):
                f.write("\ngpu\nuuid %s\nname NVIDIA A10\nmemory %d\n" % (mock_uuid(NODE, i), 24146608128))
        state = os.path.join(tmp, "fake-cuda.state")
        gpu = {"LD_LIBRARY_PATH": os.environ["HAMI_DRA_PRELOAD_LIB_PATH"], "FAKE_CUDA_STATE": state,
               "FAKE_NVML_CONFIG": nvml_conf, "FAKE_CUDA_DEVICES": str(GPUS), "FAKE_CUDA_MEMORY": str(24146608128)}

        class NodeDaemon(Daemon):
            def argv(self):
                a = super().argv()
                a[a.index("--node-name") + 1] = NODE
                return a

        binary = os.path.join(os.environ["HAMI_DRA_BUILD_ROOT"], "src", "hami-dra-plugin")
        with NodeDaemon(gpus=GPUS, binary=binary, root=os.path.join(tmp, "daemon")) as d:
            env = dict(prepare_daemon_root(d, kubeconfig), **gpu)
            os.makedirs(os.path.dirname(d.reg_sock))
            os.makedirs(os.path.dirname(d.dra_sock))
            port = free_port()
            ssa = shutil.which("systemd-socket-activate")
            pass_env = []
            for k in ["HAMI_DRA_DEV_ROOT", "HAMI_DRA_DRIVER_ROOT"] + list(gpu):
                pass_env += ["-E", k]
            d.start(env=env, wait=False, prefix=[ssa, "-l", d.reg_sock, "-l", d.dra_sock, "-l",
                                                 "127.0.0.1:%d" % port, "--fdname=registration:dra:metrics"]
                    + pass_env)
            d.wait_socket(d.reg_sock, connect=False)
            k = d.kubelet()
            k.get_info(timeout=30)  # starts the daemon
            k.register(DRIVER)
            prom = Prometheus(tmp, "127.0.0.1:%d" % port)
            say("hami-dra-plugin (node %s, %d mock GPUs) serves /metrics on 127.0.0.1:%d; Prometheus on %s"
                % (NODE, GPUS, port, prom.url))

            claims = {}

            def prepare(ns, name, device, memory=None, cores=None, exists=True, pod=None):
                uid = str(uuid.uuid4())
                if exists:
                    obj = claim_object(name, uid, [claim_result(DRIVER, NODE, device, str(uuid.uuid4()), memory,
                                                                cores)], namespace=ns)
                    # the pod the scheduler reserved the claim for: the metrics' pod label
                    obj["status"]["reservedFor"] = [{"resource": "pods", "name": pod or name + "-0",
                                                     "uid": str(uuid.uuid4())}]
                    fake.put(obj)
                ref = (ns, name, uid)
                r = k.prepare([ref], "v1")[uid]
                say("prepare %s/%s on %s (%s, %s cores): %s" % (ns, name, device, memory or "whole GPU",
                                                                 cores or "100", r.error or "ok"))
                claims[name] = (ref, memory, cores)

            def unprepare(name):
                ref = claims[name][0]
                r = k.unprepare([ref], "v1")[ref[2]]
                say("unprepare %s/%s: %s" % (ref[0], ref[1], r.error or "ok"))

            def tenant(name, mode, *wargs):
                ref, memory, cores = claims[name]
                region = os.path.join(d.root, "state", "claims", ref[2], "vgpu", "vgpu.cache")
                wenv = dict(gpu, LD_PRELOAD=os.environ["HAMI_DRA_LIBVGPU"], CUDA_DEVICE_MEMORY_SHARED_CACHE=region,
                            CUDA_DEVICE_SM_LIMIT=str(cores), CUDA_DEVICE_MEMORY_LIMIT="%dm" % (GIB_of(memory) * 1024),
                            FAKE_CUDA_KERNEL_US="2000", FAKE_CUDA_CONTEXT_MEMORY=str(545259520),
                            PATH=os.environ.get("PATH", "/usr/bin:/bin"))
                argv = ["nice", os.environ["HAMI_DRA_TENANT_WORKER"], mode] + [str(a) for a in wargs]
                if shutil.which("unshare"):
                    argv = ["unshare", "--pid", "--fork", "--kill-child"] + argv
                story.tenants.append(subprocess.Popen(argv, env=wenv, stdout=subprocess.DEVNULL,
                                                      stderr=subprocess.DEVNULL))
                say("a process of %s: tenant-worker %s %s" % (name, mode, " ".join(map(str, wargs))))

            def unhealthy(device, why):
                path = os.path.join(d.root, "state", "mock-health")
                with open(path + ".tmp", "w") as f:
                    f.write("%s unhealthy %s\n" % (device, why))
                os.rename(path + ".tmp", path)
                say("%s goes unhealthy (%s)" % (device, why))

            s = args.seconds / 120.0
            # Tenants run on hami-gpu-0 only: the fake CUDA driver's device 0 (it has no
            # CUDA_VISIBLE_DEVICES), which the fake NVML shows as hami-gpu-0's UUID.
            story.at(4, prepare, "ml-train", "bert-finetune", "hami-gpu-0", "8Gi", "50", pod="bert-finetune-0")
            story.at(6, tenant, "bert-finetune", "steady", int(110 * s))
            story.at(14, prepare, "inference", "llm-serve", "hami-gpu-0", "6Gi", "30", pod="llm-serve-6d8b9-x2p4q")
            story.at(16, tenant, "llm-serve", "steady", int(70 * s))
            story.at(22, prepare, "notebooks", "jupyter-alice", "hami-gpu-0", "4Gi", "20", pod="jupyter-alice")
            story.at(24, tenant, "jupyter-alice", "contextonly", int(50 * s))
            story.at(30, prepare, "ml-train", "batch-eval", "hami-gpu-2", pod="batch-eval-7kq2m")
            story.at(36, prepare, "ml-train", "deleted-claim", "hami-gpu-3", "2Gi", "10", False)
            story.at(42, tenant, "bert-finetune", "fill", 512, int(70 * s))
            story.at(48, prepare, "notebooks", "jupyter-bob", "hami-gpu-1", "4Gi", "40", pod="jupyter-bob")
            story.at(55, unhealthy, "hami-gpu-3", "XID 79: GPU has fallen off the bus")
            story.at(76, unprepare, "jupyter-alice")
            story.at(88, unprepare, "llm-serve")
            story.at(94, prepare, "inference", "llm-serve-v2", "hami-gpu-0", "6Gi", "40", pod="llm-serve-v2-5c7f4-r8n2d")
            story.at(96, tenant, "llm-serve-v2", "steady", int(22 * s))
            story.at(104, unprepare, "batch-eval")
            t0 = time.monotonic()
            story.run(t0)
            time.sleep(max(0, t0 + args.seconds - time.monotonic()))
            if not prom.up():
                raise SystemExit("dashboard-demo: Prometheus cannot scrape the daemon: see %s" % prom.log.name)
            render(args, prom, "hami-dra-plugin (mock GPUs, fake CUDA/NVML) scraped by Prometheus; "
                   "drawn by tools/render-dashboard, not Grafana")
            story.stop()
            k.close()
            d.stop()
    finally:
        story.stop()
        if prom:
            prom.stop()
        fake.stop()


def GIB_of(q):
    return int(q[:-2]) if q and q.endswith("Gi") else 24


def stub(args, tmp):
    port = free_port()
    exporter = subprocess.Popen([sys.executable, os.path.join(HERE, "stub-exporter.py"), "--port", str(port),
                                 "--node", NODE, "--gpus", str(GPUS)])
    prom = None
    try:
        time.sleep(0.5)
        prom = Prometheus(tmp, "127.0.0.1:%d" % port)
        say("STUB exporter on 127.0.0.1:%d; Prometheus on %s; waiting %d s" % (port, prom.url, args.seconds))
        time.sleep(args.seconds)
        render(args, prom, "STUB DATA (tools/dashboard/stub-exporter.py), not the daemon; "
               "drawn by tools/render-dashboard, not Grafana")
    finally:
        exporter.terminate()
        exporter.wait()
        if prom:
            prom.stop()


def render(args, prom, note):
    end = int(time.time())
    cmd = [sys.executable, os.path.join(SRC, "tools", "render-dashboard"), "--prometheus", prom.url,
           "--from", str(end - args.seconds - 4), "--to", str(end), "--step", str(SCRAPE),
           "--scrape-interval", str(SCRAPE), "--note", note, "--png", args.png, "--width", str(args.width)]
    if args.keep:
        cmd += ["--html", os.path.join(args.keep, "dashboard.html"), "--json", os.path.join(args.keep, "data.json")]
    subprocess.run(cmd, check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stub", action="store_true", help="serve tools/dashboard/stub-exporter.py, not the daemon")
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--png", required=True)
    ap.add_argument("--width", type=int, default=1600)
    ap.add_argument("--keep", help="also write the page and the query results into this directory")
    args = ap.parse_args()
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="hami-dashboard-demo.", dir="/var/tmp")
    try:
        (stub if args.stub else real)(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
