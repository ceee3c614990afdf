#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""hami-dra-webhook end to end: the binary against tests/fakes/fake-apiserver.py (one
ResourceSlice of our driver, a service-account token; its kubeconfig names the API
server by address and checks its certificate for another name, tls-server-name), over
TLS with throwaway certificates. HAMi's guide pod is allowed and patched, and the template the patch names
now exists in the API server; the same pod again reuses it (409 path); a dry run creates
nothing; a refusal fixture is refused with a message; gpumem-percentage is converted (it
needs the inventory listed from the ResourceSlices); /validate refuses a bad opaque
parameter; a template the API server refuses, or cannot take because it is down, refuses
the pod; SIGTERM stops it cleanly.
Then all of it again under valgrind (errors and leaks fail it), unless built with a
sanitizer (which checks the first pass) or HTTPS_TEST_VALGRIND=0.

Usage: test-webhook-e2e.py PATH/TO/hami-dra-webhook"""

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

WEBHOOK = sys.argv[1]
HERE = os.path.dirname(os.path.abspath(__file__))
FAKES = os.path.join(HERE, "..", "fakes")
FIXTURES = os.path.join(HERE, "fixtures")
DRIVER = "hami-core-gpu.project-hami.io"
TOKEN = "webhook-token"
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def wait_for(pred, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return None


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return json.load(f)


class Fake:
    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "api")
        subprocess.run(["sh", os.path.join(FAKES, "make-certs.sh"), self.dir], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        state = os.path.join(self.dir, "state.json")
        self.log = open(os.path.join(self.dir, "fake.log"), "w")
        self.proc = subprocess.Popen([sys.executable, os.path.join(FAKES, "fake-apiserver.py"),
                                      "--certs", self.dir, "--state-file", state,
                                      "--token", TOKEN + "=system:serviceaccount:hami-dra:hami-dra-webhook"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        if not wait_for(lambda: os.path.exists(state)):
            raise SystemExit("fake API server did not start")
        with open(state) as f:
            st = json.load(f)
        self.port, self.control = st["port"], st["control"]
        self.kubeconfig = os.path.join(self.dir, "kubeconfig")
        with open(self.kubeconfig, "w") as f:
            f.write(f"""apiVersion: v1
kind: Config
current-context: default
contexts:
- name: default
  context: {{cluster: fake, user: webhook}}
clusters:
- name: fake
  cluster:
    server: https://127.0.0.1:{self.port}
    certificate-authority: ca.crt
    tls-server-name: kubernetes
users:
- name: webhook
  user:
    token: {TOKEN}
""")

    def ctl(self, method, path, body=None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.control}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.log.close()


class Webhook:
    def __init__(self, tmp, fake, prefix=()):
        self.tls = os.path.join(tmp, "tls")
        os.makedirs(self.tls)
        shutil.copy(os.path.join(fake.dir, "server.crt"), os.path.join(self.tls, "tls.crt"))
        shutil.copy(os.path.join(fake.dir, "server.key"), os.path.join(self.tls, "tls.key"))
        self.ctx = ssl.create_default_context(cafile=os.path.join(fake.dir, "ca.crt"))
        self.logpath = os.path.join(tmp, "webhook.log")
        self.log = open(self.logpath, "w")
        self.proc = subprocess.Popen(list(prefix) + [WEBHOOK, "--tls-dir", self.tls, "--address", "127.0.0.1", "--port", "0",
                                      "--kubeconfig", fake.kubeconfig, "--log-level", "debug"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.port = wait_for(self.find_port, 60)
        if not self.port:
            raise SystemExit("hami-dra-webhook did not start:\n" + self.text())

    def text(self):
        with open(self.logpath) as f:
            return f.read()

    def find_port(self):
        for line in self.text().splitlines():
            if "Listening on" in line and " port " in line:
                return int(line.rsplit(" ", 1)[1])
        if self.proc.poll() is not None:
            raise SystemExit("hami-dra-webhook exited:\n" + self.text())
        return None

    def request(self, method, path, body=None):
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=30)
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
        r = conn.getresponse()
        out = r.status, json.loads(r.read() or b"null")
        conn.close()
        return out


def templates_in_patch(resp):
    patch = json.loads(base64.b64decode(resp["patch"]))
    names = set()

    def walk(v):
        if isinstance(v, dict):
            if "resourceClaimTemplateName" in v:
                names.add(v["resourceClaimTemplateName"])
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    for op in patch:
        walk(op.get("value"))
    return names


def sanitized():
    with open(WEBHOOK, "rb") as f:
        data = f.read()
    return b"__asan_init" in data or b"__ubsan_handle" in data


def main():
    run(())
    if sanitized():
        print("skip valgrind: built with a sanitizer, which checked the first pass")
    elif shutil.which("valgrind") and os.environ.get("HTTPS_TEST_VALGRIND", "1") != "0":
        print("again under valgrind", flush=True)
        run(("valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
             "--errors-for-leak-kinds=definite,indirect"))
    if failures:
        print("%d failure(s)" % len(failures))
        sys.exit(1)


def run(prefix):
    tmp = tempfile.mkdtemp(prefix="webhook-e2e-")
    fake = Fake(tmp)
    fake.ctl("POST", "/create-slice", {
        "apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
        "metadata": {"name": "node1-" + DRIVER},
        "spec": {"driver": DRIVER, "nodeName": "node1",
                 "pool": {"name": "node1", "generation": 1, "resourceSliceCount": 1},
                 "devices": [{"name": "hami-gpu-0", "capacity": {"memory": {"value": "24Gi"},
                                                                  "cores": {"value": "100"}}}]}})
    wh = Webhook(tmp, fake, prefix)
    try:
        st, body = wh.request("GET", "/healthz")
        check(st == 200 and body == {"status": "ok"}, "GET /healthz")

        review = fixture("hami-guide.json")
        st, body = wh.request("POST", "/mutate", review)
        resp = (body or {}).get("response") or {}
        check(st == 200 and resp.get("allowed") is True, "guide pod allowed")
        check(resp.get("uid") == review["request"]["uid"], "the answer carries the request's uid")
        check(resp.get("patchType") == "JSONPatch" and "patch" in resp, "guide pod patched")
        names = templates_in_patch(resp) if "patch" in resp else set()
        check(len(names) == 1, "the patch names one template: %s" % sorted(names))
        stored = fake.ctl("GET", "/templates")
        check({t["metadata"]["name"] for t in stored} == names and
              all(t["metadata"]["namespace"] == "default" for t in stored),
              "the template named in the patch exists in the API server")
        reqs = [r for t in stored for r in t["spec"]["spec"]["devices"]["requests"]]
        caps = [r.get("exactly", {}).get("capacity", {}).get("requests") for r in reqs]
        check(caps == [{"cores": "50", "memory": "10Gi"}],
              "the template asks for gpumem 10240 (MiB) and gpucores 50: %s" % caps)
        stats = fake.ctl("GET", "/stats")
        check(stats.get("templates_created") == 1, "one template created")

        st, body = wh.request("POST", "/mutate", fixture("hami-guide.json"))
        resp2 = (body or {}).get("response") or {}
        check(st == 200 and resp2.get("allowed") is True and templates_in_patch(resp2) == names,
              "the same pod again: allowed, same template")
        stats = fake.ctl("GET", "/stats")
        check(stats.get("templates_created") == 1 and stats.get("templates_conflicts") == 1,
              "the second creation met 409 AlreadyExists and was taken as success")

        st, body = wh.request("POST", "/mutate", fixture("dry-run.json"))
        resp = (body or {}).get("response") or {}
        check(st == 200 and resp.get("allowed") is True and "patch" in resp, "dry run: allowed and patched")
        stats = fake.ctl("GET", "/stats")
        check(len(fake.ctl("GET", "/templates")) == 1 and stats.get("templates_created") == 1 and
              stats.get("templates_conflicts") == 1, "dry run: no template created, none even tried")

        st, body = wh.request("POST", "/mutate", fixture("refuse-cores-101.json"))
        resp = (body or {}).get("response") or {}
        msg = (resp.get("status") or {}).get("message", "")
        check(st == 200 and resp.get("allowed") is False and "gpucores" in msg,
              "refusal fixture: refused with a message (%r)" % msg)

        st, body = wh.request("POST", "/mutate", fixture("percentage.json"))
        resp = (body or {}).get("response") or {}
        check(st == 200 and resp.get("allowed") is True,
              "gpumem-percentage converted with the inventory from the ResourceSlices (%r)"
              % (resp.get("status") or {}).get("message"))

        st, body = wh.request("POST", "/validate", fixture("validate-claim-bad.json"))
        resp = (body or {}).get("response") or {}
        check(st == 200 and resp.get("allowed") is False and (resp.get("status") or {}).get("message"),
              "/validate: a bad opaque parameter is refused")
        st, body = wh.request("POST", "/validate", fixture("validate-claim-good.json"))
        check(st == 200 and ((body or {}).get("response") or {}).get("allowed") is True, "/validate: a good claim")

        st, body = wh.request("POST", "/mutate", {"kind": "nonsense"})
        check(st == 400 and (body or {}).get("kind") == "Status", "not an AdmissionReview: 400 Status")

        # the API server refuses the creation: the pod is refused, saying why
        other = fixture("several-containers.json")
        fake.ctl("POST", "/faults", {"forbidden": True})
        st, body = wh.request("POST", "/mutate", other)
        resp = (body or {}).get("response") or {}
        msg = (resp.get("status") or {}).get("message", "")
        check(st == 200 and resp.get("allowed") is False and "ResourceClaimTemplate" in msg and "403" in msg,
              "template creation forbidden: pod refused (%r)" % msg)
        fake.ctl("POST", "/faults", {"forbidden": False})

        # the API server is gone: the pod is refused (never admitted naming a missing template)
        fake.ctl("POST", "/faults", {"down": True})
        st, body = wh.request("POST", "/mutate", other)
        resp = (body or {}).get("response") or {}
        msg = (resp.get("status") or {}).get("message", "")
        check(st == 200 and resp.get("allowed") is False and "could not be reached" in msg,
              "API server unreachable: pod refused (%r)" % msg)
        fake.ctl("POST", "/faults", {"down": False})
        st, body = wh.request("POST", "/mutate", other)
        check(st == 200 and ((body or {}).get("response") or {}).get("allowed") is True,
              "API server back: the same pod allowed")

        log = wh.text()
        check("gpu-test-compatible" in log and "allowed, 1 template(s)" in log and "refused:" in log,
              "admission decisions logged")
    finally:
        wh.proc.send_signal(signal.SIGTERM)
        try:
            rc = wh.proc.wait(60)
        except subprocess.TimeoutExpired:
            wh.proc.kill()
            rc = None
        check(rc == 0, "SIGTERM: clean exit (%r)" % rc)
        wh.log.close()
        fake.stop()
    if failures:
        print(open(wh.logpath).read())
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
