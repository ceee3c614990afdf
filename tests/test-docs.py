#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The docs tell the truth about the interfaces:
- every command-line flag of hami-dra-plugin is in hami-dra-plugin(8) and --help,
  and every flag of hami-dra-webhook in hami-dra-webhook(8) and its --help,
- every configuration key is in hami-dra.conf(5) under its section, and its mock
  example is the one tests/test-gpu-mock.c parses,
- README.md opens with the two commands as they are run (no sudo), and .ci/run runs
  exactly the test one."""

import os
import re
import subprocess
import sys

src = os.environ.get("HAMI_DRA_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), ".."))
build = os.environ.get("HAMI_DRA_BUILD_ROOT")
failures = []


def read(rel):
    with open(os.path.join(src, rel), encoding="utf-8") as f:
        return f.read()


conf_c = read("src/conf.c")
flags = re.findall(r'\{ "([a-z-]+)", (?:no|required)_argument', conf_c)
keys = re.findall(r'\{ "([A-Za-z]+)", "([A-Za-z]+)", parse_', conf_c)
if len(flags) < 10 or len(keys) < 10:
    failures.append(f"could not find the options in src/conf.c ({len(flags)} flags, {len(keys)} keys)")

plugin_man = read("man/hami-dra-plugin.8.rst")
for flag in flags:
    if f"``--{flag}" not in plugin_man:
        failures.append(f"--{flag} is not documented in man/hami-dra-plugin.8.rst")

conf_man = read("man/hami-dra.conf.5.rst")
sections = {}
current = None
for line in conf_man.splitlines():
    m = re.match(r"^\[(\w+)\] SECTION$", line)
    if m:
        current = m.group(1)
    m = re.match(r"^``(\w+)=``", line)
    if m and current:
        sections.setdefault(current, set()).add(m.group(1))
for section, key in keys:
    if key not in sections.get(section, set()):
        failures.append(f"[{section}] {key}= is not documented in man/hami-dra.conf.5.rst")

# The mock example in hami-dra.conf(5) is the text test-gpu-mock parses, line for line.
gpu_mock_c = read("tests/test-gpu-mock.c")
m = re.search(r"static void test_conf_man_example\(void\) \{.*?config_parse_text\(&c,(.*?),\s*\"hami-dra\.conf\.5\.rst\"\)",
              gpu_mock_c, re.S)
if not m:
    failures.append("tests/test-gpu-mock.c no longer parses the mock example of hami-dra.conf(5)")
else:
    example = "".join(bytes(lit, "ascii").decode("unicode_escape") for lit in re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1)))
    shown = "\n".join("    " + line if line else "" for line in example.rstrip("\n").split("\n"))
    if "\n" + shown + "\n" not in conf_man:
        failures.append("man/hami-dra.conf.5.rst does not show the mock example test-gpu-mock parses:\n" + shown)

if build:
    exe = os.path.join(build, "src", "hami-dra-plugin")
    if os.path.exists(exe):
        out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=10)
        if out.returncode != 0:
            failures.append(f"--help exited {out.returncode}")
        for flag in flags:
            if f"--{flag}" not in out.stdout:
                failures.append(f"--{flag} missing from --help")
        ver = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10)
        if ver.returncode != 0 or not re.match(r"hami-dra-plugin \d+\.\d+\.\d+", ver.stdout):
            failures.append(f"--version printed {ver.stdout!r} (exit {ver.returncode})")

# Every environment variable the daemon reads (systemd's own excepted) is in its man page.
for var in sorted(set(re.findall(r'getenv\("([A-Z_]+)"\)', "".join(
        read("src/" + f) for f in os.listdir(os.path.join(src, "src")) if f.endswith(".c")))) - {"JOURNAL_STREAM"}):
    if f"``{var}``" not in plugin_man:
        failures.append(f"{var} is read by the daemon but not in man/hami-dra-plugin.8.rst")

# hami-dra-webhook's flags: every one in hami-dra-webhook(8) and its --help.
webhook_c = read("src/webhook/main.c")
webhook_flags = re.findall(r'\{ "([a-z-]+)", (?:no|required)_argument', webhook_c)
if len(webhook_flags) < 6:
    failures.append(f"could not find the options in src/webhook/main.c ({len(webhook_flags)} flags)")
webhook_man = read("man/hami-dra-webhook.8.rst")
for flag in webhook_flags:
    if f"``--{flag}" not in webhook_man:
        failures.append(f"--{flag} is not documented in man/hami-dra-webhook.8.rst")
    if f"--{flag}" not in webhook_c.split("static void help(void)", 1)[-1].split("int main(", 1)[0]:
        failures.append(f"--{flag} is not in hami-dra-webhook --help")

# The journal audit: every MESSAGE_ID the daemon logs is in the catalog and the man page.
prepare_h = read("src/prepare.h")
catalog = read("catalog/hami-dra.catalog")
ids = re.findall(r'#define HAMI_MESSAGE_\w+ "([0-9a-f]{32})"', prepare_h)
if len(ids) < 5:
    failures.append(f"expected the 5 audit MESSAGE_IDs in src/prepare.h, found {len(ids)}")
for i in ids:
    if f"-- {i}" not in catalog:
        failures.append(f"MESSAGE_ID {i} has no entry in catalog/hami-dra.catalog")
    if f"``{i}``" not in plugin_man:
        failures.append(f"MESSAGE_ID {i} is not listed in man/hami-dra-plugin.8.rst")

# README.md opens with the two commands, to be run as written: no sudo before them (as a
# user the scripts run themselves under sudo, tools/lib.sh), no arguments, a comment after
# each allowed. .ci/run runs the test one.
COMMANDS = ["tools/run-demo.sh", "tools/run-tests.sh"]
readme = read("README.md").splitlines()
block = []
if readme[2:3] == ["```sh"]:
    for line in readme[3:]:
        if line.startswith("```"):
            break
        block.append(line)
if [line.split("#")[0].split() for line in block] != [[c] for c in COMMANDS]:
    failures.append(f"README.md must open with a ```sh block of exactly the commands {COMMANDS} "
                    f"(each alone on its line, a comment may follow), found {block}")
ci = [line.split("#")[0].split() for line in read(".ci/run").splitlines()]
if ["exec", COMMANDS[1]] not in ci and [COMMANDS[1]] not in ci:
    failures.append(f".ci/run does not run the README's test command {COMMANDS[1]!r}")

for f in failures:
    print("FAIL:", f)
print(f"checked {len(flags)} flags, {len(keys)} keys")
sys.exit(1 if failures else 0)
