#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Benchmark: latency of hami-dra-webhook's HTTPS server (src/webhook/https-server.c)
with the echo handler of tests/webhook/https-test-server, over TLS on loopback.

Two ways to connect: keep-alive (one TLS connection per client, reused) and a new TLS
connection per request (handshake included, as an API server without keep-alive pays).
1 client, then 64 clients at once; the median and p99 of each, with their ratio against
the 1-client figure of the same mode measured in the same run, and the server's RSS
(VmRSS after the phase, VmHWM: its peak so far).

The clients are Python threads (GIL and OpenSSL in the client process): at 64 clients
part of the latency is the client's own queueing on 2 cores.
Usage: bench-webhook-tls.py [BUILD_DIR] [SCALE]   (SCALE multiplies the request counts)"""

import concurrent.futures
import http.client
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

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
HEADERS = {"Content-Type": "application/json"}


def make_cert(directory):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=bench",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout",
                    os.path.join(directory, "tls.key"), "-out", os.path.join(directory, "tls.crt")],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def context(cafile):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile)
    return ctx


def one_request(conn):
    t0 = time.perf_counter()
    conn.request("POST", "/echo", body=BODY, headers=HEADERS)
    resp = conn.getresponse()
    data = resp.read()
    dt = time.perf_counter() - t0
    if resp.status != 200 or data != BODY:
        raise RuntimeError(f"bad answer {resp.status}")
    return dt


def client(port, ctx, n, keepalive, barrier):
    lat = []
    barrier.wait(timeout=60)
    if keepalive:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=60)
        conn.connect()  # the handshake is not part of a keep-alive request
        for _ in range(n):
            lat.append(one_request(conn))
        conn.close()
    else:
        for _ in range(n):
            t0 = time.perf_counter()
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=60)
            one_request(conn)
            lat.append(time.perf_counter() - t0)
            conn.close()
    return lat


def phase(port, ctx, clients, n, keepalive):
    barrier = threading.Barrier(clients)
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda _: client(port, ctx, n, keepalive, barrier), range(clients)))
    wall = time.perf_counter() - t0
    lat = sorted(x for r in results for x in r)
    return lat, wall


def rss_kib(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out


def p99(lat):
    return lat[min(len(lat) - 1, int(len(lat) * 0.99))]


def main():
    if not os.access(SERVER, os.X_OK):
        print(f"{SERVER} is not built")
        return 1
    tmp = tempfile.mkdtemp(prefix="bench-webhook-tls.")
    try:
        make_cert(tmp)
        proc = subprocess.Popen([SERVER, tmp], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        port = int(proc.stdout.readline().strip().split("=")[1])
        ctx = context(os.path.join(tmp, "tls.crt"))
        idle = rss_kib(proc.pid)

        plan = [  # mode, clients, requests per client
            ("keep-alive", 1, int(1000 * SCALE)),
            ("keep-alive", 64, int(40 * SCALE)),
            ("new conn", 1, int(300 * SCALE)),
            ("new conn", 64, int(10 * SCALE)),
        ]
        phase(port, ctx, 4, 20, True)  # warm-up
        rows, base = [], {}
        for mode, clients, n in plan:
            lat, wall = phase(port, ctx, clients, max(n, 1), mode == "keep-alive")
            med, tail = statistics.median(lat), p99(lat)
            if clients == 1:
                base[mode] = (med, tail)
            rss = rss_kib(proc.pid)
            rows.append((mode, clients, len(lat), med * 1e3, tail * 1e3, med / base[mode][0],
                         tail / base[mode][1], len(lat) / wall, rss["VmRSS"], rss["VmHWM"]))
        proc.terminate()
        proc.wait(timeout=30)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"body {len(BODY)} bytes; server RSS idle {idle['VmRSS']} KiB")
    print(f"{'mode':<11} {'clients':>7} {'reqs':>6} {'p50 ms':>8} {'p99 ms':>8} {'p50 x':>6} "
          f"{'p99 x':>6} {'req/s':>8} {'RSS KiB':>8} {'peak KiB':>8}")
    for r in rows:
        print(f"{r[0]:<11} {r[1]:>7} {r[2]:>6} {r[3]:>8.2f} {r[4]:>8.2f} {r[5]:>6.1f} {r[6]:>6.1f} "
              f"{r[7]:>8.0f} {r[8]:>8} {r[9]:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
