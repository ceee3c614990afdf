#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Bad input gets gRPC errors and the daemon stays up: unknown methods, garbage,
truncated and oversized messages, non-HTTP/2 bytes."""

import os
import uuid

import grpc

import h2raw
from harness import DRIVER, Daemon, check, sim

DRA_V1 = "/k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin/"
DRA_V1BETA1 = "/k8s.io.kubelet.pkg.apis.dra.v1beta1.DRAPlugin/"
REG = "/pluginregistration.Registration/"


def raw_call(path, method, payload, timeout=10):
    with grpc.insecure_channel("unix:" + path, options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
        try:
            ch.unary_unary(method)(payload, timeout=timeout)
            return grpc.StatusCode.OK
        except grpc.RpcError as e:
            return e.code()


with Daemon() as d:
    d.start()
    k = d.kubelet()
    k.register(DRIVER)
    s = sim.stubs()
    UNIMPLEMENTED = grpc.StatusCode.UNIMPLEMENTED
    INVALID = grpc.StatusCode.INVALID_ARGUMENT

    for sock, name in ((d.reg_sock, "registration"), (d.dra_sock, "DRA")):
        check(raw_call(sock, "/foo.Bar/Baz", b"") == UNIMPLEMENTED, "%s socket: unknown method -> UNIMPLEMENTED" % name)
        check(raw_call(sock, "/v1alpha3.Node/NodePrepareResources", b"") == UNIMPLEMENTED,
              "%s socket: old v1alpha3 service -> UNIMPLEMENTED" % name)
    check(raw_call(d.reg_sock, DRA_V1 + "NodePrepareResources", b"") == UNIMPLEMENTED,
          "DRA methods are not served on the registration socket")
    check(raw_call(d.dra_sock, REG + "GetInfo", b"") == UNIMPLEMENTED,
          "GetInfo is not served on the DRA socket")

    garbage = b"\xff\xff\xff\xff\x0f" + os.urandom(64)
    for method in (DRA_V1 + "NodePrepareResources", DRA_V1 + "NodeUnprepareResources",
                   DRA_V1BETA1 + "NodePrepareResources", DRA_V1BETA1 + "NodeUnprepareResources",
                   "/v1alpha1.DRAResourceHealth/NodeWatchResources", "/v1.DRAResourceHealth/NodeWatchResources"):
        check(raw_call(d.dra_sock, method, garbage) == INVALID, "garbage to %s -> INVALID_ARGUMENT" % method)
    for method in ("GetInfo", "NotifyRegistrationStatus"):
        check(raw_call(d.reg_sock, REG + method, garbage) == INVALID, "garbage to %s -> INVALID_ARGUMENT" % method)

    req = s.dra_v1_pb2.NodePrepareResourcesRequest(
        claims=[s.dra_v1_pb2.Claim(namespace="default", name="c%d" % i, uid=str(uuid.uuid4())) for i in range(3)]
    ).SerializeToString()
    check(raw_call(d.dra_sock, DRA_V1 + "NodePrepareResources", req[:len(req) - 7]) == INVALID,
          "a truncated protobuf message -> INVALID_ARGUMENT")
    big = s.dra_v1_pb2.NodePrepareResourcesRequest(
        claims=[s.dra_v1_pb2.Claim(namespace="default", name="big", uid="u" * (5 << 20))]).SerializeToString()
    check(raw_call(d.dra_sock, DRA_V1 + "NodePrepareResources", big) == grpc.StatusCode.RESOURCE_EXHAUSTED,
          "a 5 MiB message -> RESOURCE_EXHAUSTED")
    many = b"\x0a\x00" * 100000  # 100,000 empty claims in 200 kB
    check(raw_call(d.dra_sock, DRA_V1 + "NodePrepareResources", many) == grpc.StatusCode.RESOURCE_EXHAUSTED,
          "100,000 empty claims -> RESOURCE_EXHAUSTED before decoding them")
    unknown = b"\x78\x01" * 100000  # field 15 varint, 100,000 times
    check(raw_call(d.reg_sock, REG + "GetInfo", unknown) == grpc.StatusCode.RESOURCE_EXHAUSTED,
          "100,000 unknown fields -> RESOURCE_EXHAUSTED")

    # Below what a gRPC library lets you send: a message frame that promises 100 bytes and has 3.
    for sock in (d.dra_sock, d.reg_sock):
        c = h2raw.start(sock)
        h2raw.send_call(c, DRA_V1 + "NodePrepareResources" if sock == d.dra_sock else REG + "GetInfo",
                        b"\x00" + (100).to_bytes(4, "big") + b"\x0a\x01x")
        outcome = h2raw.read_outcome(c)
        c.close()
        check(outcome in ("headers", "rst"), "a truncated gRPC frame ends the call with a status (%s)" % outcome)

    # A compressed-flag frame with no compression negotiated.
    c = h2raw.start(d.dra_sock)
    h2raw.send_call(c, DRA_V1 + "NodePrepareResources", b"\x01" + (3).to_bytes(4, "big") + b"abc")
    check(h2raw.read_outcome(c) in ("headers", "rst"), "a bogus compressed frame ends the call with a status")
    c.close()

    # Not HTTP/2 at all.
    for sock in (d.dra_sock, d.reg_sock):
        c = h2raw.connect(sock)
        try:
            c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(4096))
            outcome = h2raw.read_outcome(c)
        except (BrokenPipeError, ConnectionResetError):
            outcome = "closed"
        check(outcome in ("goaway", "closed"), "non-HTTP/2 bytes close the connection (%s)" % outcome)
        c.close()

    check(d.alive(), "daemon still running after all of it")
    check(k.get_info() == k.info, "and still answers GetInfo")
    res = k.prepare([("default", "after", "u-after")], "v1")
    check("u-after" in res, "and still answers prepare")
    k.close()
    check(d.stop() == 0, "clean exit")
