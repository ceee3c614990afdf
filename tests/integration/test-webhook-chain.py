#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""From HAMi's pod to the container's limits: the real daemon (mock GPUs) publishes its
ResourceSlices to the strict fake API server; hami-dra-webhook converts HAMi's guide pod
(nvidia.com/gpu 1, gpumem 10240, gpucores 50) and creates its ResourceClaimTemplate
there; the claim the resourceclaim controller would make from it, allocated as the
scheduler would, is prepared by the daemon for the kubelet simulator, and the CDI spec
carries 10240 MiB and 50 % of the cores.

Usage: test-webhook-chain.py PATH/TO/hami-dra-plugin PATH/TO/hami-dra-webhook"""

import base64
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

from fakeapi import FakeApiServer, allocate_claim, prepare_daemon_root
from harness import DRIVER, Daemon, check, require_real_daemon_as_root

SRC = os.environ.get("HAMI_DRA_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "../.."))
NODE = "test-node"
TOKEN = "webhook-token"
WEBHOOK = sys.argv[2]

require_real_daemon_as_root()


def control(fake, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (fake.control, path), timeout=10) as r:
        return json.loads(r.read())


def wait_for(pred, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    return None


tmp = tempfile.mkdtemp(prefix="hami-webhook-chain-")
fake = FakeApiServer(tmp, NODE, tokens=[TOKEN + "=system:serviceaccount:hami-dra:hami-dra-webhook"])
wh = None
try:
    kubeconfig = fake.write_kubeconfig()
    wh_kubeconfig = os.path.join(tmp, "webhook.kubeconfig")
    with open(wh_kubeconfig, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "ctx",
                   "contexts": [{"name": "ctx", "context": {"cluster": "k", "user": "w"}}],
                   "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:%d" % fake.port,
                                                          "certificate-authority": "ca.crt"}}],
                   "users": [{"name": "w", "user": {"token": TOKEN}}]}, f)
    tls = os.path.join(tmp, "tls")
    os.makedirs(tls)
    shutil.copy(os.path.join(tmp, "server.crt"), os.path.join(tls, "tls.crt"))
    shutil.copy(os.path.join(tmp, "server.key"), os.path.join(tls, "tls.key"))

    with Daemon(root=os.path.join(tmp, "daemon")) as d:
        env = prepare_daemon_root(d, kubeconfig)
        d.start(env=env)
        k = d.kubelet()
        k.register(DRIVER)
        check(wait_for(lambda: [s for s in control(fake, "/slices") if s["spec"].get("nodeName") == NODE]),
              "the daemon published its ResourceSlices")

        wh_log = open(os.path.join(tmp, "webhook.log"), "w+")
        wh = subprocess.Popen([WEBHOOK, "--tls-dir", tls, "--address", "127.0.0.1", "--port", "0",
                               "--kubeconfig", wh_kubeconfig], stdout=wh_log, stderr=subprocess.STDOUT)

        def port():
            with open(wh_log.name) as f:
                for line in f:
                    if "Listening on" in line and " port " in line:
                        return int(line.rsplit(" ", 1)[1])
            return None
        p = wait_for(port)
        check(p is not None, "hami-dra-webhook listens")

        with open(os.path.join(SRC, "tests/webhook/fixtures/hami-guide.json")) as f:
            review = json.load(f)
        conn = http.client.HTTPSConnection("127.0.0.1", p, timeout=30,
                                           context=ssl.create_default_context(cafile=os.path.join(tmp, "ca.crt")))
        conn.request("POST", "/mutate", body=json.dumps(review), headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        resp = json.loads(r.read()).get("response") or {}
        conn.close()
        check(r.status == 200 and resp.get("allowed") is True and "patch" in resp, "the guide pod is converted")
        patch = json.loads(base64.b64decode(resp.get("patch") or "W10="))
        names = [c["resourceClaimTemplateName"] for op in patch
                 for c in (op["value"] if isinstance(op.get("value"), list) else [op.get("value")])
                 if isinstance(c, dict) and "resourceClaimTemplateName" in c]
        templates = control(fake, "/templates")
        check(len(names) == 1 and [t["metadata"]["name"] for t in templates] == names,
              "its template is in the API server: %s" % names)

        # gpumem-percentage needs the memory of the devices: the webhook read the daemon's slices.
        with open(os.path.join(SRC, "tests/webhook/fixtures/percentage.json")) as f:
            review = json.load(f)
        conn = http.client.HTTPSConnection("127.0.0.1", p, timeout=30,
                                           context=ssl.create_default_context(cafile=os.path.join(tmp, "ca.crt")))
        conn.request("POST", "/mutate", body=json.dumps(review), headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        pct = json.loads(r.read()).get("response") or {}
        conn.close()
        check(pct.get("allowed") is True, "gpumem-percentage: converted with the daemon's published devices (%s)"
              % (pct.get("status") or {}).get("message"))

        # The resourceclaim controller's claim from the template, allocated as the scheduler would.
        tpl = templates[0]
        meta = dict(tpl["spec"].get("metadata") or {}, name=tpl["metadata"]["name"] + "-cuda-x7k2p",
                    namespace=tpl["metadata"]["namespace"])
        claim = allocate_claim({"metadata": meta, "spec": tpl["spec"]["spec"]}, NODE, "hami-gpu-0")
        fake.put(claim)
        ref = (claim["metadata"]["namespace"], claim["metadata"]["name"], claim["metadata"]["uid"])
        res = k.prepare([ref], "v1")[ref[2]]
        check(not res.error, "the daemon prepares the claim (%s)" % res.error)
        spec = os.path.join(d.root, "cdi", "k8s.%s-claim_%s.json" % (DRIVER, ref[2]))
        env_lines = []
        if os.path.exists(spec):
            with open(spec) as f:
                env_lines = [e for dv in json.load(f)["devices"] for e in dv["containerEdits"].get("env", [])]
        check("CUDA_DEVICE_MEMORY_LIMIT_0=10240m" in env_lines and "CUDA_DEVICE_SM_LIMIT_0=50" in env_lines,
              "the CDI spec carries gpumem 10240 (MiB) and gpucores 50: %s" % env_lines)
        res = k.unprepare([ref], "v1")[ref[2]]
        check(not res.error and not os.path.exists(spec), "unprepared")
        check(d.stop() == 0, "the daemon stops cleanly")
        wh.send_signal(signal.SIGTERM)
        check(wh.wait(10) == 0, "hami-dra-webhook stops cleanly")
        wh = None
        print("webhook chain: all checks passed")
finally:
    if wh is not None:
        wh.kill()
        wh.wait()
    fake.stop()
    subprocess.run(["rm", "-rf", tmp])
