#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The daemon's usage monitor, in the real daemon (sandbox and all): a claim for 30 % of
hami-gpu-0 is prepared from the fake API server; a process of that "container" (its
region, its limit, libvgpu.so, its own PID namespace as root) launches kernels flat out
on the fake GPU; the daemon, which loads the fake NVML, finds the process's host PID
through its beacon in /proc/locks, and writes the container's own share into the
claim's region. The process then gets 30 % +- 5 of the GPU, by the fake's timeline."""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

SRC = os.environ.get("HAMI_DRA_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
sys.path.insert(0, os.path.join(SRC, "tests", "preload"))

from fakeapi import FakeApiServer, claim_object, claim_result, prepare_daemon_root  # noqa: E402
from harness import DRIVER, Daemon, check, is_real_daemon  # noqa: E402
from tenants import fake_gpu_processes, gpu_env, tenant_env  # noqa: E402

NODE = "test-node"
SHARE = "6f1c2f1e-0000-4000-8000-000000000002"


def skip(reason):
    print("SKIP: " + reason)
    sys.exit(77)


def region_measured(path):
    """What the monitor wrote, as tests/region-usage reads the header."""
    out = subprocess.run([os.environ["HAMI_DRA_REGION_USAGE"], path], capture_output=True, text=True, check=True)
    u = dict(line.split("=", 1) for line in out.stdout.split())
    return int(u["MEASURED_SM_0"]), int(u["MEASURED_PROCS_0"]), int(u["MEASURED_SEQ_0"])


def main():
    if not is_real_daemon():
        skip("needs the real daemon")
    if os.geteuid() != 0:
        skip("needs root (the device-node fixtures)")
    for var in ("HAMI_DRA_LIBVGPU", "HAMI_DRA_TENANT_WORKER", "HAMI_DRA_REGION_USAGE", "HAMI_DRA_FAKE_GPU_SHARE",
                "HAMI_DRA_PRELOAD_LIB_PATH", "HAMI_DRA_FAKE_NVML_CONFIG"):
        if not os.environ.get(var):
            skip("%s is not set: run through meson test" % var)
    tmp = tempfile.mkdtemp(prefix="hami-monitor-", dir="/var/tmp")
    fake = None
    worker = None
    try:
        fake = FakeApiServer(tmp, NODE)
        kubeconfig = fake.write_kubeconfig()
        state = os.path.join(tmp, "fake-cuda.state")
        # The fake NVML with the mock GPUs' UUIDs (HAMI_DRA_FAKE_NVML_CONFIG, for this test).
        fake_gpu = gpu_env(state)
        with Daemon(gpus=2, root=os.path.join(tmp, "daemon")) as d:
            env = dict(prepare_daemon_root(d, kubeconfig), **fake_gpu)
            d.start(env=env)
            k = d.kubelet()
            k.register(DRIVER)
            claim_uid = str(uuid.uuid4())
            ref = ("default", "monitored", claim_uid)
            fake.put(claim_object("monitored", claim_uid,
                                  [claim_result(DRIVER, NODE, "hami-gpu-0", SHARE, "1Gi", "30")]))
            r = k.prepare([ref], "v1")[claim_uid]
            check(not r.error, "the claim is prepared (%s)" % r.error)
            region = os.path.join(d.root, "state", "claims", claim_uid, "vgpu", "vgpu.cache")
            check(os.path.exists(region), "prepare made the claim's region")

            argv = [os.environ["HAMI_DRA_TENANT_WORKER"], "steady", "8"]
            if os.geteuid() == 0 and shutil.which("unshare"):
                argv = ["unshare", "--pid", "--fork", "--kill-child"] + argv
            wenv = tenant_env(state, region, FAKE_CUDA_KERNEL_US=200, CUDA_DEVICE_SM_LIMIT=30,
                              CUDA_DEVICE_MEMORY_LIMIT="1024m")
            worker = subprocess.Popen(argv, env=wenv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            time.sleep(7)
            sm, procs, seq = region_measured(region)
            print("region: measured_sm %d permille, %d processes, seq %d" % (sm, procs, seq))
            truth, _ = fake_gpu_processes(fake_gpu, 3000)
            print("fake GPU, last 3 s: %s" % truth)
            out, _ = worker.communicate(timeout=30)
            check(worker.returncode == 0, "the tenant ran (%s)" % out.strip())
            check(seq > 10 and procs == 1, "the daemon measures the container (seq %d, %d process)" % (seq, procs))
            check(abs(sm - 300) <= 50, "the daemon's figure is the container's own share (%.1f %%)" % (sm / 10))
            shares = [share for share, _ in truth.values()]
            check(len(shares) == 1 and abs(shares[0] - 300) <= 50,
                  "the container gets its 30 %% +- 5 (%s permille)" % shares)
            check("Usage monitor measuring" in d.output(), "the daemon says the monitor runs")
            r = k.unprepare([ref], "v1")[claim_uid]
            check(not r.error, "unprepare")
            check(d.stop() == 0, "the daemon stops cleanly")
        print("daemon monitor: all checks passed")
    finally:
        if worker and worker.poll() is None:
            worker.kill()
            worker.wait()
        if fake:
            fake.stop()
        shutil.rmtree(tmp, ignore_errors=True)


main()
