#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The whole chain in a real container. The real daemon (mock GPUs, mknod device
fixtures, the fake libcuda.so.1 and libnvidia-ml.so.1 as the host's driver) prepares a
claim for 1 GiB and 30% of hami-gpu-0 from the strict fake API server; podman + runc
run chain-worker with that CDI device in a minimal rootfs (the program, the libraries
ldd names but not the driver, busybox). libvgpu.so, /etc/ld.so.preload, the driver, the
limits and the shared region reach the container only through the CDI spec. Inside, a
root process holds 700 MiB; a second one, as uid 1000, is refused 400 MiB and granted
300 MiB, sees the claim's memory in cuMemGetInfo and NVML and is held under the SM
limit. After the container is gone, the daemon's reader finds the region with no live
process and nothing in use. With HAMI_DRA_CHAIN_ROOTFS, a whole distribution root (made
by tests/oldroot) stands in for the minimal rootfs. Needs root, podman, runc, busybox
(static); else 77."""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

SRC = os.environ.get("HAMI_DRA_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))

from fakeapi import FakeApiServer, claim_object, claim_result, device_nodes  # noqa: E402
from harness import DRIVER, Daemon, check, fail, is_real_daemon  # noqa: E402

NODE = "test-node"
SHARE = "6f1c2f1e-0000-4000-8000-000000000001"
LIBDIR = "/usr/lib/x86_64-linux-gnu"
APPLETS = ["sh", "sleep", "touch", "cat", "env", "grep", "sed", "sort", "kill", "id"]


def skip(reason):
    print("SKIP: " + reason)
    sys.exit(77)


def preconditions():
    if os.geteuid() != 0:
        skip("needs root (mknod fixtures, podman with runc)")
    for tool in ("podman", "runc", "busybox", "unshare", "ldd", "setpriv"):
        if not shutil.which(tool):
            skip("%s is missing" % tool)
    if "statically linked" not in subprocess.run(["file", "-L", shutil.which("busybox")], capture_output=True,
                                                  text=True).stdout:
        skip("busybox is not static (install busybox-static)")
    if not is_real_daemon():
        skip("needs the real daemon")
    for var in ("HAMI_DRA_CHAIN_WORKER", "HAMI_DRA_REGION_USAGE", "HAMI_DRA_LIBVGPU", "HAMI_DRA_FAKE_CUDA",
                "HAMI_DRA_FAKE_NVML", "HAMI_DRA_FAKE_NVML_CONFIG"):
        if not os.environ.get(var):
            skip("%s is not set: run through meson test" % var)


def host_fixtures(root):
    """/dev nodes for HAMI_DRA_DEV_ROOT and a driver root whose only driver is the fake one."""
    device_nodes(os.path.join(root, "devroot"), 2)
    libdir = os.path.join(root, "driver") + LIBDIR
    os.makedirs(libdir)
    shutil.copy(os.environ["HAMI_DRA_FAKE_CUDA"], os.path.join(libdir, "libcuda.so.1"))
    shutil.copy(os.environ["HAMI_DRA_FAKE_NVML"], os.path.join(libdir, "libnvidia-ml.so.1"))
    return os.path.join(root, "devroot"), os.path.join(root, "driver")


def ldd_paths(path):
    """The loader and the libraries ldd resolves for path, as (path as named, real file)."""
    out = subprocess.run(["ldd", path], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        words = line.split()
        if "=>" in words:
            words = words[words.index("=>") + 1:]
        if words and words[0].startswith("/"):
            found.append(words[0])
    return found


def rootfs_common(rootfs):
    """What any rootfs gets: the fake NVML's device list and the fake driver's state file
    (shared by the container's processes whatever their uid); no driver of its own."""
    shutil.copy(os.environ["HAMI_DRA_FAKE_NVML_CONFIG"], os.path.join(rootfs, "etc/fake-nvml.conf"))
    state = os.path.join(rootfs, "var/tmp/fake-cuda.state")
    open(state, "w").close()
    os.chmod(state, 0o666)
    for p in (os.path.join(rootfs, LIBDIR.lstrip("/"), "libcuda.so.1"), os.path.join(rootfs, "etc/ld.so.preload")):
        check(not os.path.exists(p), "the rootfs has no %s of its own" % p[len(rootfs):])


def use_given_rootfs(rootfs):
    """HAMI_DRA_CHAIN_ROOTFS (tests/oldroot): a whole distribution root, used in place, whose
    own programs (dynamically linked against its own glibc) replace busybox and whose
    chain-worker and fake driver were built inside it."""
    rootfs_common(rootfs)
    return ["(the root's own)"]


def make_rootfs(rootfs):
    """The program and setpriv, what they and libvgpu.so/the fake driver need (NOT the driver
    and NOT libvgpu.so: those come from CDI), busybox, the fake NVML's device list."""
    for d in ("bin", "etc", "var/tmp", "lib64", "usr/lib"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    os.chmod(rootfs, 0o755)
    os.chmod(os.path.join(rootfs, "var/tmp"), 0o1777)
    worker = os.environ["HAMI_DRA_CHAIN_WORKER"]
    setpriv = shutil.which("setpriv")  # util-linux's: busybox's cannot change uids
    shutil.copy(worker, os.path.join(rootfs, "bin/chain-worker"))
    shutil.copy(setpriv, os.path.join(rootfs, "bin/setpriv"))
    driver_names = ("libcuda.so.1", "libnvidia-ml.so.1", "libvgpu.so")
    libs = set()
    for binary in (worker, setpriv, os.environ["HAMI_DRA_LIBVGPU"], os.environ["HAMI_DRA_FAKE_CUDA"],
                   os.environ["HAMI_DRA_FAKE_NVML"]):
        libs.update(p for p in ldd_paths(binary) if os.path.basename(p) not in driver_names)
    for lib in sorted(libs):
        dest = rootfs + lib
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy(os.path.realpath(lib), dest)
    shutil.copy(shutil.which("busybox"), os.path.join(rootfs, "bin/busybox"))
    for applet in APPLETS:
        os.symlink("busybox", os.path.join(rootfs, "bin", applet))
    rootfs_common(rootfs)
    return sorted(libs)


# Runs as PID 1 of the container: the holder (root) in the background, then the second
# process as uid 1000 while it holds (/bin/setpriv by path: busybox sh prefers its own
# applet, which cannot change uids). The holder exits when the host, having read the
# region while it is live, creates /var/tmp/release (the rootfs is a host directory).
CONTAINER_SCRIPT = r"""
set -e
env | grep -E '^(CUDA_|NVIDIA_)' | sort | sed 's/^/ENV /'
echo "PRELOAD $(cat /etc/ld.so.preload)"
chain-worker hold 700 /var/tmp/ready /var/tmp/release &
holder=$!
i=0
while [ ! -e /var/tmp/ready ]; do
        kill -0 $holder || { echo "holder died"; exit 3; }
        i=$((i + 1)); [ $i -lt 600 ] || { echo "holder never ready"; exit 4; }
        sleep 0.05
done
/bin/setpriv --reuid=1000 --regid=1000 --clear-groups chain-worker second 700 1000
touch /var/tmp/second-done
wait $holder
echo CHAIN-OK
"""

PODMAN = r"""
set -e
mount -t tmpfs tmpfs /run
mkdir -p /run/cdi /run/podman-run
cp "$0"/*.json /run/cdi/
exec podman --runtime runc --root "$1"/root --runroot /run/podman-run --tmpdir "$1"/tmp \
        --cgroup-manager=cgroupfs --events-backend=none \
        run --rm --ulimit nofile=$(ulimit -Hn):$(ulimit -Hn) --ulimit nproc=32768:32768 --network=none \
        --cgroup-parent=/hami-chain-test \
        --env FAKE_CUDA_STATE=/var/tmp/fake-cuda.state --env FAKE_NVML_CONFIG=/etc/fake-nvml.conf \
        --env LIBCUDA_LOG_LEVEL=3 --env PATH=/bin:/usr/bin \
        "${@:4}" --rootfs "$2" /bin/sh -c "$3"
"""


def run_container(cdi_dir, work, rootfs, cdi_id, region):
    """Run the container; while the holder holds, check what the daemon's reader sees."""
    os.makedirs(os.path.join(work, "root"))
    os.makedirs(os.path.join(work, "tmp"))
    log_path = os.path.join(work, "podman.log")
    with open(log_path, "w") as log:
        p = subprocess.Popen(["unshare", "-m", "--propagation", "private", "bash", "-c", PODMAN, cdi_dir, work,
                              rootfs, CONTAINER_SCRIPT, "--device", cdi_id],
                             stdout=log, stderr=subprocess.STDOUT)
    try:
        done = os.path.join(rootfs, "var/tmp/second-done")
        deadline = time.monotonic() + 60
        while not os.path.exists(done) and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if os.path.exists(done):
            u = region_usage(region)
            print("host reader, container live: %s" % u)
            check(u["N_ACTIVE"] == "1" and u["USED_0"] == str(700 << 20),
                  "while the holder lives, the daemon's reader sees its 700 MiB in the region")
        open(os.path.join(rootfs, "var/tmp/release"), "w").close()
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        fail("podman did not finish in time:\n" + open(log_path).read())
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    out = open(log_path).read()
    print(out)
    check(p.returncode == 0, "podman runs the chain (exit %d)" % p.returncode)
    return out


def region_usage(path):
    out = subprocess.run([os.environ["HAMI_DRA_REGION_USAGE"], path], capture_output=True, text=True)
    check(out.returncode == 0, "the daemon's reader reads the region (%s)" % out.stderr.strip())
    return dict(line.split("=", 1) for line in out.stdout.split())


def main():
    preconditions()
    tmp = tempfile.mkdtemp(prefix="hami-chain-", dir="/var/tmp")
    os.chmod(tmp, 0o755)
    fake = None
    try:
        fake = FakeApiServer(tmp, NODE)
        kubeconfig = fake.write_kubeconfig()
        with Daemon(gpus=2, root=os.path.join(tmp, "daemon")) as d:
            os.makedirs(d.root)
            dev_root, driver_root = host_fixtures(d.root)
            with open(os.path.join(d.root, "hami-dra.conf"), "w") as f:
                f.write("[Plugin]\nKubeconfig=%s\n[Container]\nPreloadLibrary=%s\n"
                        % (kubeconfig, os.environ["HAMI_DRA_LIBVGPU"]))
            env = dict(os.environ, HAMI_DRA_DEV_ROOT=dev_root, HAMI_DRA_DRIVER_ROOT=driver_root)
            env.pop("NOTIFY_SOCKET", None)
            d.start(env=env)
            k = d.kubelet()
            k.register(DRIVER)

            claim_uid = str(uuid.uuid4())
            ref = ("default", "chain", claim_uid)
            fake.put(claim_object("chain", claim_uid, [claim_result(DRIVER, NODE, "hami-gpu-0", SHARE, "1Gi", "30")]))
            r = k.prepare([ref], "v1")[claim_uid]
            check(not r.error, "the claim is prepared (%s)" % r.error)
            cdi_id = r.devices[0].cdi_device_ids[0]
            print("CDI device: " + cdi_id)
            region = os.path.join(d.root, "state", "claims", claim_uid, "vgpu", "vgpu.cache")
            check(os.path.exists(region), "prepare made the claim's shared region")

            rootfs = os.environ.get("HAMI_DRA_CHAIN_ROOTFS") or os.path.join(tmp, "rootfs")
            libs = use_given_rootfs(rootfs) if os.environ.get("HAMI_DRA_CHAIN_ROOTFS") else make_rootfs(rootfs)
            print("rootfs libraries: " + " ".join(libs))
            out = run_container(os.path.join(d.root, "cdi"), os.path.join(tmp, "podman"), rootfs, cdi_id, region)
            lines = out.splitlines()
            for want in ("ENV CUDA_DEVICE_MEMORY_LIMIT_0=1024m", "ENV CUDA_DEVICE_SM_LIMIT_0=30",
                         "ENV CUDA_DEVICE_MEMORY_SHARED_CACHE=/run/hami-dra/vgpu.cache",
                         "PRELOAD " + os.environ["HAMI_DRA_LIBVGPU"],
                         "hold: uid 0 allocated 700 MiB",
                         "memory: total 1024 MiB, used 700 MiB (cuMemGetInfo and NVML agree)",
                         "second: uid 1000: 400 MiB refused (CUDA_ERROR_OUT_OF_MEMORY)",
                         "second: uid 1000: 300 MiB granted",
                         "memory: total 1024 MiB, used 1000 MiB (cuMemGetInfo and NVML agree)",
                         "CHAIN-OK"):
                check(want in lines, "in the container: " + want)
            check(sum("device 0: memory limit 1073741824 bytes, SM limit 30%" in line for line in lines) >= 2,
                  "libvgpu.so in both processes applies 1 GiB and SM 30% on device 0")

            u = region_usage(region)
            print("host reader: %s" % u)
            check(u["LIMIT_0"] == str(1 << 30) and u["SM_LIMIT_0"] == "30", "the region records the claim's limits")
            check(int(u["SLOTS_USED"]) >= 2, "both container processes attached to the host's region")
            check(u["N_ACTIVE"] == "0" and u["USED_0"] == "0",
                  "after the container, no live process and nothing in use (the holder's 700 MiB reclaimed)")

            r = k.unprepare([ref], "v1")[claim_uid]
            check(not r.error and not os.path.exists(os.path.dirname(region)), "unprepare removes the region")
            check(d.stop() == 0, "the daemon stops cleanly")
        print("container chain: all checks passed")
    finally:
        if fake:
            fake.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            os.rmdir("/sys/fs/cgroup/hami-chain-test")
        except OSError:
            pass


main()
