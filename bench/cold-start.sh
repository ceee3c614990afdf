#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Cold start under a real systemd: from the first connection on the registration
# socket (the service not running) to the service's exec, to READY=1 and to the answer
# of that first call (GetInfo; the system suite's stand-in's one-line answer until the
# daemon links). RUNS runs (default 20) in the system suite's nspawn container; the
# baseline is the same call on the already running service, in the same run.
# Also prints the unit's systemd-analyze security exposure.
#
# Usage: sudo bench/cold-start.sh [BUILD_DIR]     (default: build)
#        BENCH_DROPIN=$'[Service]\nBindPaths=' ...  adds a drop-in (what does a line cost?)
#
# Timestamps: the client's CLOCK_MONOTONIC before connect() and after the answer;
# systemd's ExecMainStartTimestampMonotonic (fork of the daemon) and
# ActiveEnterTimestampMonotonic (READY=1 received: Type=notify). Host and container
# share one monotonic clock.
set -uo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
BUILD=$(realpath "${1:-build}")
RUNS=${RUNS:-20}
CLIENT="/usr/bin/python3 $SRC/tests/system/client.py"

skip() { echo "cannot run: $*"; exit 77; }
ok() { echo "  $*"; }
bad() { echo "FAIL: $*"; }
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
[ "$(id -u)" = 0 ] || skip "needs root"
[ -f "$BUILD/units/hami-dra-plugin.service" ] || { echo "build first: meson setup build && ninja -C build"; exit 1; }

# shellcheck source=tests/system/container.sh
source "$SRC/tests/system/container.sh"
container_up >/dev/null
if [ -n "${BENCH_DROPIN:-}" ]; then
        printf '%s\n' "$BENCH_DROPIN" >"$R/etc/systemd/system/hami-dra-plugin.service.d/90-bench.conf"
        IN systemctl daemon-reload
        echo "drop-in: $(tr '\n' ' ' <<<"$BENCH_DROPIN")"
fi
IN systemctl enable --now hami-dra-plugin.socket >/dev/null 2>&1 || { echo "enable failed"; exit 1; }

show() { IN systemctl show -P "$1" hami-dra-plugin.service; }
wait_state() { # want
        for _ in $(seq 100); do [ "$(IN systemctl is-active hami-dra-plugin.service)" = "$1" ] && return 0; sleep 0.05; done
        return 1
}

exec_us=(); ready_us=(); answer_us=(); warm_us=()
for i in $(seq "$RUNS"); do
        IN systemctl stop hami-dra-plugin.service 2>/dev/null
        # 20 starts in a row would hit StartLimitBurst= (5 in 10 s); this resets the counter.
        IN systemctl reset-failed hami-dra-plugin.service hami-dra-plugin.socket 2>/dev/null
        wait_state inactive || { echo "service did not stop"; exit 1; }
        read -r t0 t1 < <($CLIENT time "$PROTO" "$ROOT$REG") || { echo "call $i failed"; exit 1; }
        wait_state active || { echo "service did not become active"; exit 1; }
        e=$(show ExecMainStartTimestampMonotonic); r=$(show ActiveEnterTimestampMonotonic)
        exec_us+=($(( e - t0 / 1000 ))); ready_us+=($(( r - t0 / 1000 ))); answer_us+=($(( (t1 - t0) / 1000 )))
done
for i in $(seq "$RUNS"); do
        read -r t0 t1 < <($CLIENT time "$PROTO" "$ROOT$REG") || { echo "warm call $i failed"; exit 1; }
        warm_us+=($(( (t1 - t0) / 1000 )))
done
exposure=$(IN systemd-analyze security --no-pager hami-dra-plugin.service 2>/dev/null |
        sed -n 's/.*Overall exposure level for hami-dra-plugin.service: \([0-9.]*\).*/\1/p')

/usr/bin/python3 - "$RUNS" "$DAEMON" "$exposure" "${warm_us[*]}" "${exec_us[*]}" "${ready_us[*]}" "${answer_us[*]}" <<'PY'
import math, sys
runs, daemon, exposure = sys.argv[1], sys.argv[2], sys.argv[3]
series = [list(map(int, a.split())) for a in sys.argv[4:8]]
def pct(v, p):
    v = sorted(v)
    return v[max(0, math.ceil(p / 100 * len(v)) - 1)]
base = pct(series[0], 50)
names = ["baseline: call on the running service", "connect -> daemon exec'd", "connect -> READY=1",
         "connect -> first answer" + (" (GetInfo)" if daemon == "real" else " (stand-in)")]
print(f"cold start, {runs} runs, systemd 252 in systemd-nspawn, daemon: {daemon}")
print(f"{'':42} {'p50 ms':>9} {'p99 ms':>9} {'x baseline':>11}")
for n, v in zip(names, series):
    print(f"{n:42} {pct(v, 50) / 1000:9.2f} {pct(v, 99) / 1000:9.2f} {pct(v, 50) / base:11.1f}")
print(f"systemd-analyze security hami-dra-plugin.service: exposure {exposure}")
PY
