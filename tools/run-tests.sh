#!/bin/bash
# The whole test suite on a fresh Debian 12 machine: installs packages, builds with
# gcc and with clang (both -Werror), runs every suite under ASan+UBSan (gcc) and
# plainly (clang), and prints "N passed, N failed, N skipped" last.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh

jobs=$(nproc)
summary() { # build dir -> adds to totals from meson's testlog.json
        /usr/bin/python3 - "$1/meson-logs/testlog.json" <<'PY'
import json, sys
p = f = s = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"): p += 1
    elif r == "SKIP": s += 1
    else: f += 1
print(p, f, s)
PY
}

run_build() { # name, meson args...
        local dir=build-test-$1; shift
        rm -rf "$dir"
        CC=${CC_FOR_BUILD:-} meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log"; return 1; }
        meson compile -C "$dir" -j "$jobs"
        meson test -C "$dir" --print-errorlogs --num-processes "$jobs" ${TEST_ARGS:-} || true
}

CC_FOR_BUILD=gcc run_build gcc-asan -Db_sanitize=address,undefined -Db_lundef=false
CC_FOR_BUILD=clang run_build clang

passed=0; failed=0; skipped=0
for d in build-test-gcc-asan build-test-clang; do
        read -r p f s < <(summary "$d")
        echo "$d: $p passed, $f failed, $s skipped"
        passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
