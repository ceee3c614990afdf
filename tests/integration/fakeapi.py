# SPDX-License-Identifier: Apache-2.0
"""The strict fake API server (tests/fakes/fake-apiserver.py) as the daemon's tests and
benchmarks start it: a throwaway PKI, node credentials, a kubeconfig, and claims put in
through its control port. One place, so every user starts it the same way."""

import json
import os
import random
import string
import subprocess
import time
import urllib.request
import uuid

DRIVER = "hami-core-gpu.project-hami.io"
SRC = os.environ.get("HAMI_DRA_SOURCE_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../.."))


class FakeApiServer:
    def __init__(self, tmp, node, log=True, tokens=()):
        """tokens: "TOKEN=USER" bearer tokens the fake accepts besides the node's certificate."""
        subprocess.run(["sh", os.path.join(SRC, "tests/fakes/make-certs.sh"), tmp, node], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.tmp = tmp
        state = os.path.join(tmp, "fake-state.json")
        self.log = open(os.path.join(tmp, "fake.log"), "w") if log else subprocess.DEVNULL
        self.proc = subprocess.Popen(["/usr/bin/python3", os.path.join(SRC, "tests/fakes/fake-apiserver.py"),
                                      "--certs", tmp, "--state-file", state, "--node", node]
                                     + [a for t in tokens for a in ("--token", t)],
                                     stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not os.path.exists(state) and self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if not os.path.exists(state):
            self.stop()
            raise RuntimeError("the fake API server did not start (see %s/fake.log)" % tmp)
        with open(state) as f:
            st = json.load(f)
        self.port, self.control = st["port"], st["control"]

    def put(self, obj):
        """Store an object (a ResourceClaim) as the API server would have it."""
        req = urllib.request.Request("http://127.0.0.1:%d/claims" % self.control, data=json.dumps(obj).encode(),
                                     method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    def slices(self):
        """The ResourceSlices the fake holds."""
        with urllib.request.urlopen("http://127.0.0.1:%d/slices" % self.control, timeout=10) as r:
            return json.loads(r.read())

    def post(self, path, obj=None):
        """POST to the fake's control port (/delete-claim?..., /pods, ...)."""
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.control, path),
                                     data=json.dumps(obj or {}).encode(), method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    def faults(self, **kw):
        """Inject faults into the fake: slow_ms, fail_count, fail_status, retry_after (0 clears)."""
        req = urllib.request.Request("http://127.0.0.1:%d/faults" % self.control, data=json.dumps(kw).encode(),
                                     method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    def write_kubeconfig(self, path=None):
        """A kubeconfig with the node's client certificate; relative paths, as the kubelet's has."""
        path = path or os.path.join(self.tmp, "kubeconfig")
        with open(path, "w") as f:
            json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "ctx",
                       "contexts": [{"name": "ctx", "context": {"cluster": "k", "user": "u"}}],
                       "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:%d" % self.port,
                                                              "certificate-authority": "ca.crt"}}],
                       "users": [{"name": "u", "user": {"client-certificate": "client.crt",
                                                        "client-key": "client.key"}}]}, f)
        return path

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()
        if self.log is not subprocess.DEVNULL:
            self.log.close()


def device_nodes(devroot, gpus):
    """mknod stand-ins for /dev/nvidia<i>, nvidiactl and nvidia-uvm under devroot/dev
    (for HAMI_DRA_DEV_ROOT); returns devroot."""
    dev = os.path.join(devroot, "dev")
    os.makedirs(dev)
    for i in range(gpus):
        os.mknod(os.path.join(dev, "nvidia%d" % i), 0o666 | 0o020000, os.makedev(195, i))
    os.mknod(os.path.join(dev, "nvidiactl"), 0o666 | 0o020000, os.makedev(195, 255))
    os.mknod(os.path.join(dev, "nvidia-uvm"), 0o666 | 0o020000, os.makedev(509, 0))
    return devroot


LIB_DIR = "usr/lib/x86_64-linux-gnu"


def driver_files(root, version):
    """A driver installation under root (HAMI_DRA_DRIVER_ROOT): libcuda.so.1 and
    libnvidia-ml.so.1 -> <name>.<version>, as the NVIDIA installer leaves them. Called again
    with another version, it upgrades: new files, the links replaced, the old files removed."""
    lib = os.path.join(root, LIB_DIR)
    os.makedirs(lib, exist_ok=True)
    for base in ("libcuda.so", "libnvidia-ml.so"):
        real = "%s.%s" % (base, version)
        with open(os.path.join(lib, real), "w") as f:
            f.write("driver %s\n" % version)
        tmp = os.path.join(lib, ".%s.1.new" % base)
        os.symlink(real, tmp)
        os.rename(tmp, os.path.join(lib, base + ".1"))
        for old in os.listdir(lib):
            if old.startswith(base + ".") and old not in (real, base + ".1"):
                os.unlink(os.path.join(lib, old))


def prepare_daemon_root(d, kubeconfig, plugin="", extra=""):
    """Make d.root (a harness Daemon's, not yet created) ready to prepare claims read from
    the fake: mknod nodes for 8 GPUs, a stand-in preload library, and hami-dra.conf naming
    the kubeconfig and the library (`plugin`: more [Plugin] lines; `extra`: more sections).
    Returns the environment to start the daemon with."""
    os.makedirs(d.root)
    devroot = device_nodes(os.path.join(d.root, "devroot"), 8)
    preload = os.path.join(d.root, "libvgpu.so")
    with open(preload, "w") as f:
        f.write("stand-in\n")
    with open(os.path.join(d.root, "hami-dra.conf"), "w") as f:
        f.write("[Plugin]\nKubeconfig=%s\n%s[Container]\nPreloadLibrary=%s\n%s" % (kubeconfig, plugin, preload, extra))
    env = dict(os.environ, HAMI_DRA_DEV_ROOT=devroot, HAMI_DRA_DRIVER_ROOT=d.root)
    env.pop("NOTIFY_SOCKET", None)
    return env


def claim_object(name, uid, results, config=None, namespace="default"):
    """An allocated resource.k8s.io/v1 ResourceClaim, as the scheduler leaves it."""
    devices = {"results": results}
    if config is not None:
        devices["config"] = config
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
            "metadata": {"name": name, "namespace": namespace, "uid": uid},
            "status": {"allocation": {"devices": devices}}}


def claim_result(driver, pool, device="hami-gpu-0", share=None, memory=None, cores=None, request="gpu"):
    """One allocation result: a device of our pool, with its share and consumed capacity."""
    r = {"request": request, "driver": driver, "pool": pool, "device": device}
    if share:
        r["shareID"] = share
    if memory:
        r["consumedCapacity"] = {"memory": memory, "cores": cores}
    return r


def manifest_claims(path):
    """The ResourceClaims a manifest file (deploy/examples/) makes, in its order: each
    ResourceClaim as written, and for each ResourceClaimTemplate the claim the
    resourceclaim controller would make from it (named <template>-<5 random characters>)."""
    import yaml   # python3-yaml: only the users of manifests need it
    claims = []
    with open(path, encoding="utf-8") as f:
        for doc in yaml.safe_load_all(f):
            if not isinstance(doc, dict) or doc.get("apiVersion") != "resource.k8s.io/v1":
                continue
            if doc.get("kind") == "ResourceClaim":
                claims.append(doc)
            elif doc.get("kind") == "ResourceClaimTemplate":
                meta = dict((doc["spec"].get("metadata") or {}))
                meta["name"] = "%s-%s" % (doc["metadata"]["name"],
                                          "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(5)))
                if "namespace" in doc["metadata"]:
                    meta["namespace"] = doc["metadata"]["namespace"]
                claims.append({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim", "metadata": meta,
                               "spec": doc["spec"]["spec"]})
    return claims


def allocate_claim(claim, node, device="hami-gpu-0", uid=None, namespace="default", driver=DRIVER):
    """What the scheduler would have done with a ResourceClaim from a manifest: every
    request on `device` of the node's pool, a shareID each, consumedCapacity equal to the
    request's capacity.requests (both cores and memory, or neither: then the whole GPU, as
    the daemon reads a result without consumedCapacity). Only one-device `exactly`
    requests; selectors and constraints are not evaluated. Returns the stored object."""
    results = []
    for r in claim["spec"]["devices"]["requests"]:
        ex = r.get("exactly")
        if not isinstance(ex, dict) or ex.get("allocationMode", "ExactCount") != "ExactCount" or ex.get("count", 1) != 1:
            raise ValueError("request %s: only `exactly` requests for one device can be allocated here" % r.get("name"))
        caps = (ex.get("capacity") or {}).get("requests") or {}
        if caps and set(caps) != {"cores", "memory"}:
            raise ValueError("request %s: capacity.requests needs both cores and memory, or neither" % r["name"])
        results.append(claim_result(driver, node, device, str(uuid.uuid4()), str(caps["memory"]) if caps else None,
                                    str(caps["cores"]) if caps else None, request=r["name"]))
    meta = claim["metadata"]
    obj = claim_object(meta["name"], uid or str(uuid.uuid4()), results,
                       namespace=meta.get("namespace") or namespace)
    obj = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": obj["metadata"],
           "spec": claim["spec"], "status": obj["status"]}
    obj["status"]["allocation"]["nodeSelector"] = {"nodeSelectorTerms": [{"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": [node]}]}]}
    return obj
