# SPDX-License-Identifier: Apache-2.0
"""A real Prometheus (Debian's `prometheus`) on loopback, for the metrics tests, the
dashboard's check, bench/bench-metrics-daemon.py and tools/dashboard-demo.sh."""

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class PrometheusServer:
    """Scrapes `targets` ("host:port", job hami-dra) every `interval` seconds, its TSDB
    and log in `dir`; none: an empty TSDB that only answers queries. Ready when the
    constructor returns; RuntimeError (the log named) when it does not get there."""

    def __init__(self, dir, targets=(), interval=15, binary=None):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        conf = os.path.join(dir, "prometheus.yml")
        with open(conf, "w") as f:
            f.write("global:\n  scrape_interval: %ds\n  scrape_timeout: %ds\n" % (interval, min(interval, 10)))
            if targets:
                f.write("scrape_configs:\n  - job_name: hami-dra\n    static_configs:\n      - targets: [%s]\n"
                        % ", ".join("'%s'" % t for t in targets))
            else:
                f.write("scrape_configs: []\n")
        self.log = open(os.path.join(dir, "prometheus.log"), "w")
        self.proc = subprocess.Popen([binary or shutil.which("prometheus") or "prometheus", "--config.file=" + conf,
                                      "--storage.tsdb.path=" + os.path.join(dir, "tsdb"),
                                      "--web.listen-address=127.0.0.1:%d" % self.port],
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=dir)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.url + "/-/ready", timeout=2).read()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("prometheus did not get ready: see %s" % self.log.name)
                time.sleep(0.2)

    def query_json(self, expr):
        """(HTTP status, the answer's JSON) of an instant query."""
        url = self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
