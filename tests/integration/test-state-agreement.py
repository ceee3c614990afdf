#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""One source of truth for health: for every degraded state the real daemon can be in
(no NVIDIA driver, no credentials, the API server unreachable, no /dev/nvidiactl) and
for `stopping`, the three places an operator looks say the same: STATUS= (sd_notify, what
`systemctl status` shows), the D-Bus State and StateReason (the daemon on a private
system bus) and `hamictl status`. (That each is left again once fixed, with the daemon
running, is test-daemon-life's driver case and test-apiserver's credentials case.)"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from fakeapi import FakeApiServer, claim_object, claim_result, device_nodes
from harness import (BUILD_ROOT, DRIVER, Daemon, Notify, PrivateSystemBus, check, fail, is_real_daemon)

HAMICTL = os.path.join(BUILD_ROOT, "src", "hamictl")
MANAGER = ("org.projecthami.Dra1", "/org/projecthami/Dra1", "org.projecthami.Dra1.Manager")
NODE = "test-node"

if not is_real_daemon():
    print("SKIP: needs the real daemon")
    sys.exit(77)
if os.geteuid() != 0 or not shutil.which("dbus-daemon"):
    print("SKIP: needs root (mknod, the bus policy) and dbus-daemon")
    sys.exit(77)


def bus_property(address, name):
    out = subprocess.run(["busctl", "--address=" + address, "--json=short", "get-property", *MANAGER, name],
                         capture_output=True, text=True, timeout=10)
    try:
        return json.loads(out.stdout)["data"]
    except (ValueError, KeyError):
        return None


def hamictl_state(env):
    out = subprocess.run([HAMICTL, "status"], env=env, capture_output=True, text=True, timeout=10)
    m = re.search(r"^ *State: (.*)$", out.stdout, re.M)
    return m.group(1) if m else "<none: rc %d %s%s>" % (out.returncode, out.stdout, out.stderr)


def degraded_reason(status):
    """The reason in "Degraded: REASON; N GPU(s), ..." (several reasons are joined by "; ")."""
    m = re.match(r"^STATUS=Degraded: (.*); \d+ GPU\(s\), ", status)
    return m.group(1) if m else None


def agree(d, n, env, address, want, what):
    """STATUS=, D-Bus and hamictl, read again until they agree (the daemon may be between
    two updates); then the reason must say `want`."""
    deadline = time.monotonic() + 15
    seen = None
    while time.monotonic() < deadline:
        n.drain(0.2)
        status = [m for m in n.messages if m.startswith("STATUS=")]
        last = status[-1] if status else ""
        state, reason = bus_property(address, "State"), bus_property(address, "StateReason")
        ctl = hamictl_state(env)
        seen = (last, state, reason, ctl)
        if state == "degraded" and reason and want in reason and degraded_reason(last) == reason \
                and ctl == "degraded (%s)" % reason:
            check(True, "%s: STATUS=, D-Bus and hamictl agree: degraded (%s)" % (what, reason))
            return reason
        time.sleep(0.2)
    fail("%s: the three do not agree on a reason with %r:\n  STATUS: %s\n  D-Bus: %s (%s)\n  hamictl: %s\n%s"
         % (what, want, *seen, d.output()[-2000:]))


class Case:
    """A daemon with its own tree, NOTIFY_SOCKET and private system bus."""

    def __init__(self, tmp, name, conf="", env_extra=None, mock=True):
        self.root = os.path.join(tmp, name)
        os.makedirs(self.root)
        self.bus = PrivateSystemBus(os.path.join(self.root, "bus"))
        self.address = self.bus.start()
        self.notify = Notify(os.path.join(self.root, "notify.sock"))
        self.d = Daemon(root=os.path.join(self.root, "daemon"))
        if not mock:   # the configured backend (nvml), not the harness's --backend=mock
            argv = self.d.argv
            self.d.argv = lambda: [a for a in argv() if not a.startswith(("--backend", "--mock-gpus"))]
        os.makedirs(self.d.root)
        with open(os.path.join(self.d.root, "hami-dra.conf"), "w") as f:
            f.write(conf)
        self.env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.address,
                        NOTIFY_SOCKET=os.path.join(self.root, "notify.sock"), **(env_extra or {}))
        self.d.start(env=self.env)
        self.notify.wait_for(lambda m: m == "READY=1", "READY=1")

    def close(self):
        self.d.cleanup()
        self.bus.stop()


def devroot(path, nvidiactl=True):
    device_nodes(path, 8)
    if not nvidiactl:
        os.unlink(os.path.join(path, "dev", "nvidiactl"))
    return path


tmp = tempfile.mkdtemp(prefix="hami-state-")
cases = []
try:
    # 1. No NVIDIA driver (Backend=nvml, no libnvidia-ml.so.1 to be found).
    lib = os.path.join(tmp, "nolib")
    os.mkdir(lib)
    c = Case(tmp, "driver", "[GPU]\nBackend=nvml\n", {"LD_LIBRARY_PATH": lib}, mock=False)
    cases.append(c)
    agree(c.d, c.notify, c.env, c.address, "no NVIDIA driver", "no NVIDIA driver")
    c.close()

    # 2. No credentials: the kubeconfig named does not exist (yet).
    missing = os.path.join(tmp, "later", "kubelet.conf")
    c = Case(tmp, "credentials", "[Plugin]\nKubeconfig=%s\n" % missing)
    cases.append(c)
    agree(c.d, c.notify, c.env, c.address, missing, "no credentials")
    c.close()

    # 3. The API server unreachable: a kubeconfig for a fake that is gone; then it comes back.
    os.makedirs(os.path.join(tmp, "api"))
    fake = FakeApiServer(os.path.join(tmp, "api"), NODE, log=False)
    kubeconfig = fake.write_kubeconfig()
    fake.stop()
    c = Case(tmp, "apiserver", "[Plugin]\nKubeconfig=%s\n" % kubeconfig)
    cases.append(c)
    agree(c.d, c.notify, c.env, c.address, "API server", "API server unreachable")
    c.close()

    # 4. No /dev/nvidiactl: claims cannot be prepared; the node says so.
    dr = devroot(os.path.join(tmp, "devroot-noctl"), nvidiactl=False)
    c = Case(tmp, "nvidiactl", "", {"HAMI_DRA_DEV_ROOT": dr, "HAMI_DRA_DRIVER_ROOT": tmp})
    cases.append(c)
    agree(c.d, c.notify, c.env, c.address, "nvidiactl", "no /dev/nvidiactl")
    c.close()

    # 5. Stopping: SIGTERM while a prepare waits on a slow API server; until it is
    # answered, all three say "stopping".
    api = os.path.join(tmp, "api2")
    os.makedirs(api)
    fake = FakeApiServer(api, NODE, log=False)
    uid = str(uuid.uuid4())
    fake.put(claim_object("slow", uid, [claim_result(DRIVER, NODE, "hami-gpu-0", str(uuid.uuid4()), "1Gi", "10")]))
    dr = devroot(os.path.join(tmp, "devroot"))
    preload = os.path.join(tmp, "libvgpu.so")
    with open(preload, "w") as f:
        f.write("stand-in\n")
    c = Case(tmp, "stopping", "[Plugin]\nKubeconfig=%s\n[Container]\nPreloadLibrary=%s\n" % (fake.write_kubeconfig(), preload),
             {"HAMI_DRA_DEV_ROOT": dr, "HAMI_DRA_DRIVER_ROOT": tmp})
    cases.append(c)
    k = c.d.kubelet()
    k.register(DRIVER)
    fake.faults(slow_ms=3000)
    answer = {}
    t = threading.Thread(target=lambda: answer.update(k.prepare([("default", "slow", uid)])))
    t.start()
    time.sleep(0.5)
    c.d.signal(signal.SIGTERM)
    c.notify.wait_for(lambda m: m.startswith("STATUS=Stopping"), "the stopping STATUS=")
    state, ctl = bus_property(c.address, "State"), hamictl_state(c.env)
    check(state == "stopping" and ctl.startswith("stopping"),
          "stopping: STATUS=, D-Bus (%s) and hamictl (%s) agree" % (state, ctl))
    t.join(30)
    check(uid in answer and not answer[uid].error, "the prepare running at SIGTERM is answered: %r" % answer)
    check(c.d.stop() == 0, "then the daemon exits cleanly")
    k.close()
    fake.stop()
    c.close()
finally:
    for c in cases:
        c.close()
    shutil.rmtree(tmp, ignore_errors=True)
