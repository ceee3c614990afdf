#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Prepare end to end: the real daemon (mock GPUs, mknod device fixtures) reads claims
from the strict fake API server over TLS and answers the kubelet simulator on v1 and
v1beta1: a share with its CDI spec, every per-claim reject, idempotence, unprepare, the
claims of the example manifests in deploy/examples/, and after a restart the clean-up of
a claim re-created with another UID."""

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

from fakeapi import FakeApiServer, allocate_claim, claim_object, claim_result, manifest_claims, prepare_daemon_root
from harness import DRIVER, Daemon, check, is_real_daemon

SRC = os.environ.get("HAMI_DRA_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "../.."))
NODE = "test-node"
SHARE = "6f1c2f1e-0000-4000-8000-000000000001"

if not is_real_daemon():
    print("SKIP: needs the real daemon")
    sys.exit(77)
if not os.path.exists(os.path.join(SRC, "tests/fakes/fake-apiserver.py")):
    print("SKIP: needs the fake API server and the API client (kube branch)")
    sys.exit(77)
if os.geteuid() != 0:
    print("SKIP: mknod fixtures need root")
    sys.exit(77)


def claim(name, uid, results, config=None):
    return claim_object(name, uid, results, config)


def result(device="hami-gpu-0", pool=NODE, share=None, memory=None, cores=None):
    return claim_result(DRIVER, pool, device, share, memory, cores)


tmp = tempfile.mkdtemp(prefix="hami-prepare-e2e-")
fake = FakeApiServer(tmp, NODE)
try:
    kubeconfig = fake.write_kubeconfig()
    with Daemon(root=os.path.join(tmp, "daemon")) as d:
        env = prepare_daemon_root(d, kubeconfig)
        d.start(env=env)
        k = d.kubelet()
        k.register(DRIVER)

        ok = ("default", "ok", str(uuid.uuid4()))
        far = ("default", "far", str(uuid.uuid4()))
        bad = ("default", "bad", str(uuid.uuid4()))
        big = ("default", "big", str(uuid.uuid4()))
        missing = ("default", "missing", str(uuid.uuid4()))
        old = ("default", "recreated", str(uuid.uuid4()))
        fake.put(claim("ok", ok[2], [result(share=SHARE, memory="1Gi", cores="30")]))
        fake.put(claim("far", far[2], [result(pool="other-node")]))
        fake.put(claim("bad", bad[2], [result()], [{"source": "FromClaim", "opaque": {
            "driver": DRIVER, "parameters": {"apiVersion": "gpu.project-hami.io/v1alpha1", "kind": "Nope"}}}]))
        fake.put(claim("big", big[2], [result(share=SHARE, memory="1Ti", cores="30")]))
        fake.put(claim("recreated", old[2], [result(device="hami-gpu-1")]))

        res = k.prepare([ok, far, bad, big, missing, old], "v1")
        r = res[ok[2]]
        check(not r.error, "v1: the share is prepared (%s)" % r.error)
        dev = r.devices[0]
        cdi_id = "k8s.%s/claim=%s-hami-gpu-0-%s" % (DRIVER, ok[2], SHARE)
        check((dev.pool_name, dev.device_name, list(dev.request_names), list(dev.cdi_device_ids), dev.share_id)
              == (NODE, "hami-gpu-0", ["gpu"], [cdi_id], SHARE), "v1: device, CDI ID and shareID")
        check("another node" in res[far[2]].error, "another node: %s" % res[far[2]].error)
        check("malformed opaque config" in res[bad[2]].error, "bad config: %s" % res[bad[2]].error)
        check("exceeds the device" in res[big[2]].error, "too big: %s" % res[big[2]].error)
        check("not found" in res[missing[2]].error, "missing: %s" % res[missing[2]].error)
        check(not res[old[2]].error, "a whole GPU is prepared")

        cdi = os.path.join(d.root, "cdi")
        spec = os.path.join(cdi, "k8s.%s-claim_%s.json" % (DRIVER, ok[2]))
        check(os.path.exists(spec), "the CDI spec is written")
        with open(spec) as f:
            env_lines = json.load(f)["devices"][0]["containerEdits"]["env"]
        check("CUDA_DEVICE_MEMORY_LIMIT_0=1024m" in env_lines and "CUDA_DEVICE_SM_LIMIT_0=30" in env_lines,
              "the spec carries the limits: %s" % env_lines)
        rc = subprocess.run(["/usr/bin/python3", os.path.join(SRC, "tests/cdi-validate.py"), "--exact-minimum"]
                            + [os.path.join(cdi, n) for n in os.listdir(cdi)])
        check(rc.returncode == 0, "every spec validates")
        check(sorted(os.listdir(cdi)) == sorted("k8s.%s-claim_%s.json" % (DRIVER, u) for u in (ok[2], old[2])),
              "rejected claims leave no spec")

        r = k.prepare([ok], "v1beta1")[ok[2]]
        check(not r.error and list(r.devices[0].cdi_device_ids) == [cdi_id], "v1beta1: the same device again")

        res = k.unprepare([ok, missing], "v1")
        check(not res[ok[2]].error and not res[missing[2]].error, "unprepare, also of an unknown claim")
        check(not os.path.exists(spec), "the spec is gone")

        # The claims users apply from deploy/examples/, allocated as the scheduler would.
        # Two requests on one GPU add up: each request's device gets 12 GiB and 90 cores.
        def example(name, device):
            c = allocate_claim(manifest_claims(os.path.join(SRC, "deploy/examples", name))[0], NODE, device)
            fake.put(c)
            return c, (c["metadata"]["namespace"], c["metadata"]["name"], c["metadata"]["uid"])

        def spec_env(uid):
            with open(os.path.join(cdi, "k8s.%s-claim_%s.json" % (DRIVER, uid))) as f:
                return {dv["name"]: dv["containerEdits"].get("env", []) for dv in json.load(f)["devices"]}

        two, two_ref = example("two-requests-one-gpu.yaml", "hami-gpu-2")
        tpl, tpl_ref = example("deployment-template.yaml", "hami-gpu-3")
        res = k.prepare([two_ref, tpl_ref], "v1")
        check(not res[two_ref[2]].error and not res[tpl_ref[2]].error,
              "the examples are prepared (%s; %s)" % (res[two_ref[2]].error, res[tpl_ref[2]].error))
        shares = {r["request"]: r["shareID"] for r in two["status"]["allocation"]["devices"]["results"]}
        got = {tuple(dv.request_names): (dv.device_name, dv.share_id) for dv in res[two_ref[2]].devices}
        check(got == {(q,): ("hami-gpu-2", s) for q, s in shares.items()},
              "two requests, one GPU: a device per request with its share: %s" % got)
        edits = spec_env(two_ref[2])
        check(len(edits) == 2 and all("CUDA_DEVICE_MEMORY_LIMIT_0=12288m" in e and "CUDA_DEVICE_SM_LIMIT_0=90" in e
                                      for e in edits.values()),
              "two requests, one GPU: 4Gi + 8Gi and 30 + 60 cores add up on it: %s" % edits)
        edits = spec_env(tpl_ref[2])
        check([[e for e in v if not e.startswith("CUDA_DEVICE_UUID_0=GPU-")] for v in edits.values()]
              == [["CUDA_DEVICE_MEMORY_LIMIT_0=4096m", "CUDA_DEVICE_MEMORY_LIMIT=4096m",
                   "CUDA_DEVICE_SM_LIMIT_0=30", "CUDA_DEVICE_SM_LIMIT=30"]]
              and all(len(v) == 5 for v in edits.values()),
              "the template's claim: its GPU's UUID, 4Gi and 30 cores: %s" % edits)
        rc = subprocess.run(["/usr/bin/python3", os.path.join(SRC, "tests/cdi-validate.py"), "--exact-minimum"]
                            + [os.path.join(cdi, "k8s.%s-claim_%s.json" % (DRIVER, r[2])) for r in (two_ref, tpl_ref)])
        check(rc.returncode == 0, "the examples' specs validate")
        res = k.unprepare([two_ref, tpl_ref], "v1")
        check(not res[two_ref[2]].error and not res[tpl_ref[2]].error, "the examples are unprepared")

        # Down, the claim is deleted and re-created under its name with a new UID.
        check(d.stop() == 0, "the daemon stops cleanly")
        fake.put(claim("recreated", str(uuid.uuid4()), [result(device="hami-gpu-1")]))
        d.start(env=env)
        deadline = time.monotonic() + 20
        old_spec = os.path.join(cdi, "k8s.%s-claim_%s.json" % (DRIVER, old[2]))
        while os.path.exists(old_spec) and time.monotonic() < deadline:
            time.sleep(0.05)
        check(not os.path.exists(old_spec), "a claim re-created while the daemon was down is cleaned up")
        check(not os.path.exists(os.path.join(d.root, "state", "checkpoints", old[2] + ".ckpt")),
              "and its checkpoint")

        # Stopped while the start-up check of a prepared claim waits for a slow API server:
        # a clean stop (under ASan: nothing of the GET in flight leaks).
        k = d.kubelet()   # a new connection to the restarted daemon
        k.register(DRIVER)
        check(not k.prepare([ok], "v1")[ok[2]].error, "prepared again")
        check(d.stop() == 0, "the daemon stops cleanly")
        fake.faults(slow_ms=3000)
        d.start(env=env)
        time.sleep(0.5)
        check(d.stop() == 0, "a stop during the start-up check of the claims is clean:\n%s" % d.output()[-3000:])
        fake.faults(slow_ms=0)
        print("prepare e2e: all checks passed")
finally:
    fake.stop()
    subprocess.run(["rm", "-rf", tmp])
