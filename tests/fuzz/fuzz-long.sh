#!/bin/bash
# fuzz-long.sh FUZZER CORPUS [SECONDS]: fuzz for real, not a corpus replay.
#
# Runs the libFuzzer target FUZZER for SECONDS (default: $FUZZ_SECONDS, else 30) on a
# copy of CORPUS (the checked-in corpus is never written to). Fails on any crash, leak,
# timeout, out-of-memory or sanitizer report, and then prints the input that did it as
# base64, ready to become tests/fuzz/corpus/<target>/<name>:
#     echo '<base64>' | base64 -d > tests/fuzz/corpus/<target>/<name>
# The last line is always a result line (bench/fuzz.sh reads it):
#     RESULT <target> <seconds> <runs> <execs/s> <corpus before> <corpus after> <crashes>
# FUZZ_KEEP=DIR: also leave the grown corpus in DIR/<target>/.
set -euo pipefail

fuzzer=$1
corpus=$2
seconds=${3:-${FUZZ_SECONDS:-30}}
name=$(basename "$fuzzer")
case $seconds in
''|*[!0-9]*|0) echo "$name: seconds must be a positive number, not '$seconds' (0 would fuzz forever)" >&2; exit 2 ;;
esac
work=$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus" "$work/artifacts"
cp -R "$corpus"/. "$work/corpus/"
before=$(find "$work/corpus" -type f | wc -l)

# Sanitizer reports must end the run, not scroll by (UBSan only warns by default).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
rc=0
# -timeout: one input taking 25 s is a hang; -rss_limit_mb: libFuzzer's own default.
"$fuzzer" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log" 2>&1 || rc=$?

stat() { sed -n "s/^stat::$1: *//p" "$work/log" | tail -n 1; }
runs=$(stat number_of_executed_units)
speed=$(stat average_exec_per_sec)
after=$(find "$work/corpus" -type f | wc -l)
crashes=$(find "$work/artifacts" -type f | wc -l)
if [ -n "${FUZZ_KEEP:-}" ]; then
        mkdir -p "$FUZZ_KEEP/$name"
        cp -R "$work/corpus"/. "$FUZZ_KEEP/$name/"
fi

if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
        echo "$name: FAILED (libFuzzer exit status $rc) after ${runs:-?} runs; its log ends:"
        tail -n 60 "$work/log"
        for a in "$work/artifacts"/*; do
                [ -f "$a" ] || continue
                echo
                echo "$name: $(basename "$a") ($(wc -c <"$a") bytes), to add to tests/fuzz/corpus/$name/:"
                base64 -w 0 "$a"
                echo
        done
        crashes=$((crashes > 0 ? crashes : 1))
else
        echo "$name: ${runs:-0} runs in $seconds s (${speed:-0} execs/s), corpus $before -> $after inputs, no crash"
fi
echo "RESULT $name $seconds ${runs:-0} ${speed:-0} $before $after $crashes"
[ "$rc" -eq 0 ] && [ "$crashes" -eq 0 ]
