#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Reconciliation without a restart (issue 16): the real daemon with ReconcileIntervalSec=1
against the strict fake API server. A claim deleted, or re-created with another UID,
while prepared is cleaned up (CDI spec, claim directory, checkpoint, audit entry) within
a period or two; one whose pod is gone is cleaned up after two checks; one whose pod
lives, or is only unreadable, is kept; while the API server is down, answers 503, or
answers 404 without the NotFound status of the claim, nothing is removed. A driver
upgrade in the fixture tree (libcuda.so.<old> replaced by libcuda.so.<new>) rewrites the
prepared claims' CDI specs and is logged, by the inotify watch and by D-Bus Rescan."""

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid

from fakeapi import LIB_DIR as LIB, FakeApiServer, claim_object, claim_result, driver_files as make_driver, prepare_daemon_root
from harness import DRIVER, SOURCE_ROOT, Daemon, PrivateSystemBus, check, fail, require_real_daemon_as_root

NODE = "test-node"
PERIOD = 1.0

require_real_daemon_as_root()


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return time.monotonic()
        time.sleep(0.05)
    fail("not within %.1f s: %s" % (timeout, what))


def pod(name, node=NODE):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default",
                                                           "uid": str(uuid.uuid4())},
            "spec": {"nodeName": node}}


def reserved_claim(name, uid, pods, device="hami-gpu-0"):
    obj = claim_object(name, uid, [claim_result(DRIVER, NODE, device, str(uuid.uuid4()), "1Gi", "10")])
    obj["status"]["reservedFor"] = [{"resource": "pods", "name": p["metadata"]["name"],
                                     "uid": p["metadata"]["uid"]} for p in pods]
    return obj


tmp = tempfile.mkdtemp(prefix="hami-reconcile-")
fake = FakeApiServer(tmp, NODE)
bus = None
try:
    if shutil.which("dbus-daemon"):
        bus = PrivateSystemBus(os.path.join(tmp, "bus"))
        bus_address = bus.start()
    else:
        bus_address = None
    kubeconfig = fake.write_kubeconfig()
    with Daemon(root=os.path.join(tmp, "daemon")) as d:
        env = prepare_daemon_root(d, kubeconfig, plugin="ReconcileIntervalSec=1\nLogLevel=debug\n")
        make_driver(d.root, "550.54.15")
        if bus_address:
            env["DBUS_SYSTEM_BUS_ADDRESS"] = bus_address
        d.start(env=env)
        k = d.kubelet()
        k.register(DRIVER)
        cdi = os.path.join(d.root, "cdi")
        state = os.path.join(d.root, "state")

        def spec_path(uid):
            return os.path.join(cdi, "k8s.%s-claim_%s.json" % (DRIVER, uid))

        def files_of(uid):
            return [p for p in (spec_path(uid), os.path.join(state, "claims", uid),
                                os.path.join(state, "checkpoints", uid + ".ckpt")) if os.path.exists(p)]

        def gone(uid):
            return not files_of(uid)

        def prepare(name, pods, device="hami-gpu-0"):
            uid = str(uuid.uuid4())
            for p in pods:
                fake.post("/pods", p)
            fake.put(reserved_claim(name, uid, pods, device))
            res = k.prepare([("default", name, uid)], "v1")
            if res[uid].error:
                fail("prepare %s: %s" % (name, res[uid].error))
            check(len(files_of(uid)) == 3, "%s: prepared (spec, claim directory, checkpoint)" % name)
            return uid

        # ---- the driver files are in the specs
        p_live = pod("live")
        live = prepare("live", [p_live])
        with open(spec_path(live)) as f:
            spec = json.load(f)
        libcuda = [m for m in spec["containerEdits"]["mounts"] if m["containerPath"] == "/" + LIB + "/libcuda.so.1"]
        check(len(libcuda) == 1 and libcuda[0]["hostPath"].endswith("libcuda.so.550.54.15"),
              "the spec mounts the driver's libcuda.so.550.54.15")

        # ---- (a) deleted while prepared
        deleted = prepare("deleted", [pod("p-deleted")])
        time.sleep(PERIOD * 1.2)   # older than one period: the reconciler may act
        fake.post("/delete-claim?namespace=default&name=deleted")
        t0 = time.monotonic()
        t1 = wait_for(lambda: gone(deleted), PERIOD * 3 + 2, "the deleted claim is cleaned up")
        check(t1 - t0 <= PERIOD * 2 + 1.5, "(a) deleted claim cleaned up %.1f s after the deletion" % (t1 - t0))
        wait_for(lambda: "Cleaned up claim default/deleted %s: reconciliation: the claim was deleted" % deleted
                 in d.output(), 2, "the audit entry of the deleted claim")
        check(True, "(a) the audit entry names the claim and the reason")

        # ---- (b) re-created with another UID
        recreated = prepare("recreated", [pod("p-recreated")])
        time.sleep(PERIOD * 1.2)
        fake.put(reserved_claim("recreated", str(uuid.uuid4()), [pod("p-recreated2")]))
        wait_for(lambda: gone(recreated), PERIOD * 3 + 2, "the re-created claim is cleaned up")
        # The files go first, the audit entry follows.
        wait_for(lambda: "reconciliation: the claim was re-created with another UID" in d.output(), 2,
                 "the audit entry of the re-created claim")
        check(True, "(b) a claim re-created with another UID is cleaned up, with its reason")

        # ---- (c) its pod is gone; reservedFor emptied
        p_gone = pod("p-gone")
        podless = prepare("podless", [p_gone])
        emptied = prepare("emptied", [pod("p-emptied")])
        far = prepare("far", [pod("p-far", node="other-node")])
        time.sleep(PERIOD * 1.2)
        fake.post("/delete-pod?namespace=default&name=p-gone")
        obj = reserved_claim("emptied", emptied, [])
        fake.put(obj)
        wait_for(lambda: "claim default/podless (%s) looks unused" % podless in d.output(), PERIOD * 3 + 2,
                 "the first check finds the pod gone")
        check(not gone(podless), "(c) one check alone cleans nothing")
        wait_for(lambda: gone(podless), PERIOD * 3 + 2, "the claim of a deleted pod is cleaned up")
        wait_for(lambda: gone(emptied), PERIOD * 3 + 2, "the claim reserved for nobody is cleaned up")
        # The files go first, the audit entry follows.
        wait_for(lambda: "reconciliation: every pod it is reserved for is gone or on another node" in d.output(), 2,
                 "the audit entry of the claim whose pod is gone")
        check(True, "(c) a claim whose pod is gone is cleaned up after two checks")
        wait_for(lambda: "reconciliation: the claim is reserved for no pod" in d.output(), 2,
                 "the audit entry of the claim reserved for nobody")
        check(True, "(c) a claim whose reservedFor was emptied is cleaned up after two checks")
        # A pod the node may not read (403 from the node authorizer) proves nothing.
        check(len(files_of(far)) == 3, "(c) a claim whose pod cannot be read is kept")
        check(len(files_of(live)) == 3, "(c) the claim of a live pod is kept")

        # ---- (d) the API server down, answering 503, or 404 without proof: nothing removed
        # 24 more claims: an unanswered pass stops asking after 16 failures in a row.
        bulk = []
        for i in range(24):
            p_bulk, uid = pod("p-bulk-%d" % i), str(uuid.uuid4())
            fake.post("/pods", p_bulk)
            fake.put(reserved_claim("bulk-%d" % i, uid, [p_bulk], device="hami-gpu-%d" % (3 + i % 4)))
            bulk.append(("default", "bulk-%d" % i, uid))
        res = k.prepare(bulk, "v1")
        check(not [r.error for r in res.values() if r.error], "24 more claims prepared")
        keep1 = prepare("keep1", [pod("p-keep1")])
        p_keep2 = pod("p-keep2")
        keep2 = prepare("keep2", [p_keep2], device="hami-gpu-1")
        time.sleep(PERIOD * 1.2)
        for mode, faults in (("down", {"down": True}),
                             ("503", {"fail_count": 1000000, "fail_status": 503}),
                             ("404 without the claim's NotFound status", {"no_such_api": True})):
            fake.faults(**faults)
            fake.post("/delete-claim?namespace=default&name=keep1")
            fake.post("/delete-pod?namespace=default&name=p-keep2")
            mark = len(d.output())
            time.sleep(PERIOD * 5)
            check(len(files_of(keep1)) == 3 and len(files_of(keep2)) == 3 and len(files_of(live)) == 3
                  and all(len(files_of(b[2])) == 3 for b in bulk),
                  "(d) API server %s for 5 periods: nothing removed" % mode)
            if mode != "404 without the claim's NotFound status":
                check("the API server is not answering; the other" in d.output()[mark:],
                      "(d) API server %s: a pass stops asking after 16 failures in a row" % mode)
            fake.faults(down=False, fail_count=0, no_such_api=False)
            fake.put(reserved_claim("keep1", keep1, [p_live]))
            fake.post("/pods", p_keep2)
            time.sleep(PERIOD * 0.5)
        # The same deletions with the API server back: the test can fail.
        fake.post("/delete-claim?namespace=default&name=keep1")
        wait_for(lambda: gone(keep1), PERIOD * 4 + 2, "(d) once the API server answers, the deleted claim goes")
        check(len(files_of(keep2)) == 3, "(d) a claim reserved for a live pod stays")

        # ---- (e) a driver upgrade while claims are prepared
        make_driver(d.root, "560.35.03")

        def spec_names(uid, version):
            try:
                with open(spec_path(uid)) as f:
                    text = f.read()
            except OSError:
                return False
            return "libcuda.so.%s" % version in text and "libnvidia-ml.so.%s" % version in text

        wait_for(lambda: spec_names(live, "560.35.03") and spec_names(keep2, "560.35.03"), 10,
                 "the specs name the upgraded driver files")
        check(not spec_names(live, "550.54.15"), "(e) the old library versions are gone from the specs")
        with open(spec_path(live)) as f:
            spec = json.load(f)
        paths = [m["containerPath"] for m in spec["containerEdits"]["mounts"]]
        check("/run/hami-dra/vgpu.cache" in paths and "/etc/ld.so.preload" in paths,
              "(e) the rewritten spec keeps the region and preload mounts")
        check(any(dev["containerEdits"]["env"] for dev in spec["devices"]), "(e) and the devices' limits")
        validate = subprocess.run(["/usr/bin/python3", os.path.join(SOURCE_ROOT, "tests/cdi-validate.py"),
                                   spec_path(live)], capture_output=True, text=True)
        check(validate.returncode == 0, "(e) the rewritten spec is a valid CDI spec %s" % validate.stdout[-300:])
        out = d.output()
        check("Host driver changed: /%s/libcuda.so.1: " % LIB in out and "libcuda.so.550.54.15 -> " in out
              and "libcuda.so.560.35.03" in out, "(e) the change is logged old -> new")
        check("Rewrote the CDI spec of claim default/live (%s)" % live in out, "(e) each rewrite is audited")
        n_looks = out.count("Host driver changed: /%s/libcuda.so.1" % LIB)
        check(n_looks == 1, "(e) one upgrade, one look (%d)" % n_looks)

        # A fresh prepare after the upgrade names the new files too.
        fresh = prepare("fresh", [pod("p-fresh")], device="hami-gpu-2")
        check(spec_names(fresh, "560.35.03"), "(e) a claim prepared after the upgrade gets the new files")

        # ---- (e) D-Bus Rescan does the same (a driver directory the watch cannot see:
        # stop watching by replacing the tree behind the daemon's back is not possible, so
        # the upgrade is made and Rescan called before the settle delay ends).
        if bus_address and shutil.which("busctl"):
            make_driver(d.root, "570.86.10")
            r = subprocess.run(["busctl", "--address=" + bus_address, "call", "org.projecthami.Dra1",
                                "/org/projecthami/Dra1", "org.projecthami.Dra1.Manager", "Rescan"],
                               capture_output=True, text=True, timeout=20)
            check(r.returncode == 0, "(e) D-Bus Rescan answers (%s)" % r.stderr.strip())
            # The watch's settle delay is 1 s: Rescan must have done it before.
            check(spec_names(live, "570.86.10"), "(e) after Rescan the specs name the new files at once")
        else:
            print("SKIP: no dbus-daemon or busctl for the Rescan case")

        check(d.stop() == 0, "clean exit")
        # After a restart the rewritten specs stay (the checkpoint holds the new text).
        shutil.rmtree(cdi)
        os.makedirs(cdi)
        mark = len(d.output())
        d.start(env=env)
        wait_for(lambda: os.path.exists(spec_path(live)), 10, "the spec is restored at start")
        wait_for(lambda: "The driver files are those every CDI spec was last compared with" in d.output()[mark:], 10,
                 "a start with the same driver skips comparing every spec")
        check(True, "a start with the driver unchanged since the last comparison skips it (host-driver.json)")
        check(spec_names(live, "570.86.10" if bus_address and shutil.which("busctl") else "560.35.03"),
              "restored from the checkpoint, the spec names the upgraded files")

        # The driver's directory removed and made anew (an installer): watched again.
        time.sleep(0.5)
        before = spec_names(live, "570.86.10") or spec_names(live, "560.35.03")
        shutil.rmtree(os.path.join(d.root, LIB))
        wait_for(lambda: "No driver files found" in d.output(), 10, "the driver files vanishing is noticed")
        check(before and (spec_names(live, "570.86.10") or spec_names(live, "560.35.03")),
              "(e) while no driver file is there (a reinstall), the specs keep the old ones")
        make_driver(d.root, "575.1.1")
        wait_for(lambda: spec_names(live, "575.1.1"), 10, "a driver directory made anew is watched again")
        check(True, "(e) a driver directory removed and made anew is watched again")

        # An upgrade made while the daemon was down is taken up at start.
        check(d.stop() == 0, "clean exit")
        make_driver(d.root, "580.1.1")
        d.start(env=env)
        wait_for(lambda: spec_names(live, "580.1.1") and spec_names(keep2, "580.1.1"), 10,
                 "the specs follow an upgrade made while the daemon was down")
        check(True, "(e) an upgrade made while the daemon was down is taken up at start")
        check(d.stop() == 0, "clean exit")
finally:
    fake.stop()
    if bus:
        bus.stop()
    shutil.rmtree(tmp, ignore_errors=True)
