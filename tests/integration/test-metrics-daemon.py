#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""/metrics end to end: the real daemon, socket-activated with a TCP socket named
"metrics" (as hami-dra-metrics.socket passes it), prepares claims of the fake API server
for the kubelet simulator; a real Prometheus (Debian's) scrapes it on loopback and its
query API returns the expected limits, allocations and counters; `promtool check
metrics` accepts the scrape; a region overwritten with garbage breaks no scrape, raises
hami_dra_shared_region_errors_total and is logged once."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from fakeapi import FakeApiServer, claim_object, claim_result, prepare_daemon_root
from harness import DRIVER, Daemon, check, fail, require_real_daemon_as_root
from promserver import PrometheusServer, free_port

NODE = "test-node"
GIB = 1 << 30

require_real_daemon_as_root()
PROMETHEUS, PROMTOOL = shutil.which("prometheus"), shutil.which("promtool")
if not PROMETHEUS or not PROMTOOL:
    print("SKIP: prometheus is not installed (tools/packages.txt [test])")
    sys.exit(77)


def scrape(port, path="/metrics", method="GET"):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def promtool_check(text):
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True)
    return p.returncode, (p.stdout + p.stderr).decode()


def series(text, name, **labels):
    """The values of the samples of name whose labels include labels."""
    out = []
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all('%s="%s"' % kv in line for kv in labels.items()):
            out.append(float(line.rsplit(" ", 1)[1]))
    return out


class Prometheus(PrometheusServer):
    def __init__(self, tmp, target):
        try:
            super().__init__(tmp, [target], interval=1, binary=PROMETHEUS)
        except RuntimeError as e:
            fail(str(e))

    def query(self, q):
        status, res = self.query_json(q)
        if status != 200 or res["status"] != "success":
            fail("query %s: %s" % (q, res))
        return [float(v["value"][1]) for v in res["data"]["result"]]

    def wait_for(self, q, want, timeout=30):
        """Until the query returns exactly [want]."""
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            got = self.query(q)
            if got == [want]:
                check(True, "Prometheus: %s = %s" % (q, want))
                return got
            time.sleep(0.25)
        fail("Prometheus: %s is %s, not [%s]" % (q, got, want))


tmp = tempfile.mkdtemp(prefix="hami-metrics-it-")
fake = FakeApiServer(tmp, NODE)
prom = None
try:
    kubeconfig = fake.write_kubeconfig()
    with Daemon(root=os.path.join(tmp, "daemon")) as d:
        env = prepare_daemon_root(d, kubeconfig)
        os.makedirs(os.path.dirname(d.reg_sock))
        os.makedirs(os.path.dirname(d.dra_sock))
        port = free_port()
        ssa = shutil.which("systemd-socket-activate")
        d.start(env=env, wait=False, prefix=[ssa, "-l", d.reg_sock, "-l", d.dra_sock, "-l", "127.0.0.1:%d" % port,
                                             "--fdname=registration:dra:metrics",
                                             # its child gets only what -E names
                                             "-E", "HAMI_DRA_DEV_ROOT", "-E", "HAMI_DRA_DRIVER_ROOT"])
        d.wait_socket(d.reg_sock, connect=False)
        k = d.kubelet()
        k.get_info(timeout=30)  # starts the daemon
        k.register(DRIVER)

        share = str(uuid.uuid4())
        a = ("default", "a", str(uuid.uuid4()))
        b = ("default", "b", str(uuid.uuid4()))
        c = ("team-x", "c", str(uuid.uuid4()))
        missing = ("default", "missing", str(uuid.uuid4()))
        obj = claim_object("a", a[2], [claim_result(DRIVER, NODE, "hami-gpu-0", share, "1Gi", "30")])
        obj["status"]["reservedFor"] = [{"resource": "pods", "name": "trainer-0", "uid": str(uuid.uuid4())}]
        fake.put(obj)
        fake.put(claim_object("b", b[2], [claim_result(DRIVER, NODE, "hami-gpu-0", str(uuid.uuid4()), "2Gi", "20")]))
        fake.put(claim_object("c", c[2], [claim_result(DRIVER, NODE, "hami-gpu-1")], namespace="team-x"))
        res = k.prepare([a, b, c, missing], "v1")
        check(all(not res[x[2]].error for x in (a, b, c)), "three claims prepared")
        check(res[missing[2]].error, "a missing claim fails")

        status, ctype, text = scrape(port)
        check(status == 200 and ctype.startswith("text/plain; version=0.0.4"), "GET /metrics: 200, %s" % ctype)
        rc, out = promtool_check(text)
        check(rc == 0, "promtool check metrics passes: %s" % out.strip())
        check(series(text, "hami_dra_claim_memory_limit_bytes", claim="a") == [GIB], "claim a's memory limit")
        check(series(text, "hami_dra_claim_core_limit_ratio", claim="b") == [0.2], "claim b's core limit")
        check(series(text, "hami_dra_claim_memory_used_bytes", claim="a") == [0], "claim a uses nothing yet")
        check(series(text, "hami_dra_claim_processes", claim="a") == [0], "claim a: no process")
        check(series(text, "hami_dra_claim_core_used_ratio") == [], "never measured: no core usage series")
        check(series(text, "hami_dra_vgpu_memory_allocated_bytes", namespace="team-x") and
              series(text, "hami_dra_claim_core_limit_ratio", namespace="team-x") == [1],
              "a whole GPU: vGPU series and a core limit of 1")
        check(scrape(port, "/other")[0] == 404, "another path: 404")
        check(scrape(port, method="POST")[0] == 405, "POST: 405")
        check(scrape(port, method="HEAD")[0] == 200, "HEAD: 200")

        # Slow and idle clients hold no one up: half a request and a silent connection,
        # then a scrape and a kubelet call are answered at once.
        stalled = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        stalled[0].sendall(b"GET /metr")
        t = time.monotonic()
        status, _, _ = scrape(port)
        check(status == 200 and time.monotonic() - t < 5, "a scrape beside stalled clients: 200")
        k.get_info(timeout=5)
        check(True, "the kubelet is served beside stalled metrics clients")
        for s in stalled:
            s.close()

        prom = Prometheus(tmp, "127.0.0.1:%d" % port)
        prom.wait_for('up{job="hami-dra"}', 1)
        prom.wait_for('hami_dra_gpu_memory_allocated_bytes{device_name="hami-gpu-0"}', 3 * GIB)
        prom.wait_for('hami_dra_gpu_core_allocated_ratio{device_name="hami-gpu-0"}', 0.5)
        prom.wait_for('hami_dra_gpu_core_allocated_ratio{device_name="hami-gpu-1"}', 1)
        prom.wait_for('hami_dra_vgpu_memory_allocated_bytes{namespace="default",pod="trainer-0"}', GIB)
        prom.wait_for('hami_dra_vgpu_memory_allocated_bytes{namespace="default",pod=""}', 2 * GIB)
        prom.wait_for('hami_dra_claim_processes{claim="a",pod="trainer-0"}', 0)
        prom.wait_for('hami_dra_claim_memory_limit_bytes{claim="a",namespace="default"}', GIB)
        prom.wait_for('hami_dra_prepare_total{result="success"}', 3)
        prom.wait_for('hami_dra_prepare_total{result="error"}', 1)
        prom.wait_for('hami_dra_prepared_claims{node="%s"}' % NODE, 3)
        prom.wait_for('hami_dra_prepare_duration_seconds_count', 4)
        prom.wait_for('hami_dra_device_healthy{device_name="hami-gpu-0"}', 1)
        prom.wait_for('hami_dra_device_schedulable{device_name="hami-gpu-0"}', 1)
        prom.wait_for('hami_dra_build_info{driver="%s"}' % DRIVER, 1)
        prom.wait_for('count(hami_dra_device_healthy)', 8)
        prom.wait_for('hami_dra_shared_region_errors_total', 0)
        check(prom.query('hami_dra_apiserver_requests_total{verb="GET",code="200"}')[0] >= 3,
              "Prometheus: the claims' GETs are counted")
        prom.wait_for('hami_dra_apiserver_requests_total{verb="GET",code="404"}', 1)  # the missing claim
        prom.wait_for('hami_dra_apiserver_requests_total{verb="POST",code="201"}', 1)  # the slice
        prom.wait_for('hami_dra_resourceslice_writes_total{operation="create",result="success"}', 1)
        prom.wait_for('sum(hami_dra_resourceslice_writes_total{result="error"})', 0)
        prom.wait_for('hami_dra_grpc_requests_in_flight', 0)

        # A hostile region: the container overwrote its vgpu.cache with garbage.
        region = os.path.join(d.root, "state", "claims", a[2], "vgpu", "vgpu.cache")
        check(os.path.exists(region), "claim a has its region at %s" % region)
        with open(region, "r+b") as f:
            f.write(os.urandom(4096))
        time.sleep(1.1)  # past the 1 s the last reading is kept
        for i in range(3):
            status, _, text = scrape(port)
            check(status == 200, "scrape %d with a garbage region: 200" % i)
            rc, out = promtool_check(text)
            check(rc == 0, "promtool check metrics passes with a garbage region: %s" % out.strip())
            time.sleep(1.1)
        check(series(text, "hami_dra_claim_memory_used_bytes", claim="a") == [], "claim a's usage series is left out")
        check(series(text, "hami_dra_claim_memory_used_bytes", claim="b") == [0], "claim b's usage is still there")
        check(series(text, "hami_dra_claim_memory_limit_bytes", claim="a") == [GIB], "claim a's limit is still there")
        check(series(text, "hami_dra_shared_region_errors_total")[0] >= 3, "each failed read is counted")
        warned = d.output().count("Cannot read the shared region of claim default/a")
        check(warned == 1, "one log line for the claim, not one per scrape (%d)" % warned)
        got = prom.query('hami_dra_shared_region_errors_total')
        check(got and got[0] >= 1, "Prometheus sees the error counter rise: %s" % got)
        prom.wait_for('up{job="hami-dra"}', 1)

        k.unprepare([b], "v1")
        prom.wait_for('hami_dra_gpu_memory_allocated_bytes{device_name="hami-gpu-0"}', GIB)
        prom.wait_for('hami_dra_unprepare_total{result="success"}', 1)
        prom.wait_for('hami_dra_prepared_claims', 2)
        k.close()
        prom.stop()
        prom = None
        check(d.stop() == 0, "SIGTERM gives a clean exit")
finally:
    if prom:
        prom.stop()
    fake.stop()
    shutil.rmtree(tmp, ignore_errors=True)
