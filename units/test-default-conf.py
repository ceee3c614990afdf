#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The installed hami-dra.conf lists every key src/conf.c parses, in its section, and
the units name the paths of src/conf.h."""

import os
import re
import sys

src = os.environ["HAMI_DRA_SOURCE_ROOT"]
build = os.environ["HAMI_DRA_BUILD_ROOT"]
failures = []

conf_c = open(os.path.join(src, "src/conf.c"), encoding="utf-8").read()
keys = re.findall(r'\{ "([A-Za-z]+)", "([A-Za-z]+)", parse_', conf_c)
if len(keys) < 10:
    failures.append(f"found only {len(keys)} keys in src/conf.c")

listed, section = set(), None
for line in open(os.path.join(build, "units/hami-dra.conf"), encoding="utf-8"):
    m = re.match(r"^\[(\w+)\]$", line.strip())
    if m:
        section = m.group(1)
        continue
    m = re.match(r"^#?([A-Za-z]+)=", line)
    if m and section:
        listed.add((section, m.group(1)))
for key in keys:
    if key not in listed:
        failures.append(f"[{key[0]}] {key[1]}= is missing from units/hami-dra.conf.in")

conf_h = open(os.path.join(src, "src/conf.h"), encoding="utf-8").read()
defaults = dict(re.findall(r'#define (DEFAULT_\w+) "([^"]*)"', conf_h))
units = {u: open(os.path.join(build, "units", u), encoding="utf-8").read()
         for u in ("hami-dra-plugin.service", "hami-dra-plugin.socket", "hami-dra-plugin-dra.socket")}
driver = defaults.get("DEFAULT_DRIVER_NAME", "?")
expect = {
    "hami-dra-plugin.socket": f"ListenStream={defaults.get('DEFAULT_REGISTRY_DIR')}/{driver}-reg.sock",
    "hami-dra-plugin-dra.socket": f"ListenStream={defaults.get('DEFAULT_PLUGINS_DIR')}/{driver}/dra.sock",
    "hami-dra-plugin.service": f"StateDirectory={os.path.basename(defaults.get('DEFAULT_STATE_DIR', '?'))}",
}
for unit, line in expect.items():
    if line not in units[unit].splitlines():
        failures.append(f"{unit} lacks {line} (src/conf.h and units/meson.build disagree)")
cdi = defaults.get("DEFAULT_CDI_DIR", "?").replace("/var/run/", "/run/")
if f"ReadWritePaths=-{cdi}" not in units["hami-dra-plugin.service"]:
    failures.append(f"hami-dra-plugin.service does not make {cdi} writable")

for f in failures:
    print("FAIL:", f)
print(f"{len(keys)} keys, {len(expect) + 1} unit paths checked")
sys.exit(1 if failures else 0)
