#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Benchmark: latency of hami-dra-webhook's HTTPS server (src/webhook/https-server.c)
with the echo handler of tests/webhook/https-test-server, over TLS on loopback.

Two ways to connect: keep-alive (one TLS connection per client, reused) and a new TLS
connection per request (handshake included, as an API server without keep-alive pays).
1 client, then 64 clients at once; the median and p99 of each, with their ratio against
the 1-client figure of the same mode measured in the same run, and the server's RSS
(VmRSS after the phase, VmHWM: its peak so far).

The client side is shared with bench-webhook-admission.py (webhook_bench_client.py):
Python threads, so at 64 clients part of the latency is the clients' own queueing.
Usage: bench-webhook-tls.py [BUILD_DIR] [SCALE]   (SCALE multiplies the request counts)"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import webhook_bench_client as wb  # noqa: E402

BUILD = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("HAMI_DRA_BUILD_ROOT", "build")
SCALE = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
SERVER = os.path.join(BUILD, "tests", "webhook", "https-test-server")

# An AdmissionReview of about the size the API server sends for a small pod.
BODY = json.dumps({
    "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
    "request": {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "operation": "CREATE",
                "kind": {"group": "", "version": "v1", "kind": "Pod"}, "namespace": "default",
                "object": {"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"name": "gpu-pod", "namespace": "default",
                                        "labels": {f"l{i}": "v" * 20 for i in range(20)}},
                           "spec": {"containers": [{"name": f"c{i}", "image": "cuda:12",
                                                    "resources": {"limits": {"nvidia.com/gpu": "1",
                                                                             "nvidia.com/gpumem": "10240"}}}
                                                   for i in range(8)]}}}}).encode()


def make_cert(directory):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=bench",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout",
                    os.path.join(directory, "tls.key"), "-out", os.path.join(directory, "tls.crt")],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    if not os.access(SERVER, os.X_OK):
        print(f"{SERVER} is not built")
        return 1
    tmp = tempfile.mkdtemp(prefix="bench-webhook-tls.")
    try:
        make_cert(tmp)
        proc = subprocess.Popen([SERVER, tmp], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        port = int(proc.stdout.readline().strip().split("=")[1])
        ctx = wb.context(os.path.join(tmp, "tls.crt"))
        idle = wb.rss_kib(proc.pid)
        echo = wb.Target(port, "/echo", BODY, lambda status, data: status == 200 and data == BODY)

        plan = [  # mode, target, keep-alive, clients, requests per client
            ("keep-alive", echo, True, 1, int(1000 * SCALE)),
            ("keep-alive", echo, True, 64, int(40 * SCALE)),
            ("new conn", echo, False, 1, int(300 * SCALE)),
            ("new conn", echo, False, 64, int(10 * SCALE)),
        ]
        wb.phase(echo, ctx, 4, 20, True)  # warm-up
        rows = wb.run_plan(plan, ctx, proc.pid)
        proc.terminate()
        proc.wait(timeout=30)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"body {len(BODY)} bytes; server RSS idle {idle['VmRSS']} KiB")
    wb.print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
