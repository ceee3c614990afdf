#!/bin/bash
# bench/fuzz.sh [TARGET...]: every libFuzzer target (or the ones named) for a long run,
# then a table: target, seconds, runs, execs/s, corpus size before -> after, crashes.
#
#   FUZZ_SECONDS   time per target (default 600: 10 min)
#   FUZZ_JOBS      targets at once (default 2)
#   FUZZ_BUILD     the -Dfuzzing=true build folder (default build-fuzz; set up when missing)
#   FUZZ_KEEP      a folder for the grown corpora (default: none kept); minimise one into
#                  the checked-in corpus with the target's -merge=1 before committing it
#
# Each run is tests/fuzz/fuzz-long.sh on a copy of tests/fuzz/corpus/<target>/; a crash
# is printed there as base64, and the script exits 1 if any target found something.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-600}
jobs=${FUZZ_JOBS:-2}
build=${FUZZ_BUILD:-build-fuzz}
logs=$(mktemp -d "${TMPDIR:-/tmp}/hami-fuzz.XXXXXX")
trap 'rm -rf "$logs"' EXIT

if [ ! -d "$build" ]; then
        CC=clang meson setup "$build" -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false
fi
meson compile -C "$build"

if [ $# -gt 0 ]; then
        targets=("$@")
else
        mapfile -t targets < <(ls tests/fuzz/corpus)
fi
for t in "${targets[@]}"; do
        if [ ! -x "$build/tests/fuzz/$t" ] || [ ! -d "tests/fuzz/corpus/$t" ]; then
                echo "$t: no such fuzzer in $build (or no corpus)" >&2
                exit 2
        fi
done

echo "Fuzzing ${#targets[@]} targets for $seconds s each, $jobs at a time (about $(( (${#targets[@]} + jobs - 1) / jobs * seconds / 60 )) min)."
printf '%s\n' "${targets[@]}" |
        xargs -P "$jobs" -I{} sh -c 'tests/fuzz/fuzz-long.sh "$1/tests/fuzz/$2" "tests/fuzz/corpus/$2" "$3" >"$4/$2.log" 2>&1; tail -n 1 "$4/$2.log"' \
                sh "$build" {} "$seconds" "$logs" || true

failed=0
printf '\n%-24s %8s %12s %10s %16s %8s\n' target seconds runs execs/s corpus crashes
for t in "${targets[@]}"; do
        line=$(grep '^RESULT ' "$logs/$t.log" | tail -n 1 || true)
        if [ -z "$line" ]; then
                printf '%-24s %8s %12s %10s %16s %8s\n' "$t" "$seconds" '?' '?' '?' 'error'
                failed=1
                continue
        fi
        read -r _ name secs runs speed before after crashes <<<"$line"
        printf '%-24s %8s %12s %10s %16s %8s\n' "$name" "$secs" "$runs" "$speed" "$before -> $after" "$crashes"
        [ "$crashes" -eq 0 ] || failed=1
done
for t in "${targets[@]}"; do
        if ! grep -q "^RESULT .* 0$" "$logs/$t.log"; then
                echo
                cat "$logs/$t.log"
        fi
done
exit $failed
