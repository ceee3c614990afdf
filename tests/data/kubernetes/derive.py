#!/usr/bin/python3
"""Derive the small Kubernetes schema files in this folder from the full Swagger 2.0
documents that kubernetes publishes (see README.md beside this script for where they
come from and their SHA-256). The full documents are about 4 MB each, so the project
keeps only what its tests read:

  manifests.from-swagger-v<version>.json
      every definition (and the transitive closure of what it $refs) of the kinds
      that deploy/ and the webhook use, keyed by x-kubernetes-group-version-kind.

Usage: derive.py SWAGGER.json VERSION OUT.json
"""
import json
import sys

# apiVersion/kind pairs a manifest in deploy/ may use.
KINDS = [
    ("resource.k8s.io", "v1", k) for k in ("DeviceClass", "ResourceClaim", "ResourceClaimTemplate", "ResourceSlice")
] + [
    ("apps", "v1", k) for k in ("Deployment", "DaemonSet", "StatefulSet")
] + [
    ("", "v1", k) for k in ("Pod", "Namespace", "ServiceAccount", "Service", "ConfigMap", "Secret")
] + [
    ("rbac.authorization.k8s.io", "v1", k) for k in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
] + [
    ("admissionregistration.k8s.io", "v1", k) for k in (
        "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
        "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
] + [
    ("batch", "v1", "Job"),
]


def refs(node, out):
    if isinstance(node, dict):
        r = node.get("$ref")
        if isinstance(r, str) and r.startswith("#/definitions/"):
            out.add(r[len("#/definitions/"):])
        for v in node.values():
            refs(v, out)
    elif isinstance(node, list):
        for v in node:
            refs(v, out)


def main():
    src, version, dst = sys.argv[1:4]
    full = json.load(open(src))
    defs = full["definitions"]
    roots = {}
    for name, d in defs.items():
        for gvk in d.get("x-kubernetes-group-version-kind", []):
            key = (gvk["group"], gvk["version"], gvk["kind"])
            if key in KINDS:
                roots[key] = name
    missing = [k for k in KINDS if k not in roots]
    if missing:
        sys.exit("derive.py: kinds missing from %s: %s" % (src, missing))
    keep, todo = set(), list(roots.values())
    while todo:
        n = todo.pop()
        if n in keep:
            continue
        keep.add(n)
        found = set()
        refs(defs[n], found)
        todo.extend(found - keep)
    out = {
        "swagger": full["swagger"],
        "info": {"title": "Kubernetes manifest kinds subset (derived)", "version": "v" + version},
        "kinds": {("%s/%s" % (g, v) if g else v) + "/" + k: name for (g, v, k), name in sorted(roots.items())},
        "definitions": {n: defs[n] for n in sorted(keep)},
    }
    with open(dst, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
