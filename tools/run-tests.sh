#!/bin/bash
# The whole test suite on a fresh Debian 12 machine: installs packages, builds with
# gcc and with clang the ways developers and distributions do (all -Werror), runs every
# suite under ASan+UBSan (gcc) and plainly (clang), lists each build and prints
# "N passed, N failed, N skipped" last. As a user with sudo it runs itself under sudo.
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

# What Debian's packages are built with: CFLAGS, CPPFLAGS and LDFLAGS of dpkg-buildflags
# with every hardening feature (-D_FORTIFY_SOURCE=2, -fstack-protector-strong,
# -Werror=format-security, -z relro -z now), under --buildtype=plain.
hardening=()
for v in CFLAGS CPPFLAGS LDFLAGS; do
        hardening+=("$v=$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get $v)")
done

builds=()       # one line per build, for the summary
logs=()         # the meson test logs (json) counted in the summary
build_failed=0
no_log=0        # test runs that left no log: each counts as a failure

# build NAME CC [VAR=VALUE...] [-- MESON-SETUP-ARGS...]: set up build-test-NAME afresh
# with CC and the variables in its environment, and compile it (werror is on by default
# in meson.build). A build that fails is listed as failed, and the run fails.
build() {
        local name=$1 cc=$2 dir=build-test-$1 start=$SECONDS env=()
        shift 2
        while [ $# -gt 0 ] && [ "$1" != -- ]; do env+=("$1"); shift; done
        [ $# -eq 0 ] || shift
        rm -rf "$dir"
        echo "== build $name: CC=$cc ${env[*]} meson setup $dir $*"
        if ! env CC="$cc" "${env[@]}" meson setup "$dir" "$@" >"$dir.setup.log" 2>&1; then
                cat "$dir.setup.log"
                builds+=("$(printf '%-16s FAILED (meson setup)' "$name")")
                build_failed=$((build_failed + 1))
                return 1
        fi
        if ! meson compile -C "$dir" -j "$jobs"; then
                builds+=("$(printf '%-16s FAILED to compile' "$name")")
                build_failed=$((build_failed + 1))
                return 1
        fi
        builds+=("$(printf '%-16s compiled OK (%ds)' "$name" $((SECONDS - start)))")
}

# check NAME LOGBASE [MESON-TEST-ARGS...]: run tests of build-test-NAME; failures are
# counted from the log, they do not stop the run.
check() {
        local dir=build-test-$1 logbase=$2 log
        shift 2
        meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes "$jobs" --logbase "$logbase" "$@" || true
        log=$(ls -t "$dir/meson-logs/$logbase"*.json 2>/dev/null | head -n 1) || true
        if [ -n "$log" ]; then
                logs+=("$log")
        else
                echo "$dir: meson test left no $logbase log"
                no_log=$((no_log + 1))
        fi
}

# The developers' builds (debugoptimized) run every suite.
if build gcc-asan gcc -- -Db_sanitize=address,undefined -Db_lundef=false; then
        # shellcheck disable=SC2086 # TEST_ARGS is a list of meson test arguments
        check gcc-asan testlog ${TEST_ARGS:-}
fi
if build clang clang; then
        # shellcheck disable=SC2086
        check clang testlog ${TEST_ARGS:-}
        # valgrind where it is quiet: the unit suite of the plain (clang) build.
        check clang valgrind --suite unit \
                --wrapper "valgrind --quiet --error-exitcode=66 --leak-check=full --errors-for-leak-kinds=definite,indirect --track-fds=no"
fi
# The distributions' builds compile: -O3 and fortify see other bugs (uninitialised
# variables, unchecked results, truncation). The unit suite (seconds) runs where gcc's
# -O3 and fortify's checks can change what the code does at run time.
if build gcc-release gcc -- --buildtype=release; then
        check gcc-release unit --suite unit
fi
# The production build (-Dtests=false: only what a node runs, docs/install.md) under
# clang -O3; the test programs' -O3 warnings are gcc-release's.
build clang-release clang -- --buildtype=release -Dtests=false || true
if build gcc-hardened gcc "${hardening[@]}" -- --buildtype=plain; then
        check gcc-hardened unit --suite unit
fi
build clang-hardened clang "${hardening[@]}" -- --buildtype=plain || true
# The libFuzzer targets: they build, replay their corpora, and then fuzz for real,
# FUZZ_SECONDS (20) each on a copy of the corpus, one per CPU at a time (suite
# fuzz-long: under 3 min for 16 targets on 2 CPUs; FUZZ_SECONDS=0 skips it). A finding
# fails the run and is printed as base64 for the corpus. bench/fuzz.sh runs for longer.
fuzz_seconds=${FUZZ_SECONDS:-20}
fuzz_long_log=
if build clang-fuzzing clang -- -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false; then
        check clang-fuzzing fuzz --suite fuzz
        if [ "$fuzz_seconds" != 0 ]; then
                n_logs=${#logs[@]}
                FUZZ_SECONDS=$fuzz_seconds check clang-fuzzing fuzz-long --suite fuzz-long
                [ "${#logs[@]}" -eq "$n_logs" ] || fuzz_long_log=${logs[-1]}
        fi
fi

echo
echo "builds:"
printf '  %s\n' "${builds[@]}"
if [ -n "$fuzz_long_log" ]; then
        echo "fuzzing ($fuzz_seconds s per target):"
        /usr/bin/python3 - "$fuzz_long_log" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    name = r["name"].split(" / ")[-1]
    target = name[:-len("-long")] if name.endswith("-long") else name
    said = [l for l in r.get("stdout", "").splitlines() if l.startswith(target + ": ")]
    print("  " + (said[0] if said else "%s: %s" % (target, r["result"])))
PY
fi
passed=0; failed=$no_log; skipped=0
for log in "${logs[@]}"; do
        read -r p f s < <(summary "$log")
        echo "${log%%/*} ($(basename "$log" .json | sed "s/-valgrind//")): $p passed, $f failed, $s skipped"
        passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
done
if [ "$build_failed" -gt 0 ]; then
        echo "$passed passed, $failed failed, $skipped skipped; $build_failed build(s) FAILED"
else
        echo "$passed passed, $failed failed, $skipped skipped"
fi
[ "$failed" -eq 0 ] && [ "$build_failed" -eq 0 ]
