#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""org.projecthami.Dra1 on a private system bus (bolt's way: each case is a meson test).

    test-dbus.py CASE        run one case (meson registers each of CASES)
    test-dbus.py --list      print the case names

Every case starts its own dbus-daemon with our bus policy (dbus/org.projecthami.Dra1.conf),
the polkit stand-in (tests/fakes/fake-polkit.py, reading our polkit actions), and
bus-test-daemon serving the real bus objects over tests/integration/model.json.
Needs root (only root may own the name); exits 77 (skip) otherwise.
"""
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

try:
    import dbus
except ImportError:  # --list must work at configure time even without python3-dbus
    dbus = None

BUILD = os.environ.get("HAMI_DRA_BUILD_ROOT", "build")
SOURCE = os.environ.get("HAMI_DRA_SOURCE_ROOT", ".")
DAEMON = os.path.join(BUILD, "tests", "bus-test-daemon")
HAMICTL = os.path.join(BUILD, "src", "hamictl")
REGION_WRITER = os.path.join(BUILD, "tests", "region-writer")
XML = os.path.join(SOURCE, "dbus", "org.projecthami.Dra1.xml")
POLICY = os.path.join(SOURCE, "dbus", "org.projecthami.Dra1.conf")
SERVICE = os.path.join(SOURCE, "dbus", "org.projecthami.Dra1.service")
POLKIT_POLICY = os.path.join(SOURCE, "polkit", "org.projecthami.dra1.policy")
FAKE_POLKIT = os.path.join(SOURCE, "tests", "fakes", "fake-polkit.py")
MODEL = os.path.join(SOURCE, "tests", "integration", "model.json")

NAME = "org.projecthami.Dra1"
MANAGER = "/org/projecthami/Dra1"
IF_MANAGER = "org.projecthami.Dra1.Manager"
IF_DEVICE = "org.projecthami.Dra1.Device"
IF_CLAIM = "org.projecthami.Dra1.Claim"
PROPS = "org.freedesktop.DBus.Properties"
UID_A = "0b7c1a52-9f4e-4c61-8d3a-1f2e3d4c5b6a"
UID_B = "5e6f7a8b-1c2d-4e3f-9a0b-c1d2e3f4a5b6"
GPU0 = "/org/projecthami/Dra1/gpu/hami_2dgpu_2d0"
GPU1 = "/org/projecthami/Dra1/gpu/hami_2dgpu_2d1"
GIB = 1 << 30
MIB = 1 << 20
SM_UNKNOWN = 0xFFFFFFFF
# Claim.Usage's flags (dbus/org.projecthami.Dra1.xml)
USAGE_REGION_UNREADABLE, USAGE_REGION_INVALID, USAGE_MEMORY_IMPLAUSIBLE = 1, 2, 4
USAGE_DEGRADED_MEMORY_LIMIT, USAGE_DEGRADED_SM_LIMIT = 8, 16
POLKITD = "/usr/lib/polkit-1/polkitd"
# The real polkitd's test rule: nobody may rescan, nothing else.
REAL_POLKIT_RULE = """polkit.addRule(function(action, subject) {
        if (action.id == "org.projecthami.dra1.rescan" && subject.user == "nobody")
                return polkit.Result.YES;
});
"""
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
TIMEOUT = 10.0


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def check_eq(got, want, what):
    if got != want:
        raise Failure("%s: got %r, want %r" % (what, got, want))


def claim_path(uid):
    """sd_bus_path_encode(): bytes outside [A-Za-z0-9], and a leading digit, become _xx."""
    enc = "".join(c if c.isascii() and c.isalnum() and not (i == 0 and c.isdigit()) else "_%02x" % ord(c)
                  for i, c in enumerate(uid))
    return "/org/projecthami/Dra1/claim/" + enc


def claim_json(uid, ns, name, devices, region=None):
    return {"uid": uid, "namespace": ns, "name": name, "sharedRegion": region,
            "preparedUsec": 1763900200000000,
            "devices": [{"device": d, "memory": m, "cores": c} for d, m, c in devices]}


class Env:
    """One private bus, the polkit stand-in and the test daemon, torn down on exit."""

    def __init__(self, polkit=True, allow_uids="", daemon=True, hold=False, activation=False):
        self.dir = tempfile.mkdtemp(prefix="hami-dbus-")
        os.chmod(self.dir, 0o755)  # nobody must reach the bus socket
        self.procs = []
        self.calls = os.path.join(self.dir, "calls.log")
        self.polkit_log = os.path.join(self.dir, "polkit.log")
        self.regions = os.path.join(self.dir, "regions")
        os.mkdir(self.regions)
        os.mkdir(os.path.join(self.dir, "system.d"))
        shutil.copy(POLICY, os.path.join(self.dir, "system.d"))
        self.socket = os.path.join(self.dir, "system_bus_socket")
        os.mkdir(os.path.join(self.dir, "services"))
        if activation:
            shutil.copy(SERVICE, os.path.join(self.dir, "services"))
        with open(os.path.join(self.dir, "system.conf"), "w") as f:
            f.write(BUS_CONF.format(socket=self.socket, dir=self.dir))
        self.address = self._start_bus(activation)
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = self.address
        self.bus = dbus.bus.BusConnection(self.address)
        if polkit is True:
            env = dict(os.environ, FAKE_POLKIT_ALLOW_UIDS=allow_uids, FAKE_POLKIT_HOLD="1" if hold else "0")
            self.procs.append(subprocess.Popen(["/usr/bin/python3", FAKE_POLKIT, POLKIT_POLICY,
                                                self.polkit_log], env=env))
            self.wait_name("org.freedesktop.PolicyKit1")
        if polkit == "real":
            self._start_real_polkit()
        self.daemon = None
        if daemon:
            self.start_daemon()

    def _start_real_polkit(self):
        """polkitd itself, seeing our actions and a test rule through bind mounts in this
        process's private mount namespace (main() re-executes the case under unshare -m)."""
        actions = os.path.join(self.dir, "actions")
        rules = os.path.join(self.dir, "rules.d")
        shutil.copytree("/usr/share/polkit-1/actions", actions)
        shutil.copy(POLKIT_POLICY, actions)
        os.mkdir(rules)
        with open(os.path.join(rules, "50-hami-test.rules"), "w") as f:
            f.write(REAL_POLKIT_RULE)
        shutil.chown(rules, "polkitd")
        os.chmod(rules, 0o700)
        subprocess.run(["mount", "--bind", actions, "/usr/share/polkit-1/actions"], check=True)
        subprocess.run(["mount", "--bind", rules, "/etc/polkit-1/rules.d"], check=True)
        self.procs.append(subprocess.Popen([POLKITD, "--no-debug"], stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL))
        self.wait_name("org.freedesktop.PolicyKit1")

    def _start_bus(self, activation=False):
        r, w = os.pipe()
        # --systemd-activation: service files with SystemdService= are handed to systemd
        # (here: a stand-in), as on a real system bus
        p = subprocess.Popen(["dbus-daemon", "--config-file=" + os.path.join(self.dir, "system.conf"),
                              "--nofork", "--nopidfile", "--print-address=%d" % w]
                             + (["--systemd-activation"] if activation else []), pass_fds=[w])
        os.close(w)
        self.procs.append(p)
        with os.fdopen(r) as f:
            address = f.readline().strip()
        check(address, "dbus-daemon printed no address")
        return address

    def start_daemon(self):
        model = os.path.join(self.dir, "model.json")
        with open(MODEL) as f:
            text = f.read().replace("@REGION_DIR@", self.regions)
        with open(model, "w") as f:
            f.write(text)
        self.daemon = subprocess.Popen([DAEMON, model, self.calls], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True)
        self.procs.append(self.daemon)
        self.wait_name(NAME)

    def wait_name(self, name):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if self.bus.name_has_owner(name):
                return
            time.sleep(0.02)
        raise Failure("%s never appeared on the bus" % name)

    def command(self, obj):
        """Send a JSON command to the test daemon and wait for its answer."""
        self.daemon.stdin.write(json.dumps(obj) + "\n")
        self.daemon.stdin.flush()
        answer = self.daemon.stdout.readline().strip()
        return answer

    def stop_daemon(self):
        """SIGTERM the test daemon; it must exit cleanly (under ASan: without leaks)."""
        if not self.daemon or self.daemon.poll() is not None:
            return self.daemon.returncode if self.daemon else 0
        self.daemon.terminate()
        return self.daemon.wait(10)

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers --
    def obj(self, path):
        return self.bus.get_object(NAME, path, introspect=False)

    def call(self, method, *args, path=MANAGER, interface=IF_MANAGER):
        return self.obj(path).get_dbus_method(method, interface)(*args)

    def get_all(self, path, interface):
        return self.obj(path).GetAll(interface, dbus_interface=PROPS)

    def error_of(self, fn, *args, **kw):
        try:
            fn(*args, **kw)
        except dbus.DBusException as e:
            return e.get_dbus_name(), e.get_dbus_message()
        raise Failure("%s%r succeeded, expected an error" % (getattr(fn, "__name__", fn), args))

    def alive(self):
        check(self.daemon.poll() is None, "the daemon died")
        check_eq(str(self.get_all(MANAGER, IF_MANAGER)["State"]), "ready", "State after abuse")

    def polkit_calls(self):
        if not os.path.exists(self.polkit_log):
            return []
        with open(self.polkit_log) as f:
            return [json.loads(line) for line in f]

    def op_calls(self):
        if not os.path.exists(self.calls):
            return []
        with open(self.calls) as f:
            return [line.strip() for line in f]

    def hamictl(self, *args, nobody=False, expect=0):
        cmd = (NOBODY if nobody else []) + [HAMICTL] + list(args)
        p = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.address), timeout=30)
        if p.returncode != expect:
            raise Failure("%s: exit %d, want %d\nstdout: %s\nstderr: %s" %
                          (" ".join(cmd), p.returncode, expect, p.stdout, p.stderr))
        return p

    def nobody_call(self, method, *args):
        """Call a Manager method as nobody; returns ("ok", result) or (error name, message)."""
        script = ("import dbus, json, sys\n"
                  "b = dbus.bus.BusConnection(sys.argv[1])\n"
                  "m = b.get_object(%r, %r, introspect=False).get_dbus_method(sys.argv[2], %r)\n"
                  "try:\n"
                  "    print(json.dumps(['ok', str(m(*json.loads(sys.argv[3])))]))\n"
                  "except dbus.DBusException as e:\n"
                  "    print(json.dumps([e.get_dbus_name(), e.get_dbus_message()]))\n") % (NAME, MANAGER, IF_MANAGER)
        p = subprocess.run(NOBODY + ["/usr/bin/python3", "-c", script, self.address, method, json.dumps(args)],
                           capture_output=True, text=True, timeout=30)
        check(p.returncode == 0, "nobody_call: " + p.stderr)
        return tuple(json.loads(p.stdout))

    def busctl(self, *args, nobody=False):
        cmd = (NOBODY if nobody else []) + ["busctl", "--system", "--no-pager"] + list(args)
        return subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.address), timeout=30)


# A system bus of our own: the same policy shape as Debian's system.conf, our bus policy
# included from {dir}/system.d. Shared with tools/run-demo.sh.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakes", "private-system-bus.conf")) as _f:
    BUS_CONF = _f.read().replace("@SOCKET@", "{socket}").replace("@DIR@", "{dir}")


# ---- structural comparison of introspection data ----

def interface_shape(iface):
    """Members of one <interface>, with everything that is contract and nothing that is not."""
    shape = {}
    for m in iface.findall("method"):
        shape["method " + m.get("name")] = [(a.get("name"), a.get("type"), a.get("direction", "in"))
                                            for a in m.findall("arg")]
    for s in iface.findall("signal"):
        shape["signal " + s.get("name")] = [(a.get("name"), a.get("type")) for a in s.findall("arg")]
    for p in iface.findall("property"):
        emits = "true"
        for a in p.findall("annotation"):
            if a.get("name") == "org.freedesktop.DBus.Property.EmitsChangedSignal":
                emits = a.get("value")
        shape["property " + p.get("name")] = (p.get("type"), p.get("access"), emits)
    return shape


def interfaces_of(xml_text):
    root = ET.fromstring(xml_text)
    return {i.get("name"): interface_shape(i) for i in root.findall("interface")}


def compare_interface(got, want, name):
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    check(not missing and not extra, "%s: missing %s, not in the XML %s" % (name, missing, extra))
    for k in want:
        check_eq(got[k], want[k], "%s %s" % (name, k))


# ---- the cases ----

def case_introspect_matches_xml(env):
    with open(XML) as f:
        contract = interfaces_of(f.read())
    check_eq(sorted(contract), sorted([IF_MANAGER, IF_DEVICE, IF_CLAIM]), "interfaces in the XML")
    for path, iface in ((MANAGER, IF_MANAGER), (GPU0, IF_DEVICE), (claim_path(UID_A), IF_CLAIM)):
        text = env.obj(path).Introspect(dbus_interface="org.freedesktop.DBus.Introspectable")
        live = interfaces_of(text)
        check(iface in live, "%s does not serve %s" % (path, iface))
        compare_interface(live[iface], contract[iface], path)
        for std in ("org.freedesktop.DBus.Properties", "org.freedesktop.DBus.Introspectable",
                    "org.freedesktop.DBus.Peer"):
            check(std in live, "%s lacks %s" % (path, std))
    # busctl sees the same: every member of the XML is in `busctl introspect`
    out = env.busctl("introspect", NAME, MANAGER, IF_MANAGER).stdout
    for key in contract[IF_MANAGER]:
        check(re.search(r"^\.%s\s" % key.split()[1], out, re.M), "busctl introspect lacks %s" % key)
    # `busctl tree` lists every object
    tree = set(env.busctl("tree", "--list", NAME).stdout.split())
    for p in (MANAGER, GPU0, GPU1, claim_path(UID_A), claim_path(UID_B)):
        check(p in tree, "busctl tree lacks %s: %s" % (p, sorted(tree)))


def case_manager_properties(env):
    p = env.get_all(MANAGER, IF_MANAGER)
    version = env.hamictl("--version").stdout.split()[1]
    want = {"Version": version, "DriverName": "hami-core-gpu.project-hami.io",
            "NodeName": "node-a10-1", "State": "ready", "StateReason": "",
            "ApiServerReachable": True, "ApiServerConsumableCapacity": True,
            "KubeletRegistered": True, "SliceGeneration": 3, "NDevices": 2, "NClaims": 2}
    check_eq({k: p[k] for k in p}, want, "Manager properties")
    check_eq(p["SliceGeneration"].signature if hasattr(p["SliceGeneration"], "signature") else
             type(p["SliceGeneration"]).__name__, "UInt64", "SliceGeneration type")
    # single Get as well as GetAll, and a change
    check_eq(env.command({"op": "properties", "properties": {
        "state": "degraded", "stateReason": "API server unreachable", "apiServerReachable": False}}),
        "ok", "command")
    check_eq(str(env.obj(MANAGER).Get(IF_MANAGER, "State", dbus_interface=PROPS)), "degraded", "State")
    check_eq(str(env.obj(MANAGER).Get(IF_MANAGER, "StateReason", dbus_interface=PROPS)),
             "API server unreachable", "StateReason")
    check_eq(bool(env.obj(MANAGER).Get(IF_MANAGER, "ApiServerReachable", dbus_interface=PROPS)),
             False, "ApiServerReachable")
    # hamictl status then claims nothing about the API server's features, and points at
    # the reason (missing credentials read "unreachable, consumable capacity not supported").
    out = env.hamictl("status").stdout
    check("State: degraded (API server unreachable)" in out and "API server: not reached (see State)" in out
          and "consumable capacity" not in out, "hamictl status while unreachable:\n" + out)


def write_region(env, name, lines):
    with open(os.path.join(env.regions, name), "w") as f:
        f.write(lines)


def case_device_properties(env):
    write_region(env, "0b7c1a52.region", "%d\n" % (3 * GIB))
    write_region(env, "5e6f7a8b.region", "%d\n%d\n" % (1 * GIB, 5 * GIB))
    p = env.get_all(GPU0, IF_DEVICE)
    want = {"Name": "hami-gpu-0", "UUID": "GPU-8d1c4f3e-0000-1111-2222-333344445555",
            "Model": "NVIDIA A10", "MemoryTotal": 24146608128, "Cores": 100,
            "MemoryAllocated": 6 * GIB, "CoresAllocated": 50, "MemoryUsed": 4 * GIB,
            "Claims": [UID_A, UID_B], "Health": "healthy", "HealthReason": "", "Schedulable": True}
    check_eq({k: (list(v) if isinstance(v, dbus.Array) else v) for k, v in p.items()}, want, "gpu0")
    p = env.get_all(GPU1, IF_DEVICE)
    check_eq(p["MemoryAllocated"], 8 * GIB, "gpu1 MemoryAllocated")
    check_eq(p["CoresAllocated"], 50, "gpu1 CoresAllocated")
    check_eq(list(p["Claims"]), [UID_B], "gpu1 Claims")
    check_eq(p["Health"], "unhealthy", "gpu1 Health")
    check_eq(p["HealthReason"], "XID 79: GPU has fallen off the bus", "gpu1 HealthReason")
    check_eq(p["MemoryUsed"], 5 * GIB, "gpu1 MemoryUsed")


def case_claim_properties(env):
    write_region(env, "5e6f7a8b.region", "%d\n%d\n" % (1 * GIB, 5 * GIB))
    p = env.get_all(claim_path(UID_B), IF_CLAIM)
    want = {"UID": UID_B, "Namespace": "ml-team", "Name": "infer-b",
            "Devices": [("hami-gpu-0", 2 * GIB, 20), ("hami-gpu-1", 8 * GIB, 50)],
            "SharedRegion": os.path.join(env.regions, "5e6f7a8b.region"),
            "PreparedTimestamp": 1763900100000000, "MemoryUsed": 6 * GIB,
            "Usage": [("hami-gpu-0", 1 * GIB, 2 * GIB, SM_UNKNOWN, 20, 0, 0, 0),
                      ("hami-gpu-1", 5 * GIB, 8 * GIB, SM_UNKNOWN, 50, 0, 0, 0)]}
    got = dict(p)
    got["Devices"] = [tuple(d) for d in p["Devices"]]
    got["Usage"] = [tuple(d) for d in p["Usage"]]
    check_eq(got, want, "claim B")
    # MemoryUsed is untrusted input: garbage, negative and overlong values count 0
    for bad in ("lots\n", "-5\n", "99999999999999999999999\n", "", "12abc\n"):
        write_region(env, "0b7c1a52.region", bad)
        check_eq(env.obj(claim_path(UID_A)).Get(IF_CLAIM, "MemoryUsed", dbus_interface=PROPS), 0,
                 "MemoryUsed of %r" % bad)
        check_eq(claim_usage(env, UID_A), [("hami-gpu-0", 0, 4 * GIB, SM_UNKNOWN, 30, 0, 0,
                                            USAGE_REGION_INVALID if bad else USAGE_REGION_UNREADABLE)],
                 "Usage of %r" % bad)
    os.unlink(os.path.join(env.regions, "0b7c1a52.region"))
    check_eq(env.obj(claim_path(UID_A)).Get(IF_CLAIM, "MemoryUsed", dbus_interface=PROPS), 0,
             "MemoryUsed without a file")
    check_eq(claim_usage(env, UID_A), [("hami-gpu-0", 0, 4 * GIB, SM_UNKNOWN, 30, 0, 0, USAGE_REGION_UNREADABLE)],
             "Usage without a file")
    env.alive()


GPU0_UUID = "GPU-8d1c4f3e-0000-1111-2222-333344445555"
GPU1_UUID = "GPU-8d1c4f3e-0000-1111-2222-666677778888"


def prepare_usage_claim(env, devices):
    """A claim whose region is c0ffee00.region, beside claim B (1 GiB on gpu0, 5 GiB on gpu1)."""
    uid = "c0ffee00-0000-4000-8000-000000000006"
    c = claim_json(uid, "default", "usage", [], os.path.join(env.regions, "c0ffee00.region"))
    c["devices"] = devices
    check_eq(env.command({"op": "prepare", "claim": c}), "ok", "prepare")
    write_region(env, "5e6f7a8b.region", "%d\n%d\n" % (1 * GIB, 5 * GIB))
    return uid


def claim_usage(env, uid):
    return [tuple(e) for e in env.obj(claim_path(uid)).Get(IF_CLAIM, "Usage", dbus_interface=PROPS)]


def device_used(env, path):
    return int(env.obj(path).Get(IF_DEVICE, "MemoryUsed", dbus_interface=PROPS))


def claim_used(env, uid):
    return int(env.obj(claim_path(uid)).Get(IF_CLAIM, "MemoryUsed", dbus_interface=PROPS))


def case_usage_paired_by_record(env):
    """Issue 14 item 6: a region's usage goes to the GPU the daemon's record pairs with its
    region device (by UUID), not by the claim's device order."""
    # The results came gpu-1 first; in the claim's region (PCI order) gpu-0 is device 0.
    uid = prepare_usage_claim(env, [
        {"device": "hami-gpu-1", "memory": 8 * GIB, "cores": 10, "uuid": GPU1_UUID, "regionIndex": 1},
        {"device": "hami-gpu-0", "memory": 4 * GIB, "cores": 10, "uuid": GPU0_UUID, "regionIndex": 0}])
    write_region(env, "c0ffee00.region", "%d\n%d\n" % (2 * GIB, 3 * GIB))
    check_eq(device_used(env, GPU0), 1 * GIB + 2 * GIB, "gpu0 MemoryUsed")
    check_eq(device_used(env, GPU1), 5 * GIB + 3 * GIB, "gpu1 MemoryUsed")
    check_eq(claim_used(env, uid), 5 * GIB, "claim MemoryUsed")
    check_eq([(e[0], e[1]) for e in claim_usage(env, uid)], [("hami-gpu-1", 3 * GIB), ("hami-gpu-0", 2 * GIB)],
             "claim Usage, in the claim's device order")
    env.alive()


def case_usage_implausible_skipped(env):
    """Issue 14 item 6: a value beyond the claim's limit or the GPU (2^64-1 from a hostile
    container) is skipped, never summed with the neighbours' usage."""
    uid = prepare_usage_claim(env, [
        {"device": "hami-gpu-0", "memory": 4 * GIB, "cores": 10, "uuid": GPU0_UUID, "regionIndex": 0},
        {"device": "hami-gpu-1", "memory": 8 * GIB, "cores": 10, "uuid": GPU1_UUID, "regionIndex": 1}])
    for bad, what in ((2 ** 64 - 1, "2^64-1"), (5 * GIB, "past the claim's 4 GiB limit")):
        write_region(env, "c0ffee00.region", "%d\n%d\n" % (bad, 3 * GIB))
        time.sleep(0.6)  # past the device sum's 500 ms cache
        check_eq(device_used(env, GPU0), 1 * GIB, "gpu0 MemoryUsed with %s: the neighbour's only" % what)
        check_eq(device_used(env, GPU1), 8 * GIB, "gpu1 MemoryUsed with %s on gpu0" % what)
        check_eq(claim_used(env, uid), 3 * GIB, "claim MemoryUsed with %s" % what)
        check_eq(claim_usage(env, uid), [("hami-gpu-0", 0, 4 * GIB, SM_UNKNOWN, 10, 0, 0, USAGE_MEMORY_IMPLAUSIBLE),
                                         ("hami-gpu-1", 3 * GIB, 8 * GIB, SM_UNKNOWN, 10, 0, 0, 0)],
                 "claim Usage with %s" % what)
        out = env.hamictl("devices").stdout
        check("16.0E" not in out, "hamictl devices shows 16.0E with %s: %s" % (what, out))
    env.alive()


def case_list_and_get_methods(env):
    devices = env.call("ListDevices")
    check_eq(devices.signature, "(osssttuusbu)", "ListDevices signature")
    check_eq([tuple(d) for d in devices], [
        (GPU0, "hami-gpu-0", "GPU-8d1c4f3e-0000-1111-2222-333344445555", "NVIDIA A10",
         24146608128, 6 * GIB, 100, 50, "healthy", True, 2),
        (GPU1, "hami-gpu-1", "GPU-8d1c4f3e-0000-1111-2222-666677778888", "NVIDIA A10",
         24146608128, 8 * GIB, 100, 50, "unhealthy", True, 1)], "ListDevices")
    claims = env.call("ListClaims")
    check_eq(claims.signature, "(osssa(stu))", "ListClaims signature")
    check_eq([(str(c[0]), str(c[1]), str(c[2]), str(c[3]), [tuple(d) for d in c[4]]) for c in claims], [
        (claim_path(UID_A), UID_A, "default", "train-a", [("hami-gpu-0", 4 * GIB, 30)]),
        (claim_path(UID_B), UID_B, "ml-team", "infer-b",
         [("hami-gpu-0", 2 * GIB, 20), ("hami-gpu-1", 8 * GIB, 50)])], "ListClaims")
    check_eq(env.call("GetClaim", UID_A), claim_path(UID_A), "GetClaim")
    check_eq(env.call("GetDevice", "hami-gpu-1"), GPU1, "GetDevice")
    # a UID that needs escaping in a path round-trips
    odd = "claim.with_odd~chars"
    check_eq(env.command({"op": "prepare", "claim": claim_json(odd, "default", "odd", [])}), "ok", "prepare")
    path = env.call("GetClaim", odd)
    check_eq(path, claim_path(odd), "escaped path")
    check_eq(env.obj(path).Get(IF_CLAIM, "UID", dbus_interface=PROPS), odd, "UID through escaped path")


class SignalCollector:
    def __init__(self, env):
        from dbus.mainloop.glib import DBusGMainLoop
        from gi.repository import GLib
        self.GLib = GLib
        self.bus = dbus.bus.BusConnection(env.address, mainloop=DBusGMainLoop())
        self.got = []
        self.bus.add_signal_receiver(self.on_signal, bus_name=NAME, member_keyword="member",
                                     path_keyword="path", interface_keyword="interface")
        self.bus.get_object(NAME, MANAGER).Get(IF_MANAGER, "Version", dbus_interface=PROPS)

    def on_signal(self, *args, member=None, path=None, interface=None):
        self.got.append((member, str(path), args))

    def wait(self, pred, what):
        ctx = self.GLib.MainContext.default()
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            while ctx.iteration(False):
                pass
            if pred(self.got):
                return
            time.sleep(0.01)
        raise Failure("timed out waiting for %s; got %r" % (what, self.got))

    def drain(self):
        """Let in-flight signals arrive (after a synchronous round trip)."""
        self.bus.get_object(NAME, MANAGER).Get(IF_MANAGER, "Version", dbus_interface=PROPS)
        ctx = self.GLib.MainContext.default()
        while ctx.iteration(False):
            pass


def case_signal_on_prepare(env):
    sig = SignalCollector(env)
    uid = "9a8b7c6d-0000-4000-8000-000000000001"
    c = claim_json(uid, "team-x", "job-1", [("hami-gpu-1", 2 * GIB, 10)])
    check_eq(env.command({"op": "prepare", "claim": c}), "ok", "prepare")
    sig.wait(lambda g: any(m == "ClaimPrepared" for m, _, _ in g), "ClaimPrepared")
    sig.wait(lambda g: any(m == "PropertiesChanged" and p == GPU1 for m, p, _ in g), "gpu1 PropertiesChanged")
    sig.drain()
    prepared = [a for m, p, a in sig.got if m == "ClaimPrepared"]
    check_eq([tuple(str(x) for x in a) for a in prepared], [(claim_path(uid), uid, "team-x", "job-1")],
             "ClaimPrepared args")
    changed = [a for m, p, a in sig.got if m == "PropertiesChanged" and p == GPU1]
    check_eq(len(changed), 1, "one batched PropertiesChanged for gpu1")
    iface, props, invalidated = changed[0]
    check_eq(str(iface), IF_DEVICE, "interface")
    check_eq(dict(props), {"MemoryAllocated": 10 * GIB, "CoresAllocated": 60,
                           "Claims": dbus.Array([UID_B, uid], signature="s")}, "changed values")
    check(not any(p == GPU0 for m, p, _ in sig.got if m == "PropertiesChanged"), "gpu0 untouched")
    mgr = [a for m, p, a in sig.got if m == "PropertiesChanged" and p == MANAGER]
    check_eq([dict(a[1]) for a in mgr], [{"NClaims": 3}], "Manager NClaims change")

    # several claims in one step: still one PropertiesChanged per object
    sig.got.clear()
    many = [claim_json("batch-%d" % i, "team-x", "job-b%d" % i, [("hami-gpu-0", GIB, 1)]) for i in range(5)]
    check_eq(env.command({"op": "prepare", "claims": many}), "ok", "prepare many")
    sig.wait(lambda g: sum(m == "ClaimPrepared" for m, _, _ in g) == 5, "5 ClaimPrepared")
    sig.wait(lambda g: any(m == "PropertiesChanged" and p == GPU0 for m, p, _ in g), "gpu0 change")
    sig.drain()
    gpu0 = [a for m, p, a in sig.got if m == "PropertiesChanged" and p == GPU0]
    check_eq(len(gpu0), 1, "one PropertiesChanged for five claims")
    check_eq(dict(gpu0[0][1])["MemoryAllocated"], 11 * GIB, "batched MemoryAllocated")

    sig.got.clear()
    check_eq(env.command({"op": "unprepare", "uid": uid}), "ok", "unprepare")
    sig.wait(lambda g: any(m == "ClaimUnprepared" for m, _, _ in g), "ClaimUnprepared")
    args = [a for m, p, a in sig.got if m == "ClaimUnprepared"][0]
    check_eq(tuple(str(x) for x in args), (claim_path(uid), uid, "team-x", "job-1"), "ClaimUnprepared args")
    err = env.error_of(env.call, "GetClaim", uid)
    check_eq(err[0], "org.projecthami.Dra1.Error.NoSuchClaim", "claim gone")

    # health and schedulability changes of a GPU: one PropertiesChanged with exactly those
    sig.drain()
    sig.got.clear()
    with open(MODEL) as f:
        model = json.load(f)
    devices = json.loads(json.dumps(model["devices"]))
    devices[0].update(health="unhealthy", healthReason="XID 48: double-bit ECC error")
    check_eq(env.command({"op": "devices", "devices": devices}), "ok", "health change")
    env.call("SetDeviceSchedulable", "hami-gpu-1", False)
    sig.wait(lambda g: sum(m == "PropertiesChanged" for m, _, _ in g) >= 2, "health and schedulable changes")
    sig.drain()
    changes = {p: dict(a[1]) for m, p, a in sig.got if m == "PropertiesChanged"}
    check_eq(changes, {GPU0: {"Health": "unhealthy", "HealthReason": "XID 48: double-bit ECC error"},
                       GPU1: {"Schedulable": False}}, "device changes")
    check(not any(m == "DevicesChanged" for m, _, _ in sig.got), "same GPUs: no DevicesChanged")

    # a GPU going away: DevicesChanged with the paths left
    sig.got.clear()
    check_eq(env.command({"op": "devices", "devices": model["devices"][:1]}), "ok", "devices")
    sig.wait(lambda g: any(m == "DevicesChanged" for m, _, _ in g), "DevicesChanged")
    args = [a for m, p, a in sig.got if m == "DevicesChanged"][0]
    check_eq([str(x) for x in args[0]], [GPU0], "DevicesChanged paths")
    check_eq(env.error_of(env.get_all, GPU1, IF_DEVICE)[0], "org.freedesktop.DBus.Error.UnknownObject",
             "gpu1 object gone")


def case_bad_arguments(env):
    E = "org.projecthami.Dra1.Error."
    cases = [
        (("GetClaim", ""), E + "InvalidArgument"),
        (("GetClaim", "x" * 129), E + "InvalidArgument"),
        (("GetClaim", "tab\there"), E + "InvalidArgument"),
        (("GetClaim", "space here"), E + "InvalidArgument"),
        (("GetClaim", "ünïcode"), E + "InvalidArgument"),
        (("GetClaim", "no-such-claim"), E + "NoSuchClaim"),
        (("GetClaim", "x" * 128), E + "NoSuchClaim"),
        (("GetDevice", "../../etc"), E + "InvalidArgument"),
        (("GetDevice", ""), E + "InvalidArgument"),
        (("GetDevice", "g" * 64), E + "InvalidArgument"),
        (("GetDevice", "hami-gpu-9"), E + "NoSuchDevice"),
        (("ReleaseClaim", "no-such-claim"), E + "NoSuchClaim"),
        (("ReleaseClaim", "bad uid"), E + "InvalidArgument"),
        (("SetDeviceSchedulable", "hami-gpu-9", True), E + "NoSuchDevice"),
        (("SetDeviceSchedulable", "bad/name", False), E + "InvalidArgument"),
    ]
    for args, want in cases:
        check_eq(env.error_of(env.call, *args)[0], want, "%r" % (args,))
    # wrong types and arities, through busctl so nothing is coerced on our side
    for args in (("GetClaim", "u", "5"), ("GetClaim", "ss", "a", "b"), ("SetDeviceSchedulable", "s", "hami-gpu-0"),
                 ("ListClaims", "s", "x"), ("ReleaseClaim", "i", "-1")):
        out = env.busctl("call", NAME, MANAGER, IF_MANAGER, *args)
        check(out.returncode != 0, "busctl call %r succeeded" % (args,))
        check("nvalid" in out.stderr or "signature" in out.stderr.lower(), "busctl %r: %s" % (args, out.stderr))
    # bad object paths and members
    for path in ("/org/projecthami/Dra1/claim/_zz", "/org/projecthami/Dra1/claim/no_2dsuch",
                 "/org/projecthami/Dra1/gpu/x", "/org/projecthami/Dra1/gpu", "/org/projecthami/Dra1/claim",
                 "/org/projecthami/Dra1/claim/" + "a" * 300):
        name, _ = env.error_of(env.get_all, path, IF_CLAIM if "claim" in path else IF_DEVICE)
        check(name in ("org.freedesktop.DBus.Error.UnknownObject", "org.freedesktop.DBus.Error.UnknownInterface"),
              "%s: %s" % (path, name))
    check_eq(env.error_of(env.obj(MANAGER).Get, IF_MANAGER, "NoSuch", dbus_interface=PROPS)[0],
             "org.freedesktop.DBus.Error.UnknownProperty", "unknown property")
    # Properties.Set is not even let through by the bus policy, for anyone
    check_eq(env.error_of(env.obj(MANAGER).Set, IF_MANAGER, "State", "ready", dbus_interface=PROPS)[0],
             "org.freedesktop.DBus.Error.AccessDenied", "Properties.Set")
    check_eq(env.error_of(env.call, "NoSuchMethod")[0], "org.freedesktop.DBus.Error.UnknownMethod",
             "unknown method")
    # the model refuses what it must not hold
    check(env.command({"op": "prepare", "claim": claim_json("", "a", "b", [])}).startswith("error"), "empty uid")
    check(env.command({"op": "prepare", "claim": claim_json(UID_A, "default", "dup", [])}).startswith("error"),
          "duplicate uid")
    check(env.command({"op": "prepare", "claim": claim_json("u1", "Bad_NS", "b", [])}).startswith("error"),
          "bad namespace")
    check(env.command({"op": "prepare", "claim": claim_json("u1", "a", "b", [("x/y", 1, 1)])}).startswith("error"),
          "bad device in claim")
    env.alive()
    check_eq(env.op_calls(), [], "no operation ran")


def case_authorization(env):
    # root: allowed without asking polkit (like systemd's services)
    env.call("Reload")
    env.call("Rescan")
    env.call("SetDeviceSchedulable", "hami-gpu-1", False)
    check_eq(env.obj(GPU1).Get(IF_DEVICE, "Schedulable", dbus_interface=PROPS), False, "unschedulable")
    env.call("ReleaseClaim", UID_A)
    check_eq(env.op_calls(), ["Reload", "Rescan", "SetDeviceSchedulable hami-gpu-1 false",
                              "ReleaseClaim " + UID_A], "root's calls ran")
    check_eq(env.get_all(MANAGER, IF_MANAGER)["SliceGeneration"], 4, "Rescan ran")
    check_eq(env.polkit_calls(), [], "root never needs polkit")

    # nobody: may read ...
    out = env.busctl("get-property", NAME, MANAGER, IF_MANAGER, "NodeName", nobody=True)
    check_eq((out.returncode, out.stdout.strip()), (0, 's "node-a10-1"'), "nobody reads")
    out = env.busctl("call", NAME, MANAGER, IF_MANAGER, "ListClaims", nobody=True)
    check_eq(out.returncode, 0, "nobody lists claims: " + out.stderr)
    out = env.busctl("introspect", NAME, GPU0, nobody=True)
    check_eq(out.returncode, 0, "nobody introspects: " + out.stderr)
    # ... but not act: polkit says no, the error says why
    for args in (("Reload",), ("Rescan",), ("ReleaseClaim", UID_B), ("SetDeviceSchedulable", "hami-gpu-0", False)):
        name, message = env.nobody_call(*args)
        check_eq(name, "org.freedesktop.DBus.Error.AccessDenied", "nobody %s" % args[0])
        check("Not authorized by polkit" in message, "nobody %s: %s" % (args[0], message))
    check_eq(len(env.op_calls()), 4, "nothing ran for nobody")
    asked = env.polkit_calls()
    check_eq([(c["action"], c["uid"], c["flags"]) for c in asked], [
        ("org.projecthami.dra1.reload", 65534, 0), ("org.projecthami.dra1.rescan", 65534, 0),
        ("org.projecthami.dra1.release-claim", 65534, 0),
        ("org.projecthami.dra1.set-device-schedulable", 65534, 0)], "polkit was asked")
    # AllowInteractiveAuthorization is passed on, and a challenge is reported as such
    out = env.busctl("--allow-interactive-authorization=yes", "call", NAME, MANAGER, IF_MANAGER, "Reload",
                     nobody=True)
    check(out.returncode != 0 and "nteractive" in out.stderr, "interactive: " + out.stderr)
    check_eq(env.polkit_calls()[-1]["flags"], 1, "AllowUserInteraction flag")
    # nobody cannot own the name, nor call past the policy into other interfaces
    out = env.busctl("call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                     "RequestName", "su", NAME, "0", nobody=True)
    check(out.returncode != 0, "nobody owned the name")
    out = env.busctl("call", NAME, MANAGER, "org.freedesktop.DBus.Properties", "Set", "ssv", IF_MANAGER,
                     "State", "s", "x", nobody=True)
    check(out.returncode != 0 and "denied" in out.stderr.lower(),
          "Properties.Set is not open to nobody: " + out.stderr)
    env.alive()


def case_authorization_polkit_allows(env):
    # polkit (the stand-in) authorizes nobody: the parked call resumes and runs
    out = env.busctl("call", NAME, MANAGER, IF_MANAGER, "Rescan", nobody=True)
    check_eq((out.returncode, out.stderr), (0, ""), "nobody Rescan with polkit's yes")
    out = env.busctl("call", NAME, MANAGER, IF_MANAGER, "ReleaseClaim", "s", UID_B, nobody=True)
    check_eq((out.returncode, out.stderr), (0, ""), "nobody ReleaseClaim with polkit's yes")
    check_eq(env.op_calls(), ["Rescan", "ReleaseClaim " + UID_B], "operations ran after polkit")
    check_eq(env.get_all(MANAGER, IF_MANAGER)["NClaims"], 1, "claim released")
    check_eq([c["action"] for c in env.polkit_calls()],
             ["org.projecthami.dra1.rescan", "org.projecthami.dra1.release-claim"], "polkit asked")
    # many concurrent parked calls: all answered
    procs = [subprocess.Popen(NOBODY + ["busctl", "--system", "call", NAME, MANAGER, IF_MANAGER, "Reload"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(8)]
    for p in procs:
        check_eq(p.wait(30), 0, "parallel Reload: " + p.stderr.read())
    check_eq(env.op_calls().count("Reload"), 8, "eight reloads")
    env.alive()


def case_authorization_is_async(env):
    def wait_polkit(n):
        deadline = time.monotonic() + TIMEOUT
        while len(env.polkit_calls()) < n:
            check(time.monotonic() < deadline, "polkit was not asked")
            time.sleep(0.02)

    def background(*args):
        return subprocess.Popen(NOBODY + ["busctl", "--system", "call", NAME, MANAGER, IF_MANAGER] + list(args),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=env.address))

    release = lambda: env.bus.get_object("org.freedesktop.PolicyKit1", "/", introspect=False).ReleaseHeld(
        dbus_interface="org.projecthami.Test.FakePolkit")
    # While polkit holds its answer the daemon serves everyone else
    call = background("ReleaseClaim", "s", UID_B)
    wait_polkit(1)
    check_eq(env.call("GetClaim", UID_B), claim_path(UID_B), "served while polkit thinks")
    check_eq(len(env.call("ListClaims")), 2, "ListClaims while polkit thinks")
    # The claim goes away meanwhile: the parked call, once authorized, finds it gone
    check_eq(env.command({"op": "unprepare", "uid": UID_B}), "ok", "unprepare")
    check_eq(release(), 1, "one held answer")
    out, err = call.communicate(timeout=30)
    check(call.returncode != 0 and "No prepared claim" in err, "ReleaseClaim of a vanished claim: " + err)
    check_eq(env.op_calls(), [], "nothing released twice")
    # And the normal way round: held, released, done
    call = background("Rescan")
    wait_polkit(2)
    check_eq(env.op_calls(), [], "nothing ran before polkit answered")
    check_eq(release(), 1, "one held answer")
    out, err = call.communicate(timeout=30)
    check_eq((call.returncode, err), (0, ""), "Rescan after polkit's yes")
    check_eq(env.op_calls(), ["Rescan"], "Rescan ran once")
    env.alive()


ADMIN_UID = 1  # Debian's "daemon" user plays the administrator polkit allows (dbus-daemon wants a passwd entry)
PER_USER = 8  # BUS_POLKIT_QUERIES_PER_USER_MAX in src/dbus/polkit.h


def case_authorization_per_user_bound(env):
    # One user's checks waiting for polkit are bounded, so that user cannot fill the queue
    # for everybody; and the checks of a caller that went away are dropped at once.
    def wait_polkit(n, caller):
        deadline = time.monotonic() + TIMEOUT
        while len(env.polkit_calls()) < n:
            if caller.poll() is not None:
                raise Failure("the caller ended before polkit was asked: " + caller.stderr.read())
            check(time.monotonic() < deadline, "polkit asked %d times, want %d" % (len(env.polkit_calls()), n))
            time.sleep(0.02)

    def background(user, method):
        who = NOBODY if user is None else ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups"]
        return subprocess.Popen(who + ["busctl", "--system", "call", NAME, MANAGER, IF_MANAGER, method],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=env.address))

    release = lambda: env.bus.get_object("org.freedesktop.PolicyKit1", "/", introspect=False).ReleaseHeld(
        dbus_interface="org.projecthami.Test.FakePolkit")
    # nobody fills its share while polkit holds the answers (one connection per call)...
    parked = [background(None, "Rescan") for _ in range(PER_USER)]
    wait_polkit(PER_USER, parked[-1])
    # ... and the next call of nobody is refused at once, without asking polkit
    name, message = env.nobody_call("Reload")
    check_eq(name, "org.freedesktop.DBus.Error.LimitsExceeded", "nobody over its bound: " + message)
    check_eq(len(env.polkit_calls()), PER_USER, "polkit not asked for the refused call")
    # the administrator still gets through to polkit
    admin = background(ADMIN_UID, "Reload")
    wait_polkit(PER_USER + 1, admin)
    check_eq(env.polkit_calls()[-1]["uid"], ADMIN_UID, "the administrator's check reached polkit")
    # nobody's callers go away: their checks are dropped and nobody may ask again
    for p in parked:
        p.kill()
        p.wait()
    deadline = time.monotonic() + TIMEOUT
    while True:  # the daemon learns of the disconnects asynchronously
        asked = len(env.polkit_calls())
        probe = background(None, "Reload")
        while probe.poll() is None and len(env.polkit_calls()) == asked:
            time.sleep(0.02)
        if probe.poll() is None:
            break  # parked at polkit: nobody's checks no longer count
        err = probe.stderr.read()
        check("Too many authorization checks" in err, "nobody's probe: " + err)
        check(time.monotonic() < deadline, "checks of disconnected callers still count")
        time.sleep(0.1)
    check_eq(env.polkit_calls()[-1]["uid"], 65534, "nobody's new check reached polkit")
    check_eq(env.op_calls(), [], "nothing ran before polkit answered")
    check_eq(release() >= 1, True, "held answers released")
    out, err = admin.communicate(timeout=30)
    check_eq((admin.returncode, err), (0, ""), "the administrator's Reload after polkit's yes")
    check_eq(env.op_calls(), ["Reload"], "only the administrator's Reload ran")
    out, err = probe.communicate(timeout=30)
    # (busctl allows interactive authorization: polkit's "no" comes as a challenge)
    check(probe.returncode != 0 and "authentication required for org.projecthami.dra1.reload" in err,
          "nobody's Reload refused by polkit: " + err)
    env.alive()


def case_authorization_without_polkit(env):
    name, message = env.nobody_call("Reload")
    check(name == "org.freedesktop.DBus.Error.AccessDenied" and "polkit" in message, "no polkit: " + message)
    check("polkit" in env.hamictl("reload", nobody=True, expect=5).stderr, "hamictl without polkit")
    env.call("Reload")  # root needs no polkit
    check_eq(env.op_calls(), ["Reload"], "only root's reload ran")
    env.alive()


def case_hamictl(env):
    write_region(env, "5e6f7a8b.region", "%d\n%d\n" % (1 * GIB, 5 * GIB))
    # status
    out = env.hamictl("status").stdout
    for line in ("State: ready", "Node: node-a10-1", "API server: reachable, consumable capacity supported",
                 "Kubelet: registered", "Slice generation: 3", "Devices: 2", "Claims: 2"):
        check(line in out, "status lacks %r:\n%s" % (line, out))
    j = json.loads(env.hamictl("--json", "status").stdout)
    check_eq((j["NodeName"], j["NClaims"], j["ApiServerConsumableCapacity"]), ("node-a10-1", 2, True), "status --json")
    check_eq(env.hamictl().stdout, out, "no verb means status")
    check_eq(json.loads(env.hamictl("status", "--json").stdout), j, "options after the verb")
    # devices
    out = env.hamictl("devices").stdout.splitlines()
    check(out[0].split()[:5] == ["NAME", "MODEL", "MEMORY", "ALLOCATED", "USED"], "devices header: %r" % out[0])
    row = out[1].split()
    check_eq((row[0], row[1], row[2], row[3]), ("hami-gpu-0", "NVIDIA", "A10", "22.5G"), "devices row")
    check("unhealthy" in out[2], "gpu1 unhealthy: %r" % out[2])
    check_eq(len(env.hamictl("--no-legend", "devices").stdout.splitlines()), 2, "--no-legend")
    j = json.loads(env.hamictl("--json", "devices").stdout)
    check_eq([(d["name"], d["memoryAllocated"], d["memoryUsed"], d["coresAllocated"], d["claims"]) for d in j],
             [("hami-gpu-0", 6 * GIB, 1 * GIB, 50, 2), ("hami-gpu-1", 8 * GIB, 5 * GIB, 50, 1)], "devices --json")
    # claims
    out = env.hamictl("claims").stdout.splitlines()
    check_eq(out[0].split(), ["UID", "NAMESPACE", "NAME", "DEVICES"], "claims header")
    check_eq(out[2].split(), [UID_B, "ml-team", "infer-b", "hami-gpu-0:2.0G/20%,hami-gpu-1:8.0G/50%"], "claims row")
    j = json.loads(env.hamictl("--json", "claims").stdout)
    check_eq([(c["uid"], c["namespace"], c["name"], [d["device"] for d in c["devices"]]) for c in j],
             [(UID_A, "default", "train-a", ["hami-gpu-0"]), (UID_B, "ml-team", "infer-b", ["hami-gpu-0", "hami-gpu-1"])],
             "claims --json")
    # claim UID
    out = env.hamictl("claim", UID_B).stdout
    for line in ("UID: " + UID_B, "Claim: ml-team/infer-b", "Memory used: 6.0G",
                 "hami-gpu-0: memory 2.0G, cores 20%", "hami-gpu-1: memory 8.0G, cores 50%"):
        check(line in out, "claim lacks %r:\n%s" % (line, out))
    j = json.loads(env.hamictl("--json", "claim", UID_B).stdout)
    check_eq((j["UID"], j["Namespace"], j["MemoryUsed"], j["Path"], len(j["Devices"])),
             (UID_B, "ml-team", 6 * GIB, claim_path(UID_B), 2), "claim --json")
    # exit codes
    check("No prepared claim" in env.hamictl("claim", "no-such", expect=4).stderr, "claim unknown")
    env.hamictl("claim", "bad uid", expect=2)
    env.hamictl("claim", expect=2)
    env.hamictl("frobnicate", expect=2)
    env.hamictl("--bogus", expect=2)
    check("hamictl [OPTIONS...] COMMAND" in env.hamictl("--help").stdout, "--help")
    check(re.match(r"hamictl \d+\.\d+\.\d+\n$", env.hamictl("--version").stdout), "--version")
    env.hamictl("release", "no-such", expect=4)
    env.hamictl("schedulable", "hami-gpu-9", "no", expect=4)
    env.hamictl("schedulable", "hami-gpu-0", "maybe", expect=2)
    # privileged verbs: nobody is denied (5), root is allowed
    check("Not authorized" in env.hamictl("release", UID_A, nobody=True, expect=5).stderr, "release as nobody")
    env.hamictl("reload", nobody=True, expect=5)
    env.hamictl("status", nobody=True)
    env.hamictl("devices", nobody=True)
    check_eq(env.hamictl("release", UID_A).stdout, "Released claim %s.\n" % UID_A, "release")
    env.hamictl("reload")
    env.hamictl("rescan")
    env.hamictl("schedulable", "hami-gpu-0", "no")
    check_eq(env.op_calls(), ["ReleaseClaim " + UID_A, "Reload", "Rescan", "SetDeviceSchedulable hami-gpu-0 false"],
             "operations")
    check_eq(json.loads(env.hamictl("--json", "devices").stdout)[0]["schedulable"], False, "schedulable")


class LineReader:
    """Lines from a pipe with a timeout; select() on a buffered file object would miss lines."""

    def __init__(self, f):
        self.fd = f.fileno()
        self.buf = b""

    def read_line(self, what):
        deadline = time.monotonic() + TIMEOUT
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.fd], [], [], max(left, 0))
            check(ready, "timed out waiting for " + what)
            chunk = os.read(self.fd, 65536)
            check(chunk, "end of output waiting for " + what)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode() + "\n"


def case_hamictl_monitor(env):
    for json_mode in (False, True):
        args = [HAMICTL] + (["--json"] if json_mode else []) + ["monitor"]
        mon = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=env.address))
        out, err = LineReader(mon.stdout), LineReader(mon.stderr)
        try:
            check("Monitoring" in err.read_line("monitor start"), "monitor banner")
            uid = "mon-%d" % json_mode
            c = claim_json(uid, "team-m", "job-m", [("hami-gpu-0", GIB, 5)])
            check_eq(env.command({"op": "prepare", "claim": c}), "ok", "prepare")
            lines = [out.read_line("ClaimPrepared")]
            while len(lines) < 3:  # ClaimPrepared, then gpu0's and the manager's PropertiesChanged
                lines.append(out.read_line("PropertiesChanged"))
            check_eq(env.command({"op": "unprepare", "uid": uid}), "ok", "unprepare")
            while not any("ClaimUnprepared" in line for line in lines):
                lines.append(out.read_line("ClaimUnprepared"))
            if json_mode:
                events = [json.loads(line) for line in lines]
                check_eq({k: events[0][k] for k in ("signal", "uid", "namespace", "name", "path")},
                         {"signal": "ClaimPrepared", "uid": uid, "namespace": "team-m", "name": "job-m",
                          "path": claim_path(uid)}, "monitor --json ClaimPrepared")
                gpu = [e for e in events if e["signal"] == "PropertiesChanged" and e["path"] == GPU0][0]
                check_eq(gpu["changed"]["MemoryAllocated"], 7 * GIB, "monitor --json MemoryAllocated")
                check(any(e["signal"] == "ClaimUnprepared" and e["uid"] == uid for e in events), "unprepared")
            else:
                check(lines[0].startswith("ClaimPrepared") and "team-m/job-m uid=" + uid in lines[0],
                      "monitor line: %r" % lines[0])
                check(any(GPU0 in line and '"MemoryAllocated":%d' % (7 * GIB) in line for line in lines),
                      "monitor PropertiesChanged: %r" % lines)
        finally:
            mon.send_signal(signal.SIGINT)
            rc = mon.wait(10)
        check_eq(rc, 0, "monitor exits 0 on SIGINT: %s" % mon.stderr.read().decode())


def case_only_root_owns_the_name(env):
    # The bus policy keeps a daemon that is not root from owning the name; it says so
    # and keeps running (the kubelet does not need D-Bus).
    model = os.path.join(env.dir, "model.json")
    with open(MODEL) as f:
        text = f.read().replace("@REGION_DIR@", env.regions)
    with open(model, "w") as f:
        f.write(text)
    os.chmod(model, 0o644)
    p = subprocess.Popen(NOBODY + [DAEMON, model], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=env.address))
    try:
        err = LineReader(p.stderr)
        line = err.read_line("the refusal")
        check("Could not own org.projecthami.Dra1" in line, "daemon as nobody: %r" % line)
        check(p.poll() is None, "the daemon died")
        check(not env.bus.name_has_owner(NAME), "nobody owns the name")
        p.stdin.write(b'{"op": "unprepare", "uid": "%s"}\n' % UID_A.encode())
        p.stdin.flush()
        check_eq(LineReader(p.stdout).read_line("answer"), "ok\n", "still serving its model")
    finally:
        p.terminate()
        p.wait(10)
    check_eq(p.returncode, 0, "clean exit")


def case_authorization_real_polkit(env):
    # The real polkitd parses our actions file: nobody is refused (auth_admin_keep, no
    # agent), the test rule's grant works, root needs no polkit.
    for args in (("Reload",), ("ReleaseClaim", UID_B), ("SetDeviceSchedulable", "hami-gpu-0", False)):
        name, message = env.nobody_call(*args)
        # auth_admin_keep without an agent: polkitd answers "challenge", not a plain no
        check_eq((name, message), ("org.freedesktop.DBus.Error.InteractiveAuthorizationRequired",
                                   "Interactive authentication required for org.projecthami.dra1.%s"
                                   % {"Reload": "reload", "ReleaseClaim": "release-claim",
                                      "SetDeviceSchedulable": "set-device-schedulable"}[args[0]]),
                 "nobody %s" % args[0])
    check_eq(env.nobody_call("Rescan"), ("ok", "None"), "nobody Rescan granted by the rule")
    env.call("ReleaseClaim", UID_B)
    check_eq(env.op_calls(), ["Rescan", "ReleaseClaim " + UID_B], "what ran")
    check("Interactive authentication required" in env.hamictl("reload", nobody=True, expect=5).stderr,
          "hamictl reload as nobody")
    env.alive()


FAKE_SYSTEMD = """
import signal, subprocess, sys
import dbus, dbus.mainloop.glib, dbus.service
from gi.repository import GLib
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.bus.BusConnection(sys.argv[1])
name = dbus.service.BusName("org.freedesktop.systemd1", bus)
units = []
def on_request(unit):
    print("ActivationRequest " + unit, flush=True)
    if unit == "hami-dra-plugin.service":
        units.append(subprocess.Popen(sys.argv[2:], stdin=subprocess.PIPE))
def on_term():
    for p in units:
        p.terminate()
        print("stopped %d" % p.wait(10), flush=True)
    loop.quit()
bus.add_signal_receiver(on_request, "ActivationRequest", "org.freedesktop.systemd1.Activator",
                        path="/org/freedesktop/DBus")
loop = GLib.MainLoop()
GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, on_term)
print("ready", flush=True)
loop.run()
"""


def case_activation_through_systemd(env):
    # A call to the name, with nobody owning it, asks systemd for hami-dra-plugin.service
    # (our .service file's SystemdService=); a systemd stand-in starts the daemon and the
    # call goes through.
    model = os.path.join(env.dir, "model.json")
    with open(MODEL) as f:
        text = f.read().replace("@REGION_DIR@", env.regions)
    with open(model, "w") as f:
        f.write(text)
    fake = subprocess.Popen(["/usr/bin/python3", "-c", FAKE_SYSTEMD, env.address, DAEMON, model, env.calls],
                            stdout=subprocess.PIPE, env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=env.address))
    env.procs.append(fake)
    out = LineReader(fake.stdout)
    check_eq(out.read_line("fake systemd"), "ready\n", "fake systemd")
    check(not env.bus.name_has_owner(NAME), "not running before the call")
    p = env.hamictl("status")
    check("State: ready" in p.stdout, "activated daemon answers: " + p.stdout)
    check_eq(out.read_line("activation request"), "ActivationRequest hami-dra-plugin.service\n", "unit")
    fake.terminate()
    check_eq(out.read_line("the unit's stop"), "stopped 0\n", "activated daemon exits cleanly")


def case_hamictl_not_running(env):
    # a bus without the daemon: "not running" (3), and no activation on this bus
    env.hamictl("status", expect=3)
    env.hamictl("--json", "claims", expect=3)
    env.hamictl("top", "--once", expect=3)
    env.hamictl("top", expect=3)


def case_hamictl_activation_hangs(env):
    # Activation through systemd that never finishes (no systemd answers on this bus, as
    # when the unit cannot start): hamictl gives up after its timeout (2 s by default)
    # with "not running" (3), instead of the bus's 25 s and 1.
    for args, limit in ((["status"], 2.0), (["--timeout=0.5", "claims"], 0.5)):
        start = time.monotonic()
        p = env.hamictl(*args, expect=3)
        took = time.monotonic() - start
        check(limit - 0.1 <= took < limit + 1.5, "hamictl %s took %.2f s (timeout %.1f s)" % (args, took, limit))
        check("did not answer within" in p.stderr and "systemctl status hami-dra-plugin" in p.stderr,
              "the message says what to look at: " + p.stderr)
    for bad in ("0", "-1", "x", "3601", "nan"):
        env.hamictl("--timeout=" + bad, "status", expect=2)


class RegionWriter:
    """tests/region-writer on one real region: live processes and the monitor's word."""

    def __init__(self, env, path):
        self.p = subprocess.Popen([REGION_WRITER, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        env.procs.append(self.p)

    def __call__(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        answer = self.p.stdout.readline().strip()
        check(answer.startswith("ok"), "region-writer %r: %r" % (line, answer))
        return answer


HOSTILE_UID = "dead0000-0000-4000-8000-000000000007"


def prepare_top(env):
    """Claim A and B with real regions, live processes and measurements, and a third
    claim whose region is hostile (the magic, then garbage)."""
    a = RegionWriter(env, os.path.join(env.regions, "0b7c1a52.region"))
    a("create 1")
    a("attach")
    a("reserve 0 0 %d" % GIB)
    a("measure 0 125 1 %d" % GIB)          # 12.5 % of the GPU, 1 GiB beyond the reservations
    b = RegionWriter(env, os.path.join(env.regions, "5e6f7a8b.region"))
    b("create 2")
    b("attach")
    b("attach")
    b("reserve 0 0 %d" % (512 * MIB))
    b("reserve 1 1 %d" % (6 * GIB))
    b("measure 1 400 1 0")                 # gpu1 measured, gpu0 never
    hostile = os.path.join(env.regions, "dead0000.region")
    with open(hostile, "wb") as f:
        f.write(b"HAMIVGPU" + b"\xff" * 4000)
    c = claim_json(HOSTILE_UID, "default", "hostile", [("hami-gpu-1", 1 * GIB, 10)], hostile)
    check_eq(env.command({"op": "prepare", "claim": c}), "ok", "prepare the hostile claim")
    return a, b


TOP_BY_MEMORY = """\
CLAIM           DEVICE     MEMORY      MEM% SM        PROCS NOTE
ml-team/infer-b hami-gpu-1 6.0G/8.0G   75%  40.0%/50% 2     
default/train-a hami-gpu-0 2.0G/4.0G   50%  12.5%/30% 1     
ml-team/infer-b hami-gpu-0 512.0M/2.0G 25%  -/20%     2     
default/hostile hami-gpu-1 -/1.0G      -    -/10%     -     region-invalid
"""


def top_rows(out):
    return [line.split()[:2] for line in out.splitlines()[1:]]


def case_hamictl_top(env):
    prepare_top(env)
    # Usage over D-Bus: each figure, and the hostile claim flagged beside the others
    check_eq(claim_usage(env, UID_A), [("hami-gpu-0", 2 * GIB, 4 * GIB, 125, 30, 1, 1, 0)], "Usage of A")
    check_eq(claim_usage(env, UID_B), [("hami-gpu-0", 512 * MIB, 2 * GIB, SM_UNKNOWN, 20, 2, 0, 0),
                                       ("hami-gpu-1", 6 * GIB, 8 * GIB, 400, 50, 2, 1, 0)], "Usage of B")
    check_eq(claim_usage(env, HOSTILE_UID), [("hami-gpu-1", 0, 1 * GIB, SM_UNKNOWN, 10, 0, 0, USAGE_REGION_INVALID)],
             "Usage of the hostile claim")
    listed = env.call("ListUsage")
    check_eq([(str(e[1]), str(e[2]), str(e[3]), [tuple(d) for d in e[4]]) for e in listed],
             [(UID_A, "default", "train-a", claim_usage(env, UID_A)),
              (UID_B, "ml-team", "infer-b", claim_usage(env, UID_B)),
              (HOSTILE_UID, "default", "hostile", claim_usage(env, HOSTILE_UID))], "ListUsage")
    check_eq(str(listed[0][0]), claim_path(UID_A), "ListUsage's object path")

    # the table, sorted by memory (default), no escape codes on a pipe; as nobody too
    out = env.hamictl("top", "--once").stdout
    check_eq(out, TOP_BY_MEMORY, "hamictl top --once")
    check_eq(env.hamictl("top", "--once", nobody=True).stdout, TOP_BY_MEMORY, "hamictl top --once as nobody")
    check_eq([line.split() for line in env.hamictl("--no-legend", "top", "--once").stdout.splitlines()],
             [line.split() for line in TOP_BY_MEMORY.splitlines()[1:]], "--no-legend")
    check_eq(top_rows(env.hamictl("top", "--once", "--order=sm").stdout),
             [["ml-team/infer-b", "hami-gpu-1"], ["default/train-a", "hami-gpu-0"],
              ["default/hostile", "hami-gpu-1"], ["ml-team/infer-b", "hami-gpu-0"]], "--order=sm")
    check_eq(top_rows(env.hamictl("top", "--once", "--order=name").stdout),
             [["default/hostile", "hami-gpu-1"], ["default/train-a", "hami-gpu-0"],
              ["ml-team/infer-b", "hami-gpu-0"], ["ml-team/infer-b", "hami-gpu-1"]], "--order=name")

    # JSON: every figure exactly
    got = json.loads(env.hamictl("--json", "top", "--once").stdout)
    row = lambda uid, ns, name, dev, used, limit, sm, sml, procs, mprocs, flags: {
        "uid": uid, "namespace": ns, "name": name, "device": dev, "memoryUsed": used, "memoryLimit": limit,
        "smUsedPermille": sm, "smLimit": sml, "processes": procs, "measuredProcesses": mprocs, "flags": flags}
    check_eq(got, [row(UID_B, "ml-team", "infer-b", "hami-gpu-1", 6 * GIB, 8 * GIB, 400, 50, 2, 1, []),
                   row(UID_A, "default", "train-a", "hami-gpu-0", 2 * GIB, 4 * GIB, 125, 30, 1, 1, []),
                   row(UID_B, "ml-team", "infer-b", "hami-gpu-0", 512 * MIB, 2 * GIB, None, 20, 2, 0, []),
                   row(HOSTILE_UID, "default", "hostile", "hami-gpu-1", 0, 1 * GIB, None, 10, 0, 0,
                       ["region-invalid"])], "hamictl --json top --once")

    # hamictl claim shows the same usage, in words and in JSON
    check("        Usage: hami-gpu-0: memory 2.0G of 4.0G, SM 12.5% of 30%, 1 process\n" in
          env.hamictl("claim", UID_A).stdout, "hamictl claim A's usage")
    check_eq(env.hamictl("claim", UID_B).stdout.split("        Usage: ", 1)[1],
             "hami-gpu-0: memory 512.0M of 2.0G, SM - of 20%, 2 processes\n"
             "               hami-gpu-1: memory 6.0G of 8.0G, SM 40.0% of 50%, 2 processes\n", "hamictl claim B's usage")
    check("Usage: hami-gpu-1: memory 0B of 1.0G, SM - of 10%, 0 processes (region-invalid)\n" in
          env.hamictl("claim", HOSTILE_UID).stdout, "hamictl claim of the hostile claim")
    unnamed = lambda r: {k: v for k, v in r.items() if k not in ("uid", "namespace", "name")}
    check_eq(json.loads(env.hamictl("--json", "claim", UID_B).stdout)["Usage"], [unnamed(got[2]), unnamed(got[0])],
             "hamictl --json claim B's Usage")

    # a claim that goes is gone from the next ListUsage (its reuse of readings is dropped)
    check_eq(env.command({"op": "unprepare", "uid": HOSTILE_UID}), "ok", "unprepare the hostile claim")
    check_eq(env.hamictl("top", "--once").stdout, TOP_BY_MEMORY.rsplit("default/hostile", 1)[0],
             "hamictl top --once without the hostile claim")
    c = claim_json(HOSTILE_UID, "default", "hostile", [("hami-gpu-1", 1 * GIB, 10)],
                   os.path.join(env.regions, "dead0000.region"))
    check_eq(env.command({"op": "prepare", "claim": c}), "ok", "prepare the hostile claim again")

    # without --once and not on a terminal: a table per refresh, blank-line separated, no escapes
    out = env.hamictl("top", "--iterations=2", "--delay=0.1").stdout
    check_eq(out, TOP_BY_MEMORY + "\n" + TOP_BY_MEMORY, "two refreshes on a pipe")
    lines = env.hamictl("--json", "top", "-n", "2", "-d", "0.1").stdout.splitlines()
    check_eq([json.loads(line) for line in lines], [got, got], "--json: one array per refresh")

    # other hostile files: each marks its own claim's row only
    hostile = os.path.join(env.regions, "dead0000.region")
    for what, make, note in (
            ("the magic alone", lambda: open(hostile, "wb").write(b"HAMIVGPU"), "region-invalid"),
            ("a symlink to a good region", lambda: os.symlink(os.path.join(env.regions, "0b7c1a52.region"), hostile),
             "region-unreadable"),
            ("a FIFO", lambda: os.mkfifo(hostile), "region-invalid"),
            ("a directory", lambda: os.mkdir(hostile), "region-invalid"),
            ("nothing", lambda: None, "region-unreadable")):
        if os.path.isdir(hostile) and not os.path.islink(hostile):
            os.rmdir(hostile)
        elif os.path.lexists(hostile):
            os.unlink(hostile)
        make()
        time.sleep(0.6)  # past ListUsage's reuse of readings
        want = TOP_BY_MEMORY.replace("region-invalid", note)
        check_eq(env.hamictl("top", "--once").stdout, want, "hamictl top --once with %s" % what)

    # bad flags are usage errors; the daemon stays up
    for bad in (["--order=cpu"], ["--delay=0"], ["--delay=x"], ["--iterations=0"], ["-n", "-1"]):
        env.hamictl("top", "--once", *bad, expect=2)
    env.alive()


def tmux_capture(sock, what, cond, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = subprocess.run(["tmux", "-L", sock, "capture-pane", "-p", "-t", "top"], capture_output=True,
                                text=True, timeout=10).stdout
        if cond(screen):
            return screen
        time.sleep(0.05)
    raise Failure("%s: the screen never showed it:\n%s" % (what, screen))


def case_hamictl_top_interactive(env):
    """hamictl top in a terminal (tmux): redrawn in place, follows the regions, sorts on
    a key, and q quits with 0."""
    if not shutil.which("tmux"):
        raise Failure("tmux is not installed (tools/packages.txt [test])")
    a, _ = prepare_top(env)
    sock = "hami-top-%d" % os.getpid()
    # after hamictl: its exit status, and whether it gave the terminal back (line mode and echo)
    cmd = ("DBUS_SYSTEM_BUS_ADDRESS=%s %s top --delay=0.2; echo EXIT=$?; "
           "echo TTY=$(stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon -e echo -e -echo); sleep 60"
           % (env.address, HAMICTL))
    subprocess.run(["tmux", "-L", sock, "-f", "/dev/null", "new-session", "-d", "-s", "top", "-x", "120", "-y", "20",
                    "/bin/sh", "-c", cmd], check=True, timeout=10)
    try:
        screen = tmux_capture(sock, "the first table", lambda s: re.search(r"default/train-a +hami-gpu-0 +2.0G/4.0G +50%", s))
        check(screen.startswith("hamictl top: 4 rows, every 0.2 s; q quits"), "title line: " + screen)
        # the region changes: the next refresh shows it, in place (one title, one table)
        a("reserve 0 0 %d" % GIB)
        screen = tmux_capture(sock, "the refreshed table", lambda s: re.search(r"default/train-a +hami-gpu-0 +3.0G/4.0G +75%", s))
        check_eq(screen.count("hamictl top:"), 1, "one title after a redraw")
        check_eq(screen.count("CLAIM"), 1, "one table after a redraw")
        # n: by name at once; the hostile claim comes first
        subprocess.run(["tmux", "-L", sock, "send-keys", "-t", "top", "n"], check=True, timeout=10)
        tmux_capture(sock, "sorted by name", lambda s: s.splitlines()[2:3] and
                     s.splitlines()[2].startswith("default/hostile"))
        subprocess.run(["tmux", "-L", sock, "send-keys", "-t", "top", "q"], check=True, timeout=10)
        screen = tmux_capture(sock, "q quits with 0", lambda s: "EXIT=0" in s and "TTY=" in s)
        check("TTY=icanon echo" in screen, "the terminal is given back in line mode with echo:\n" + screen)
        subprocess.run(["tmux", "-L", sock, "kill-session", "-t", "top"], check=True, timeout=10)

        # a terminal of 6 lines: the title, the header and 3 rows, and it says so; ^C quits with 0
        # (the shell outlives ^C with a trap, which hamictl does not inherit, to show its exit status)
        subprocess.run(["tmux", "-L", sock, "-f", "/dev/null", "new-session", "-d", "-s", "top", "-x", "120",
                        "-y", "6", "/bin/sh", "-c", "trap true INT; " + cmd], check=True, timeout=10)
        screen = tmux_capture(sock, "the small table", lambda s: "terminal too small" in s)
        check_eq(len([line for line in screen.splitlines() if "hami-gpu-" in line]), 3, "rows on 6 lines:\n" + screen)
        subprocess.run(["tmux", "-L", sock, "send-keys", "-t", "top", "C-c"], check=True, timeout=10)
        screen = tmux_capture(sock, "^C quits with 0", lambda s: "EXIT=0" in s and "TTY=" in s)
        check("TTY=icanon echo" in screen, "the terminal is given back after ^C:\n" + screen)
    finally:
        subprocess.run(["tmux", "-L", sock, "kill-server"], capture_output=True, timeout=10)


CASES = {
    "introspect-matches-xml": (case_introspect_matches_xml, {}),
    "manager-properties": (case_manager_properties, {}),
    "device-properties": (case_device_properties, {}),
    "claim-properties": (case_claim_properties, {}),
    "list-and-get-methods": (case_list_and_get_methods, {}),
    "usage-paired-by-record": (case_usage_paired_by_record, {}),
    "usage-implausible-skipped": (case_usage_implausible_skipped, {}),
    "signal-on-prepare": (case_signal_on_prepare, {}),
    "bad-arguments": (case_bad_arguments, {}),
    "authorization": (case_authorization, {}),
    "authorization-polkit-allows": (case_authorization_polkit_allows, {"allow_uids": "65534"}),
    "authorization-is-async": (case_authorization_is_async, {"allow_uids": "65534", "hold": True}),
    "authorization-without-polkit": (case_authorization_without_polkit, {"polkit": False}),
    "authorization-per-user-bound": (case_authorization_per_user_bound,
                                     {"allow_uids": str(ADMIN_UID), "hold": True}),
    "hamictl": (case_hamictl, {}),
    "hamictl-monitor": (case_hamictl_monitor, {}),
    "hamictl-top": (case_hamictl_top, {}),
    "hamictl-top-interactive": (case_hamictl_top_interactive, {}),
    "hamictl-not-running": (case_hamictl_not_running, {"daemon": False}),
    "hamictl-activation-hangs": (case_hamictl_activation_hangs, {"daemon": False, "activation": True}),
    "activation-through-systemd": (case_activation_through_systemd, {"daemon": False, "activation": True}),
    "only-root-owns-the-name": (case_only_root_owns_the_name, {"daemon": False}),
    "authorization-real-polkit": (case_authorization_real_polkit, {"polkit": "real"}),
}


def main():
    if sys.argv[1:] == ["--list"]:
        print("\n".join(CASES))
        return 0
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        print("usage: test-dbus.py CASE|--list", file=sys.stderr)
        return 2
    if os.geteuid() != 0 or not shutil.which("dbus-daemon") or dbus is None:
        print("SKIP: needs root, dbus-daemon and python3-dbus")
        return 77
    fn, opts = CASES[sys.argv[1]]
    if opts.get("polkit") == "real" and not os.environ.get("HAMI_DBUS_TEST_UNSHARED"):
        # Bind mounts for polkitd must not touch the host: run this case in its own mount namespace.
        if not os.path.exists(POLKITD) or not shutil.which("unshare"):
            print("SKIP: needs polkitd and unshare")
            return 77
        return subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable] + sys.argv,
                              env=dict(os.environ, HAMI_DBUS_TEST_UNSHARED="1")).returncode
    env = Env(**opts)
    try:
        fn(env)
        check_eq(env.stop_daemon(), 0, "bus-test-daemon exit status")
    except Failure as e:
        print("FAIL %s: %s" % (sys.argv[1], e), file=sys.stderr)
        return 1
    finally:
        env.close()
    print("ok %s" % sys.argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
