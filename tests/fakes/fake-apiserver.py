#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A strict fake Kubernetes API server for resource.k8s.io/v1 ResourceSlices.

Speaks HTTPS with client-certificate authentication (and bearer tokens), enforces what
the real API server and the node authorizer enforce for a node's credentials:
resourceVersion/409 semantics, generateName, field selectors (list/watch of slices
without spec.nodeName=<own node> is forbidden for a node), chunked watches,
deletecollection, DeleteOptions preconditions; validates every written object against
the real OpenAPI schema (tests/data/kubernetes, 1.34 or 1.36) plus the server-side rules the
schema cannot express; canonicalises quantities on storage.

A plain-HTTP control port on 127.0.0.1 lets tests inject faults and read counters:
  GET  /stats                 counters (writes by method, requests)
  GET  /slices                stored slices
  POST /faults {json}         down, slow_ms, fail_status+fail_count+retry_after,
                              forbidden, unauthorized, drop_consumable, drop_taints,
                              conflict_next_puts, quantity_style ("plain"),
                              delete_404_next (DELETEs answered 404 {} as a proxy would)
  POST /delete-slices         what the kubelet does: delete all of the node's slices
  POST /delete-slice?name=N
  POST /create-slice {json}   store an object as is (a stale slice from elsewhere)
  POST /claims {json}         store a ResourceClaim
  POST /delete-claim?namespace=NS&name=N
  POST /pods {json}           store a Pod (GET /api/v1/namespaces/NS/pods/N serves it)
  POST /delete-pod?namespace=NS&name=N
  POST /faults {"no_such_api": true}  every API request gets the 404 of a server that
                              does not serve the API (NotFound without details)
  GET  /templates             stored ResourceClaimTemplates (what hami-dra-webhook created)
  POST /compact               forget the event history: old watches get 410 Gone
  POST /recreate-node         new Node UID; slices owned by the old one are collected
  POST /reset-stats
Usage: fake-apiserver.py --certs DIR --state-file FILE [--k8s 1.34|1.36] [--down]
The state file receives {"port": P, "control": C} once listening.
"""

import argparse
import copy
import datetime
import http.server
import json
import os
import random
import re
import socket
import socketserver
import ssl
import string
import sys
import threading
import time
import urllib.parse
import uuid
from decimal import Decimal, ROUND_CEILING

import jsonschema

API = "/apis/resource.k8s.io/v1"
SLICES = API + "/resourceslices"
HISTORY_MAX = 1000

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
C_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
                    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$")
QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[numkMGTPE]|Ki|Mi|Gi|Ti|Pi|Ei)?$")
BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
           "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9), "T": Decimal(10**12),
           "P": Decimal(10**15), "E": Decimal(10**18)}


class Invalid(Exception):
    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details


def not_found(kind, name, group="resource.k8s.io"):
    """The API server's 404 for a named object: details name it (what proves it is gone)."""
    details = {"name": name, "kind": kind}
    if group:
        details["group"] = group
    return Invalid(404, "NotFound", '%s%s "%s" not found' % (kind, "." + group if group else "", name), details)


def invalid(msg):
    raise Invalid(422, "Invalid", msg)


def parse_quantity(s):
    if not isinstance(s, str):
        invalid("quantity must be a string: %r" % (s,))
    m = QUANTITY.match(s)
    if not m or m.group(1) in ("", ".", "+", "-"):
        invalid("quantities must match the regular expression: %r" % s)
    num, suf = Decimal(m.group(1)), m.group(2) or ""
    if suf in BINARY:
        return num * BINARY[suf], "binary"
    if suf and suf[0] in "eE":
        return num * (Decimal(10) ** int(suf[1:])), "decimal"
    return num * DECIMAL[suf], "decimal"


def canonical_quantity(s, style=None):
    """Canonical text as stored. Like the spec says: "1048576" comes back as "1Mi".
    style "plain" stores whole numbers as plain integers ("24Gi" -> "25769803776"), so a
    client comparing quantities as text would see a difference that is none."""
    v, fmt = parse_quantity(s)
    if style == "plain" and v == v.to_integral_value():
        return str(int(v))
    if v == v.to_integral_value() and v != 0:
        iv = int(v)
        if fmt == "binary" or iv % 1024 == 0:
            for suf in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
                if iv % BINARY[suf] == 0:
                    return "%d%s" % (iv // BINARY[suf], suf)
            return str(iv)
        for suf in ("E", "P", "T", "G", "M", "k"):
            if iv % int(DECIMAL[suf]) == 0:
                return "%d%s" % (iv // int(DECIMAL[suf]), suf)
        return str(iv)
    if v == 0:
        return "0"
    milli = (v * 1000).to_integral_value(rounding=ROUND_CEILING)
    return "%dm" % milli


def int_value(s):
    v, _ = parse_quantity(s)
    return int(v.to_integral_value(rounding=ROUND_CEILING))


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def qualified_name(key, what):
    if "/" in key:
        domain, name = key.split("/", 1)
        if len(domain) > 63 or not DNS1123_SUBDOMAIN.match(domain):
            invalid("%s: domain %r is not a DNS subdomain of at most 63 characters" % (what, domain))
    else:
        name = key
    if len(name) > 32 or not C_IDENTIFIER.match(name):
        invalid("%s: %r must be a C identifier of at most 32 characters" % (what, name))


def validate_request_policy(path, cap):
    policy = cap["requestPolicy"]
    value = int_value(cap["value"])
    if "validValues" in policy and "validRange" in policy:
        invalid(path + ".requestPolicy: at most one of validValues and validRange")
    default = int_value(policy["default"]) if "default" in policy else None
    if "validRange" in policy:
        r = policy["validRange"]
        if "min" not in r:
            invalid(path + ".requestPolicy.validRange.min: Required value")
        mn = int_value(r["min"])
        mx = int_value(r["max"]) if "max" in r else None
        st = int_value(r["step"]) if "step" in r else None
        if mn > value:
            invalid(path + ".requestPolicy.validRange.min: must be less than or equal to capacity value")
        if default is not None and default < mn:
            invalid(path + ".requestPolicy.default: must be greater than or equal to validRange.min")
        if mx is not None:
            if mx > value:
                invalid(path + ".requestPolicy.validRange.max: must be less than or equal to capacity value")
            if mn > mx:
                invalid(path + ".requestPolicy.validRange: min must be less than or equal to max")
            if default is not None and default > mx:
                invalid(path + ".requestPolicy.default: must be less than or equal to validRange.max")
        if st is not None:
            if st <= 0:
                invalid(path + ".requestPolicy.validRange.step: must be positive")
            if mn + st > value:
                invalid(path + ".requestPolicy.validRange.step: min + step must be less than or equal to capacity value")
            if default is not None and (default - mn) % st:
                invalid(path + ".requestPolicy.default: must be min plus a multiple of step")
            if mx is not None and (mx - mn) % st:
                invalid(path + ".requestPolicy.validRange.max: must be min plus a multiple of step")
    if "validValues" in policy:
        vals = [int_value(v) for v in policy["validValues"]]
        if len(vals) > 10 or vals != sorted(set(vals)) or any(v > value for v in vals):
            invalid(path + ".requestPolicy.validValues: at most 10, ascending, unique, each <= value")
        if default is not None and default not in vals:
            invalid(path + ".requestPolicy.validValues: must include default")


def validate_device(path, d, version):
    if not isinstance(d.get("name"), str) or not DNS1123_LABEL.match(d["name"]) or len(d["name"]) > 63:
        invalid(path + ".name: must be a DNS label: %r" % d.get("name"))
    attrs, caps = d.get("attributes") or {}, d.get("capacity") or {}
    if len(attrs) + len(caps) > 32:
        invalid(path + ": attributes and capacity together must not have more than 32 entries")
    for k, a in attrs.items():
        qualified_name(k, path + ".attributes")
        keys = [x for x in ("int", "bool", "string", "version") if x in a]
        if len(keys) != 1:
            invalid(path + ".attributes[%s]: exactly one value must be specified" % k)
        if "string" in a and len(a["string"]) > 64:
            invalid(path + ".attributes[%s].string: must not be longer than 64" % k)
        if "version" in a and (len(a["version"]) > 64 or not SEMVER.match(a["version"])):
            invalid(path + ".attributes[%s].version: must be a semantic version: %r" % (k, a["version"]))
    for k, c in caps.items():
        qualified_name(k, path + ".capacity")
        int_value(c["value"])
        if "requestPolicy" in c:
            if not d.get("allowMultipleAllocations"):
                invalid(path + ".capacity[%s].requestPolicy: only allowed when allowMultipleAllocations is true" % k)
            validate_request_policy(path + ".capacity[%s]" % k, c)
    taints = d.get("taints") or []
    if len(taints) > (4 if version == "1.34" else 16):
        invalid(path + ".taints: too many")
    effects = ("NoSchedule", "NoExecute") if version == "1.34" else ("None", "NoSchedule", "NoExecute")
    for i, t in enumerate(taints):
        key = t.get("key", "")
        name = key.split("/", 1)[-1]
        if "/" in key and not DNS1123_SUBDOMAIN.match(key.split("/", 1)[0]):
            invalid(path + ".taints[%d].key: bad prefix" % i)
        if not name or len(name) > 63 or not LABEL_NAME.match(name):
            invalid(path + ".taints[%d].key: must be a qualified name: %r" % (i, key))
        v = t.get("value", "")
        if len(v) > 63 or not LABEL_VALUE.match(v):
            invalid(path + ".taints[%d].value: must be a valid label value: %r" % (i, v))
        if t.get("effect") not in effects:
            invalid(path + ".taints[%d].effect: Unsupported value: %r" % (i, t.get("effect")))


def validate_slice(obj, version, old=None):
    if obj.get("apiVersion") != "resource.k8s.io/v1" or obj.get("kind") != "ResourceSlice":
        invalid("apiVersion/kind must be resource.k8s.io/v1 ResourceSlice")
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    for o in meta.get("ownerReferences") or []:
        for k in ("apiVersion", "kind", "name", "uid"):
            if not o.get(k):
                invalid("metadata.ownerReferences.%s: Required value" % k)
    if not isinstance(spec.get("driver"), str) or len(spec["driver"]) > 63 or not DNS1123_SUBDOMAIN.match(spec["driver"]):
        invalid("spec.driver: must be a DNS subdomain of at most 63 characters")
    pool = spec.get("pool") or {}
    if not pool.get("name") or len(pool["name"]) > 253 or not all(DNS1123_SUBDOMAIN.match(p) for p in pool["name"].split("/")):
        invalid("spec.pool.name: invalid")
    if pool.get("generation", 0) < 0 or pool.get("resourceSliceCount", 0) <= 0:
        invalid("spec.pool: generation must be >= 0 and resourceSliceCount > 0")
    chosen = [k for k in ("nodeName", "nodeSelector", "allNodes", "perDeviceNodeSelection") if spec.get(k)]
    if len(chosen) != 1:
        invalid("spec: exactly one of nodeName, nodeSelector, allNodes, perDeviceNodeSelection is required")
    devices = spec.get("devices") or []
    limit = 128
    if version != "1.34" and any(d.get("taints") for d in devices):
        limit = 64
    if len(devices) > limit:
        invalid("spec.devices: must have at most %d items" % limit)
    names = set()
    for i, d in enumerate(devices):
        validate_device("spec.devices[%d]" % i, d, version)
        if d["name"] in names:
            invalid("spec.devices[%d].name: Duplicate value" % i)
        names.add(d["name"])
    if old is not None:
        for k in ("driver", "nodeName"):
            if old["spec"].get(k) != spec.get(k):
                invalid("spec.%s: field is immutable" % k)
        if old["spec"]["pool"]["name"] != pool.get("name"):
            invalid("spec.pool.name: field is immutable")


def canonicalise_slice(obj, style=None):
    for d in obj["spec"].get("devices") or []:
        for c in (d.get("capacity") or {}).values():
            c["value"] = canonical_quantity(c["value"], style)
            p = c.get("requestPolicy")
            if p:
                if "default" in p:
                    p["default"] = canonical_quantity(p["default"], style)
                r = p.get("validRange")
                for k in ("min", "max", "step"):
                    if r and k in r:
                        r[k] = canonical_quantity(r[k], style)
                if "validValues" in p:
                    p["validValues"] = [canonical_quantity(v, style) for v in p["validValues"]]
        for t in d.get("taints") or []:
            t.setdefault("timeAdded", now_rfc3339())


def drop_disabled_fields(obj, faults, old=None):
    for d in obj["spec"].get("devices") or []:
        if faults.get("drop_consumable"):
            d.pop("allowMultipleAllocations", None)
            for c in (d.get("capacity") or {}).values():
                c.pop("requestPolicy", None)
        if faults.get("drop_taints"):
            d.pop("taints", None)


class State:
    def __init__(self, args):
        self.lock = threading.Condition()
        self.args = args
        self.rv = 100
        self.slices = {}
        self.claims = {}
        self.pods = {}             # (namespace, name) -> Pod
        self.templates = {}        # (namespace, name) -> ResourceClaimTemplate
        self.history = []          # (rv, type, obj)
        self.faults = {}
        self.stats = {}
        self.node_uid = str(uuid.uuid4())
        with open(args.schema) as f:
            defs = json.load(f)["definitions"]
        self.validator = jsonschema.Draft4Validator(
            {"$ref": "#/definitions/io.k8s.api.resource.v1.ResourceSlice", "definitions": defs})
        self.template_validator = jsonschema.Draft4Validator(
            {"$ref": "#/definitions/io.k8s.api.resource.v1.ResourceClaimTemplate", "definitions": defs})
        self.epoch = 0             # bumped when going down: watches end

    def count(self, key):
        self.stats[key] = self.stats.get(key, 0) + 1

    def next_rv(self):
        self.rv += 1
        return str(self.rv)

    def record(self, typ, obj):
        self.history.append((int(obj["metadata"]["resourceVersion"]), typ, copy.deepcopy(obj)))
        del self.history[:-HISTORY_MAX]
        self.lock.notify_all()

    def delete(self, name):
        obj = self.slices.pop(name)
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = self.next_rv()
        self.record("DELETED", obj)
        return obj


def status(code, reason, message, details=None):
    s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": message, "reason": reason, "code": code}
    if details is not None:
        s["details"] = details
    return s


def parse_selector(sel):
    out = {}
    if not sel:
        return out
    for term in sel.split(","):
        m = re.match(r"^([A-Za-z.]+)(==|=)(.*)$", term)
        if not m:
            raise Invalid(400, "BadRequest", "unable to parse requirement: %r" % term)
        if m.group(1) not in ("spec.nodeName", "spec.driver", "metadata.name"):
            raise Invalid(400, "BadRequest", "field label not supported: %s" % m.group(1))
        out[m.group(1)] = m.group(3)
    return out


def matches(obj, sel):
    for k, v in sel.items():
        if k == "metadata.name":
            got = obj["metadata"].get("name")
        else:
            got = obj["spec"].get(k.split(".", 1)[1])
        if (got or "") != v:
            return False
    return True


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-apiserver"

    def log_message(self, fmt, *args):
        if os.environ.get("FAKE_APISERVER_VERBOSE"):
            sys.stderr.write("fake-apiserver: " + (fmt % args) + "\n")

    @property
    def state(self):
        return self.server.state

    def send_json(self, code, obj, headers=None):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        # one write (one TLS record) for headers and body
        self._headers_buffer.append(b"\r\n" + body)
        self.flush_headers()

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > 3 * 1024 * 1024:
            raise Invalid(413, "RequestEntityTooLarge", "request body too large")
        raw = self.rfile.read(n) if n else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as e:
            raise Invalid(400, "BadRequest", "invalid JSON: %s" % e)

    # who is calling: ("node", name) for system:node:<name>, ("sa", name) for a token
    def identity(self):
        cert = self.connection.getpeercert() if hasattr(self.connection, "getpeercert") else None
        if cert:
            for rdn in cert.get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        if v.startswith("system:node:"):
                            return ("node", v[len("system:node:"):])
                        return ("user", v)
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            tok = auth[7:].strip()
            if tok in self.state.args.tokens:
                return ("sa", self.state.args.tokens[tok])
        return None

    def handle_any(self, method):
        st = self.state
        if st.faults.get("down"):
            # A server that went down drops its kept-alive connections too.
            self.close_connection = True
            return None
        try:
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
            body = self.read_body() if method in ("POST", "PUT", "DELETE") else None
            with st.lock:
                st.count("requests")
                if method != "GET" and url.path.startswith(SLICES):
                    st.count("writes")
                    st.count("writes_" + method)
                faults = dict(st.faults)
                if faults.get("fail_count", 0) > 0:
                    st.faults["fail_count"] -= 1
            if faults.get("slow_ms"):
                time.sleep(faults["slow_ms"] / 1000.0)
            if faults.get("fail_count", 0) > 0:
                code = faults.get("fail_status", 503)
                hdr = {"Retry-After": str(faults["retry_after"])} if "retry_after" in faults else {}
                return self.send_json(code, status(code, "TooManyRequests" if code == 429 else "InternalError",
                                                   "injected failure"), hdr)
            who = self.identity()
            if who is None or faults.get("unauthorized"):
                return self.send_json(401, status(401, "Unauthorized", "Unauthorized"))
            if faults.get("forbidden"):
                return self.send_json(403, status(403, "Forbidden", "forbidden: injected by the test"))
            if faults.get("no_such_api"):
                return self.send_json(404, status(404, "NotFound", "the server could not find the requested resource",
                                                  {}))
            return self.route(method, url.path, query, body, who, faults)
        except Invalid as e:
            return self.send_json(e.code, status(e.code, e.reason, e.message, e.details))
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            return None

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_DELETE(self):
        self.handle_any("DELETE")

    def do_PATCH(self):
        self.send_json(415, status(415, "UnsupportedMediaType", "PATCH not supported by the fake"))

    def forbid(self, msg):
        raise Invalid(403, "Forbidden", msg)

    def route(self, method, path, query, body, who, faults):
        st = self.state
        m = re.match(r"^/api/v1/nodes/([^/]+)$", path)
        if m and method == "GET":
            name = urllib.parse.unquote(m.group(1))
            if who[0] == "node" and who[1] != name:
                # The node authorizer's words (plugin/pkg/auth/authorizer/node), as the
                # API server wraps them.
                self.forbid('nodes "%s" is forbidden: User "system:node:%s" cannot get resource "nodes" in API '
                            'group "" at the cluster scope: node \'%s\' cannot read \'%s\', only its own Node object'
                            % (name, who[1], who[1], name))
            if name != st.args.node:
                raise not_found("nodes", name, group="")
            return self.send_json(200, {"kind": "Node", "apiVersion": "v1",
                                        "metadata": {"name": name, "uid": st.node_uid, "resourceVersion": "1"}})
        m = re.match(r"^" + API + r"/namespaces/([^/]+)/resourceclaims/([^/]+)$", path)
        if m and method == "GET":
            key = (urllib.parse.unquote(m.group(1)), urllib.parse.unquote(m.group(2)))
            with st.lock:
                claim = st.claims.get(key)
            if not claim:
                raise not_found("resourceclaims", key[1])
            return self.send_json(200, claim)
        m = re.match(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)$", path)
        if m and method == "GET":
            key = (urllib.parse.unquote(m.group(1)), urllib.parse.unquote(m.group(2)))
            with st.lock:
                st.count("pod_gets")
                pod = st.pods.get(key)
            if not pod:
                raise not_found("pods", key[1], group="")
            node = (pod.get("spec") or {}).get("nodeName")
            if who[0] == "node" and node and node != who[1]:
                # AuthorizeNodeWithSelectors: a node gets only the pods bound to it.
                self.forbid('pods "%s" is forbidden: User "system:node:%s" cannot get resource "pods" in API '
                            'group "" in the namespace "%s": no relationship found between node \'%s\' and '
                            'this object' % (key[1], who[1], key[0], who[1]))
            return self.send_json(200, pod)
        m = re.match(r"^" + API + r"/namespaces/([^/]+)/resourceclaimtemplates(?:/([^/]+))?$", path)
        if m:
            return self.templates_route(method, urllib.parse.unquote(m.group(1)),
                                        urllib.parse.unquote(m.group(2)) if m.group(2) else None, body, who)
        if path == SLICES:
            return self.slices_collection(method, query, body, who, faults)
        m = re.match(r"^" + SLICES + r"/([^/]+)$", path)
        if m:
            return self.slices_item(method, urllib.parse.unquote(m.group(1)), body, who, faults)
        raise Invalid(404, "NotFound", "the server could not find the requested resource", {})

    def templates_route(self, method, ns, name, body, who):
        """POST (create, 201/409) and GET of one ResourceClaimTemplate; never for a node."""
        st = self.state
        if who[0] == "node":
            self.forbid('resourceclaimtemplates.resource.k8s.io is forbidden: User "system:node:%s" cannot '
                        'access resourceclaimtemplates' % who[1])
        if name is not None and method == "GET":
            with st.lock:
                obj = st.templates.get((ns, name))
            if not obj:
                raise not_found("resourceclaimtemplates", name)
            return self.send_json(200, obj)
        if name is not None or method != "POST":
            raise Invalid(405, "MethodNotAllowed", "method not allowed")
        if not isinstance(body, dict):
            raise Invalid(400, "BadRequest", "body required")
        if body.get("apiVersion") != "resource.k8s.io/v1" or body.get("kind") != "ResourceClaimTemplate":
            raise Invalid(400, "BadRequest", "expected resource.k8s.io/v1 ResourceClaimTemplate, got %s %s"
                          % (body.get("apiVersion"), body.get("kind")))
        errors = sorted(st.template_validator.iter_errors(body), key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            invalid("schema: %s at %s" % (e.message, "/".join(str(p) for p in e.path)))
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if meta.get("namespace", ns) != ns:
            raise Invalid(400, "BadRequest", "the namespace of the provided object does not match the namespace "
                          "sent on the request")
        meta["namespace"] = ns
        if not meta.get("name") or len(meta["name"]) > 253 or not DNS1123_SUBDOMAIN.match(meta["name"]):
            invalid("metadata.name: must be a DNS subdomain: %r" % meta.get("name"))
        if not isinstance(obj.get("spec"), dict) or not isinstance(obj["spec"].get("spec"), dict):
            invalid("spec.spec: Required value")
        with st.lock:
            if (ns, meta["name"]) in st.templates:
                st.count("templates_conflicts")
                raise Invalid(409, "AlreadyExists", 'resourceclaimtemplates.resource.k8s.io "%s" already exists'
                              % meta["name"])
            meta["uid"] = str(uuid.uuid4())
            meta["resourceVersion"] = st.next_rv()
            meta["creationTimestamp"] = now_rfc3339()
            st.templates[(ns, meta["name"])] = obj
            st.count("templates_created")
            out = copy.deepcopy(obj)
        return self.send_json(201, out)

    def node_selector_check(self, sel, who):
        if who[0] == "node" and sel.get("spec.nodeName") != who[1]:
            self.forbid('resourceslices.resource.k8s.io is forbidden: User "system:node:%s" cannot list '
                        'resourceslices without a spec.nodeName=%s field selector' % (who[1], who[1]))

    def node_write_check(self, obj, who):
        if who[0] == "node" and obj.get("spec", {}).get("nodeName") != who[1]:
            self.forbid("node %s may only write slices with spec.nodeName=%s" % (who[1], who[1]))

    def slices_collection(self, method, query, body, who, faults):
        st = self.state
        sel = parse_selector(query.get("fieldSelector", ""))
        if method == "GET":
            self.node_selector_check(sel, who)
            if query.get("watch") in ("true", "1"):
                with st.lock:
                    st.count("watches")
                return self.watch(sel, query)
            with st.lock:
                st.count("lists")
                items = [copy.deepcopy(o) for o in st.slices.values() if matches(o, sel)]
                rv = str(st.rv)
            return self.send_json(200, {"kind": "ResourceSliceList", "apiVersion": "resource.k8s.io/v1",
                                        "metadata": {"resourceVersion": rv}, "items": items})
        if method == "DELETE":
            self.node_selector_check(sel, who)
            with st.lock:
                gone = [st.delete(n) for n, o in list(st.slices.items()) if matches(o, sel)]
            return self.send_json(200, {"kind": "ResourceSliceList", "apiVersion": "resource.k8s.io/v1",
                                        "metadata": {}, "items": gone})
        if method == "POST":
            if not isinstance(body, dict):
                raise Invalid(400, "BadRequest", "body required")
            self.node_write_check(body, who)
            with st.lock:
                obj = self.admit(body, faults, None)
                meta = obj["metadata"]
                if not meta.get("name"):
                    gen = meta.get("generateName") or ""
                    if not gen:
                        invalid("metadata.name: Required value: name or generateName is required")
                    base = gen[:58]
                    for _ in range(10):
                        name = base + "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
                        if name not in st.slices:
                            break
                    meta["name"] = name
                if len(meta["name"]) > 253 or not DNS1123_SUBDOMAIN.match(meta["name"]):
                    invalid("metadata.name: must be a DNS subdomain: %r" % meta["name"])
                if meta["name"] in st.slices:
                    raise Invalid(409, "AlreadyExists", 'resourceslices "%s" already exists' % meta["name"])
                meta["uid"] = str(uuid.uuid4())
                meta["resourceVersion"] = st.next_rv()
                meta["creationTimestamp"] = now_rfc3339()
                meta["generation"] = 1
                st.slices[meta["name"]] = obj
                st.count("created")
                st.record("ADDED", obj)
                out = copy.deepcopy(obj)
            return self.send_json(201, out)
        raise Invalid(405, "MethodNotAllowed", "method not allowed")

    def admit(self, body, faults, old):
        """Drop gated fields, validate (schema + server rules), canonicalise."""
        st = self.state
        obj = copy.deepcopy(body)
        if not isinstance(obj.get("spec"), dict):
            invalid("spec: Required value")
        drop_disabled_fields(obj, faults, old)
        errors = sorted(st.validator.iter_errors(obj), key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            invalid("schema: %s at %s" % (e.message, "/".join(str(p) for p in e.path)))
        validate_slice(obj, st.args.k8s, old)
        canonicalise_slice(obj, faults.get("quantity_style"))
        obj.pop("status", None)
        return obj

    def slices_item(self, method, name, body, who, faults):
        st = self.state
        with st.lock:
            cur = st.slices.get(name)
            if method == "GET":
                if not cur or (who[0] == "node" and cur["spec"].get("nodeName") != who[1]):
                    raise not_found("resourceslices", name)
                return self.send_json(200, copy.deepcopy(cur))
            if cur and who[0] == "node" and cur["spec"].get("nodeName") != who[1]:
                self.forbid("node %s may not modify slice %s of another node" % (who[1], name))
            if method == "DELETE":
                if st.faults.get("delete_404_next", 0) > 0:
                    st.faults["delete_404_next"] -= 1
                    return self.send_json(404, {})  # a proxy's 404: proves nothing
                if not cur:
                    raise not_found("resourceslices", name)
                pre = (body or {}).get("preconditions") or {}
                if "uid" in pre and pre["uid"] != cur["metadata"]["uid"]:
                    raise Invalid(409, "Conflict", "Precondition failed: UID in precondition: %s, UID in object meta: %s"
                                  % (pre["uid"], cur["metadata"]["uid"]))
                if "resourceVersion" in pre and pre["resourceVersion"] != cur["metadata"]["resourceVersion"]:
                    raise Invalid(409, "Conflict", "Precondition failed: ResourceVersion in precondition: %s, "
                                  "ResourceVersion in object meta: %s" % (pre["resourceVersion"], cur["metadata"]["resourceVersion"]))
                st.count("deleted")
                gone = st.delete(name)
                return self.send_json(200, gone)
            if method == "PUT":
                if not isinstance(body, dict):
                    raise Invalid(400, "BadRequest", "body required")
                if not cur:
                    raise not_found("resourceslices", name)
                if (body.get("metadata") or {}).get("name") != name:
                    invalid("metadata.name: does not match the name in the URL")
                self.node_write_check(body, who)
                if st.faults.get("conflict_next_puts", 0) > 0:
                    # a concurrent writer got there first
                    st.faults["conflict_next_puts"] -= 1
                    cur["metadata"]["resourceVersion"] = st.next_rv()
                    cur["metadata"].setdefault("labels", {})["touched"] = cur["metadata"]["resourceVersion"]
                    st.record("MODIFIED", cur)
                rv = (body.get("metadata") or {}).get("resourceVersion")
                if not rv:
                    invalid("metadata.resourceVersion: Invalid value: 0x0: must be specified for an update")
                if rv != cur["metadata"]["resourceVersion"]:
                    raise Invalid(409, "Conflict", 'Operation cannot be fulfilled on resourceslices.resource.k8s.io "%s": '
                                  "the object has been modified; please apply your changes to the latest version and try again" % name)
                obj = self.admit(body, faults, cur)
                meta = obj["metadata"]
                for k in ("uid", "creationTimestamp"):
                    meta[k] = cur["metadata"][k]
                meta["generation"] = cur["metadata"].get("generation", 1) + (obj["spec"] != cur["spec"])
                if obj == cur:
                    return self.send_json(200, copy.deepcopy(cur))    # no-op update: no new rv
                meta["resourceVersion"] = st.next_rv()
                st.slices[name] = obj
                st.count("updated")
                st.record("MODIFIED", obj)
                return self.send_json(200, copy.deepcopy(obj))
        raise Invalid(405, "MethodNotAllowed", "method not allowed")

    def write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def watch(self, sel, query):
        st = self.state
        timeout = min(int(query.get("timeoutSeconds") or 1800), 1800)
        deadline = time.monotonic() + timeout
        since = query.get("resourceVersion") or "0"
        with st.lock:
            epoch = st.epoch
            if since == "0":
                pending = [("ADDED", copy.deepcopy(o)) for o in st.slices.values() if matches(o, sel)]
                last = st.rv
            else:
                last = int(since)
                oldest = st.history[0][0] if st.history else st.rv + 1
                if last < st.rv and last + 1 < oldest:
                    pending, last = None, None
                else:
                    pending = []
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            if pending is None:
                ev = {"type": "ERROR", "object": status(410, "Expired", "too old resource version: %s" % since)}
                self.write_chunk(json.dumps(ev).encode() + b"\n")
            else:
                for typ, obj in pending:
                    self.write_chunk(json.dumps({"type": typ, "object": obj}).encode() + b"\n")
                while time.monotonic() < deadline:
                    with st.lock:
                        if st.epoch != epoch:
                            break
                        events = [(rv, t, o) for rv, t, o in st.history if rv > last]
                        if not events:
                            st.lock.wait(timeout=0.2)
                            continue
                        last = events[-1][0]
                    for rv, typ, obj in events:
                        if matches(obj, sel):
                            self.write_chunk(json.dumps({"type": typ, "object": obj}).encode() + b"\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass
        self.close_connection = True


class TLSServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, state, ctx):
        self.state = state
        self.ctx = ctx
        super().__init__(addr, Handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        sock.settimeout(30)
        # headers and body go out as separate writes: without this, Nagle holds the body
        # until the client's delayed ACK (40 ms) and the fake, not the client, sets the pace
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            return self.ctx.wrap_socket(sock, server_side=True), addr
        except (ssl.SSLError, OSError):
            sock.close()
            raise

    def handle_error(self, request, client_address):
        pass


class ControlHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, obj, code=200):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        st = self.server.state
        with st.lock:
            if self.path == "/stats":
                return self.reply(dict(st.stats, rv=st.rv, node_uid=st.node_uid))
            if self.path == "/slices":
                return self.reply(sorted(st.slices.values(), key=lambda o: o["metadata"]["name"]))
            if self.path == "/templates":
                return self.reply([st.templates[k] for k in sorted(st.templates)])
        self.reply({"error": "unknown"}, 404)

    def do_POST(self):
        st = self.server.state
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n)) if n else {}
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/faults":
            with st.lock:
                st.faults.update(body)
                down = st.faults.get("down")
            self.server.api.set_down(bool(down))
            return self.reply(st.faults)
        with st.lock:
            if url.path == "/reset-stats":
                st.stats = {}
            elif url.path == "/delete-slices":
                for name in list(st.slices):
                    st.delete(name)
            elif url.path == "/delete-slice":
                if q.get("name") in st.slices:
                    st.delete(q["name"])
            elif url.path == "/create-slice":
                body["metadata"].setdefault("uid", str(uuid.uuid4()))
                body["metadata"]["resourceVersion"] = st.next_rv()
                st.slices[body["metadata"]["name"]] = body
                st.record("ADDED", body)
            elif url.path == "/compact":
                # etcd compaction: older resourceVersions are gone, watches from them get 410
                st.rv += 10
                st.history = []
            elif url.path == "/recreate-node":
                # the Node was deleted and registered again: new UID, and the garbage
                # collector deletes every slice owned by the old one
                old = st.node_uid
                st.node_uid = str(uuid.uuid4())
                for name, o in list(st.slices.items()):
                    if any(r.get("uid") == old for r in o["metadata"].get("ownerReferences") or []):
                        st.delete(name)
            elif url.path == "/claims":
                st.claims[(body["metadata"]["namespace"], body["metadata"]["name"])] = body
            elif url.path == "/delete-claim":
                st.claims.pop((q.get("namespace", "default"), q.get("name")), None)
            elif url.path == "/pods":
                body["metadata"].setdefault("uid", str(uuid.uuid4()))
                st.pods[(body["metadata"].get("namespace", "default"), body["metadata"]["name"])] = body
            elif url.path == "/delete-pod":
                st.pods.pop((q.get("namespace", "default"), q.get("name")), None)
            else:
                return self.reply({"error": "unknown"}, 404)
        self.reply({"ok": True})


class Api:
    """The TLS listener, which tests can take down and bring back on the same port."""

    def __init__(self, state, ctx, port):
        self.state, self.ctx, self.port = state, ctx, port
        self.server = None
        self.mutex = threading.Lock()

    def set_down(self, down):
        with self.mutex:
            if down and self.server:
                with self.state.lock:
                    self.state.epoch += 1
                    self.state.lock.notify_all()
                self.server.shutdown()
                self.server.server_close()
                self.server = None
            elif not down and not self.server:
                self.server = TLSServer(("127.0.0.1", self.port), self.state, self.ctx)
                self.port = self.server.server_address[1]
                threading.Thread(target=self.server.serve_forever, daemon=True).start()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--certs", required=True)
    ap.add_argument("--state-file", required=True)
    ap.add_argument("--schema")
    ap.add_argument("--k8s", default="1.36", choices=("1.34", "1.36"))
    ap.add_argument("--node", default="node1")
    ap.add_argument("--token", action="append", default=[], help="TOKEN=USER")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--down", action="store_true", help="start with the API port closed")
    args = ap.parse_args()
    args.tokens = dict(t.split("=", 1) for t in args.token)
    if not args.schema:
        data = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../data")
        args.schema = os.path.join(data, "kubernetes/resource.k8s.io-v1.from-swagger-v%s.json" % args.k8s)

    state = State(args)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(args.certs, "server.crt"), os.path.join(args.certs, "server.key"))
    ctx.load_verify_locations(os.path.join(args.certs, "ca.crt"))
    ctx.verify_mode = ssl.CERT_OPTIONAL

    port = args.port
    if port == 0:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
    api = Api(state, ctx, port)
    if not args.down:
        api.set_down(False)
    control = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ControlHandler)
    control.daemon_threads = True
    control.state, control.api = state, api
    with open(args.state_file + ".tmp", "w") as f:
        json.dump({"port": api.port, "control": control.server_address[1], "node_uid": state.node_uid}, f)
    os.rename(args.state_file + ".tmp", args.state_file)
    try:
        control.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
