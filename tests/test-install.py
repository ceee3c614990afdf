#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A production install and its removal, in a throwaway tree (meson install --destdir):
- what a node needs is installed, and nothing of the tests;
- every man page renders without a troff warning, and `man -k hami` finds each one;
- the journal catalog builds, with this project's support link;
- tools/uninstall.sh leaves no file and no hami-dra directory behind, rebuilds the
  catalog without our entries, and keeps (and names) what an administrator added.

  test-install.py            (run by meson: HAMI_DRA_BUILD_ROOT, HAMI_DRA_SOURCE_ROOT)
"""

import os
import shutil
import subprocess
import sys
import tempfile

src = os.environ.get("HAMI_DRA_SOURCE_ROOT")
build = os.environ.get("HAMI_DRA_BUILD_ROOT")
failures = []

MAN_PAGES = ["hamictl.1", "hami-dra-parameters.5", "hami-dra.conf.5", "org.projecthami.Dra1.5", "libvgpu.7",
             "hami-dra-plugin.8", "hami-dra-webhook.8"]
RUNTIME = ["usr/libexec/hami-dra-plugin", "usr/libexec/hami-dra-webhook", "usr/bin/hamictl",
           "usr/share/dbus-1/system.d/org.projecthami.Dra1.conf", "usr/share/polkit-1/actions/org.projecthami.dra1.policy",
           "usr/lib/systemd/catalog/hami-dra.catalog", "etc/hami-dra/hami-dra.conf"]
UNITS = ["hami-dra-plugin.service", "hami-dra-plugin.socket", "hami-dra-plugin-dra.socket", "hami-dra-metrics.socket",
         "hami-dra-webhook.service"]
MESSAGE_IDS = ["19084eb2f9104c438d84c4b807711466", "aa8f594203154ad8b0c2bee4508def7a",
               "970d9aa79c094f8a84d15c7a813d1478", "222f44e329cf4a31b45c11e31cb03996",
               "d856564a177c4ca983b12ec203930ef8", "9974418d8b3c480998a91245ed95c2ed",
               "0e535b6def454b41928a26a4eaeafe33"]


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, **kw)


def files_under(root):
    out = []
    for d, _, names in os.walk(root):
        out += [os.path.relpath(os.path.join(d, n), root) for n in names]
    return sorted(out)


def find_one(root, name):
    hits = [f for f in files_under(root) if os.path.basename(f) == name]
    return hits[0] if len(hits) == 1 else None


def check_installed(root):
    have = files_under(root)
    for f in RUNTIME:
        if f not in have:
            failures.append("not installed: /" + f)
    for u in UNITS:
        if not find_one(root, u):
            failures.append("unit not installed: " + u)
    if not any(f.endswith("/hami-dra/libvgpu.so") for f in have):
        failures.append("libvgpu.so not installed under <libdir>/hami-dra")
    for f in have:
        base = os.path.basename(f)
        if base.startswith(("test-", "fuzz-", "bench-", "fake")) or "libfake" in base or base == "hami-vgpu-monitor":
            failures.append("a test or benchmark program was installed: /" + f)


def check_man(root):
    env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80")
    mandir = os.path.join(root, "usr/share/man")
    for page in MAN_PAGES:
        path = os.path.join(mandir, "man" + page.rsplit(".", 1)[1], page)
        if not os.path.exists(path):
            failures.append("man page not installed: " + page)
            continue
        r = run(["man", "--warnings", "-E", "UTF-8", "-l", path], env=env)
        if r.returncode != 0 or r.stderr.strip():
            failures.append("man %s: %s" % (page, r.stderr.strip() or "exit %d" % r.returncode))
    # man -k reads mandb's index: build one over a copy (mandb writes into the tree).
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "man")
        shutil.copytree(mandir, copy)
        r = run(["mandb", "-q", copy], env=env)
        if r.returncode != 0:
            failures.append("mandb failed: " + r.stderr.strip())
        r = run(["man", "-k", "hami"], env=dict(env, MANPATH=copy))
        for page in MAN_PAGES:
            name, section = page.rsplit(".", 1)
            if "%s (%s)" % (name, section) not in r.stdout:
                failures.append("man -k hami does not find %s(%s):\n%s" % (name, section, r.stdout))


def listed_catalog(root):
    r = run(["journalctl", "--root=" + root, "--list-catalog"])
    return r.stdout


def check_catalog(root):
    with open(os.path.join(root, "usr/lib/systemd/catalog/hami-dra.catalog")) as f:
        text = f.read()
    support = [line for line in text.splitlines() if line.startswith("Support:")]
    if len(support) != len(MESSAGE_IDS) or any(line != "Support: man:hami-dra-plugin(8)" for line in support):
        failures.append("the catalog's Support: lines are not this project's man page: %s" % support)
    r = run(["journalctl", "--root=" + root, "--update-catalog"])
    if r.returncode != 0:
        failures.append("journalctl --update-catalog: " + r.stderr.strip())
    listed = listed_catalog(root)
    for mid in MESSAGE_IDS:
        if mid not in listed:
            failures.append("MESSAGE_ID %s is not in the built catalog" % mid)


def check_uninstall(root):
    dropin = os.path.join(root, "etc/hami-dra/hami-dra.conf.d/50-local.conf")
    os.makedirs(os.path.dirname(dropin))
    with open(dropin, "w") as f:
        f.write("[Plugin]\n")
    r = run([os.path.join(src, "tools/uninstall.sh"), build], env=dict(os.environ, DESTDIR=root))
    if r.returncode != 0:
        failures.append("tools/uninstall.sh failed (%d): %s" % (r.returncode, r.stderr))
        return
    if "50-local.conf" not in r.stderr or not os.path.exists(dropin):
        failures.append("uninstall did not keep, or did not name, the administrator's drop-in:\n" + r.stderr)
    shutil.rmtree(os.path.join(root, "etc/hami-dra"))  # what was kept, checked above
    left = files_under(root)
    if left:
        failures.append("uninstall left files behind: %s" % left)
    for d, subdirs, _ in os.walk(root):
        for s in subdirs:
            if "hami-dra" in s:
                failures.append("uninstall left a directory: " + os.path.relpath(os.path.join(d, s), root))
    listed = listed_catalog(root) if os.path.exists(os.path.join(root, "var/lib/systemd/catalog/database")) else ""
    if any(mid in listed for mid in MESSAGE_IDS):
        failures.append("the catalog still lists our entries after uninstall:\n" + listed)


def main():
    if not src or not build:
        print("SKIP: run through meson test")
        sys.exit(77)
    for tool in ("man", "mandb", "journalctl"):
        if not shutil.which(tool):
            print("SKIP: %s is not installed (tools/setup.sh installs it)" % tool)
            sys.exit(77)
    with tempfile.TemporaryDirectory(prefix="hami-install-") as root:
        r = run(["meson", "install", "-C", build, "--no-rebuild", "--quiet", "--destdir", root])
        if r.returncode != 0:
            sys.exit("meson install --destdir failed:\n" + r.stdout + r.stderr)
        check_installed(root)
        check_man(root)
        check_catalog(root)
        check_uninstall(root)
    for f in failures:
        print("FAIL:", f)
    if failures:
        sys.exit(1)
    print("install: %d man pages clean and found by man -k, catalog built, uninstall left nothing" % len(MAN_PAGES))


main()
