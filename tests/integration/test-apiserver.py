#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Integration tests: the slice publisher (tests/kube-publisher-driver, linking
libhami-core and running an sd-event loop) against the strict fake API server over
real TLS. One case per meson test: test-apiserver.py CASE."""

import base64
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

SRC = os.environ.get("HAMI_DRA_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "../.."))
BUILD = os.environ.get("HAMI_DRA_BUILD_ROOT", os.path.join(SRC, "build"))
DRIVER = os.path.join(BUILD, "tests", "kube-publisher-driver")
FAKE = os.path.join(SRC, "tests", "fakes", "fake-apiserver.py")
MAKE_CERTS = os.path.join(SRC, "tests", "fakes", "make-certs.sh")
DRIVER_NAME = "hami-core-gpu.project-hami.io"
WAIT = 30   # seconds: generous, these are not timing assertions


class Fake:
    def __init__(self, tmp, k8s="1.36", down=False, tokens=()):
        self.tmp = tmp
        state = os.path.join(tmp, "fake-state.json")
        args = ["/usr/bin/python3", FAKE, "--certs", tmp, "--state-file", state, "--k8s", k8s]
        args += ["--down"] if down else []
        for t in tokens:
            args += ["--token", t]
        env = dict(os.environ)
        self.log = open(os.path.join(tmp, "fake.log"), "w")
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + WAIT
        while not os.path.exists(state):
            assert self.proc.poll() is None, "fake API server died, see %s/fake.log" % tmp
            assert time.monotonic() < deadline, "fake API server did not start"
            time.sleep(0.05)
        with open(state) as f:
            st = json.load(f)
        self.port, self.control, self.node_uid = st["port"], st["control"], st["node_uid"]

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.control, path), data=data, method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def stats(self):
        return self.call("GET", "/stats")

    def slices(self):
        return self.call("GET", "/slices")

    def faults(self, **kw):
        return self.call("POST", "/faults", kw)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.log.close()


class Driver:
    def __init__(self, tmp, kubeconfig, gpus=8, extra=()):
        self.lines = queue.Queue()
        self.statuses = []
        self.stderr_path = os.path.join(tmp, "driver-%d.log" % time.monotonic_ns())
        self.stderr = open(self.stderr_path, "w")
        args = [DRIVER, "--kubeconfig", kubeconfig, "--gpus", str(gpus), "--backoff-ms", "50"] + list(extra)
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     text=True, bufsize=1)
        threading.Thread(target=self.reader, daemon=True).start()

    def reader(self):
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def send(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()

    def wait(self, pred, what, timeout=WAIT):
        """Wait for an event line satisfying pred (earlier lines are kept in statuses)."""
        for s in self.statuses:
            if pred(s):
                return s
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "timed out waiting for %s; got %s\nstderr: %s" % (what, self.statuses[-3:], self.log())
            try:
                s = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            assert s is not None, "driver exited while waiting for %s\nstderr: %s" % (what, self.log())
            self.statuses.append(s)
            if pred(s):
                return s

    def wait_synced(self):
        return self.wait(lambda s: s.get("event") == "status" and s["synced"], "synced")

    def log(self):
        self.stderr.flush()
        with open(self.stderr_path) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.send("quit")
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()
        return self.proc.returncode


def kubeconfig(tmp, fake, user=None, ca="ca.crt", name="kubeconfig", embed=False, server_name=None):
    if user is None:
        user = {"client-certificate": "client.crt", "client-key": "client.key"}
    cluster = {"server": "https://127.0.0.1:%d" % fake.port}
    if server_name:
        cluster["tls-server-name"] = server_name
    if embed:
        with open(os.path.join(tmp, ca), "rb") as f:
            cluster["certificate-authority-data"] = base64.b64encode(f.read()).decode()
        for key in ("client-certificate", "client-key"):
            if key in user:
                with open(os.path.join(tmp, user.pop(key)), "rb") as f:
                    user[key + "-data"] = base64.b64encode(f.read()).decode()
    else:
        cluster["certificate-authority"] = ca
    cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "ctx",
           "contexts": [{"name": "ctx", "context": {"cluster": "k", "user": "u"}}],
           "clusters": [{"name": "k", "cluster": cluster}],
           "users": [{"name": "u", "user": user}]}
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)   # JSON is YAML
    return path


def run_once(tmp, kc, gpus=8, extra=()):
    d = Driver(tmp, kc, gpus, ["--exit-when-synced"] + list(extra))
    st = d.wait_synced()
    rc = d.proc.wait(timeout=WAIT)
    d.stderr.close()
    assert rc == 0, "driver exited with %d:\n%s" % (rc, open(d.stderr_path).read())
    return st


def devices(fake):
    return [dev for s in fake.slices() for dev in s["spec"]["devices"]]


# ---- cases ----

def case_first_publish(tmp, fake, k8s="1.36"):
    kc = kubeconfig(tmp, fake)
    st = run_once(tmp, kc, gpus=8)
    assert st["consumable"] == 1 and st["generation"] == 1 and st["slices"] == 1, st
    slices = fake.slices()
    assert len(slices) == 1, slices
    s = slices[0]
    assert re.match(r"^00000-%s-node1-[a-z0-9]{5}$" % re.escape(DRIVER_NAME), s["metadata"]["name"]), s["metadata"]["name"]
    owner = s["metadata"]["ownerReferences"][0]
    assert owner == {"apiVersion": "v1", "kind": "Node", "name": "node1", "uid": fake.node_uid, "controller": True}, owner
    assert s["spec"]["pool"] == {"name": "node1", "generation": 1, "resourceSliceCount": 1}
    assert s["spec"]["nodeName"] == "node1" and s["spec"]["driver"] == DRIVER_NAME
    devs = s["spec"]["devices"]
    assert [d["name"] for d in devs] == ["hami-gpu-%d" % i for i in range(8)]
    d0 = devs[0]
    assert d0["allowMultipleAllocations"] is True
    assert d0["capacity"]["memory"]["value"] == "24Gi"
    assert d0["capacity"]["cores"]["requestPolicy"]["validRange"] == {"min": "1", "max": "100", "step": "1"}
    assert d0["attributes"]["type"] == {"string": "hami-gpu"}
    assert fake.stats().get("writes") == 1, fake.stats()


def case_first_publish_134(tmp, fake):
    case_first_publish(tmp, fake)


def case_restart_zero_writes(tmp, fake):
    kc = kubeconfig(tmp, fake)
    run_once(tmp, kc, gpus=8)
    writes = fake.stats().get("writes")
    for _ in range(3):
        st = run_once(tmp, kc, gpus=8)
        assert st["writes"] == 0, st
    assert fake.stats().get("writes") == writes, fake.stats()


def case_restart_other_quantity_text(tmp, fake):
    # the server stores "24Gi" as "25769803776": equal numbers, no update
    fake.faults(quantity_style="plain")
    kc = kubeconfig(tmp, fake)
    run_once(tmp, kc, gpus=4)
    assert devices(fake)[0]["capacity"]["memory"]["value"] == str(24 * 2**30)
    assert devices(fake)[0]["capacity"]["memory"]["requestPolicy"]["validRange"]["step"] == str(2**20)
    writes = fake.stats()["writes"]
    st = run_once(tmp, kc, gpus=4)
    assert st["writes"] == 0 and fake.stats()["writes"] == writes, (st, fake.stats())


def case_deleted_recreated(tmp, fake):
    kc = kubeconfig(tmp, fake)
    d = Driver(tmp, kc, gpus=4)
    d.wait_synced()
    fake.call("POST", "/delete-slices")      # what the kubelet does
    deadline = time.monotonic() + WAIT
    while not fake.slices():
        assert time.monotonic() < deadline, "slice not recreated:\n" + d.log()
        time.sleep(0.05)
    assert "was deleted, re-publishing" in d.log()
    assert len(devices(fake)) == 4
    assert d.stop() == 0


def case_node_recreated(tmp, fake):
    kc = kubeconfig(tmp, fake)
    d = Driver(tmp, kc, gpus=2)
    d.wait_synced()
    fake.call("POST", "/recreate-node")
    uid = fake.stats()["node_uid"]
    deadline = time.monotonic() + WAIT
    while not [s for s in fake.slices() if s["metadata"]["ownerReferences"][0]["uid"] == uid]:
        assert time.monotonic() < deadline, "slice not recreated with the new node UID:\n" + d.log()
        time.sleep(0.05)
    assert len(devices(fake)) == 2
    assert d.stop() == 0


def case_deleted_recreated_many(tmp, fake):
    # three slices wiped at once, three times in a row (kubelet restarts)
    kc = kubeconfig(tmp, fake)
    d = Driver(tmp, kc, gpus=300)
    d.wait_synced()
    for _ in range(3):
        fake.call("POST", "/delete-slices")
        deadline = time.monotonic() + WAIT
        while len(fake.slices()) != 3 or len(devices(fake)) != 300:
            assert time.monotonic() < deadline, "slices not recreated:\n" + d.log()
            time.sleep(0.05)
    gens = {s["spec"]["pool"]["generation"] for s in fake.slices()}
    assert len(gens) == 1, gens
    assert d.stop() == 0


def case_watch_resumes(tmp, fake):
    # the server ends each watch after 1 s; the publisher resumes at its resourceVersion
    kc = kubeconfig(tmp, fake)
    d = Driver(tmp, kc, gpus=2, extra=["--watch-timeout-sec", "1"])
    d.wait_synced()
    deadline = time.monotonic() + WAIT
    while fake.stats().get("watches", 0) < 3:
        assert time.monotonic() < deadline, "watch not resumed:\n" + d.log()
        time.sleep(0.1)
    assert fake.stats()["lists"] == 1, fake.stats()       # resumed, not re-listed
    fake.call("POST", "/delete-slice?name=" + fake.slices()[0]["metadata"]["name"])
    while not fake.slices():
        assert time.monotonic() < deadline, "slice not recreated:\n" + d.log()
        time.sleep(0.05)
    assert d.stop() == 0


def case_watch_gone_relists(tmp, fake):
    kc = kubeconfig(tmp, fake)
    d = Driver(tmp, kc, gpus=2, extra=["--watch-timeout-sec", "1"])
    d.wait_synced()
    writes = fake.stats()["writes"]
    fake.call("POST", "/compact")
    deadline = time.monotonic() + WAIT
    while fake.stats().get("lists", 0) < 2:
        assert time.monotonic() < deadline, "no re-list after 410:\n" + d.log()
        time.sleep(0.1)
    assert "error event (code 410)" in d.log(), d.log()
    fake.call("POST", "/delete-slices")
    while not fake.slices():
        assert time.monotonic() < deadline, "slice not recreated:\n" + d.log()
        time.sleep(0.05)
    assert fake.stats()["writes"] == writes + 1, fake.stats()
    assert d.stop() == 0


def case_stale_removed(tmp, fake):
    kc = kubeconfig(tmp, fake)
    run_once(tmp, kc, gpus=2)
    good = fake.slices()[0]
    for name, gen in (("00003-%s-node1-stale" % DRIVER_NAME, 1), ("node1-%s-oldnm" % DRIVER_NAME, 1)):
        extra = json.loads(json.dumps(good))
        extra["metadata"] = {"name": name, "ownerReferences": good["metadata"]["ownerReferences"]}
        extra["spec"]["pool"]["generation"] = gen
        fake.call("POST", "/create-slice", extra)
    st = run_once(tmp, kc, gpus=2)
    names = [s["metadata"]["name"] for s in fake.slices()]
    assert names == [good["metadata"]["name"]], names
    assert fake.stats().get("deleted") == 2, fake.stats()


def case_stale_delete_proxy_404(tmp, fake):
    """A proxy's 404 {} to a DELETE does not prove the slice gone: it is deleted again."""
    kc = kubeconfig(tmp, fake)
    run_once(tmp, kc, gpus=2)
    good = fake.slices()[0]
    extra = json.loads(json.dumps(good))
    extra["metadata"] = {"name": "00003-%s-node1-stale" % DRIVER_NAME,
                         "ownerReferences": good["metadata"]["ownerReferences"]}
    fake.call("POST", "/create-slice", extra)
    fake.faults(delete_404_next=1)
    run_once(tmp, kc, gpus=2)
    names = [s["metadata"]["name"] for s in fake.slices()]
    assert names == [good["metadata"]["name"]], names
    assert fake.stats().get("writes_DELETE") == 2 and fake.stats().get("deleted") == 1, fake.stats()


def case_conflict_retry(tmp, fake):
    kc = kubeconfig(tmp, fake)
    d = Driver(tmp, kc, gpus=2)
    d.wait_synced()
    fake.faults(conflict_next_puts=1)
    d.send("unhealthy hami-gpu-1 XID 79: GPU has fallen off the bus")
    deadline = time.monotonic() + WAIT
    while not devices(fake)[1].get("taints"):
        assert time.monotonic() < deadline, "taint not published after 409:\n" + d.log()
        time.sleep(0.05)
    assert "conflict (HTTP 409), re-reading" in d.log(), d.log()
    # a conflict on every try: re-read five times, then back off (and still converge)
    fake.faults(conflict_next_puts=7)
    d.send("healthy hami-gpu-1")
    while devices(fake)[1].get("taints"):
        assert time.monotonic() < deadline + WAIT, "taint not removed after 409s:\n" + d.log()
        time.sleep(0.05)
    assert "Conflicts (HTTP 409) keep coming, backing off" in d.log(), d.log()
    assert d.stop() == 0


def case_generation_bump(tmp, fake):
    kc = kubeconfig(tmp, fake)
    st = run_once(tmp, kc, gpus=200)
    assert st["generation"] == 1 and st["slices"] == 2, st
    st = run_once(tmp, kc, gpus=300)          # a new slice: generation + 1 everywhere
    assert st["generation"] == 2 and st["slices"] == 3, st
    slices = fake.slices()
    assert [s["spec"]["pool"]["generation"] for s in slices] == [2, 2, 2]
    assert [s["spec"]["pool"]["resourceSliceCount"] for s in slices] == [3, 3, 3]
    assert [len(s["spec"]["devices"]) for s in slices] == [128, 128, 44]
    st = run_once(tmp, kc, gpus=300)
    assert st["writes"] == 0 and st["generation"] == 2, st


def case_taint_unhealthy(tmp, fake):
    kc = kubeconfig(tmp, fake)
    d = Driver(tmp, kc, gpus=2)
    d.wait_synced()

    def wait_taints(pred, what):
        deadline = time.monotonic() + WAIT
        while not pred([x.get("taints") for x in devices(fake)]):
            assert time.monotonic() < deadline, what + ":\n" + d.log()
            time.sleep(0.05)

    d.send("unhealthy hami-gpu-0 XID 79: GPU has fallen off the bus")
    wait_taints(lambda t: t[0], "unhealthy taint")
    d.wait(lambda s: s.get("event") == "status" and s["taints"] == 1, "taints supported")
    t = devices(fake)[0]["taints"][0]
    assert t["key"] == DRIVER_NAME + "/unhealthy" and t["effect"] == "NoSchedule", t
    assert t["value"] == "XID-79-GPU-has-fallen-off-the-bus" and t["timeAdded"], t
    d.send("maintenance hami-gpu-1")
    wait_taints(lambda t: t[1], "maintenance taint")
    assert devices(fake)[1]["taints"][0]["key"] == DRIVER_NAME + "/maintenance"
    d.send("healthy hami-gpu-0")
    d.send("schedulable hami-gpu-1")
    wait_taints(lambda t: not t[0] and not t[1], "taints removed")
    writes = fake.stats()["writes"]
    d.send("status")
    time.sleep(0.5)    # no churn after the last change (not a timing assertion: writes must not grow)
    assert fake.stats()["writes"] == writes
    assert d.stop() == 0


def case_feature_gate_off(tmp, fake):
    fake.faults(drop_consumable=True)
    kc = kubeconfig(tmp, fake)
    d = Driver(tmp, kc, gpus=2)
    st = d.wait(lambda s: s.get("event") == "status" and s["consumable"] == 0, "consumable=0")
    d.wait_synced()
    d.send("status")
    assert "DRAConsumableCapacity" in d.wait(lambda s: s.get("consumable_reason"), "reason")["consumable_reason"]
    assert "enable the DRAConsumableCapacity feature gate on kube-apiserver, kube-scheduler and kubelet; " \
           "it is on by default only from Kubernetes 1.36" in st["line"], st
    assert "DRAConsumableCapacity" in d.log()
    assert "allowMultipleAllocations" not in json.dumps(fake.slices())
    writes = fake.stats()["writes"]
    assert writes == 1, fake.stats()       # no update loop
    assert d.stop() == 0


def case_taints_gate_off(tmp, fake):
    # DRADeviceTaints off (default on 1.34/1.35): the taint is dropped; say so, do not loop
    fake.faults(drop_taints=True)
    kc = kubeconfig(tmp, fake)
    d = Driver(tmp, kc, gpus=2)
    d.wait_synced()
    d.send("unhealthy hami-gpu-0 XID 48")
    d.wait(lambda s: s.get("event") == "status" and s["taints"] == 0, "taints=0")
    d.wait(lambda s: s.get("event") == "status" and s["synced"] and s["taints"] == 0, "synced again")
    assert "DRADeviceTaints feature gate is off" in d.log(), d.log()
    writes = fake.stats()["writes"]
    assert writes == 2, fake.stats()      # the create and one update, no loop
    assert d.stop() == 0


def case_forbidden(tmp, fake):
    fake.faults(forbidden=True)
    kc = kubeconfig(tmp, fake)
    d = Driver(tmp, kc, gpus=1)
    st = d.wait(lambda s: s.get("error") and "403" in s["error"], "403 error")
    assert "Forbidden" in st["error"] and "client certificate" in st["error"] and "client.crt" in st["error"], st
    fake.faults(forbidden=False)
    d.wait_synced()
    assert d.stop() == 0


def case_unauthorized_token(tmp, fake):
    with open(os.path.join(tmp, "token"), "w") as f:
        f.write("wrong-token\n")
    kc = kubeconfig(tmp, fake, user={"tokenFile": "token"})
    d = Driver(tmp, kc, gpus=1)
    st = d.wait(lambda s: s.get("error") and "401" in s["error"], "401 error")
    assert "bearer token from %s/token" % tmp in st["error"], st
    with open(os.path.join(tmp, "token"), "w") as f:   # rotated: read again on every request
        f.write("good-token\n")
    d.wait_synced()
    assert d.stop() == 0


def case_retry_after(tmp, fake):
    kc = kubeconfig(tmp, fake)
    for code in (429, 503):
        fake.faults(fail_status=code, fail_count=2, retry_after=1)
        d = Driver(tmp, kc, gpus=1)
        d.wait_synced()
        log = d.log()
        assert "HTTP %d" % code in log, log
        assert "retrying in 1000 ms" in log, log     # Retry-After wins over the 50 ms backoff
        assert d.stop() == 0


def case_down_at_start(tmp, fake):
    kc = kubeconfig(tmp, fake)
    d = Driver(tmp, kc, gpus=2)
    st = d.wait(lambda s: s.get("error") and "cannot connect" in s["error"], "connection error")
    assert not st["api_reachable"], st
    assert "retrying in" in d.log()
    fake.faults(down=False)
    d.wait_synced()
    assert len(devices(fake)) == 2
    assert d.stop() == 0


def case_slow_timeout(tmp, fake):
    fake.faults(slow_ms=3000)
    kc = kubeconfig(tmp, fake)
    d = Driver(tmp, kc, gpus=1, extra=["--timeout-ms", "500"])
    st = d.wait(lambda s: s.get("error") and "timed out" in s["error"], "timeout error")
    fake.faults(slow_ms=0)
    d.wait_synced()
    assert d.stop() == 0


def case_tls_wrong_ca(tmp, fake):
    kc = kubeconfig(tmp, fake, ca="other-ca.crt")
    d = Driver(tmp, kc, gpus=1)
    st = d.wait(lambda s: s.get("error") and "certificate" in s["error"], "TLS error")
    assert "failed verification against %s/other-ca.crt" % tmp in st["error"], st
    d.stop()
    kc = kubeconfig(tmp, fake, user={"client-certificate": "other-client.crt", "client-key": "other-client.key"},
                    name="kubeconfig2")
    d = Driver(tmp, kc, gpus=1)
    st = d.wait(lambda s: s.get("error") and "refused the TLS session" in s["error"], "client cert refused")
    assert "client certificate %s/other-client.crt" % tmp in st["error"], st
    d.stop()


def case_embedded_credentials(tmp, fake):
    kc = kubeconfig(tmp, fake, embed=True)
    st = run_once(tmp, kc, gpus=2)
    assert st["devices"] == 2, st
    # never written to disk by us: only the files the test made exist
    assert not [f for f in os.listdir(tmp) if f.startswith("curl")]


def case_tls_server_name(tmp, fake):
    # the certificate names DNS:kubernetes, we dial 127.0.0.1
    st = run_once(tmp, kubeconfig(tmp, fake, server_name="kubernetes"), gpus=1)
    assert st["devices"] == 1, st
    d = Driver(tmp, kubeconfig(tmp, fake, server_name="not-in-the-cert", name="kc2"), gpus=1)
    st = d.wait(lambda s: s.get("error") and "failed verification" in s["error"], "name mismatch")
    d.stop()


def case_token(tmp, fake):
    kc = kubeconfig(tmp, fake, user={"token": "good-token"})
    st = run_once(tmp, kc, gpus=2)
    assert st["devices"] == 2, st


def case_claim_get(tmp, fake):
    claim_path = os.path.join(SRC, "tests/data/examples/resourceclaim-native-allocated.json")
    with open(claim_path) as f:
        claim = json.load(f)
    claim["metadata"]["uid"] = "0c6a3d6e-2f8e-4c6b-9b7e-4a2a0f1c9d11"
    fake.call("POST", "/claims", claim)
    kc = kubeconfig(tmp, fake)
    d = Driver(tmp, kc, gpus=1)
    d.wait_synced()
    d.send("claim %s %s" % (claim["metadata"]["namespace"], claim["metadata"]["name"]))
    c = d.wait(lambda s: s.get("event") == "claim", "claim")
    assert c["status"] == 200 and c["uid"] == claim["metadata"]["uid"], c
    d.send("claim default does-not-exist")
    c = d.wait(lambda s: s.get("event") == "claim" and s["status"] == 404, "claim 404")
    assert "HTTP 404" in c["message"], c
    # The API server's NotFound names the claim: that proves it is gone (a recovered one
    # would be forgotten); a 404 that does not name it proves nothing.
    assert c["proves_not_found"] is True, c
    fake.faults(fail_status=404, fail_count=1000)  # every request: the publisher's too
    d.send("claim default does-not-exist")
    c = d.wait(lambda s: s.get("event") == "claim" and "injected failure" in s["message"], "injected 404")
    fake.faults(fail_count=0)
    assert c["status"] == 404 and c["proves_not_found"] is False, c
    assert d.stop() == 0


def case_claim_get_retry(tmp, fake):
    claim = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
             "metadata": {"name": "c1", "namespace": "default", "uid": "u-1"}, "spec": {"devices": {}}}
    fake.call("POST", "/claims", claim)
    kc = kubeconfig(tmp, fake)
    d = Driver(tmp, kc, gpus=1)
    d.wait_synced()
    fake.faults(fail_status=503, fail_count=1, retry_after=1)
    d.send("claim default c1")
    c = d.wait(lambda s: s.get("event") == "claim", "claim after one 503")
    assert c["status"] == 200 and c["uid"] == "u-1", c
    fake.faults(fail_status=429, fail_count=1, retry_after=120)
    d.send("claim default c1")
    c = d.wait(lambda s: s.get("event") == "claim" and s["status"] == 429, "claim 429 not retried")
    assert "not retrying: the server asks to wait 120 s" in d.log(), d.log()
    assert d.stop() == 0


def api(tmp, fake, method, path, body=None, cert="client"):
    import http.client
    import ssl
    ctx = ssl.create_default_context(cafile=os.path.join(tmp, "ca.crt"))
    ctx.load_cert_chain(os.path.join(tmp, cert + ".crt"), os.path.join(tmp, cert + ".key"))
    conn = http.client.HTTPSConnection("127.0.0.1", fake.port, context=ctx, timeout=10)
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = json.loads(r.read() or b"{}")
    conn.close()
    return r.status, data


def case_fake_is_strict(tmp, fake):
    """The fake rejects what the real API server (and the node authorizer) rejects."""
    kc = kubeconfig(tmp, fake)
    run_once(tmp, kc, gpus=1)
    good = fake.slices()[0]
    sl = "/apis/resource.k8s.io/v1/resourceslices"
    sel = "?fieldSelector=spec.nodeName%3Dnode1%2Cspec.driver%3D" + DRIVER_NAME
    assert api(tmp, fake, "GET", sl)[0] == 403                        # node authorizer: selector required
    assert api(tmp, fake, "GET", sl + "?fieldSelector=spec.driver%3D" + DRIVER_NAME)[0] == 403
    assert api(tmp, fake, "GET", sl + "?fieldSelector=spec.nodeName%3Dnode2")[0] == 403
    assert api(tmp, fake, "GET", sl + "?fieldSelector=spec.bogus%3Dx%2Cspec.nodeName%3Dnode1")[0] == 400
    st, lst = api(tmp, fake, "GET", sl + sel)
    assert st == 200 and len(lst["items"]) == 1
    assert api(tmp, fake, "GET", "/api/v1/nodes/node2")[0] == 403

    def post(mutate):
        obj = json.loads(json.dumps(good))
        obj["metadata"] = {"generateName": "00009-x-", "ownerReferences": json.loads(json.dumps(good["metadata"]["ownerReferences"]))}
        mutate(obj)
        return api(tmp, fake, "POST", sl, obj)

    dev = lambda o: o["spec"]["devices"][0]
    cases = [
        lambda o: dev(o).pop("allowMultipleAllocations"),                                 # requestPolicy needs it
        lambda o: dev(o)["capacity"]["cores"]["requestPolicy"]["validRange"].update(min="0", step="3"),
        lambda o: dev(o)["capacity"]["memory"].update(value="1000001Ki"),                  # max > value
        lambda o: dev(o).update(name="GPU_0"),                                             # DNS label
        lambda o: dev(o)["attributes"].update(x={"string": "a" * 65}),                     # string > 64
        lambda o: dev(o)["attributes"].update(v={"version": "1.2"}),                       # not semver
        lambda o: dev(o)["attributes"].update(b={"int": 1, "bool": True}),                 # one value
        lambda o: dev(o).update(taints=[{"key": "a/b", "value": "has space", "effect": "NoSchedule"}]),
        lambda o: o["spec"].update(allNodes=True),                                         # two node selections
        lambda o: o["spec"].update(nodeName="node2"),                                      # NodeRestriction
        lambda o: o["spec"]["pool"].update(resourceSliceCount=0),
        lambda o: o["spec"].update(devices=[dict(dev(o), name="d%d" % i) for i in range(129)]),
        lambda o: o["metadata"]["ownerReferences"][0].pop("uid"),
        lambda o: o["spec"].update(driver="Not_A_DNS_Name"),
        lambda o: dev(o)["capacity"]["cores"].update(value="lots"),
    ]
    for i, m in enumerate(cases):
        st, body = post(m)
        assert st in (403, 422), "case %d accepted: %s %s" % (i, st, body)
        if os.environ.get("VERBOSE"):
            print(i, st, body["message"][:150])

    # resourceVersion and preconditions
    name = good["metadata"]["name"]
    stale = json.loads(json.dumps(good))
    stale["metadata"]["resourceVersion"] = "1"
    assert api(tmp, fake, "PUT", sl + "/" + name, stale)[0] == 409
    assert api(tmp, fake, "DELETE", sl + "/" + name, {"preconditions": {"uid": "nope"}})[0] == 409
    assert api(tmp, fake, "DELETE", sl + "/" + name,
               {"preconditions": {"uid": good["metadata"]["uid"], "resourceVersion": "1"}})[0] == 409
    st, _ = api(tmp, fake, "DELETE", sl + "/" + name,
                {"preconditions": {"uid": good["metadata"]["uid"], "resourceVersion": good["metadata"]["resourceVersion"]}})
    assert st == 200 and not fake.slices()
    assert api(tmp, fake, "DELETE", sl + "/" + name)[0] == 404
    # canonical quantities on storage
    st, created = post(lambda o: dev(o)["capacity"]["memory"]["requestPolicy"]["validRange"].update(step="1048576"))
    assert st == 201 and dev(created)["capacity"]["memory"]["requestPolicy"]["validRange"]["step"] == "1Mi", created
    assert created["metadata"]["name"].startswith("00009-x-") and len(created["metadata"]["name"]) == len("00009-x-") + 5
    # deletecollection needs the selector too
    assert api(tmp, fake, "DELETE", sl)[0] == 403
    assert api(tmp, fake, "DELETE", sl + sel)[0] == 200 and not fake.slices()


# ---- the real daemon (hami-dra-plugin, sandbox on) against the fake ----

DAEMON = os.path.join(BUILD, "src", "hami-dra-plugin")


class Daemon:
    """hami-dra-plugin with mock GPUs; its sd_notify messages are collected."""

    def __init__(self, tmp, kc, gpus=8, node="node1"):
        import socket
        self.notify_path = os.path.join(tmp, "notify-%d.sock" % time.monotonic_ns())
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.notify_path)
        self.sock.settimeout(0.2)
        self.messages = []
        for d in ("reg", "plug", "cdi", "state"):
            os.makedirs(os.path.join(tmp, d), exist_ok=True)
        self.log_path = os.path.join(tmp, "daemon-%d.log" % time.monotonic_ns())
        self.log = open(self.log_path, "w")
        env = dict(os.environ, NOTIFY_SOCKET=self.notify_path)
        env.pop("KUBERNETES_SERVICE_HOST", None)
        self.proc = subprocess.Popen(
            [DAEMON, "--config=", "--node-name=" + node, "--backend=mock", "--mock-gpus=%d" % gpus,
             "--registry-dir=" + os.path.join(tmp, "reg"), "--plugins-dir=" + os.path.join(tmp, "plug"),
             "--cdi-dir=" + os.path.join(tmp, "cdi"), "--state-dir=" + os.path.join(tmp, "state"),
             "--kubeconfig=" + kc],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def wait_status(self, pred, what):
        deadline = time.monotonic() + WAIT
        while True:
            for m in self.messages:
                if pred(m):
                    return m
            assert self.proc.poll() is None, "daemon died:\n" + open(self.log_path).read()
            assert time.monotonic() < deadline, "timed out waiting for %s; got %s\n%s" % (
                what, self.messages[-3:], open(self.log_path).read())
            try:
                self.messages.append(self.sock.recv(65536).decode())
            except OSError:
                pass

    def stop(self):
        self.proc.terminate()
        rc = self.proc.wait(timeout=WAIT)
        self.log.close()
        self.sock.close()
        return rc


def case_daemon_publish_restart(tmp, fake):
    if not os.path.exists(DAEMON):
        print("SKIP: hami-dra-plugin not built")
        sys.exit(77)
    kc = kubeconfig(tmp, fake)
    d = Daemon(tmp, kc, gpus=8)
    d.wait_status(lambda m: "READY=1" in m, "READY=1")
    d.wait_status(lambda m: "Published 8 GPUs in 1 ResourceSlice (generation 1)" in m, "published")
    assert d.stop() == 0
    assert len(devices(fake)) == 8 and fake.stats()["writes"] == 1, fake.stats()
    d = Daemon(tmp, kc, gpus=8)
    d.wait_status(lambda m: "Published 8 GPUs" in m, "published after restart")
    assert fake.stats()["writes"] == 1, fake.stats()      # a restart writes nothing
    assert d.stop() == 0


def case_daemon_apiserver_down(tmp, fake):
    if not os.path.exists(DAEMON):
        sys.exit(77)
    kc = kubeconfig(tmp, fake)
    d = Daemon(tmp, kc, gpus=2)
    d.wait_status(lambda m: "READY=1" in m, "READY=1 with the API server down")
    # Degraded for the API server (and, on a host without /dev/nvidiactl, for prepares too).
    d.wait_status(lambda m: m.startswith("STATUS=Degraded: ") and "API server unreachable" in m.split("; 2 GPU")[0],
                  "degraded, unreachable")
    fake.faults(down=False)
    m = d.wait_status(lambda m: "Published 2 GPUs" in m, "published once it is up")
    assert "API server" not in m.split("; 2 GPU")[0], m
    assert d.stop() == 0
    with open(d.log_path) as f:
        log = f.read()
    assert "The API server does not answer" in log and "The API server answers again" in log, log


def case_daemon_credentials_appear(tmp, fake):
    # No credentials at start (a kubelet.conf written after the daemon started): degraded,
    # with the file named, then published once the file appears, without a restart.
    if not os.path.exists(DAEMON):
        sys.exit(77)
    later = os.path.join(tmp, "kubelet.conf")
    d = Daemon(tmp, later, gpus=2)
    d.wait_status(lambda m: "READY=1" in m, "READY=1 without credentials")
    m = d.wait_status(lambda m: m.startswith("STATUS=Degraded: ") and "no API server credentials" in m,
                      "degraded, no credentials")
    assert later + " does not exist" in m, m
    shutil.copy(kubeconfig(tmp, fake), later + ".tmp")
    os.rename(later + ".tmp", later)
    m = d.wait_status(lambda m: "Published 2 GPUs" in m, "published once the credentials appear")
    assert "credentials" not in m, m
    assert d.stop() == 0
    with open(d.log_path) as f:
        assert "API server credentials found" in f.read()


def case_daemon_wrong_node_name(tmp, fake):
    # The kubelet's credential (system:node:node1) with NodeName=node2: the node authorizer
    # refuses the Node; the daemon says which name to set, not "lacks permission".
    if not os.path.exists(DAEMON):
        sys.exit(77)
    d = Daemon(tmp, kubeconfig(tmp, fake), gpus=2, node="node2")
    m = d.wait_status(lambda m: "Looking up our Node" in m, "the Node lookup's failure in STATUS=")
    assert m.startswith("STATUS=Degraded: ") and "the credential is node node1's, but NodeName= is node2" in m \
        and "set [Plugin] NodeName=node1" in m, m
    assert d.stop() == 0


def case_daemon_feature_gate_off(tmp, fake):
    if not os.path.exists(DAEMON):
        sys.exit(77)
    fake.faults(drop_consumable=True)
    d = Daemon(tmp, kubeconfig(tmp, fake), gpus=2)
    m = d.wait_status(lambda m: "DRAConsumableCapacity" in m, "feature gate in STATUS=")
    assert "enable the DRAConsumableCapacity feature gate on kube-apiserver, kube-scheduler and kubelet; " \
           "it is on by default only from Kubernetes 1.36" in m, m
    assert d.stop() == 0


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    name = sys.argv[1]
    if name == "--list":
        print("\n".join(CASES))
        return
    tmp = tempfile.mkdtemp(prefix="hami-apiserver-")
    fake = None
    try:
        subprocess.run(["sh", MAKE_CERTS, tmp], check=True)
        fake = Fake(tmp, k8s="1.34" if name.endswith("_134") else "1.36",
                    down=name in ("down_at_start", "daemon_apiserver_down"),
                    tokens=["good-token=system:serviceaccount:kube-system:hami-dra"])
        CASES[name](tmp, fake)
        print("ok", name)
    finally:
        if fake:
            fake.stop()
        if os.environ.get("KEEP_TMP"):
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
