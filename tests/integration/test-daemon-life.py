#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The daemon's life as systemd sees it, without systemd: the sd_notify protocol on a
NOTIFY_SOCKET we own (STATUS=, READY=1, WATCHDOG=1, RELOADING=1, STOPPING=1), SIGHUP
reloading the configuration, SIGTERM and SIGINT stopping cleanly and removing the
sockets it bound, a bad configuration failing with a message that names it, and a
missing NVIDIA driver making the daemon wait for it instead of exiting."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from harness import Notify

BUILD = os.environ["HAMI_DRA_BUILD_ROOT"]
DAEMON = os.path.join(BUILD, "src", "hami-dra-plugin")
DRIVER = "hami-core-gpu.project-hami.io"


def last_status(n, when):
    """The last STATUS= the daemon sent (after a short wait for stragglers) is the real
    state: GPUs and registration, not a transient line."""
    n.drain(0.3)
    statuses = [m for m in n.messages if m.startswith("STATUS=")]
    assert statuses and "GPU(s)" in statuses[-1], f"STATUS= {when}: {statuses}"


def start(tmp, extra_args=(), env_extra=None):
    env = dict(os.environ)
    env["NOTIFY_SOCKET"] = os.path.join(tmp, "notify.sock")
    env.pop("WATCHDOG_PID", None)
    env.update(env_extra or {})
    args = [DAEMON, f"--config={tmp}/hami-dra.conf", "--node-name=node-a",
            f"--registry-dir={tmp}/registry", f"--plugins-dir={tmp}/plugins",
            f"--cdi-dir={tmp}/cdi", f"--state-dir={tmp}/state", "--kubeconfig=",
            "--no-sandbox", *extra_args]
    return subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)


def stop(p, sig):
    p.send_signal(sig)
    try:
        _, err = p.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        raise AssertionError(f"daemon did not exit on {sig!r}")
    return p.returncode, err


def test_lifecycle():
    with tempfile.TemporaryDirectory() as tmp:
        with open(f"{tmp}/hami-dra.conf", "w") as f:
            f.write("[GPU]\nBackend=mock\n[Mock]\nGPUs=2\n")
        n = Notify(f"{tmp}/notify.sock")
        p = start(tmp, env_extra={"WATCHDOG_USEC": "400000"})
        try:
            n.wait_for(lambda m: m == "READY=1", "READY=1")
            status = n.wait_for(lambda m: m.startswith("STATUS=") and "GPU" in m, "STATUS= with GPUs")
            assert "2 GPU(s)" in status, status
            n.wait_for(lambda m: m == "WATCHDOG=1", "WATCHDOG=1")
            reg = f"{tmp}/registry/{DRIVER}-reg.sock"
            dra = f"{tmp}/plugins/{DRIVER}/dra.sock"
            assert os.path.exists(reg) and os.path.exists(dra), os.listdir(tmp)

            # Reload: one more GPU, picked up on SIGHUP.
            with open(f"{tmp}/hami-dra.conf", "w") as f:
                f.write("[GPU]\nBackend=mock\n[Mock]\nGPUs=3\n")
            n.clear()
            p.send_signal(signal.SIGHUP)
            n.wait_for(lambda m: m == "RELOADING=1", "RELOADING=1")
            n.wait_for(lambda m: m == "READY=1", "READY=1 after reload")
            n.wait_for(lambda m: m.startswith("STATUS=") and "3 GPU(s)" in m, "STATUS= with 3 GPUs")

            # A reload that changes nothing still ends with the real state in STATUS=,
            # not "Reloading the configuration" (what systemctl status shows last).
            n.clear()
            p.send_signal(signal.SIGHUP)
            n.wait_for(lambda m: m == "READY=1", "READY=1 after a reload that changes nothing")
            time.sleep(0.3)
            last_status(n, "after a reload that changes nothing")

            # A broken file on reload keeps the old configuration and the daemon.
            with open(f"{tmp}/hami-dra.conf", "w") as f:
                f.write("[Mock]\nGPUs=many\n")
            n.clear()
            p.send_signal(signal.SIGHUP)
            n.wait_for(lambda m: m == "READY=1", "READY=1 after a failed reload")
            assert p.poll() is None, "daemon died on a bad reload"
            last_status(n, "after a failed reload")

            n.clear()
            rc, err = stop(p, signal.SIGTERM)
            assert rc == 0, (rc, err)
            assert "STOPPING=1" in n.messages or n.wait_for(lambda m: m == "STOPPING=1", "STOPPING=1")
            stopping = "STATUS=Stopping: finishing the calls in progress"
            assert any(m.startswith(stopping) for m in n.messages) or \
                n.wait_for(lambda m: m.startswith(stopping), "the stopping STATUS=")
            assert "Received SIGTERM, stopping" in err, err
            assert not os.path.exists(reg), "registration socket left behind"
            assert not os.path.exists(dra), "DRA socket left behind"
            assert "hami-dra-plugin: " in err, err       # console log format off systemd
            assert "invalid value for GPUs=" in err, err  # the failed reload said why
            assert "Found 3 GPU(s)" in err, err
        finally:
            if p.poll() is None:
                p.kill()


def test_sigint():
    with tempfile.TemporaryDirectory() as tmp:
        n = Notify(f"{tmp}/notify.sock")
        p = start(tmp, ["--backend=mock", "--mock-gpus=1"])
        try:
            n.wait_for(lambda m: m == "READY=1", "READY=1")
            rc, err = stop(p, signal.SIGINT)
            assert rc == 0, (rc, err)
        finally:
            if p.poll() is None:
                p.kill()


def test_bad_config_fails_clearly():
    with tempfile.TemporaryDirectory() as tmp:
        with open(f"{tmp}/hami-dra.conf", "w") as f:
            f.write("[Plugin]\nStateDirectory=relative\n")
        Notify(f"{tmp}/notify.sock")
        p = start(tmp, ["--backend=mock"])
        _, err = p.communicate(timeout=15)
        assert p.returncode == 1, p.returncode
        assert f"{tmp}/hami-dra.conf:2: invalid value for StateDirectory=" in err, err


def test_driver_arrives_later():
    """Backend=nvml before the NVIDIA driver is installed (a common provisioning order):
    the daemon stays up and registered with no GPUs, says what is missing, and picks the
    driver up by itself once its library appears (the fake NVML, linked in later)."""
    src = os.environ["HAMI_DRA_SOURCE_ROOT"]
    fake_nvml = os.path.join(BUILD, "tests", "fakes", "nvml", "libnvidia-ml.so.1")
    with tempfile.TemporaryDirectory() as tmp:
        os.mkdir(f"{tmp}/lib")
        with open(f"{tmp}/hami-dra.conf", "w") as f:
            f.write("[GPU]\nBackend=nvml\n")
        n = Notify(f"{tmp}/notify.sock")
        p = start(tmp, env_extra={"LD_LIBRARY_PATH": f"{tmp}/lib",
                                  "FAKE_NVML_CONFIG": os.path.join(src, "tests/fakes/nvml/data/mock-test-node.conf")})
        try:
            n.wait_for(lambda m: m == "READY=1", "READY=1 without a driver")
            status = n.wait_for(lambda m: m.startswith("STATUS=Degraded: no NVIDIA driver"), "a degraded STATUS=")
            assert "0 GPU(s)" in status and "install the driver" in status, status
            assert os.path.exists(f"{tmp}/registry/{DRIVER}-reg.sock"), "registration socket not served"
            time.sleep(2.5)  # a retry or two fail first
            assert p.poll() is None, "the daemon exited without a driver"
            os.symlink(fake_nvml, f"{tmp}/lib/libnvidia-ml.so.1")
            status = n.wait_for(lambda m: m.startswith("STATUS=") and "2 GPU(s)" in m, "the GPUs after the driver",
                                timeout=15)
            assert "no NVIDIA driver" not in status, status
            rc, err = stop(p, signal.SIGTERM)
            assert rc == 0, (rc, err)
            assert "Serving without GPUs until the NVIDIA driver is usable" in err, err
            assert "The NVIDIA driver is usable now" in err, err
        finally:
            if p.poll() is None:
                p.kill()


def test_driver_loaded_after_start_restarts():
    """Under its sandbox the daemon's private /dev and device cgroup are made at start:
    when the NVIDIA kernel module shows up later (/proc/driver/nvidia/version, faked
    here by a bind mount in a mount namespace of the daemon's own), waiting cannot work,
    so the daemon exits with 75 for systemd's Restart=on-failure to start it afresh."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        print("skipped: needs root and unshare")
        return
    with tempfile.TemporaryDirectory() as tmp:
        os.mkdir(f"{tmp}/lib")
        os.mkdir(f"{tmp}/procdriver")
        with open(f"{tmp}/hami-dra.conf", "w") as f:
            f.write("[GPU]\nBackend=nvml\n")
        n = Notify(f"{tmp}/notify.sock")
        env = dict(os.environ, NOTIFY_SOCKET=f"{tmp}/notify.sock", LD_LIBRARY_PATH=f"{tmp}/lib")
        env.pop("WATCHDOG_PID", None)
        args = [DAEMON, f"--config={tmp}/hami-dra.conf", "--node-name=node-a", f"--registry-dir={tmp}/registry",
                f"--plugins-dir={tmp}/plugins", f"--cdi-dir={tmp}/cdi", f"--state-dir={tmp}/state", "--kubeconfig="]
        p = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c",
                              'mount --bind "$0" /proc/driver && exec "$@"', f"{tmp}/procdriver"] + args,
                             env=env, stderr=subprocess.PIPE, text=True)
        try:
            n.wait_for(lambda m: m.startswith("STATUS=Degraded: no NVIDIA driver"), "a degraded STATUS=")
            os.makedirs(f"{tmp}/procdriver/nvidia")
            with open(f"{tmp}/procdriver/nvidia/version", "w") as f:
                f.write("NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.65.06\n")
            _, err = p.communicate(timeout=15)
            assert p.returncode == 75, (p.returncode, err)
            assert "restarting so that its sandbox includes the driver's device nodes" in err, err
            assert "STOPPING=1" in n.messages or n.wait_for(lambda m: m == "STOPPING=1", "STOPPING=1")
        finally:
            if p.poll() is None:
                p.kill()


def test_bad_flag_fails_clearly():
    p = subprocess.run([DAEMON, "--mock-gpus=1000"], capture_output=True, text=True, timeout=15)
    assert p.returncode == 1, p.returncode
    assert "Invalid value for --mock-gpus" in p.stderr, p.stderr


if __name__ == "__main__":
    for t in (test_lifecycle, test_sigint, test_bad_config_fails_clearly, test_driver_arrives_later,
              test_driver_loaded_after_start_restarts, test_bad_flag_fails_clearly):
        print("==", t.__name__, flush=True)
        t()
    print("ok")
