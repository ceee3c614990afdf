#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Issue 14 item 4: a claim with two requests on two GPUs ("a": 2 GiB of hami-gpu-0,
"b": 1 GiB of hami-gpu-1), prepared by the real preparer; its CDI spec's edits are
applied as a runtime would (claim-wide edits, then each device of the container's
requests; an environment variable set twice to different values is a clash) and
claim-worker runs under the real libvgpu.so on the fake driver, whose device N is the
GPU with UUID ...00N, like the fixture's hami-gpu-N.

 - A container with the whole claim gets each GPU's own limit.
 - A container with request "a" holding 1500 MiB on hami-gpu-0 while a container with
   request "b" allocates on hami-gpu-1 (the shared region is the claim's): "b" gets its
   whole 1 GiB, and no more.
Usage: test-claim-requests.py SETUP WORKER LIBVGPU"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def setup(helper):
    out = subprocess.run([helper], check=True, capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def container_env(spec, region, devices, base):
    """The environment a runtime gives a container with these CDI devices."""
    env = dict(base)
    edits = [spec["containerEdits"]] + [d["containerEdits"] for d in spec["devices"] if d["name"] in devices]
    if len(edits) != len(devices) + 1:
        fail("devices %s not all in the spec" % devices)
    seen = {}
    for e in edits:
        for kv in e.get("env", []):
            k, v = kv.split("=", 1)
            if k in seen and seen[k] != v:
                fail("CDI devices of one claim clash: %s=%s and %s=%s" % (k, seen[k], k, v))
            seen[k] = v
    for k, v in seen.items():
        env[k] = region if k == "CUDA_DEVICE_MEMORY_SHARED_CACHE" else v
    return env


def run(worker, env, steps, what):
    p = subprocess.run([worker] + steps, env=env, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        fail("%s: %s%s" % (what, p.stdout, p.stderr))


def main():
    helper, worker, libvgpu = sys.argv[1:4]
    names = setup(helper)
    tmp = tempfile.mkdtemp(prefix="hami-claim-requests-")
    try:
        with open(names["SPEC"]) as f:
            spec = json.load(f)
        by_device = {}
        for d in spec["devices"]:
            by_device[d["name"].rsplit("-hami-", 1)[1]] = d["name"]
        base = {k: v for k, v in os.environ.items() if not k.startswith("CUDA_")}
        base.update({"LD_PRELOAD": libvgpu, "FAKE_CUDA_STATE": os.path.join(tmp, "fake.state"),
                     "FAKE_CUDA_DEVICES": "2"})
        region = names["REGION"]

        whole = container_env(spec, region, [by_device["gpu-0"], by_device["gpu-1"]], base)
        run(worker, whole, ["0:1500:ok", "1:100:ok", "1:900:ok", "1:100:oom", "0:500:ok", "0:100:oom"],
            "the whole claim")

        env_a = container_env(spec, region, [by_device["gpu-0"]], base)
        env_a["CLAIM_WORKER_READY"] = os.path.join(tmp, "ready")
        env_a["CLAIM_WORKER_RELEASE"] = os.path.join(tmp, "release")
        holder = subprocess.Popen([worker, "0:1500:ok"], env=env_a, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        try:
            for _ in range(3000):
                if os.path.exists(env_a["CLAIM_WORKER_READY"]) or holder.poll() is not None:
                    break
                time.sleep(0.01)
            if not os.path.exists(env_a["CLAIM_WORKER_READY"]):
                fail("request a's container did not get ready: %s" % holder.communicate()[0])
            env_b = container_env(spec, region, [by_device["gpu-1"]], base)
            run(worker, env_b, ["1:100:ok", "1:900:ok", "1:100:oom"], "request b beside request a")
        finally:
            open(env_a["CLAIM_WORKER_RELEASE"], "w").close()
            out = holder.communicate(timeout=60)[0]
        if holder.returncode != 0:
            fail("request a's container: %s" % out)
        print("ok")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(names["ROOT"], ignore_errors=True)


if __name__ == "__main__":
    main()
