#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The webhook's conversion, end to end on data: every AdmissionReview in fixtures/ goes
through webhook-convert (the C library); the patch is applied with python3-jsonpatch; the
patched pod and every template are validated against the Kubernetes 1.34 and 1.36 schemas
and our rules (tests/validate-manifests.py); then each fixture's expected outcome is checked.

Usage: test-webhook-convert.py WEBHOOK_CONVERT [SOURCE_ROOT]
"""

import base64
import copy
import importlib.util
import json
import os
import subprocess
import sys

import jsonpatch

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "..", "..")
TOOL = sys.argv[1]
DRIVER = "hami-core-gpu.project-hami.io"
MIB = 1 << 20
# The devices "published" in the cluster of these tests: an A10 and an H100.
SIZES = [23028 * MIB, 81559 * MIB, 23028 * MIB]

spec = importlib.util.spec_from_file_location("validate_manifests", os.path.join(SRC, "tests", "validate-manifests.py"))
vm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(vm)
vm.SRC = SRC
SCHEMAS = [vm.Schema(v) for v in vm.VERSIONS]
ATTRS, CAPS = vm.published()

failures = []


def fail(name, msg):
    failures.append("%s: %s" % (name, msg))


def run(name, validate=False, sizes=SIZES):
    args = [TOOL] + (["--validate"] if validate else [])
    for s in sizes:
        args += ["--memory", str(s)]
    out = subprocess.run(args + [os.path.join(HERE, "fixtures", name + ".json")], check=True,
                         stdout=subprocess.PIPE, universal_newlines=True).stdout
    return json.loads(out)


def admit(name, **kw):
    """(review, result, patched pod or None, templates by name)"""
    with open(os.path.join(HERE, "fixtures", name + ".json")) as f:
        review = json.load(f)
    res = run(name, **kw)
    if res["rc"] != 0:
        fail(name, "rc %d: %s" % (res["rc"], res["error"]))
        return review, res, None, {}
    resp = res["response"]["response"]
    if res["response"].get("apiVersion") != "admission.k8s.io/v1" or res["response"].get("kind") != "AdmissionReview":
        fail(name, "the response is no AdmissionReview v1")
    if resp.get("uid") != review["request"]["uid"]:
        fail(name, "uid %r is not the request's" % resp.get("uid"))
    pod = None
    if resp.get("allowed") and "patch" in resp:
        if resp.get("patchType") != "JSONPatch":
            fail(name, "patchType %r" % resp.get("patchType"))
        patch = json.loads(base64.b64decode(resp["patch"]))
        pod = jsonpatch.apply_patch(copy.deepcopy(review["request"]["object"]), patch)
    templates = {t["metadata"]["name"]: t for t in res["templates"]}
    ns = review["request"]["namespace"]
    known = {(ns, "my-template"): ["gpu"]}
    for tname, t in templates.items():
        where = "%s: template %s" % (name, tname)
        for s in SCHEMAS:
            for e in s.validate("resource.k8s.io/v1/ResourceClaimTemplate", t):
                fail(where, "Kubernetes %s: %s" % (s.version, e))
        problems = []
        known[(t["metadata"]["namespace"], tname)] = vm.check_claim_spec(t["spec"]["spec"], where, ATTRS, CAPS, problems)
        for p in problems:
            fail(where, p)
        if t["metadata"]["namespace"] != ns:
            fail(where, "namespace %r, not the request's %r" % (t["metadata"]["namespace"], ns))
        if t["metadata"]["labels"].get("app.kubernetes.io/managed-by") != "hami-dra-webhook":
            fail(where, "no managed-by label")
    if pod is not None:
        for s in SCHEMAS:
            for e in s.validate("v1/Pod", pod):
                fail(name, "patched pod: Kubernetes %s: %s" % (s.version, e))
        problems = []
        vm.check_pod_spec(pod["spec"], ns, name + ": patched pod", {}, known, problems)
        for p in problems:
            fail(name, p)
        for rc in pod["spec"].get("resourceClaims", []):
            t = rc.get("resourceClaimTemplateName", "")
            if t.startswith("hami-gpu-") and t not in templates:
                fail(name, "the pod references template %s, which is not in the result" % t)
        for kind in ("initContainers", "containers"):
            for c in pod["spec"].get(kind, []):
                for side in ("limits", "requests"):
                    left = [k for k in c.get("resources", {}).get(side, {}) if k.startswith("nvidia.com/")]
                    if left:
                        fail(name, "%s %s still has %s %s" % (kind, c["name"], side, left))
    return review, res, pod, templates


def request_of(templates, pod, container):
    """The device request (a dict) the container's converted claim asks for."""
    entry = "gpu-" + container
    rc = [r for r in pod["spec"]["resourceClaims"] if r["name"] == entry]
    if len(rc) != 1:
        raise AssertionError("no single resourceClaims entry %s" % entry)
    t = templates[rc[0]["resourceClaimTemplateName"]]
    reqs = t["spec"]["spec"]["devices"]["requests"]
    assert len(reqs) == 1
    return reqs[0]


def container(pod, name):
    for kind in ("initContainers", "containers"):
        for c in pod["spec"].get(kind, []):
            if c["name"] == name:
                return c
    raise AssertionError("no container %s" % name)


def expect(name, cond, what):
    if not cond:
        fail(name, what)


def quantity(v):
    return vm.quantity(v)


def check_allowed():
    # HAMi's DRA guide: gpu 1, gpumem 10240, gpucores 50 -> count 1, memory 10Gi, cores 50.
    _, res, pod, tpl = admit("hami-guide")
    r = request_of(tpl, pod, "cuda")["exactly"]
    expect("hami-guide", r["count"] == 1 and r["deviceClassName"] == DRIVER, "count/class: %r" % r)
    expect("hami-guide", quantity(r["capacity"]["requests"]["memory"]) == 10240 * MIB, "memory %r" % r)
    expect("hami-guide", quantity(r["capacity"]["requests"]["cores"]) == 50, "cores %r" % r)
    expect("hami-guide", container(pod, "cuda")["resources"]["claims"] == [{"name": "gpu-cuda"}], "claims")
    expect("hami-guide", container(pod, "cuda")["resources"]["limits"] == {}, "limits left")
    expect("hami-guide", not res["dryRun"] and len(tpl) == 1, "dryRun/templates")
    # The same shape in another pod: the same template.
    _, _, pod2, tpl2 = admit("hami-guide-same-shape")
    expect("same-shape", set(tpl2) == set(tpl), "templates %s vs %s" % (sorted(tpl2), sorted(tpl)))
    expect("same-shape", list(tpl)[0].startswith("hami-gpu-") and len(list(tpl)[0]) == 9 + 16, "name %s" % list(tpl))

    _, _, pod, tpl = admit("deployment-generatename")
    c = container(pod, "app")
    expect("deployment", c["resources"]["limits"] == {"cpu": "1"} and c["resources"]["requests"] == {"cpu": "500m"},
           "other resources kept: %r" % c["resources"])
    expect("deployment", quantity(request_of(tpl, pod, "app")["exactly"]["capacity"]["requests"]["memory"]) == 4096 * MIB,
           "memory")
    expect("deployment", "cores" not in request_of(tpl, pod, "app")["exactly"]["capacity"]["requests"], "cores absent")

    _, _, pod, tpl = admit("several-containers")
    ra, rb, rc = (request_of(tpl, pod, n) for n in ("a", "b", "c"))
    expect("several", ra == rb and len(tpl) == 2, "a and b share a template: %d templates" % len(tpl))
    expect("several", rc["exactly"]["count"] == 2 and "memory" not in rc["exactly"]["capacity"]["requests"], "c: %r" % rc)
    expect("several", [r["name"] for r in pod["spec"]["resourceClaims"]] == ["gpu-a", "gpu-b", "gpu-c"], "entries")
    expect("several", "claims" not in container(pod, "plain").get("resources", {}), "plain untouched")

    _, _, pod, tpl = admit("init-and-sidecar")
    for n in ("main", "setup", "sidecar"):
        expect("init-and-sidecar", container(pod, n)["resources"]["claims"] == [{"name": "gpu-" + n}], n)
    expect("init-and-sidecar", request_of(tpl, pod, "sidecar")["exactly"]["count"] == 1, "count 1 without gpu")

    _, _, pod, tpl = admit("no-gpu-count")
    r = request_of(tpl, pod, "x")["exactly"]
    expect("no-gpu-count", r["count"] == 1 and r["capacity"]["requests"]["cores"] == "25", "%r" % r)

    _, _, pod, tpl = admit("keeps-user-claims")
    expect("keeps", container(pod, "x")["resources"]["claims"] == [{"name": "mine"}, {"name": "gpu-x"}], "claims")
    expect("keeps", pod["spec"]["resourceClaims"][0] == {"name": "mine", "resourceClaimTemplateName": "my-template"},
           "entries")

    _, _, pod, tpl = admit("annotations")
    sels = [s["cel"]["expression"] for s in request_of(tpl, pod, "x")["exactly"]["selectors"]]
    a = 'device.attributes["%s"].' % DRIVER
    want = [a + 'uuid in ["GPU-0a1b", "GPU-2c3d"]',
            '!(' + a + 'uuid in ["GPU-dead"])',
            a + 'productName in ["A10", "NVIDIA A10", "NVIDIA H100 80GB HBM3"]',
            '!(' + a + 'productName in ["Tesla T4", "NVIDIA Tesla T4"])']
    expect("annotations", sels == want, "selectors %r" % sels)

    _, _, pod, tpl = admit("annotation-injection")
    sels = [s["cel"]["expression"] for s in request_of(tpl, pod, "x")["exactly"]["selectors"]]
    expect("injection", sels == [a + 'productName in ["A10\\"] || true || x in [\\"\\\\", "NVIDIA A10\\"] || true || '
                                 'x in [\\"\\\\"]'], "selectors %r" % sels)

    _, _, pod, tpl = admit("percentage")
    r = request_of(tpl, pod, "x")
    subs = r.get("firstAvailable") or []
    expect("percentage", "exactly" not in r and len(subs) == 2, "%r" % r)
    for sub, size in zip(subs, (23028, 81559)):
        expect("percentage", quantity(sub["capacity"]["requests"]["memory"]) == size // 2 * MIB, "%r" % sub)
        expect("percentage", sub["capacity"]["requests"]["cores"] == "20", "cores")
        q = sub["selectors"][0]["cel"]["expression"]
        expect("percentage", q.startswith('device.capacity["%s"].memory.compareTo(quantity("' % DRIVER) and
               quantity(q.split('quantity("')[1].split('")')[0]) == size * MIB, q)

    _, _, pod, tpl = admit("long-container-name")
    expect("long-name", [r["name"] for r in pod["spec"]["resourceClaims"]] == ["gpu-c-0"], "entry by position")

    _, res, pod, tpl = admit("dry-run")
    expect("dry-run", res["dryRun"] and pod is not None, "dryRun not reported")

    for n in ("not-a-pod-create", "no-gpu"):
        _, res, pod, tpl = admit(n)
        resp = res["response"]["response"]
        expect(n, resp["allowed"] and "patch" not in resp and not tpl, "should be allowed unchanged: %r" % resp)


REFUSALS = {
    "refuse-count-0": "nvidia.com/gpu is 0",
    "refuse-cores-0": "would mean no limit",
    "refuse-cores-101": "ask for 1 to 100",
    "refuse-memory-0": "nvidia.com/gpumem is 0",
    "refuse-percentage-0": "gpumem-percentage is 0",
    "refuse-percentage-101": "gpumem-percentage is 101",
    "refuse-gpumem-too-big": "more than any GPU has (the largest has 81559 MiB)",
    "refuse-empty-annotation": "annotation nvidia.com/use-gputype has an empty value",
    "refuse-empty-list-item": "annotation nvidia.com/nouse-gpuuuid has an empty value in its list",
    "refuse-limits-differ": "requests and limits of nvidia.com/gpu differ",
    "refuse-fraction": "not a whole number",
    "refuse-both-memories": "keep only one",
    "refuse-count-33": "ask for at most 32 GPUs",
    "refuse-entry-taken": "already has a resourceClaims entry \"gpu-x\": rename it",
}


def check_refusals():
    for n, want in REFUSALS.items():
        _, res, pod, tpl = admit(n)
        resp = res["response"]["response"]
        msg = resp.get("status", {}).get("message", "")
        expect(n, not resp["allowed"] and want in msg and "patch" not in resp and not tpl,
               "wanted a refusal saying %r, got %r" % (want, resp))
        if "annotation" not in want:
            expect(n, msg.startswith('container "x" (spec.containers[0]): '), "the message names no container: %r" % msg)
    # No device known: a percentage cannot be converted.
    res = run("percentage", sizes=[])
    msg = res["response"]["response"].get("status", {}).get("message", "")
    expect("percentage-no-devices", "no GPU of driver" in msg, msg)
    # More distinct sizes than firstAvailable may list.
    res = run("percentage", sizes=[(1 + i) * 1024 * MIB for i in range(9)])
    msg = res["response"]["response"].get("status", {}).get("message", "")
    expect("percentage-9-sizes", "9 different GPU memory sizes, more than 8" in msg, msg)
    res = run("percentage", sizes=[(1 + i) * 1024 * MIB for i in range(8)])
    expect("percentage-8-sizes", len(res["templates"][0]["spec"]["spec"]["devices"]["requests"][0]["firstAvailable"]) == 8,
           "8 subrequests")
    # Without devices gpumem is not checked against them.
    res = run("refuse-gpumem-too-big", sizes=[])
    expect("gpumem-unknown-devices", res["response"]["response"]["allowed"], "refused without devices")


def check_validation():
    for n, want in (("validate-claim-good", None), ("validate-claim-bad", "spec.devices.config[0].opaque.parameters"),
                    ("validate-template-bad", "spec.spec.devices.config[0].opaque.parameters")):
        res = run(n, validate=True)
        resp = res["response"]["response"]
        if want is None:
            expect(n, resp["allowed"], "refused: %r" % resp)
        else:
            expect(n, not resp["allowed"] and want in resp["status"]["message"], "%r" % resp)
    # A pod through the validating webhook is not its business.
    res = run("hami-guide", validate=True)
    expect("validate-pod", res["response"]["response"]["allowed"], "refused a pod")


def main():
    fixtures = sorted(f[:-5] for f in os.listdir(os.path.join(HERE, "fixtures")) if f.endswith(".json"))
    check_allowed()
    check_refusals()
    check_validation()
    covered = {"hami-guide", "hami-guide-same-shape", "deployment-generatename", "several-containers",
               "init-and-sidecar", "no-gpu-count", "keeps-user-claims", "annotations", "annotation-injection",
               "percentage", "dry-run", "long-container-name", "not-a-pod-create", "no-gpu"} | set(REFUSALS) | \
        {"validate-claim-good", "validate-claim-bad", "validate-template-bad"}
    for f in fixtures:
        if f not in covered:
            fail(f, "a fixture without an expectation")
    for f in failures:
        print("FAIL", f)
    print("test-webhook-convert: %d fixtures, %s" % (len(fixtures), "%d failures" % len(failures) if failures else "ok"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
