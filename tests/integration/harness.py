# SPDX-License-Identifier: Apache-2.0
"""Shared by the integration tests: start the node daemon (or, before it exists, the
gRPC test server) in a throwaway directory tree, and load the kubelet simulator."""

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get("HAMI_DRA_SOURCE_ROOT", os.path.dirname(os.path.dirname(HERE)))
BUILD_ROOT = os.environ.get("HAMI_DRA_BUILD_ROOT", os.path.join(SOURCE_ROOT, "build"))
DRIVER = "hami-core-gpu.project-hami.io"

_spec = importlib.util.spec_from_file_location("kubelet_sim", os.path.join(SOURCE_ROOT, "tests", "kubelet-sim.py"))
sim = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sim)


# meson runs each test against the daemon and once more against the gRPC layer alone,
# passing the binary as the first argument.
if len(sys.argv) > 1:
    os.environ["HAMI_DRA_DAEMON"] = os.path.abspath(sys.argv[1])


def daemon_binary():
    """HAMI_DRA_DAEMON picks one; default: the real daemon when built, else the test server."""
    path = os.environ.get("HAMI_DRA_DAEMON")
    if path:
        return path
    real = os.path.join(BUILD_ROOT, "src", "hami-dra-plugin")
    return real if os.access(real, os.X_OK) else os.path.join(BUILD_ROOT, "tests", "grpc-test-server")


def is_real_daemon(path=None):
    return os.path.basename(path or daemon_binary()) == "hami-dra-plugin"


def require_real_daemon_as_root():
    """Tests that prepare claims need the real daemon and root (mknod fixtures): skip otherwise."""
    if not is_real_daemon():
        print("SKIP: needs the real daemon")
        sys.exit(77)
    if os.geteuid() != 0:
        print("SKIP: mknod fixtures need root")
        sys.exit(77)


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)
    print("ok: " + msg, flush=True)


class Daemon:
    """One daemon in its own temporary tree: registry/, plugins/, state/, cdi/."""

    def __init__(self, gpus=8, binary=None, root=None):
        self.binary = binary or daemon_binary()
        self.gpus = gpus
        self.own_root = root is None
        self.root = root or tempfile.mkdtemp(prefix="hami-dra-it-")
        self.registry_dir = os.path.join(self.root, "registry")
        self.plugins_dir = os.path.join(self.root, "plugins")
        self.reg_sock = os.path.join(self.registry_dir, DRIVER + "-reg.sock")
        self.dra_sock = os.path.join(self.plugins_dir, DRIVER, "dra.sock")
        self.proc = None
        self.log_path = os.path.join(self.root, "daemon.log")

    def argv(self):
        if is_real_daemon(self.binary):
            conf = os.path.join(self.root, "hami-dra.conf")
            if not os.path.exists(conf):
                open(conf, "w").close()
            return [self.binary, "--config", conf, "--driver-name", DRIVER, "--node-name", "test-node",
                    "--registry-dir", self.registry_dir, "--plugins-dir", self.plugins_dir,
                    "--state-dir", os.path.join(self.root, "state"), "--cdi-dir", os.path.join(self.root, "cdi"),
                    "--backend=mock", "--mock-gpus=%d" % self.gpus]
        return [self.binary, "--driver-name", DRIVER, "--registration-socket", self.reg_sock,
                "--dra-socket", self.dra_sock, "--gpus", str(self.gpus)]

    def start(self, wait=True, prefix=(), **popen):
        self.log = open(self.log_path, "ab")
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        env.pop("LISTEN_FDS", None)
        self.proc = subprocess.Popen(list(prefix) + self.argv(), stdout=self.log, stderr=subprocess.STDOUT,
                                     env=popen.pop("env", env), **popen)
        if wait:
            self.wait_socket(self.reg_sock)
        return self

    def wait_socket(self, path, timeout=20, connect=True):
        """Until path exists and (connect=True) accepts a connection: a stale file may be there first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(path) and (not connect or _connectable(path)):
                return
            if self.proc and self.proc.poll() is not None:
                fail("daemon exited with %s before %s appeared:\n%s" % (self.proc.returncode, path, self.output()))
            time.sleep(0.02)
        fail("%s did not appear within %ds:\n%s" % (path, timeout, self.output()))

    def output(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def set_gpu1_unhealthy(self, unhealthy=True):
        """The real daemon's mock backend follows <state-dir>/mock-health; the test server flips on SIGUSR1."""
        if is_real_daemon(self.binary):
            path = os.path.join(self.root, "state", "mock-health")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                if unhealthy:
                    f.write("hami-gpu-1 unhealthy XID 79: GPU has fallen off the bus\n")
            os.rename(tmp, path)
        else:
            self.signal(signal.SIGUSR1)

    def stop(self, timeout=20):
        """SIGTERM and wait; returns the exit code."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            fail("daemon did not exit within %ds of SIGTERM:\n%s" % (timeout, self.output()))
        self.log.close()
        return rc

    def kubelet(self):
        # The kubelet allows GetInfo 1 s. Tests must not depend on the load of the machine
        # (ASan builds, parallel tests): a stuck server never answers, so 10 s proves as much.
        return sim.Kubelet(self.reg_sock, get_info_timeout=10)

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            print("daemon output:\n" + self.output())
        self.cleanup()


def _connectable(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def listening_socket(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(128)
    return s


class HeldSockets:
    """What systemd does for the socket units: hold the daemon's two listening sockets
    and start each instance with them (LISTEN_FDS=2, named registration:dra), so calls
    made while none runs wait in the backlog for the next."""

    def __init__(self, d):
        self.d = d
        self.reg = listening_socket(d.reg_sock)
        self.dra = listening_socket(d.dra_sock)
        self._hi = (os.dup2(self.reg.fileno(), 100), os.dup2(self.dra.fileno(), 101))

    def start(self, binary=None, env=None, notify_socket=None):
        """notify_socket: where the instance's sd_notify messages go (none by default)."""
        argv = self.d.argv()
        argv[0] = binary or argv[0]
        e = dict(env or os.environ, LISTEN_FDS="2", LISTEN_FDNAMES="registration:dra")
        e.pop("NOTIFY_SOCKET", None)
        if notify_socket:
            e["NOTIFY_SOCKET"] = notify_socket
        hi = self._hi

        def child_setup():
            os.dup2(hi[0], 3)
            os.dup2(hi[1], 4)

        self.d.log = open(self.d.log_path, "ab")
        self.d.proc = subprocess.Popen(["sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"'] + argv, env=e,
                                       stdout=self.d.log, stderr=subprocess.STDOUT, pass_fds=(3, 4),
                                       preexec_fn=child_setup)

    def close(self):
        self.reg.close()
        self.dra.close()
        for fd in self._hi:
            os.close(fd)


class Notify:
    """A NOTIFY_SOCKET of our own: what the daemon tells systemd (sd_notify)."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []

    def wait_for(self, pred, what, timeout=10):
        deadline = time.monotonic() + timeout
        for m in self.messages:
            if pred(m):
                return m
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            for line in data.split("\n"):
                self.messages.append(line)
                if pred(line):
                    return line
        raise AssertionError(f"no {what} within {timeout}s; got {self.messages}")

    def drain(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            self.messages.extend(data.split("\n"))

    def clear(self):
        self.messages = []


class PrivateSystemBus:
    """A dbus-daemon of our own with the system bus's policy shape and our bus policy
    (tests/fakes/private-system-bus.conf); .address goes into DBUS_SYSTEM_BUS_ADDRESS."""

    def __init__(self, dir, services=()):
        self.dir = dir
        for sub in ("system.d", "services"):
            os.makedirs(os.path.join(dir, sub), exist_ok=True)
        shutil.copy(os.path.join(SOURCE_ROOT, "dbus", "org.projecthami.Dra1.conf"), os.path.join(dir, "system.d"))
        for s in services:
            shutil.copy(s, os.path.join(dir, "services"))
        with open(os.path.join(SOURCE_ROOT, "tests", "fakes", "private-system-bus.conf")) as f:
            conf = f.read().replace("@SOCKET@", os.path.join(dir, "system_bus_socket")).replace("@DIR@", dir)
        with open(os.path.join(dir, "system.conf"), "w") as f:
            f.write(conf)

    def start(self, activation=False):
        r, w = os.pipe()
        # --systemd-activation: service files with SystemdService= are handed to systemd
        # (a stand-in in the tests), as on a real system bus
        self.proc = subprocess.Popen(["dbus-daemon", "--config-file=" + os.path.join(self.dir, "system.conf"),
                                      "--nofork", "--nopidfile", "--print-address=%d" % w]
                                     + (["--systemd-activation"] if activation else []), pass_fds=[w])
        os.close(w)
        with os.fdopen(r) as f:
            self.address = f.readline().strip()
        if not self.address:
            fail("dbus-daemon printed no address")
        return self.address

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
