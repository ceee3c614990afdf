#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""NodePrepareResources/NodeUnprepareResources, v1 and v1beta1: one answer per claim UID."""

import uuid

import grpc

from harness import DRIVER, Daemon, check, is_real_daemon, sim


def claim(name="c"):
    return ("default", name, str(uuid.uuid4()))


with Daemon() as d:
    d.start()
    k = d.kubelet()
    k.register(DRIVER)
    s = sim.stubs()

    for version in ("v1", "v1beta1"):
        claims = [claim("a"), claim("b"), claim("c")]
        res = k.prepare(claims, version)
        check(sorted(res) == sorted(c[2] for c in claims), "%s prepare answers every claim UID" % version)
        check(all(r.error for r in res.values()), "%s prepare: per-claim errors until prepare exists" % version)
        res = k.unprepare(claims, version)
        check(sorted(res) == sorted(c[2] for c in claims), "%s unprepare answers every claim UID" % version)

        check(k.prepare([], version) == {}, "%s prepare with no claims is an empty answer" % version)

        # Bad claims are answered per claim, never by dropping the call.
        good = claim("good")
        res = k.prepare([("default", "nouid", ""), good], version)
        check("" in res and res[""].error, "%s: a claim without UID gets a per-claim error" % version)
        check(good[2] in res, "%s: the other claim is still answered" % version)

        dup = claim("dup")
        res = k.unprepare([dup, dup, dup], version)
        check(list(res) == [dup[2]], "%s: identical duplicates collapse into one answer" % version)
        res = k.unprepare([dup, ("default", "other-name", dup[2])], version)
        check(list(res) == [dup[2]] and res[dup[2]].error,
              "%s: one UID with two names gets an error: %s" % (version, res[dup[2]].error))

        try:
            k.prepare([claim("x%d" % i) for i in range(1025)], version)
            check(False, "%s: 1025 claims are refused" % version)
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.INVALID_ARGUMENT or e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED,
                  "%s: 1025 claims are refused with %s" % (version, e.code().name))
        res = k.prepare([claim("x%d" % i) for i in range(1024)], version)
        check(len(res) == 1024, "%s: 1024 claims are answered" % version)

        try:
            k.prepare([("default", "n" * 300, str(uuid.uuid4()))], version)
            check(False, "%s: a 300-byte claim name is refused" % version)
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.INVALID_ARGUMENT, "%s: a 300-byte name gets INVALID_ARGUMENT" % version)

    if not is_real_daemon():
        # The canned test server prepares "device-*" claims: check the device encoding per version.
        c = claim("device-1")
        r = k.prepare([c], "v1")[c[2]]
        check(not r.error and len(r.devices) == 1, "v1: a prepared claim carries its device")
        dev = r.devices[0]
        check((dev.pool_name, dev.device_name, list(dev.request_names), list(dev.cdi_device_ids))
              == ("test-node", "hami-gpu-0", ["gpu"], ["k8s.hami-core-gpu.project-hami.io/gpu=hami-gpu-0"]),
              "v1: device fields")
        check(dev.share_id != "", "v1: share_id is sent")
        # Ask v1beta1 for raw bytes and parse them as v1: field 5 must be absent on the wire.
        req = s.dra_v1beta1_pb2.NodePrepareResourcesRequest(
            claims=[s.dra_v1beta1_pb2.Claim(namespace=c[0], name=c[1], uid=c[2])]).SerializeToString()
        raw = k.dra_channel().unary_unary("/k8s.io.kubelet.pkg.apis.dra.v1beta1.DRAPlugin/NodePrepareResources")(
            req, timeout=10)
        as_v1 = s.dra_v1_pb2.NodePrepareResourcesResponse.FromString(raw).claims[c[2]]
        check(as_v1.devices[0].device_name == "hami-gpu-0" and as_v1.devices[0].share_id == "",
              "v1beta1: the device without share_id on the wire")
        u = claim("unanswered-1")
        r = k.prepare([u], "v1")[u[2]]
        check("not handled" in r.error, "a claim the driver left unanswered gets an error")

    k.close()
    check(d.alive(), "daemon still running")
    check(d.stop() == 0, "clean exit")
