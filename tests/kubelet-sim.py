#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A kubelet simulator: speaks the kubelet's side of plugin registration, DRAPlugin
(v1, v1beta1) and DRAResourceHealth (v1alpha1, v1) over the real Unix sockets.

Library:  sim = load(); k = sim.Kubelet(reg_sock); info = k.register(driver) ...
CLI:      kubelet-sim.py --registry-dir DIR [--driver-name NAME] [--wait SECONDS]
          finds <driver>-reg.sock the way the kubelet's plugin watcher does, registers,
          reads the device health stream and tries prepare/unprepare, and says what happened.

Stubs are generated from proto/ with Debian's grpc_tools into the build directory
($HAMI_DRA_BUILD_ROOT, default ./build) the first time they are needed.
"""

import argparse
import importlib
import os
import stat
import subprocess
import sys
import tempfile
import time
import uuid

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get("HAMI_DRA_SOURCE_ROOT", os.path.dirname(HERE))
BUILD_ROOT = os.environ.get("HAMI_DRA_BUILD_ROOT", os.path.join(SOURCE_ROOT, "build"))
PROTO_DIR = os.path.join(SOURCE_ROOT, "proto")
PROTOS = ["pluginregistration", "dra-v1", "dra-v1beta1", "health-v1alpha1", "health-v1"]

# What the kubelet knows (kubelet 1.34+ with the health-negotiation change).
KNOWN_DRA_SERVICES = ["v1.DRAPlugin", "v1beta1.DRAPlugin"]
KNOWN_HEALTH_SERVICES = ["v1.DRAResourceHealth", "v1alpha1.DRAResourceHealth"]  # preference order
GET_INFO_TIMEOUT = 1.0  # the kubelet's deadline
CALL_TIMEOUT = 45.0  # defaultClientCallTimeout


def _stub_dir():
    return os.path.join(BUILD_ROOT, "tests", "kubelet-stubs")


def generate_stubs():
    """protoc once into the build dir; atomic rename so parallel tests don't race."""
    out = _stub_dir()
    newest = max(os.path.getmtime(os.path.join(PROTO_DIR, p + ".proto")) for p in PROTOS)
    stamp = os.path.join(out, "stamp")
    if os.path.exists(stamp) and os.path.getmtime(stamp) >= newest:
        return out
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".kubelet-stubs-", dir=os.path.dirname(out))
    subprocess.run(["/usr/bin/python3", "-m", "grpc_tools.protoc", "-I", PROTO_DIR,
                    "--python_out=" + tmp, "--grpc_python_out=" + tmp]
                   + [os.path.join(PROTO_DIR, p + ".proto") for p in PROTOS], check=True)
    open(os.path.join(tmp, "stamp"), "w").close()
    try:
        os.rename(tmp, out)
    except OSError:  # someone else won the race, or an old copy is in the way
        if os.path.exists(stamp) and os.path.getmtime(stamp) >= newest:
            subprocess.run(["rm", "-rf", tmp], check=False)
            return out
        old = out + ".old-%d" % os.getpid()
        os.rename(out, old)
        os.rename(tmp, out)
        subprocess.run(["rm", "-rf", old], check=False)
    return out


class _Stubs:
    pass


_stubs = None


def stubs():
    global _stubs
    if _stubs:
        return _stubs
    out = generate_stubs()
    if out not in sys.path:
        sys.path.insert(0, out)
    s = _Stubs()
    for p in PROTOS:
        for suffix in ("_pb2", "_pb2_grpc"):
            name = p.replace("-", "_") + suffix
            setattr(s, name, importlib.import_module(name))
    _stubs = s
    return s


class RegistrationError(Exception):
    pass


def validate_plugin_info(info, driver_name):
    """The kubelet's checks (pluginwatcher + DRA handler); returns (dra_service, health_service)."""
    if info.type != "DRAPlugin":
        raise RegistrationError("no handler registered for plugin type %r" % info.type)
    if info.name != driver_name:
        raise RegistrationError("plugin name %r, expected driver %r" % (info.name, driver_name))
    if not info.endpoint.startswith("/"):
        raise RegistrationError("endpoint %r is not an absolute path" % info.endpoint)
    if not info.supported_versions:
        raise RegistrationError("empty supported_versions")
    dra = next((v for v in info.supported_versions if v in KNOWN_DRA_SERVICES), None)
    if dra is None:
        raise RegistrationError("none of %s is a known DRA service" % list(info.supported_versions))
    health = next((v for v in KNOWN_HEALTH_SERVICES if v in info.supported_versions), None)
    return dra, health


def _channel(path):
    # A separate connection per channel, as separate kubelet components would have.
    return grpc.insecure_channel("unix:" + path, options=[("grpc.use_local_subchannel_pool", 1)])


class Kubelet:
    def __init__(self, registration_socket, get_info_timeout=GET_INFO_TIMEOUT):
        self.registration_socket = registration_socket
        self.get_info_timeout = get_info_timeout
        self.info = None
        self.dra_service = None
        self.health_service = None
        self._dra_channel = None

    def close(self):
        if self._dra_channel:
            self._dra_channel.close()
            self._dra_channel = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def get_info(self, timeout=None):
        s = stubs()
        timeout = timeout or self.get_info_timeout
        with _channel(self.registration_socket) as ch:
            stub = s.pluginregistration_pb2_grpc.RegistrationStub(ch)
            return stub.GetInfo(s.pluginregistration_pb2.InfoRequest(), timeout=timeout)

    def notify(self, registered=True, error=""):
        s = stubs()
        with _channel(self.registration_socket) as ch:
            stub = s.pluginregistration_pb2_grpc.RegistrationStub(ch)
            stub.NotifyRegistrationStatus(
                s.pluginregistration_pb2.RegistrationStatus(plugin_registered=registered, error=error), timeout=5)

    def register(self, driver_name):
        """GetInfo, validate as the kubelet does, then NotifyRegistrationStatus."""
        info = self.get_info()
        try:
            self.dra_service, self.health_service = validate_plugin_info(info, driver_name)
        except RegistrationError as e:
            self.notify(False, str(e))
            raise
        self.notify(True)
        self.info = info
        return info

    @property
    def endpoint(self):
        return self.info.endpoint

    def dra_channel(self):
        if not self._dra_channel:
            self._dra_channel = _channel(self.endpoint)
        return self._dra_channel

    def _dra(self, version):
        s = stubs()
        mod = s.dra_v1_pb2 if version == "v1" else s.dra_v1beta1_pb2
        grpc_mod = s.dra_v1_pb2_grpc if version == "v1" else s.dra_v1beta1_pb2_grpc
        return mod, grpc_mod.DRAPluginStub(self.dra_channel())

    def prepare(self, claims, version="v1", timeout=CALL_TIMEOUT):
        """claims: [(namespace, name, uid)]; returns {uid: NodePrepareResourceResponse}."""
        mod, stub = self._dra(version)
        req = mod.NodePrepareResourcesRequest(
            claims=[mod.Claim(namespace=ns, name=n, uid=u) for ns, n, u in claims])
        return dict(stub.NodePrepareResources(req, timeout=timeout).claims)

    def unprepare(self, claims, version="v1", timeout=CALL_TIMEOUT):
        mod, stub = self._dra(version)
        req = mod.NodeUnprepareResourcesRequest(
            claims=[mod.Claim(namespace=ns, name=n, uid=u) for ns, n, u in claims])
        return dict(stub.NodeUnprepareResources(req, timeout=timeout).claims)

    def watch_health(self, version="v1alpha1", timeout=10):
        """Opens NodeWatchResources; returns the call (an iterator of responses; .cancel())."""
        s = stubs()
        if version == "v1":
            mod, grpc_mod = s.health_v1_pb2, s.health_v1_pb2_grpc
        else:
            mod, grpc_mod = s.health_v1alpha1_pb2, s.health_v1alpha1_pb2_grpc
        stub = grpc_mod.DRAResourceHealthStub(self.dra_channel())
        return stub.NodeWatchResources(mod.NodeWatchResourcesRequest(), timeout=timeout)


def health_name(value):
    return {0: "unknown", 1: "healthy", 2: "unhealthy"}.get(value, "invalid(%d)" % value)


def wait_for_socket(path, timeout):
    """The plugin watcher reacts to a socket appearing in the registry directory."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and stat.S_ISSOCK(os.lstat(path).st_mode):
            return True
        time.sleep(0.05)
    return False


def print_prepare(k, claim, version):
    res = k.prepare([claim], version)
    r = res.get(claim[2])
    if r is None:
        print("prepare (%s): no answer for claim %s/%s" % (version, claim[0], claim[1]))
        return 1
    if r.error:
        print("prepare (%s) of claim %s/%s: %s" % (version, claim[0], claim[1], r.error))
        return 0
    print("prepare (%s) of claim %s/%s: devices %s" % (version, claim[0], claim[1],
          ", ".join("%s/%s" % (d.pool_name, d.device_name) for d in r.devices) or "none"))
    for d in r.devices:
        share = getattr(d, "share_id", "")
        print("  %s: CDI devices %s%s" % (d.device_name, ", ".join(d.cdi_device_ids),
              ", share %s" % share if share else ""))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--registry-dir", default="/var/lib/kubelet/plugins_registry")
    ap.add_argument("--driver-name", default="hami-core-gpu.project-hami.io")
    ap.add_argument("--wait", type=float, default=10, help="seconds to wait for the registration socket")
    ap.add_argument("--claim", metavar="NAMESPACE/NAME/UID",
                    help="the claim to prepare (default: default/demo-claim with a random UID)")
    ap.add_argument("--keep", action="store_true", help="leave the claim prepared")
    ap.add_argument("--unprepare-only", action="store_true", help="only unprepare --claim")
    args = ap.parse_args()
    if args.claim and len(args.claim.split("/")) != 3:
        ap.error("--claim wants NAMESPACE/NAME/UID")

    reg = os.path.join(args.registry_dir, args.driver_name + "-reg.sock")
    if not wait_for_socket(reg, args.wait):
        print("no registration socket %s after %gs: is hami-dra-plugin running?" % (reg, args.wait))
        return 1
    k = Kubelet(reg)
    try:
        info = k.register(args.driver_name)
    except RegistrationError as e:
        print("registration REJECTED: %s" % e)
        return 1
    except grpc.RpcError as e:
        print("registration failed: GetInfo: %s %s" % (e.code().name, e.details()))
        return 1
    print("registration accepted: driver %s, endpoint %s, services %s"
          % (info.name, info.endpoint, ", ".join(info.supported_versions)))
    print("kubelet would use %s for prepare/unprepare and %s for device health"
          % (k.dra_service, k.health_service or "nothing"))

    rc = 0
    with k:
        if k.health_service and not args.unprepare_only:
            version = k.health_service.split(".")[0]
            call = k.watch_health(version)
            try:
                first = next(call)
                for d in first.devices:
                    line = "devices: %s %s" % (d.device.device_name, health_name(d.health))
                    if d.message:
                        line += " (%s)" % d.message
                    print(line + " [pool %s]" % d.device.pool_name)
                if not first.devices:
                    print("devices: none reported")
            except grpc.RpcError as e:
                print("health stream failed: %s %s" % (e.code().name, e.details()))
                rc = 1
            finally:
                call.cancel()

        claim = tuple(args.claim.split("/")) if args.claim else ("default", "demo-claim", str(uuid.uuid4()))
        version = k.dra_service.split(".")[0]
        try:
            if not args.unprepare_only:
                rc = max(rc, print_prepare(k, claim, version))
            if not args.keep:
                res = k.unprepare([claim], version)
                r = res.get(claim[2])
                print("unprepare (%s) of claim %s/%s: %s" % (version, claim[0], claim[1],
                      "no answer" if r is None else (r.error or "done")))
        except grpc.RpcError as e:
            print("DRA call failed: %s %s" % (e.code().name, e.details()))
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
