#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""deploy/grafana/metric-families.txt is what the daemon exports: the real daemon,
socket-activated with its "metrics" socket, prepares claims of the fake API server; its
/metrics has exactly the families of the file (every `# TYPE` line, with its type), and
every sample carries exactly the file's label names (a histogram's buckets `le` too).
The Grafana dashboard is checked against that file (test-dashboard), so through it
against the daemon. Then a real Prometheus scrapes the daemon, and every panel of the
dashboard gets series (or table rows) from it through tools/render-dashboard's queries."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

from fakeapi import FakeApiServer, claim_object, claim_result, prepare_daemon_root
from harness import DRIVER, SOURCE_ROOT, Daemon, check, fail, require_real_daemon_as_root
from promserver import PrometheusServer, free_port

NODE = "test-node"
FAMILIES = os.path.join(SOURCE_ROOT, "deploy", "grafana", "metric-families.txt")

require_real_daemon_as_root()


def expected():
    """{family: (type, set of label names)} from the file."""
    out = {}
    with open(FAMILIES) as f:
        for line in f:
            line = line.split("#", 1)[0].split()
            if line:
                out[line[0]] = (line[1], set() if line[2] == "-" else set(line[2].split(",")))
    return out


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"')


def exported(text):
    """({family: type}, {sample name: [set of label names, ...]})"""
    types, samples = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            if name in types:
                fail("%s has two # TYPE lines" % name)
            types[name] = kind
        elif line and not line.startswith("#"):
            m = SAMPLE.match(line)
            if not m:
                fail("not a sample line: %r" % line)
            samples.setdefault(m.group(1), []).append(set(LABEL.findall(m.group(2) or "")))
    return types, samples


def family_of(sample, types):
    for suffix in ("_bucket", "_sum", "_count"):
        base = sample[:-len(suffix)] if sample.endswith(suffix) else None
        if base and types.get(base) == "histogram":
            return base, suffix
    return sample, ""


tmp = tempfile.mkdtemp(prefix="hami-families-it-")
fake = FakeApiServer(tmp, NODE)
try:
    kubeconfig = fake.write_kubeconfig()
    with Daemon(root=os.path.join(tmp, "daemon")) as d:
        env = prepare_daemon_root(d, kubeconfig)
        os.makedirs(os.path.dirname(d.reg_sock))
        os.makedirs(os.path.dirname(d.dra_sock))
        port = free_port()
        d.start(env=env, wait=False, prefix=[shutil.which("systemd-socket-activate"), "-l", d.reg_sock, "-l",
                                             d.dra_sock, "-l", "127.0.0.1:%d" % port,
                                             "--fdname=registration:dra:metrics",
                                             "-E", "HAMI_DRA_DEV_ROOT", "-E", "HAMI_DRA_DRIVER_ROOT"])
        d.wait_socket(d.reg_sock, connect=False)
        k = d.kubelet()
        k.get_info(timeout=30)
        k.register(DRIVER)
        a = ("default", "a", str(uuid.uuid4()))
        b = ("team-x", "b", str(uuid.uuid4()))
        fake.put(claim_object("a", a[2], [claim_result(DRIVER, NODE, "hami-gpu-0", str(uuid.uuid4()), "1Gi", "30")]))
        fake.put(claim_object("b", b[2], [claim_result(DRIVER, NODE, "hami-gpu-1")], namespace="team-x"))
        res = k.prepare([a, b], "v1")
        check(not res[a[2]].error and not res[b[2]].error, "two claims prepared")
        k.unprepare([b], "v1")
        k.prepare([b], "v1")
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
            text = r.read().decode()

        want = expected()
        types, samples = exported(text)
        ours = {n: t for n, t in types.items() if n.startswith("hami_dra_")}
        for name in sorted(set(want) - set(ours)):
            check(False, "%s (metric-families.txt) is exported" % name)
        for name in sorted(set(ours) - set(want)):
            check(False, "%s (exported) is in metric-families.txt" % name)
        for name in sorted(want):
            check(ours[name] == want[name][0], "%s is a %s" % (name, want[name][0]))
        seen = set()
        for sample, label_sets in sorted(samples.items()):
            fam, suffix = family_of(sample, types)
            if fam not in want:
                continue
            seen.add(fam)
            labels = want[fam][1] | ({"le"} if suffix == "_bucket" else set())
            bad = [s for s in label_sets if s != labels]
            check(not bad, "%s: %d samples, each labelled %s%s" % (sample, len(label_sets), ",".join(sorted(labels)),
                                                                  "" if not bad else "; not %s" % bad[0]))
        # Never measured here (no process, no NVML): the family is declared, with no sample.
        check(seen == set(want) - {"hami_dra_claim_core_used_ratio"},
              "every other family has samples (none: %s)" % sorted(set(want) - seen))

        prometheus = shutil.which("prometheus")
        if prometheus:
            try:
                prom = PrometheusServer(tmp, ["127.0.0.1:%d" % port], interval=1, binary=prometheus)
            except RuntimeError as e:
                fail(str(e))
            try:
                url = prom.url
                deadline = time.monotonic() + 60
                while True:
                    try:
                        q = url + "/api/v1/query?query=count(hami_dra_prepare_total)"
                        if json.load(urllib.request.urlopen(q, timeout=2))["data"]["result"]:
                            break
                    except OSError:
                        pass
                    check(time.monotonic() < deadline and prom.proc.poll() is None, "Prometheus scrapes the daemon")
                    time.sleep(0.2)
                k.unprepare([b], "v1")  # something for the rates to count
                time.sleep(6)
                out = os.path.join(tmp, "panels.json")
                subprocess.run([sys.executable, os.path.join(SOURCE_ROOT, "tools", "render-dashboard"),
                                "--prometheus", url, "--from", "now-30s", "--to", "now", "--step", "1",
                                "--scrape-interval", "1", "--json", out], check=True)
                with open(out) as f:
                    panels = [p for p in json.load(f)["panels"] if p["type"] != "row"]
                check(len(panels) >= 20, "render-dashboard ran %d panels' queries" % len(panels))
                for p in panels:
                    if p["type"] == "table":
                        n = sum(1 for r in p["rows"] if any(v is not None for v in r))
                        check(n > 0, "panel %r: %d rows from the daemon's metrics" % (p["title"], n))
                    else:
                        n = sum(1 for x in p["series"] if any(v is not None for v in x["values"]))
                        check(n > 0, "panel %r: %d series with values from the daemon's metrics" % (p["title"], n))
            finally:
                prom.stop()
        else:
            print("prometheus is not installed: the dashboard's queries are not run")
        k.close()
        check(d.stop() == 0, "SIGTERM gives a clean exit")
finally:
    fake.stop()
    shutil.rmtree(tmp, ignore_errors=True)
