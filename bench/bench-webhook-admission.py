#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Benchmark: admission by the real hami-dra-webhook binary over TLS on loopback, against
the strict fake API server (tests/fakes/fake-apiserver.py, started as tests/integration/
fakeapi.py starts it; one ResourceSlice of our driver; a service-account token).

POST /mutate of HAMi's guide pod (tests/webhook/fixtures/hami-guide.json: one container,
nvidia.com/gpu 1, gpumem 10240, gpucores 50), 1 then 64 concurrent clients, keep-alive
and a new TLS connection per request (webhook_bench_client.py, shared with
bench-webhook-tls.py): p50, p99, ratio against the 1-client row of the same mode, req/s,
and the webhook's RSS (VmRSS after the phase, VmHWM: its peak so far).

Two variants:
  create  the pod as the API server sends it: before answering, the webhook POSTs the
          pod's ResourceClaimTemplate to the API server. The warm-up creates it (201);
          every measured admission re-creates it and gets 409 AlreadyExists (taken as
          success), so each figure includes one API round trip: a new curl handle, so a
          new TLS connection, to a Python fake (checked on the fake's counters).
  dryRun  the same pod with request.dryRun true: no API call (sideEffects
          NoneOnDryRun), the webhook's own cost over TLS.
The webhook runs with its default log level: one info line per admission, to a file.
The inventory (the ResourceSlices) is listed at start and again when older than 30 s.

Usage: bench-webhook-admission.py [BUILD_DIR] [SCALE]   (SCALE multiplies the request counts)"""

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("HAMI_DRA_SOURCE_ROOT", os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
import webhook_bench_client as wb  # noqa: E402
from fakeapi import DRIVER, FakeApiServer  # noqa: E402

BUILD = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("HAMI_DRA_BUILD_ROOT", "build")
SCALE = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
WEBHOOK = os.path.join(BUILD, "src", "hami-dra-webhook")
FIXTURE = os.path.join(SRC, "tests", "webhook", "fixtures", "hami-guide.json")
TOKEN = "webhook-token"


def control(fake, method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{fake.control}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def kubeconfig(fake, path):
    with open(path, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "ctx",
                   "contexts": [{"name": "ctx", "context": {"cluster": "k", "user": "webhook"}}],
                   "clusters": [{"name": "k", "cluster": {"server": f"https://127.0.0.1:{fake.port}",
                                                          "certificate-authority": "ca.crt",
                                                          "tls-server-name": "kubernetes"}}],
                   "users": [{"name": "webhook", "user": {"token": TOKEN}}]}, f)
    return path


def start_webhook(tmp, fake):
    tls = os.path.join(tmp, "tls")
    os.makedirs(tls)
    shutil.copy(os.path.join(fake.tmp, "server.crt"), os.path.join(tls, "tls.crt"))
    shutil.copy(os.path.join(fake.tmp, "server.key"), os.path.join(tls, "tls.key"))
    logpath = os.path.join(tmp, "webhook.log")
    log = open(logpath, "w")
    proc = subprocess.Popen([WEBHOOK, "--tls-dir", tls, "--address", "127.0.0.1", "--port", "0",
                             "--kubeconfig", kubeconfig(fake, os.path.join(fake.tmp, "webhook.kubeconfig"))],
                            stdout=log, stderr=subprocess.STDOUT)
    end = time.monotonic() + 60
    while time.monotonic() < end:
        with open(logpath) as f:
            for line in f:
                if "Listening on" in line and " port " in line:
                    return proc, log, logpath, int(line.rsplit(" ", 1)[1])
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    with open(logpath) as f:
        raise SystemExit("hami-dra-webhook did not start:\n" + f.read())


def admitted(status, data):
    # the patched pod: allowed, with a JSON Patch (checked in full once, in main)
    return status == 200 and b'"allowed":true' in data and b'"patch"' in data


def main():
    if not os.access(WEBHOOK, os.X_OK):
        print(f"{WEBHOOK} is not built")
        return 1
    with open(FIXTURE) as f:
        review = json.load(f)
    create_body = json.dumps(review).encode()
    review["request"]["dryRun"] = True
    dry_body = json.dumps(review).encode()

    tmp = tempfile.mkdtemp(prefix="bench-webhook-admission.")
    fake = proc = log = None
    try:
        fake = FakeApiServer(os.path.join(tmp, "api"), "node1",
                             tokens=(TOKEN + "=system:serviceaccount:hami-dra:hami-dra-webhook",))
        control(fake, "POST", "/create-slice", {
            "apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
            "metadata": {"name": "node1-" + DRIVER},
            "spec": {"driver": DRIVER, "nodeName": "node1",
                     "pool": {"name": "node1", "generation": 1, "resourceSliceCount": 1},
                     "devices": [{"name": "hami-gpu-0", "capacity": {"memory": {"value": "24Gi"},
                                                                      "cores": {"value": "100"}}}]}})
        proc, log, logpath, port = start_webhook(tmp, fake)
        ctx = wb.context(os.path.join(fake.tmp, "ca.crt"))
        idle = wb.rss_kib(proc.pid)
        create = wb.Target(port, "/mutate", create_body, admitted)
        dry = wb.Target(port, "/mutate", dry_body, admitted)

        # one admission checked in full: allowed, patched, the template created (201)
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
        conn.request("POST", "/mutate", body=create_body, headers=wb.HEADERS)
        first = json.loads(conn.getresponse().read())["response"]
        conn.close()
        if first.get("allowed") is not True or first.get("patchType") != "JSONPatch":
            raise SystemExit(f"the guide pod was not admitted with a patch: {first}")
        before = control(fake, "GET", "/stats")
        if before.get("templates_created") != 1:
            raise SystemExit(f"the template was not created: {before}")

        wb.phase(create, ctx, 4, 10, True)  # warm-up (409s)
        wb.phase(dry, ctx, 4, 20, True)
        before = control(fake, "GET", "/stats")

        plan = [  # label, target, keep-alive, clients, requests per client
            ("create keep-alive", create, True, 1, int(300 * SCALE)),
            ("create keep-alive", create, True, 64, int(10 * SCALE)),
            ("create new conn", create, False, 1, int(200 * SCALE)),
            ("create new conn", create, False, 64, int(5 * SCALE)),
            ("dryRun keep-alive", dry, True, 1, int(1000 * SCALE)),
            ("dryRun keep-alive", dry, True, 64, int(40 * SCALE)),
            ("dryRun new conn", dry, False, 1, int(300 * SCALE)),
            ("dryRun new conn", dry, False, 64, int(10 * SCALE)),
        ]
        rows = wb.run_plan(plan, ctx, proc.pid)
        after = control(fake, "GET", "/stats")
        creates = sum(r[2] for r in rows if r[0].startswith("create"))
        conflicts = after.get("templates_conflicts", 0) - before.get("templates_conflicts", 0)
        created = after.get("templates_created", 0) - before.get("templates_created", 0)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        if log:
            log.close()
        if fake:
            fake.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"POST /mutate of {os.path.basename(FIXTURE)} ({len(create_body)} bytes); "
          f"webhook RSS idle {idle['VmRSS']} KiB; SIGTERM exit {rc}")
    print(f"create rows: {creates} admissions, the fake API server counted {conflicts} template "
          f"409s and {created} creations; dryRun rows: no API call")
    wb.print_table(rows, width=17)
    if conflicts != creates or created != 0 or rc != 0:
        print("unexpected: every measured create admission should have met exactly one 409")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
