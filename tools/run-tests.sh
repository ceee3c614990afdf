#!/bin/bash
# The whole test suite on a fresh Debian 12 machine: installs packages, builds with
# gcc and with clang (both -Werror), runs every suite under ASan+UBSan (gcc) and
# plainly (clang), and prints "N passed, N failed, N skipped" last. As a user with sudo
# it runs itself under sudo.
set -euo pipefail
# shellcheck source=tools/lib.sh
. "$(dirname "$0")/lib.sh"
become_root "$0" "$@"
trap give_back EXIT
cd "$(dirname "$0")/.."
tools/setup.sh

jobs=$(nproc)
summary() { # meson test log (json) -> "passed failed skipped"
        /usr/bin/python3 - "$1" <<'PY'
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

# valgrind where it is quiet: the unit suite of the plain (clang) build.
meson test -C build-test-clang --suite unit --print-errorlogs --num-processes "$jobs" \
        --logbase valgrind \
        --wrapper "valgrind --quiet --error-exitcode=66 --leak-check=full --errors-for-leak-kinds=definite,indirect --track-fds=no" \
        || true

passed=0; failed=0; skipped=0
for log in build-test-gcc-asan/meson-logs/testlog.json build-test-clang/meson-logs/testlog.json \
           build-test-clang/meson-logs/valgrind-valgrind.json; do
        read -r p f s < <(summary "$log")
        echo "${log%%/*} ($(basename "$log" .json | sed "s/-valgrind//")): $p passed, $f failed, $s skipped"
        passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
