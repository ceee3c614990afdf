#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Every manifest under deploy/ is one the API server would take, and one for us.

Each YAML document is validated against the Kubernetes 1.34 and 1.36 OpenAPI schemas in
tests/data/kubernetes (Draft 4), and, because those schemas do not forbid unknown fields,
walked for fields the schema does not know (a typo kubectl would only warn about). Then
our own rules:
- a DeviceClass is ours: named after the driver, its CEL selects `device.driver == <ours>`;
- claims and templates name our DeviceClass; capacity requests are only `cores` (whole
  numbers 1..100) and `memory` (at least 1Mi);
- CEL expressions and constraints mention only attributes and capacities our slices
  publish (read from src/resourceslice.c, so the two cannot drift apart);
- pods (also in Deployments and other workloads) name claims and templates that deploy/
  defines in the same namespace, containers name the pod's claims and those claims'
  requests;
- admission webhooks are hami-dra-webhook's: called through a Service that deploy/
  defines, on a port that reaches a container port of a workload that Service selects;
  the mutating one at /mutate on pods CREATE only, failurePolicy Fail, sideEffects
  NoneOnDryRun, never for kube-system or its own namespace; the validating one at
  /validate on resourceclaims and resourceclaimtemplates CREATE and UPDATE.

Usage: validate-manifests.py [SOURCE_ROOT]   check SOURCE_ROOT/deploy (default: this repo)
       validate-manifests.py --self-test     show that broken manifests are refused
"""

import copy
import json
import os
import re
import sys
from decimal import Decimal

import jsonschema
import yaml

SRC = os.environ.get("HAMI_DRA_SOURCE_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DRIVER = "hami-core-gpu.project-hami.io"
VERSIONS = ("1.34", "1.36")
CAPACITIES = {"cores", "memory"}

# A workload kind and where its pod spec is.
POD_SPEC_PATHS = {
    "v1/Pod": ("spec",),
    "apps/v1/Deployment": ("spec", "template", "spec"),
    "apps/v1/DaemonSet": ("spec", "template", "spec"),
    "apps/v1/StatefulSet": ("spec", "template", "spec"),
    "batch/v1/Job": ("spec", "template", "spec"),
}

QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[numkMGTPE]|Ki|Mi|Gi|Ti|Pi|Ei)?$")
BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1), "k": Decimal(10**3),
           "M": Decimal(10**6), "G": Decimal(10**9), "T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18)}

# device.attributes["<domain>"].<name>, device.attributes["<domain>"]["<name>"], same for capacity.
CEL_REF = re.compile(r'device\.(attributes|capacity)\s*\[\s*(["\'])([^"\']*)\2\s*\]'
                     r'(?:\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)|\s*\[\s*(["\'])([^"\']*)\5\s*\])?')
CEL_DRIVER = re.compile(r'device\.driver\s*==\s*(["\'])([^"\']*)\1')


def quantity(v):
    """The value of a Kubernetes quantity (a string, or a number as the API server takes)."""
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        return None
    m = QUANTITY.match(str(v))
    if not m or m.group(1) in (".", "+", "-"):
        return None
    num, suf = Decimal(m.group(1)), m.group(2) or ""
    if suf in BINARY:
        return num * BINARY[suf]
    if suf[:1] in ("e", "E"):
        return num * (Decimal(10) ** int(suf[1:]))
    return num * DECIMAL[suf]


def published():
    """The attribute and capacity names src/resourceslice.c puts on every device."""
    with open(os.path.join(SRC, "src/resourceslice.c"), encoding="utf-8") as f:
        text = f.read()
    attrs = set(re.findall(r'attribute_add\w*\(a, (?:g, )?"([^"]+)"', text))
    attrs |= set(re.findall(r'json_add\(a, "([^"]+)"', text))
    caps = set(re.findall(r'json_add\(cap, "([^"]+)"', text))
    if not {"type", "uuid", "productName", "minor"} <= attrs or caps != CAPACITIES:
        raise SystemExit("validate-manifests: cannot read the published attributes from src/resourceslice.c "
                         "(found %s and %s): update published()" % (sorted(attrs), sorted(caps)))
    # Unqualified names are in the driver's domain.
    return {a if "/" in a else "%s/%s" % (DRIVER, a) for a in attrs}, caps


# ---------------------------------------------------------------- schema

class Schema:
    def __init__(self, version):
        path = os.path.join(SRC, "tests/data/kubernetes/manifests.from-swagger-v%s.json" % version)
        with open(path) as f:
            doc = json.load(f)
        self.version, self.kinds = version, doc["kinds"]
        self.defs = copy.deepcopy(doc["definitions"])
        # The swagger types these as strings; the API server also takes numbers for them
        # (`cores: 30`, `port: 8080`), so a manifest may too.
        self.defs["io.k8s.apimachinery.pkg.api.resource.Quantity"]["type"] = ["string", "number"]
        self.defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["type"] = ["string", "integer"]

    def resolve(self, node):
        while isinstance(node, dict) and "$ref" in node:
            node = self.defs[node["$ref"].rsplit("/", 1)[1]]
        return node

    def unknown_fields(self, obj, node, path, out):
        node = self.resolve(node)
        if not isinstance(node, dict):
            return
        if isinstance(obj, dict):
            props, extra = node.get("properties"), node.get("additionalProperties")
            for k, v in obj.items():
                if props and k in props:
                    self.unknown_fields(v, props[k], path + [k], out)
                elif isinstance(extra, dict):
                    self.unknown_fields(v, extra, path + [k], out)
                elif props:
                    out.append("%s: unknown field %r" % (dotted(path), k))
                # No properties and no map: free-form (RawExtension, FieldsV1): stop.
        elif isinstance(obj, list) and isinstance(node.get("items"), dict):
            for i, v in enumerate(obj):
                self.unknown_fields(v, node["items"], path + [i], out)

    def validate(self, key, obj):
        name = self.kinds[key]
        v = jsonschema.Draft4Validator({"$ref": "#/definitions/" + name, "definitions": self.defs})
        out = ["%s: %s" % (dotted(e.absolute_path), e.message)
               for e in sorted(v.iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path])]
        self.unknown_fields(obj, {"$ref": "#/definitions/" + name}, [], out)
        return out


def dotted(path):
    """metadata.labels, spec.containers[0].name"""
    s = "".join("[%d]" % p if isinstance(p, int) else "." + p for p in path).lstrip(".")
    return s or "(top)"


def kind_key(doc):
    return "%s/%s" % (doc.get("apiVersion"), doc.get("kind"))


# ---------------------------------------------------------------- our rules

def dig(obj, path):
    for p in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(p)
    return obj


def check_cel(expr, where, attrs, caps, out):
    for m in CEL_REF.finditer(expr):
        what, domain, name = m.group(1), m.group(3), m.group(4) or m.group(6)
        if name is None:
            out.append("%s: CEL %s[%r] names no %s" % (where, what, domain, what[:-1] if what == "attributes" else what))
            continue
        known = attrs if what == "attributes" else {"%s/%s" % (DRIVER, c) for c in caps}
        if "%s/%s" % (domain, name) not in known:
            out.append("%s: CEL mentions %s %s/%s, which our ResourceSlices do not publish" % (where, what, domain, name))
    if re.search(r"device\.(attributes|capacity)", expr) and not CEL_REF.search(expr):
        out.append("%s: CEL reaches device attributes in a way this check cannot read: %r" % (where, expr))
    for m in CEL_DRIVER.finditer(expr):
        if m.group(2) != DRIVER:
            out.append("%s: CEL selects driver %r, not %s" % (where, m.group(2), DRIVER))


def check_device_class(doc, where, attrs, caps, out):
    if dig(doc, ("metadata", "name")) != DRIVER:
        out.append("%s: a DeviceClass here is named %s, not %r" % (where, DRIVER, dig(doc, ("metadata", "name"))))
    exprs = [dig(s, ("cel", "expression")) or "" for s in dig(doc, ("spec", "selectors")) or []]
    if not any(any(m.group(2) == DRIVER for m in CEL_DRIVER.finditer(e)) for e in exprs):
        out.append('%s: no selector says device.driver == "%s"' % (where, DRIVER))
    for i, e in enumerate(exprs):
        check_cel(e, "%s.spec.selectors[%d]" % (where, i), attrs, caps, out)
    for i, c in enumerate(dig(doc, ("spec", "config")) or []):
        if dig(c, ("opaque", "driver")) not in (None, DRIVER):
            out.append("%s.spec.config[%d]: opaque config for driver %r" % (where, i, dig(c, ("opaque", "driver"))))


def check_capacity(req, where, out):
    for k, v in (dig(req, ("capacity", "requests")) or {}).items():
        q = quantity(v)
        if k not in CAPACITIES:
            out.append("%s.capacity.requests: %r is not one of our capacities (cores, memory)" % (where, k))
        elif q is None:
            out.append("%s.capacity.requests.%s: %r is not a quantity" % (where, k, v))
        elif k == "cores" and (q != q.to_integral_value() or not 1 <= q <= 100):
            out.append("%s.capacity.requests.cores: %r is not a whole number of percent, 1 to 100" % (where, v))
        elif k == "memory" and q < BINARY["Mi"]:
            out.append("%s.capacity.requests.memory: %r is less than 1Mi" % (where, v))


def check_claim_spec(spec, where, attrs, caps, out):
    """spec: a ResourceClaimSpec. Returns its request names."""
    names = []
    devices = dig(spec, ("devices",)) or {}
    for i, r in enumerate(devices.get("requests") or []):
        w = "%s.devices.requests[%d]" % (where, i)
        names.append(r.get("name"))
        subs = [(w + ".exactly", r["exactly"])] if isinstance(r.get("exactly"), dict) else []
        subs += [("%s.firstAvailable[%d]" % (w, j), s) for j, s in enumerate(r.get("firstAvailable") or [])]
        for sw, s in subs:
            if s.get("deviceClassName") != DRIVER:
                out.append("%s.deviceClassName: %r is not our DeviceClass %s" % (sw, s.get("deviceClassName"), DRIVER))
            for j, sel in enumerate(s.get("selectors") or []):
                check_cel(dig(sel, ("cel", "expression")) or "", "%s.selectors[%d]" % (sw, j), attrs, caps, out)
            check_capacity(s, sw, out)
    for i, c in enumerate(devices.get("constraints") or []):
        w = "%s.devices.constraints[%d]" % (where, i)
        for k in ("matchAttribute", "distinctAttribute"):
            if k in c and c[k] not in attrs:
                out.append("%s.%s: %r is not an attribute our slices publish (fully qualified)" % (w, k, c[k]))
        for n in c.get("requests") or []:
            if n not in names:
                out.append("%s.requests: no request %r in the claim" % (w, n))
    for i, c in enumerate(devices.get("config") or []):
        if dig(c, ("opaque", "driver")) not in (None, DRIVER):
            out.append("%s.devices.config[%d]: opaque config for driver %r" % (where, i, dig(c, ("opaque", "driver"))))
    return names


def check_pod_spec(spec, ns, where, claims, templates, out):
    def named(n):
        return "%s/%s" % (ns, n) if ns else n

    entries = {}
    for i, rc in enumerate(spec.get("resourceClaims") or []):
        w = "%s.resourceClaims[%d]" % (where, i)
        if "resourceClaimName" in rc:
            requests = claims.get((ns, rc["resourceClaimName"]))
            if requests is None:
                out.append("%s: ResourceClaim %s is not defined in deploy/" % (w, named(rc["resourceClaimName"])))
        elif "resourceClaimTemplateName" in rc:
            requests = templates.get((ns, rc["resourceClaimTemplateName"]))
            if requests is None:
                out.append("%s: ResourceClaimTemplate %s is not defined in deploy/"
                           % (w, named(rc["resourceClaimTemplateName"])))
        else:
            requests = None
            out.append("%s: names neither a claim nor a template" % w)
        entries[rc.get("name")] = requests
    for kind in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(kind) or []):
            for j, cl in enumerate(dig(c, ("resources", "claims")) or []):
                w = "%s.%s[%d].resources.claims[%d]" % (where, kind, i, j)
                if cl.get("name") not in entries:
                    out.append("%s: the pod has no resourceClaims entry %r" % (w, cl.get("name")))
                elif "request" in cl and entries[cl["name"]] is not None and cl["request"] not in entries[cl["name"]]:
                    out.append("%s: claim %r has no request %r" % (w, cl["name"], cl["request"]))


# ---------------------------------------------------------------- driver

def load(paths, root):
    """[(where, document)] of every YAML document in paths; parse errors as problems."""
    docs, out = [], []
    for path in paths:
        name = os.path.relpath(path, root)
        try:
            with open(path, encoding="utf-8") as f:
                for i, d in enumerate(yaml.safe_load_all(f)):
                    if d is not None:
                        docs.append(("%s#%d" % (name, i), d))
        except yaml.YAMLError as e:
            out.append("%s: not YAML: %s" % (name, e))
    return docs, out


def check(docs, schemas, attrs, caps):
    out, claims, templates = [], {}, {}
    known = [d for d in docs if isinstance(d[1], dict)]
    for where, d in docs:
        if not isinstance(d, dict):
            out.append("%s: a document must be a Kubernetes object, not %s" % (where, type(d).__name__))
    for where, d in known:
        key = kind_key(d)
        w = "%s (%s %s)" % (where, d.get("kind"), dig(d, ("metadata", "name")))
        if any(key not in s.kinds for s in schemas):
            out.append("%s: unknown kind %s" % (w, key))
            continue
        for s in schemas:
            out += ["%s: Kubernetes %s: %s" % (w, s.version, e) for e in s.validate(key, d)]
        ns = dig(d, ("metadata", "namespace")) or ""
        name = dig(d, ("metadata", "name"))
        if key == "resource.k8s.io/v1/DeviceClass":
            check_device_class(d, w, attrs, caps, out)
        elif key == "resource.k8s.io/v1/ResourceClaim":
            claims[(ns, name)] = check_claim_spec(d.get("spec") or {}, w + ".spec", attrs, caps, out)
        elif key == "resource.k8s.io/v1/ResourceClaimTemplate":
            templates[(ns, name)] = check_claim_spec(dig(d, ("spec", "spec")) or {}, w + ".spec.spec", attrs, caps, out)
        elif key == "resource.k8s.io/v1/ResourceSlice":
            out.append("%s: ResourceSlices are the daemon's to publish, not a manifest's" % w)
    for where, d in known:
        path = POD_SPEC_PATHS.get(kind_key(d))
        if path and isinstance(dig(d, path), dict):
            ns = dig(d, ("metadata", "namespace")) or ""
            w = "%s (%s %s).%s" % (where, d.get("kind"), dig(d, ("metadata", "name")), ".".join(path))
            check_pod_spec(dig(d, path), ns, w, claims, templates, out)
    check_webhooks(known, out)
    return out


WEBHOOK_PATHS = {
    "admissionregistration.k8s.io/v1/MutatingWebhookConfiguration": "/mutate",
    "admissionregistration.k8s.io/v1/ValidatingWebhookConfiguration": "/validate",
}


def excluded_namespaces(selector):
    """The namespaces a namespaceSelector surely leaves out (NotIn on the name label)."""
    gone = set()
    for e in (selector or {}).get("matchExpressions") or []:
        if e.get("key") == "kubernetes.io/metadata.name" and e.get("operator") == "NotIn":
            gone |= set(e.get("values") or [])
    return gone


def check_webhooks(known, out):
    services = {(dig(d, ("metadata", "namespace")) or "", dig(d, ("metadata", "name"))): d
                for _, d in known if kind_key(d) == "v1/Service"}
    workloads = [d for _, d in known if kind_key(d) in POD_SPEC_PATHS]
    for where, d in known:
        key = kind_key(d)
        if key not in WEBHOOK_PATHS:
            continue
        mutating = key.endswith("MutatingWebhookConfiguration")
        for i, wh in enumerate(d.get("webhooks") or []):
            w = "%s (%s %s).webhooks[%d]" % (where, d.get("kind"), dig(d, ("metadata", "name")), i)
            if "v1" not in (wh.get("admissionReviewVersions") or []):
                out.append("%s: admissionReviewVersions must include v1" % w)
            svc = dig(wh, ("clientConfig", "service"))
            if not isinstance(svc, dict) or dig(wh, ("clientConfig", "url")):
                out.append("%s: clientConfig must name a Service, not a URL" % w)
                continue
            if svc.get("path") != WEBHOOK_PATHS[key]:
                out.append("%s: clientConfig.service.path is %r, hami-dra-webhook serves %s here"
                           % (w, svc.get("path"), WEBHOOK_PATHS[key]))
            ns, port = svc.get("namespace") or "", svc.get("port", 443)
            service = services.get((ns, svc.get("name")))
            if service is None:
                out.append("%s: Service %s/%s is not defined in deploy/" % (w, ns, svc.get("name")))
            else:
                sp = [p for p in dig(service, ("spec", "ports")) or [] if p.get("port") == port]
                if not sp:
                    out.append("%s: Service %s/%s has no port %s" % (w, ns, svc.get("name"), port))
                else:
                    target = sp[0].get("targetPort", port)
                    sel = dig(service, ("spec", "selector")) or {}
                    reached = False
                    for wl in workloads:
                        if (dig(wl, ("metadata", "namespace")) or "") != ns or not sel:
                            continue
                        spec_path = POD_SPEC_PATHS[kind_key(wl)]
                        labels = (dig(wl, ("metadata", "labels")) if len(spec_path) == 1
                                  else dig(wl, ("spec", "template", "metadata", "labels"))) or {}
                        if any(labels.get(k) != v for k, v in sel.items()):
                            continue
                        for c in dig(wl, spec_path + ("containers",)) or []:
                            for cp in c.get("ports") or []:
                                if target in (cp.get("name"), cp.get("containerPort")):
                                    reached = True
                    if not reached:
                        out.append("%s: Service %s/%s port %s (targetPort %s) reaches no container port of a "
                                   "workload it selects" % (w, ns, svc.get("name"), port, target))
            gone = excluded_namespaces(wh.get("namespaceSelector"))
            for must in ("kube-system", ns):
                if must not in gone:
                    out.append("%s: namespaceSelector must leave out namespace %s" % (w, must))
            rules = wh.get("rules") or []
            if mutating:
                if wh.get("failurePolicy") != "Fail":
                    out.append("%s: failurePolicy must be Fail (an unconverted pod waits forever)" % w)
                if wh.get("sideEffects") != "NoneOnDryRun":
                    out.append("%s: sideEffects must be NoneOnDryRun (it creates templates, not on dry runs)" % w)
                want = [([""], ["v1"], ["CREATE"], ["pods"])]
            else:
                if wh.get("sideEffects") not in ("None", "NoneOnDryRun"):
                    out.append("%s: sideEffects must be None" % w)
                want = [(["resource.k8s.io"], ["v1"], ["CREATE", "UPDATE"],
                         ["resourceclaims", "resourceclaimtemplates"])]
            got = [(r.get("apiGroups"), r.get("apiVersions"), sorted(r.get("operations") or []),
                    sorted(r.get("resources") or [])) for r in rules]
            if got != want:
                out.append("%s: rules must be exactly %s, not %s" % (w, want, got))


def manifests(root):
    found = []
    for d, dirs, names in os.walk(os.path.join(root, "deploy")):
        dirs.sort()
        found += [os.path.join(d, n) for n in sorted(names) if n.endswith((".yaml", ".yml"))]
    return found


# ---------------------------------------------------------------- self-test

GOOD = """
apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: {name: hami-core-gpu.project-hami.io}
spec:
  selectors:
  - cel: {expression: 'device.driver == "hami-core-gpu.project-hami.io"'}
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {name: c}
spec:
  devices:
    requests:
    - name: gpu
      exactly:
        deviceClassName: hami-core-gpu.project-hami.io
        selectors:
        - cel: {expression: 'device.attributes["hami-core-gpu.project-hami.io"].productName == "NVIDIA A10"'}
        capacity: {requests: {cores: "50", memory: 10Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: c
    image: busybox
    resources: {claims: [{name: gpu, request: gpu}]}
  resourceClaims: [{name: gpu, resourceClaimName: c}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: wh, namespace: ns}
spec:
  selector: {matchLabels: {app: wh}}
  template:
    metadata: {labels: {app: wh}}
    spec:
      containers:
      - name: wh
        image: wh
        ports: [{name: https, containerPort: 8443}]
---
apiVersion: v1
kind: Service
metadata: {name: wh, namespace: ns}
spec:
  selector: {app: wh}
  ports: [{port: 443, targetPort: https}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: wh}
webhooks:
- name: pods.wh.example.com
  admissionReviewVersions: [v1]
  sideEffects: NoneOnDryRun
  failurePolicy: Fail
  clientConfig: {service: {name: wh, namespace: ns, path: /mutate}}
  rules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}]
  namespaceSelector:
    matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system, ns]}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: wh}
webhooks:
- name: claims.wh.example.com
  admissionReviewVersions: [v1]
  sideEffects: None
  clientConfig: {service: {name: wh, namespace: ns, path: /validate, port: 443}}
  rules: [{apiGroups: [resource.k8s.io], apiVersions: [v1], operations: [CREATE, UPDATE],
           resources: [resourceclaims, resourceclaimtemplates]}]
  namespaceSelector:
    matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system, ns]}]
"""

# (what is broken, a replacement in GOOD, what the complaint must contain)
BAD = [
    ("a typo'd field", ("deviceClassName: hami", "deviceClasName: hami"), "unknown field 'deviceClasName'"),
    ("a typo'd field in metadata", ("metadata: {name: p}", "metadata: {nmae: p}"), "unknown field 'nmae'"),
    ("a wrong type", ("deviceClassName: hami-core-gpu.project-hami.io\n        selectors",
                      "deviceClassName: hami-core-gpu.project-hami.io\n        count: one\n        selectors"),
     "'one' is not of type 'integer'"),
    ("a list for a map", ("capacity: {requests: {cores: \"50\", memory: 10Gi}}", "capacity: [cores]"),
     "is not of type 'object'"),
    ("an unknown kind", ("kind: DeviceClass", "kind: DeviceClas"), "unknown kind resource.k8s.io/v1/DeviceClas"),
    ("an API version that is gone", ("apiVersion: resource.k8s.io/v1\nkind: ResourceClaim",
                                     "apiVersion: resource.k8s.io/v1alpha3\nkind: ResourceClaim"), "unknown kind"),
    ("a required field missing", ("- name: c\n    image: busybox", "- image: busybox"), "'name' is a required property"),
    ("another class", ("deviceClassName: hami-core-gpu.project-hami.io\n", "deviceClassName: gpu.nvidia.com\n"),
     "is not our DeviceClass"),
    ("a DeviceClass under another name", ("metadata: {name: hami-core-gpu.project-hami.io}", "metadata: {name: gpu}"),
     "a DeviceClass here is named"),
    ("a DeviceClass for another driver", ('device.driver == "hami-core-gpu.project-hami.io"',
                                          'device.driver == "gpu.nvidia.com"'), "CEL selects driver"),
    ("an attribute we do not publish", (".productName ==", ".productname =="), "do not publish"),
    ("a capacity we do not publish", ("cores: \"50\", memory", "gpucores: \"50\", memory"),
     "not one of our capacities"),
    ("cores over 100", ("cores: \"50\"", "cores: \"150\""), "1 to 100"),
    ("a claim nobody defines", ("resourceClaimName: c", "resourceClaimName: d"), "is not defined in deploy/"),
    ("a request the claim lacks", ("request: gpu}", "request: gpus}"), "has no request 'gpus'"),
    ("not YAML", ("metadata: {name: c}", "metadata: {name: c"), "not YAML"),
    ("a webhook's Service undefined", ("{service: {name: wh, namespace: ns, path: /mutate}}",
                                       "{service: {name: wx, namespace: ns, path: /mutate}}"), "is not defined in deploy/"),
    ("a webhook at a wrong path", ("path: /mutate}", "path: /mutating}"), "serves /mutate here"),
    ("a webhook by URL", ("{service: {name: wh, namespace: ns, path: /validate, port: 443}}",
                          "{url: \"https://wh.example.com/validate\"}"), "not a URL"),
    ("a Service port nothing serves", ("targetPort: https}", "targetPort: http}"), "reaches no container port"),
    ("a webhook on port 8443 unserved", ("path: /validate, port: 443}", "path: /validate, port: 8443}"),
     "has no port 8443"),
    ("a mutating webhook that may fail open", ("failurePolicy: Fail", "failurePolicy: Ignore"), "must be Fail"),
    ("a mutating webhook with side effects", ("sideEffects: NoneOnDryRun", "sideEffects: Some"),
     "must be NoneOnDryRun"),
    ("a webhook for kube-system", ("values: [kube-system, ns]}]\n---", "values: [ns]}]\n---"),
     "leave out namespace kube-system"),
    ("a mutating webhook on updates", ("operations: [CREATE], resources: [pods]", "operations: [CREATE, UPDATE], "
                                       "resources: [pods]"), "rules must be exactly"),
    ("a validating webhook missing templates", ("resources: [resourceclaims, resourceclaimtemplates]",
                                                "resources: [resourceclaims]"), "rules must be exactly"),
]


def self_test(schemas, attrs, caps):
    import tempfile
    failures = 0
    with tempfile.TemporaryDirectory() as d:
        def run(text):
            path = os.path.join(d, "m.yaml")
            with open(path, "w") as f:
                f.write(text)
            docs, out = load([path], d)
            return out + check(docs, schemas, attrs, caps)
        problems = run(GOOD)
        if problems:
            failures += 1
            print("self-test: the good manifest is refused:\n  " + "\n  ".join(problems))
        for what, (old, new), want in BAD:
            if old not in GOOD:
                raise SystemExit("self-test: %r is not in the good manifest" % old)
            problems = run(GOOD.replace(old, new, 1))
            hit = [p for p in problems if want in p]
            print("self-test: %-32s %s" % (what, hit[0] if hit else "NOT CAUGHT"))
            if not hit:
                failures += 1
                print("  wanted %r, got:\n    %s" % (want, "\n    ".join(problems) or "nothing"))
    return 1 if failures else 0


def main():
    global SRC
    args = sys.argv[1:]
    if args and args[0] != "--self-test":
        SRC = args[0]
    schemas = [Schema(v) for v in VERSIONS]
    attrs, caps = published()
    if args == ["--self-test"]:
        return self_test(schemas, attrs, caps)
    paths = manifests(SRC)
    if not paths:
        print("validate-manifests: no manifests under %s/deploy" % SRC)
        return 1
    docs, problems = load(paths, SRC)
    problems += check(docs, schemas, attrs, caps)
    for p in problems:
        print(p)
    print("validate-manifests: %d documents in %d files, Kubernetes %s: %s"
          % (len(docs), len(paths), " and ".join(VERSIONS), "%d problems" % len(problems) if problems else "ok"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
