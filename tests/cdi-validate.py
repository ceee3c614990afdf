#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Validate CDI spec files as strictly as the Go loader (tags.cncf.io/container-device-interface).

JSON Schema (tests/data/cdi/schema.json, draft-07) plus what the schema does not check
(cdi.md section 4): unknown keys, kind/device name characters, cdiVersion known and at least
the minimum for the features used, non-empty device edits, env syntax, node types, mount
fields. Usage: cdi-validate.py [--exact-minimum] FILE... (--exact-minimum: cdiVersion must be
exactly the lowest that covers the content, the project's rule); exit 1 with a message per problem.
"""
import json
import os
import re
import sys

import jsonschema

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
VERSIONS = ["0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0", "1.0.0", "1.1.0"]

TOP = {"cdiVersion", "kind", "annotations", "devices", "containerEdits"}
DEVICE = {"name", "annotations", "containerEdits"}
EDITS = {"env", "deviceNodes", "mounts", "hooks", "additionalGids", "intelRdt", "netDevices"}
NODE = {"path", "hostPath", "type", "major", "minor", "fileMode", "permissions", "uid", "gid"}
MOUNT = {"hostPath", "containerPath", "options", "type"}
HOOK = {"hookName", "path", "args", "env", "timeout"}

VENDOR = re.compile(r"^[A-Za-z]([A-Za-z0-9_.-]*[A-Za-z0-9])?$")
CLASS = VENDOR
NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.:-]*[A-Za-z0-9])?$")


def vkey(v):
    return tuple(int(x) for x in v.lstrip("v").split("."))


def check_keys(obj, allowed, where, errors):
    for k in obj:
        if k not in allowed:
            errors.append(f"{where}: unknown field {k!r}")


def check_edits(e, where, errors, need):
    check_keys(e, EDITS, where, errors)
    for s in e.get("env", []):
        if not isinstance(s, str) or "=" not in s or s.startswith("="):
            errors.append(f"{where}.env: bad entry {s!r}")
    for n in e.get("deviceNodes", []):
        check_keys(n, NODE, where + ".deviceNodes", errors)
        if not n.get("path"):
            errors.append(f"{where}.deviceNodes: no path")
        if n.get("type", "") not in ("", "b", "c", "u", "p"):
            errors.append(f"{where}.deviceNodes: bad type {n['type']!r}")
        perm = n.get("permissions", "")
        if perm != "none" and set(perm) - set("rwm"):
            errors.append(f"{where}.deviceNodes: bad permissions {perm!r}")
        if "hostPath" in n:
            need.add("0.5.0")
    for m in e.get("mounts", []):
        check_keys(m, MOUNT, where + ".mounts", errors)
        if not m.get("hostPath") or not m.get("containerPath"):
            errors.append(f"{where}.mounts: hostPath and containerPath are required")
        if "type" in m:
            need.add("0.4.0")
    for h in e.get("hooks", []):
        check_keys(h, HOOK, where + ".hooks", errors)
    if "additionalGids" in e or "intelRdt" in e:
        need.add("0.7.0")
    if "netDevices" in e:
        need.add("1.1.0")


EXACT_MINIMUM = False


def validate(path, validator):
    errors = []
    try:
        with open(path) as f:
            spec = json.load(f)
    except (OSError, ValueError) as e:
        return [f"not JSON: {e}"]
    if not isinstance(spec, dict):
        return ["not a JSON object"]
    for err in validator.iter_errors(spec):
        errors.append(f"schema: {err.message} at {list(err.path)}")
    if errors:
        return errors
    check_keys(spec, TOP, "spec", errors)
    need = {"0.3.0"}
    version = spec["cdiVersion"]
    if version.lstrip("v") not in VERSIONS:
        errors.append(f"unknown cdiVersion {version!r}")
    kind = spec["kind"]
    if kind.count("/") != 1:
        errors.append(f"kind {kind!r} must have exactly one '/'")
    else:
        vendor, cls = kind.split("/")
        if not VENDOR.match(vendor) or not CLASS.match(cls):
            errors.append(f"kind {kind!r} has invalid characters")
        if "." in cls:
            need.add("0.6.0")
    if "annotations" in spec:
        need.add("0.6.0")
    if not spec["devices"]:
        errors.append("no devices")
    names = set()
    for i, d in enumerate(spec["devices"]):
        check_keys(d, DEVICE, f"devices[{i}]", errors)
        name = d.get("name", "")
        if not NAME.match(name):
            errors.append(f"devices[{i}]: invalid name {name!r}")
        if name[:1].isdigit():
            need.add("0.5.0")
        if name in names:
            errors.append(f"devices[{i}]: duplicate name {name!r}")
        names.add(name)
        if "annotations" in d:
            need.add("0.6.0")
        edits = d.get("containerEdits") or {}
        if not any(edits.get(k) for k in EDITS):
            errors.append(f"devices[{i}]: empty device edits")
        check_edits(edits, f"devices[{i}].containerEdits", errors, need)
    if "containerEdits" in spec:
        check_edits(spec["containerEdits"], "containerEdits", errors, need)
    minimum = max(need, key=vkey)
    if version.lstrip("v") in VERSIONS and vkey(version) < vkey(minimum):
        errors.append(f"cdiVersion {version} is below the minimum {minimum} for the features used")
    if EXACT_MINIMUM and version.lstrip("v") in VERSIONS and vkey(version) != vkey(minimum):
        errors.append(f"cdiVersion {version} is not the minimum required ({minimum})")
    return errors


def main():
    cdi = os.path.join(DATA, "cdi")
    with open(os.path.join(cdi, "schema.json")) as f:
        schema = json.load(f)
    with open(os.path.join(cdi, "defs.json")) as f:
        defs = json.load(f)
    resolver = jsonschema.RefResolver(base_uri="file://" + cdi + "/", referrer=schema,
                                      store={"defs.json": defs, "file://" + cdi + "/defs.json": defs})
    validator = jsonschema.Draft7Validator(schema, resolver=resolver)
    global EXACT_MINIMUM
    args = sys.argv[1:]
    if args and args[0] == "--exact-minimum":
        EXACT_MINIMUM = True
        args = args[1:]
    bad = 0
    for path in args:
        errors = validate(path, validator)
        for e in errors:
            print(f"{path}: {e}", file=sys.stderr)
        bad += bool(errors)
    print(f"{len(args) - bad} of {len(args)} specs valid")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
