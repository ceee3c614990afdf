#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""libvgpu.so in a real Debian root of another glibc (make-root.sh SUITE: the oldest
release Debian's mirror serves, and Debian 12), as /etc/ld.so.preload puts it into
every program of a GPU container:

 1. dynamically linked programs of that root (the shell, coreutils, perl, the compiler)
    start and exit 0, with nothing on stderr, with libvgpu.so in /etc/ld.so.preload;
    a library built the ordinary way against today's glibc is refused there (so the
    root really is older, and the check can fail);
 2. the fake driver and chain-worker are built INSIDE the root, with its own compiler
    and glibc (build-in-root.sh);
 3. the whole container chain (test-container-chain.py) runs over that root: the daemon
    prepares a 1 GiB / 30% claim, podman runs the root's programs with our CDI device,
    and the memory limit holds there as on the host.

Needs root, debootstrap, podman, runc and Debian's mirror; else 77 (skip)."""

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("HAMI_DRA_SOURCE_ROOT", os.path.join(HERE, "..", ".."))
PRELOAD_AT = "/opt/hami/libvgpu.so"
# What the root must run under the preload: the shell, coreutils, perl, the compiler.
PROGRAMS = [["/bin/true"], ["/bin/sh", "-c", "echo shell"], ["/bin/ls", "/"], ["/usr/bin/env"],
            ["/usr/bin/perl", "-e", "print 1"], ["/usr/bin/gcc", "--version"], ["/usr/bin/ldd", "--version"]]


def skip(reason):
    print("SKIP: " + reason)
    sys.exit(77)


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)
    print("ok: " + msg)


def chroot(root, argv, env=None, **kw):
    return subprocess.run([shutil.which("chroot"), root] + argv, capture_output=True, text=True,
                          env=env if env is not None else {"PATH": "/usr/bin:/bin", "LANG": "C"}, **kw)


def glibc_of(root):
    return chroot(root, ["/usr/bin/ldd", "--version"]).stdout.splitlines()[0]


@contextlib.contextmanager
def preloaded(root, lib):
    """lib in the root's /etc/ld.so.preload, as the CDI spec mounts it; gone afterwards."""
    os.makedirs(os.path.dirname(root + PRELOAD_AT), exist_ok=True)
    shutil.copy(lib, root + PRELOAD_AT)
    with open(root + "/etc/ld.so.preload", "w") as f:
        f.write(PRELOAD_AT + "\n")
    try:
        yield
    finally:
        os.unlink(root + "/etc/ld.so.preload")
        os.unlink(root + PRELOAD_AT)


def programs_start(root, lib):
    """Every program starts, exits 0 and prints nothing on stderr with lib preloaded."""
    with preloaded(root, lib):
        for argv in PROGRAMS:
            r = chroot(root, argv)
            check(r.returncode == 0 and r.stderr == "",
                  "%s starts under the preload (exit %d, stderr %r)" % (" ".join(argv), r.returncode, r.stderr[:300]))
        traced = chroot(root, ["/bin/true"], env={"PATH": "/usr/bin:/bin", "LD_DEBUG": "files"}).stderr
        check("calling init: " + PRELOAD_AT in traced,
              "the root's loader really loads and initialises libvgpu.so (LD_DEBUG=files)")


def modern_library_refused(root, lib):
    """The control: a library that needs today's glibc does not load in this root."""
    with preloaded(root, lib):
        r = chroot(root, ["/bin/true"])
    check(r.returncode != 0 and "not found" in r.stderr,
          "an ordinary build (needs glibc 2.34) breaks /bin/true here: %r" % r.stderr.strip()[:200])


def build_in_root(root):
    """Copy the sources the fake driver and chain-worker need, build them in the root."""
    dest = os.path.join(root, "src")
    for d in ("preload", "src", "tests/fakes/cuda", "tests/fakes/nvml", "tests/preload"):
        shutil.copytree(os.path.join(SRC, d), os.path.join(dest, d),
                        ignore=shutil.ignore_patterns("*.py", "data", "meson.build"))
    shutil.copy(os.path.join(SRC, "tests", "tests.h"), os.path.join(dest, "tests"))
    shutil.copy(os.path.join(HERE, "build-in-root.sh"), os.path.join(dest, "build-in-root.sh"))
    r = chroot(root, ["/bin/sh", "/src/build-in-root.sh"])
    print(r.stdout + r.stderr)
    check(r.returncode == 0, "the fake driver and chain-worker build inside the root")
    shutil.rmtree(dest)


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: test-old-root.py SUITE GLIBC-VERSION [test-container-chain.py's arguments]")
    suite, expect_glibc = sys.argv[1], sys.argv[2]
    if os.geteuid() != 0:
        skip("needs root (debootstrap, chroot, podman)")
    for tool in ("debootstrap", "chroot", "podman", "runc"):
        if not shutil.which(tool):
            skip("%s is missing" % tool)
    for var in ("HAMI_DRA_LIBVGPU", "HAMI_DRA_GLIBC_NEW"):
        if not os.environ.get(var):
            skip("%s is not set: run through meson test" % var)

    made = subprocess.run([os.path.join(HERE, "make-root.sh"), suite], capture_output=True, text=True)
    check(made.returncode == 0, "a Debian %s root from the mirror (%s)" % (suite, made.stderr.strip()[-500:]))
    cached = made.stdout.strip()

    tmp = tempfile.mkdtemp(prefix="hami-oldroot-%s-" % suite, dir="/var/tmp")
    try:
        root = os.path.join(tmp, "rootfs")
        subprocess.run(["cp", "-a", cached, root], check=True)
        os.chmod(tmp, 0o755)
        glibc = glibc_of(root)
        print("root: Debian %s, %s" % (suite, glibc))
        check(expect_glibc in glibc, "the %s root has glibc %s" % (suite, expect_glibc))

        programs_start(root, os.environ["HAMI_DRA_LIBVGPU"])
        if tuple(int(x) for x in expect_glibc.split(".")) < (2, 34):
            modern_library_refused(root, os.environ["HAMI_DRA_GLIBC_NEW"])
        build_in_root(root)

        # Busybox's role in the minimal rootfs is played by the root's own programs.
        if not os.path.exists(root + "/bin/setpriv"):
            os.symlink("/usr/bin/setpriv", root + "/bin/setpriv")
        env = dict(os.environ,
                   HAMI_DRA_CHAIN_ROOTFS=root,
                   HAMI_DRA_CHAIN_WORKER=root + "/bin/chain-worker",
                   HAMI_DRA_FAKE_CUDA=root + "/opt/fake/libcuda.so.1",
                   HAMI_DRA_FAKE_NVML=root + "/opt/fake/libnvidia-ml.so.1")
        chain = subprocess.run([sys.executable, os.path.join(SRC, "tests", "test-container-chain.py")] + sys.argv[3:],
                               env=env, timeout=300)
        check(chain.returncode == 0, "the container chain passes over the %s root (exit %d)"
              % (suite, chain.returncode))
        print("old root %s: all checks passed" % suite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


main()
