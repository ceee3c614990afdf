# SPDX-License-Identifier: Apache-2.0
"""The TLS client side of the webhook benchmarks (bench-webhook-tls.py,
bench-webhook-admission.py): N POSTs per client from 1 or 64 Python threads at once,
keep-alive (one TLS connection per client, reused; the handshake not timed) or a new
TLS connection per request (handshake timed); median, p99, their ratio against the
1-client row of the same mode in the same run, req/s, and the server's RSS (VmRSS after
the phase, VmHWM: its peak so far) from /proc.

The clients are Python threads (GIL and OpenSSL in the client process): at 64 clients
part of the latency is the clients' own queueing on the machine's cores."""

import concurrent.futures
import http.client
import ssl
import statistics
import threading
import time

HEADERS = {"Content-Type": "application/json"}


class Target:
    """Where to POST what, and how to tell a good answer: check(status, data) -> bool."""

    def __init__(self, port, path, body, check):
        self.port, self.path, self.body, self.check = port, path, body, check


def context(cafile):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile)
    return ctx


def one_request(conn, target):
    t0 = time.perf_counter()
    conn.request("POST", target.path, body=target.body, headers=HEADERS)
    resp = conn.getresponse()
    data = resp.read()
    dt = time.perf_counter() - t0
    if not target.check(resp.status, data):
        raise RuntimeError(f"bad answer {resp.status}: {data[:200]!r}")
    return dt


def client(target, ctx, n, keepalive, barrier):
    lat = []
    barrier.wait(timeout=60)
    if keepalive:
        conn = http.client.HTTPSConnection("127.0.0.1", target.port, context=ctx, timeout=60)
        conn.connect()  # the handshake is not part of a keep-alive request
        for _ in range(n):
            lat.append(one_request(conn, target))
        conn.close()
    else:
        for _ in range(n):
            t0 = time.perf_counter()
            conn = http.client.HTTPSConnection("127.0.0.1", target.port, context=ctx, timeout=60)
            one_request(conn, target)
            lat.append(time.perf_counter() - t0)
            conn.close()
    return lat


def phase(target, ctx, clients, n, keepalive):
    barrier = threading.Barrier(clients)
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda _: client(target, ctx, n, keepalive, barrier), range(clients)))
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


def run_plan(plan, ctx, pid):
    """plan: (label, target, keepalive, clients, requests per client) rows. The ratios of a
    row are against the 1-client row of the same label, which must come first."""
    rows, base = [], {}
    for label, target, keepalive, clients, n in plan:
        lat, wall = phase(target, ctx, clients, max(n, 1), keepalive)
        med, tail = statistics.median(lat), p99(lat)
        if clients == 1:
            base[label] = (med, tail)
        rss = rss_kib(pid)
        rows.append((label, clients, len(lat), med * 1e3, tail * 1e3, med / base[label][0],
                     tail / base[label][1], len(lat) / wall, rss["VmRSS"], rss["VmHWM"]))
    return rows


def print_table(rows, width=11):
    print(f"{'mode':<{width}} {'clients':>7} {'reqs':>6} {'p50 ms':>8} {'p99 ms':>8} {'p50 x':>6} "
          f"{'p99 x':>6} {'req/s':>8} {'RSS KiB':>8} {'peak KiB':>8}")
    for r in rows:
        print(f"{r[0]:<{width}} {r[1]:>7} {r[2]:>6} {r[3]:>8.2f} {r[4]:>8.2f} {r[5]:>6.1f} {r[6]:>6.1f} "
              f"{r[7]:>8.0f} {r[8]:>8} {r[9]:>8}")
