#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Resident memory of the node daemon with 8 mock GPUs: idle, after 100,000 GetInfo calls,
# after 100,000 more (it must not grow with calls) and after 10,000 calls each on a new
# connection (the kubelet's poll dials anew). Baseline in the same run: a bare
# gRPC core server (bench/getinfo-bench --grpc-floor), the floor any gRPC daemon pays.
#
#   bench/rss.sh [BUILD_DIR]        (default: build; uses src/hami-dra-plugin when built,
#                                    else the gRPC layer alone, tests/grpc-test-server)
set -euo pipefail
build=$(realpath "${1:-build}")
bench=$build/bench/getinfo-bench
driver=hami-core-gpu.project-hami.io
tmp=$(mktemp -d)
pids=()
cleanup() {
        for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
        wait 2>/dev/null || true
        rm -rf "$tmp"
}
trap cleanup EXIT

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
wait_for() { for _ in $(seq 200); do [ -e "$1" ] && return 0; sleep 0.05; done; echo "no $1" >&2; exit 1; }

"$bench" --grpc-floor >"$tmp/floor.out" &
floor_pid=$!
pids+=("$floor_pid")
for _ in $(seq 200); do grep -q ready "$tmp/floor.out" 2>/dev/null && break; sleep 0.05; done
floor=$(rss_kib "$floor_pid")
kill "$floor_pid"

reg=$tmp/registry/$driver-reg.sock
if [ -x "$build/src/hami-dra-plugin" ]; then
        what="hami-dra-plugin --backend=mock --mock-gpus=8"
        touch "$tmp/hami-dra.conf"
        "$build/src/hami-dra-plugin" --config "$tmp/hami-dra.conf" --node-name bench-node \
                --registry-dir "$tmp/registry" --plugins-dir "$tmp/plugins" --state-dir "$tmp/state" \
                --cdi-dir "$tmp/cdi" --backend=mock --mock-gpus=8 >"$tmp/daemon.log" 2>&1 &
else
        what="grpc-test-server --gpus 8 (the daemon is not built)"
        "$build/tests/grpc-test-server" --registration-socket "$reg" \
                --dra-socket "$tmp/plugins/$driver/dra.sock" --gpus 8 >"$tmp/daemon.log" 2>&1 &
fi
pid=$!
pids+=("$pid")
wait_for "$reg"
sleep 0.5
idle=$(rss_kib "$pid")
"$bench" "$reg" 100000 16 >"$tmp/run1.txt"
after1=$(rss_kib "$pid")
"$bench" "$reg" 100000 16 >"$tmp/run2.txt"
after2=$(rss_kib "$pid")
"$bench" "$reg" 10000 4r >"$tmp/run3.txt"
after3=$(rss_kib "$pid")
fds=$(ls "/proc/$pid/fd" | wc -l)
kill -TERM "$pid"
wait "$pid" || { echo "daemon exit status $?" >&2; cat "$tmp/daemon.log" >&2; exit 1; }

echo "daemon: $what"
printf '%-40s %10s %8s %12s\n' "state" "RSS KiB" "MiB" "vs floor"
row() { awk -v n="$1" -v k="$2" -v f="$floor" 'BEGIN { printf "%-40s %10d %8.1f %11.2fx\n", n, k, k / 1024, k / f }'; }
row "baseline: bare gRPC core server" "$floor"
row "daemon idle" "$idle"
row "after 100,000 GetInfo (16 clients)" "$after1"
row "after 200,000 GetInfo" "$after2"
row "after 10,000 more, new connection each" "$after3"
echo "growth over the second 100,000 calls: $((after2 - after1)) KiB; open fds after them: $fds"
echo "GetInfo latency during the first run:"
cat "$tmp/run1.txt"
