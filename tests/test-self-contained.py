#!/usr/bin/python3
"""The project stands alone: no file in it may reach for a folder beside the clone
(the developers' notes folder, "shared" one level up), at build, test or run time, nor
name its files. The names are spelled in pieces here, so that this file does not match
its own scan, nor any other scan for them.

Usage: test-self-contained.py SOURCE_ROOT   scan the project, fail on any reference
       test-self-contained.py --self-test   show the scan catches what it must
"""
import os
import re
import subprocess
import sys
import tempfile

NOTES = "sha" + "red"
UP = ".." + "/"
# UP+NOTES at any depth; the notes' own folder names; their variable.
PATTERN = re.compile(r"\.\./+" + NOTES + r"\b|(?<![\w./-])" + NOTES + r"/(spec|data|reference|hooks|STYLE\.md)\b|HAMI_DRA_"
                     + NOTES.upper())
SKIP_DIRS = {".git"}


def project_files(root):
    try:
        out = subprocess.run(["git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             check=True, capture_output=True).stdout
        return [os.path.join(root, p) for p in out.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for d, dirs, names in os.walk(root):
            dirs[:] = [x for x in dirs if x not in SKIP_DIRS and not x.startswith("build")]
            files += [os.path.join(d, n) for n in names]
        return files


def scan(root):
    hits = []
    for path in project_files(root):
        if not os.path.isfile(path):
            continue
        try:
            with open(path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError as e:
            hits.append("%s: unreadable: %s" % (path, e))
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if PATTERN.search(line):
                hits.append("%s:%d: %s" % (os.path.relpath(path, root), n, line.strip()))
    return hits


def self_test():
    bad = ["x = '%s%s/data/cdi'" % (UP, NOTES), "see %s/spec/cdi.md" % NOTES, "HAMI_DRA_%s=1" % NOTES.upper(),
           "$SRC/%s%s%s" % (UP, UP, NOTES), "p = ROOT + '/%s%s'" % (UP, NOTES)]
    good = ["shared-region.c", "MAP_SHARED", "PTHREAD_PROCESS_SHARED", "tests/data/cdi",
            "the shared region", "/usr/share/doc", "CUDA_DEVICE_MEMORY_SHARED_CACHE"]
    with tempfile.TemporaryDirectory() as d:
        for i, line in enumerate(bad + good):
            with open(os.path.join(d, "f%d.txt" % i), "w") as f:
                f.write(line + "\n")
        hits = scan(d)
    caught = {h.split(": ", 1)[1] for h in hits}
    missed = [b for b in bad if b not in caught]
    wrong = [g for g in good if g in caught]
    for m in missed:
        print("self-test: not caught: %r" % m)
    for w in wrong:
        print("self-test: caught wrongly: %r" % w)
    return 1 if missed or wrong else 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    hits = scan(sys.argv[1])
    for h in hits:
        print(h)
    if hits:
        print("%d line(s) reach outside the project; copy what they need into tests/data/" % len(hits))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
