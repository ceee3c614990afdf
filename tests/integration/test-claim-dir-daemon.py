#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Containers are hostile (issue 14), against the real daemon, which drops every
capability itself as the unit does (no CAP_DAC_OVERRIDE), with its state directory on a
4 MiB tmpfs in a private mount namespace:
 - a uid-1000 process, through the claim's vgpu/ bind-mounted as a runtime mounts it,
   can add no file there and cannot keep vgpu.cache grown; other claims still prepare;
 - what container root leaves in vgpu/ (a 0555 directory with a file, a tree 10 levels
   deep) is removed by unprepare; a directory of another owner fails the unprepare,
   which says what is left, and the claim stays;
 - a restart on a full state file system starts, serves GetInfo and the existing claims,
   and rewrites nothing it does not need to (ld.so.preload)."""

import os
import subprocess
import sys
import tempfile
import time
import uuid

if os.geteuid() != 0:
    print("SKIP: needs root (mknod, mount, chown)")
    sys.exit(77)
if not os.environ.get("HAMI_CLAIM_DIR_NS"):
    try:
        subprocess.run(["unshare", "--mount", "true"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print("SKIP: no private mount namespace: %s" % e)
        sys.exit(77)
    os.environ["HAMI_CLAIM_DIR_NS"] = "1"
    os.execvp("unshare", ["unshare", "--mount", "--propagation", "private", sys.executable] + sys.argv)

from fakeapi import FakeApiServer, claim_object, claim_result, prepare_daemon_root  # noqa: E402
from harness import DRIVER, Daemon, check, is_real_daemon  # noqa: E402

NODE = "test-node"
REGION_SIZE = 198784  # shared_region_file_size(SHARED_REGION_SLOTS_MAX): the per-claim bound
CONTAINER_UID = 1000

if not is_real_daemon():
    print("SKIP: needs the real daemon")
    sys.exit(77)


def share(n):
    return "6f1c2f1e-0000-4000-8000-%012d" % n


def as_container_user():
    os.setgroups([])
    os.setresgid(CONTAINER_UID, CONTAINER_UID, CONTAINER_UID)
    os.setresuid(CONTAINER_UID, CONTAINER_UID, CONTAINER_UID)


CONTAINER_WRITER = r"""
import errno, os, sys
d = sys.argv[1]
try:
    open(os.path.join(d, "junk"), "w")
    sys.exit("a non-root container added a file to vgpu/")
except PermissionError:
    pass
chunk = b"z" * (1 << 20)
written = 0
with open(os.path.join(d, "vgpu.cache"), "ab", buffering=0) as f:
    for _ in range(16):
        try:
            written += f.write(chunk)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
print(written)
"""


def wait_for(cond, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


tmp = tempfile.mkdtemp(prefix="hami-claim-dir-it-")
fake = FakeApiServer(tmp, NODE)
try:
    kubeconfig = fake.write_kubeconfig()
    with Daemon(root=os.path.join(tmp, "daemon")) as d:
        env = prepare_daemon_root(d, kubeconfig)
        state = os.path.join(d.root, "state")
        os.makedirs(state)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "hami-state", state], check=True)
        d.start(env=env)
        k = d.kubelet()
        k.register(DRIVER)

        a, b, c = (("default", n, str(uuid.uuid4())) for n in ("a", "b", "c"))
        for i, ref in enumerate((a, b, c)):
            fake.put(claim_object(ref[1], ref[2], [claim_result(DRIVER, NODE, "hami-gpu-%d" % i, share(i + 1),
                                                                "1Gi", "10")]))
        res = k.prepare([a, b], "v1")
        check(not res[a[2]].error and not res[b[2]].error, "two claims prepared")

        def vgpu(ref, *rest):
            return os.path.join(state, "claims", ref[2], "vgpu", *rest)

        # A uid-1000 process writes 16 MiB past the end of its region, into a 4 MiB file system.
        ctr = tempfile.mkdtemp(prefix="hami-ctr-")
        os.chmod(ctr, 0o755)
        subprocess.run(["mount", "--bind", vgpu(a), ctr], check=True)
        w = subprocess.run(["/usr/bin/python3", "-c", CONTAINER_WRITER, ctr], preexec_fn=as_container_user,
                           capture_output=True, text=True)
        subprocess.run(["umount", ctr], check=True)
        os.rmdir(ctr)
        check(w.returncode == 0, "the container's writes: %s %s" % (w.stdout, w.stderr))
        check(wait_for(lambda: os.stat(vgpu(a, "vgpu.cache")).st_size == REGION_SIZE),
              "the daemon cut vgpu.cache back to %d bytes (it is %d; %s bytes were written)"
              % (REGION_SIZE, os.stat(vgpu(a, "vgpu.cache")).st_size, w.stdout.strip()))
        st = os.statvfs(state)
        check(st.f_bavail * st.f_frsize > 2 << 20, "the state file system has its space back")
        check("wrote" in d.output() and a[2] in d.output(), "the journal names the claim")
        r = k.prepare([c], "v1")[c[2]]
        check(not r.error, "another claim still prepares (%s)" % r.error)

        # Container root: a read-only directory with a file, a deep tree.
        ro = vgpu(a, "ro")
        os.mkdir(ro)
        with open(os.path.join(ro, "f"), "w") as f:
            f.write("x")
        os.chmod(ro, 0o555)
        deep = vgpu(a, "deep")
        os.makedirs(os.path.join(deep, *["d"] * 10))
        os.chmod(os.path.join(deep, *["d"] * 5), 0o555)
        os.chmod(vgpu(a), 0o555)
        r = k.unprepare([a], "v1")[a[2]]
        check(not r.error, "unprepare removes what container root left (%s)" % r.error)
        check(not os.path.exists(os.path.join(state, "claims", a[2])), "nothing of the claim is left")

        # A directory of another owner: the daemon cannot remove it, and says so.
        foreign = vgpu(b, "foreign")
        os.mkdir(foreign)
        open(os.path.join(foreign, "x"), "w").close()
        os.chown(foreign, CONTAINER_UID, CONTAINER_UID)
        os.chmod(foreign, 0o555)
        r = k.unprepare([b], "v1")[b[2]]
        check("foreign" in r.error, "unprepare fails and says what is left: %r" % r.error)
        check(os.path.exists(os.path.join(state, "checkpoints", b[2] + ".ckpt")), "the claim stays recorded")

        # A restart on a full state file system.
        check(d.stop() == 0, "the daemon stops")
        ld_so = os.stat(os.path.join(state, "ld.so.preload"))
        with open(os.path.join(state, "filler"), "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        d.start(env=env)
        k = d.kubelet()
        k.register(DRIVER)
        check(d.alive(), "the daemon starts on a full state file system")
        r = k.prepare([c], "v1")[c[2]]
        check(not r.error and r.devices, "an existing claim is served (%s)" % r.error)
        r = k.prepare([b], "v1")[b[2]]
        check("foreign" in r.error, "the claim with what is left says so on prepare: %r" % r.error)
        now = os.stat(os.path.join(state, "ld.so.preload"))
        check((now.st_ino, now.st_mtime_ns) == (ld_so.st_ino, ld_so.st_mtime_ns), "ld.so.preload is not rewritten")
        check(now.st_mode & 0o777 == 0o644, "ld.so.preload is readable by every uid: %o" % now.st_mode)

        # Made removable (by whoever owns it): the kubelet's retry succeeds.
        os.unlink(os.path.join(state, "filler"))
        os.chown(foreign, 0, 0)
        res = k.unprepare([b, c], "v1")
        check(not res[b[2]].error and not res[c[2]].error, "the retries succeed (%s)" % res[b[2]].error)
        check(os.listdir(os.path.join(state, "claims")) == [], "no claim directory is left")
        k.close()
        check(d.stop() == 0, "the daemon exits cleanly")
        subprocess.run(["umount", state], check=True)
finally:
    fake.stop()
    subprocess.run(["umount", os.path.join(tmp, "daemon", "state")], stderr=subprocess.DEVNULL)
    subprocess.run(["rm", "-rf", tmp])
print("ok")
