#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# bench/gpu/run.sh: libvgpu.so on a real GPU, in one run that prints one table.
# Meant for the device tool's machine (one H200): `run` with `bash bench/gpu/run.sh`.
# Builds with gcc and nvcc (no meson there), then measures, each step under a timeout
# and the whole under a deadline (DEADLINE_S, default 420 s after the start): a step
# that would not fit is marked "not run (time budget)" instead of started.
# Results: stdout, and with $OUT set, $OUT/gpu-bench.md (the table), $OUT/gpu-bench.log
# (everything) and $OUT/gpu-bench.results (the raw lines the table is made of).
# See bench/gpu/README.md.

set -u -o pipefail

cd "$(dirname "$0")/../.." || exit 1
# Start clean: every process below gets exactly the environment its case names.
unset LD_PRELOAD PYTORCH_CUDA_ALLOC_CONF CUDA_DEVICE_MEMORY_SHARED_CACHE CUDA_DEVICE_MEMORY_LIMIT \
        CUDA_DEVICE_SM_LIMIT CUDA_VISIBLE_DEVICES LIBCUDA_LOG_LEVEL
for v in $(compgen -e | grep -E '^CUDA_DEVICE_(MEMORY|SM)_LIMIT_[0-9]+$'); do
        unset "$v"
done
ROOT=$PWD
T0=$(date +%s)

DEADLINE_S=${DEADLINE_S:-420}       # start no step past this (seconds since the start)
# The monitor writes a region every 100 ms; the limiter adjusts on it once a second (the
# span of the monitor's share) and settles within about 3 s on the fakes:
# the warm-ups leave it 3 (alone) and 4 (tenants) adjustments before the counting starts.
ALONE_REPS=${ALONE_REPS:-2}         # runs per "alone" row (baselines included)
ALONE_SECS=${ALONE_SECS:-6}         # one alone run: launches for this long...
ALONE_WARM=${ALONE_WARM:-3.5}       # ...and counts what completes after this
TENANT_SECS=${TENANT_SECS:-8}
TENANT_WARM=${TENANT_WARM:-4}
TENANT_BASE_REPS=${TENANT_BASE_REPS:-2}
OVH_REPS=${OVH_REPS:-3}
MON_INTERVAL_MS=${MON_INTERVAL_MS:-}   # empty: the monitor's own default
SPIN_LOG_LEVEL=${SPIN_LOG_LEVEL:-4}    # LIBCUDA_LOG_LEVEL of the spin runs (4: limiter steps)

WORK=$(mktemp -d /tmp/gpu-bench.XXXXXX)
if [ -n "${OUT:-}" ]; then
        mkdir -p "$OUT"
        DEST=$OUT
else
        DEST=$WORK
fi
LOG=$DEST/gpu-bench.log
RES=$DEST/gpu-bench.results
TABLE=$DEST/gpu-bench.md
BIN=$WORK/bin
mkdir -p "$BIN" "$WORK/inc"
: >"$LOG"
: >"$RES"

log() { printf '[%4ss] %s\n' "$(($(date +%s) - T0))" "$*" | tee -a "$LOG" >&2; }
meta() { printf 'M %s %s\n' "$1" "$2" >>"$RES"; }
left() { echo $((DEADLINE_S - ($(date +%s) - T0))); }
fits() { [ "$(left)" -ge "$1" ]; }

BG_PIDS=()
cleanup() {
        local p
        for p in "${BG_PIDS[@]}"; do
                kill -TERM "$p" 2>/dev/null
        done
        # With $OUT the results are there; the work folder held only builds and scratch.
        [ -n "${OUT:-}" ] && rm -rf "$WORK"
}
render() {
        meta wall_s "$(($(date +%s) - T0))"
        if python3 "$ROOT/bench/gpu/report.py" "$RES" >"$TABLE.tmp" 2>>"$LOG"; then
                mv "$TABLE.tmp" "$TABLE"
        else
                log "report.py failed; the raw results are in $RES"
        fi
}
trap 'cleanup' EXIT
trap 'log "interrupted"; cleanup; render; exit 130' INT TERM

log "bench/gpu/run.sh in $ROOT, results in $DEST, deadline ${DEADLINE_S}s"

# ---------------------------------------------------------------- the machine
if ! command -v nvidia-smi >/dev/null; then
        log "nvidia-smi not found: no GPU here. Stopping."
        exit 1
fi
timeout 30 nvidia-smi >>"$LOG" 2>&1
GPU_LINE=$(timeout 20 nvidia-smi --query-gpu=name,driver_version,uuid,memory.total --format=csv,noheader | head -n1)
GPU_NAME=$(echo "$GPU_LINE" | cut -d, -f1 | sed 's/^ *//;s/ *$//')
DRIVER=$(echo "$GPU_LINE" | cut -d, -f2 | tr -d ' ')
GPU_UUID=$(timeout 20 nvidia-smi --query-gpu=uuid --format=csv,noheader | head -n1 | tr -d ' ')
CUDA_VER=$(timeout 20 nvidia-smi 2>/dev/null | grep -o 'CUDA Version: *[0-9.]*' | head -n1 | grep -o '[0-9.]*$')
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
NVCC_VER=$("$NVCC" --version 2>/dev/null | grep -o 'release [0-9.]*' | cut -d' ' -f2)
GPU_MEM=${GPU_LINE##*,}
GPU_MEM=${GPU_MEM# }
meta gpu "${GPU_NAME:-unknown} (${GPU_MEM:-?} total)"
meta driver "${DRIVER:-unknown}"
meta cuda "${CUDA_VER:-unknown}"
meta nvcc "${NVCC_VER:-missing}"
meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta host "$(uname -m), kernel $(uname -r), $(nproc) CPUs"
log "GPU: $GPU_LINE; CUDA $CUDA_VER; nvcc $NVCC_VER"
if [ -z "$GPU_UUID" ]; then
        log "no GPU UUID from nvidia-smi: the monitor cannot be given its regions"
fi

# ---------------------------------------------------------------- builds
# libvgpu.so without meson: the sources of preload/meson.build's libvgpu_sources and its
# flags; the generated glibc-compat.h without .symver lines (today's glibc is fine here).
SRCS=$(sed -n '/^libvgpu_sources *= *files(/,/)/p' preload/meson.build | grep -o "'[^']*\.c'" | tr -d "'" |
        sed 's|^|preload/|')
if [ -z "$SRCS" ]; then
        SRCS="preload/alloc-map.c preload/core.c preload/env.c preload/hook-driver.c preload/hook-memory.c
preload/sm-limiter.c src/shared-region.c"
fi
sed 's/@SYMVER_LINES@//' preload/glibc-compat.h.in >"$WORK/inc/glibc-compat.h"
LIBVGPU=$BIN/libvgpu.so
log "building libvgpu.so from: $(tr "\n" " " <<<"$SRCS")"
# shellcheck disable=SC2086 # SRCS is a list of paths without spaces
if ! timeout 120 gcc -std=gnu11 -O2 -fPIC -shared -fvisibility=hidden -D_GNU_SOURCE \
        -DVGPU_DLSYM_VERSION='"GLIBC_2.2.5"' -include "$WORK/inc/glibc-compat.h" -Ipreload -Isrc \
        -o "$LIBVGPU" $SRCS -Wl,--version-script=preload/libvgpu.sym -Wl,-z,nodelete -Wl,-z,now \
        -ldl -lpthread >>"$LOG" 2>&1; then
        log "libvgpu.so did not build (see the log): nothing to measure"
        meta libvgpu "build failed"
        render
        cat "$TABLE" 2>/dev/null
        exit 1
fi
if GIT_REV=$(git rev-parse --short HEAD 2>/dev/null); then
        GIT_REV="commit $GIT_REV + $(git status --porcelain 2>/dev/null | wc -l) changed files"
else
        GIT_REV="a tree without git"
fi
meta libvgpu "built from $GIT_REV, sha256 $(sha256sum "$LIBVGPU" | cut -c1-12)"

# The probes (nvcc, in the background while gcc builds the rest).
(timeout 180 "$NVCC" -arch=sm_90 -O2 -o "$BIN/spin" bench/gpu/spin.cu -lcuda >"$WORK/nvcc-spin.log" 2>&1;
        echo $? >"$WORK/nvcc-spin.rc") &
NVCC1=$!
(timeout 180 "$NVCC" -arch=sm_90 -O2 -o "$BIN/overhead" bench/gpu/overhead.cu -lcuda \
        >"$WORK/nvcc-ovh.log" 2>&1; echo $? >"$WORK/nvcc-ovh.rc") &
NVCC2=$!

# The region maker (the daemon's job): lets the monitor start before the tenants.
MKREGION=$BIN/mkregion
if ! timeout 60 gcc -std=gnu11 -O2 -D_GNU_SOURCE -Isrc -o "$MKREGION" bench/gpu/mkregion.c src/shared-region.c \
        -lpthread >>"$LOG" 2>&1; then
        log "mkregion did not build: the first process of each tenant creates its region"
        MKREGION=
fi

# The usage monitor (tools/hami-vgpu-monitor.c).
MONITOR=
MON_VERBOSE=
MON_SRCS="src/usage-monitor.c src/proc-locks.c src/shared-region.c tools/hami-vgpu-monitor.c"
MON_MISSING=
for f in $MON_SRCS; do
        [ -f "$f" ] || MON_MISSING="$MON_MISSING $f"
done
if [ -n "$MON_MISSING" ]; then
        MON_STATE="missing (no$MON_MISSING)"
        MON_REASON=monitor_missing
        log "USAGE MONITOR MISSING:$MON_MISSING not found. The tenant rows will not run; the rest runs without it."
else
        printf '#pragma once\n#define PACKAGE_VERSION "bench"\n' >"$WORK/inc/config.h"
        # shellcheck disable=SC2086 # MON_SRCS is a list of paths without spaces
        if timeout 120 gcc -std=gnu11 -O2 -D_GNU_SOURCE -Isrc -I"$WORK/inc" -o "$BIN/hami-vgpu-monitor" $MON_SRCS \
                -ldl -lpthread >>"$LOG" 2>&1; then
                MONITOR=$BIN/hami-vgpu-monitor
                # what it measured, tick by tick, into the log
                grep -q -- '--verbose' tools/hami-vgpu-monitor.c && MON_VERBOSE=1
                MON_STATE="built from$(for f in $MON_SRCS; do printf ' %s' "${f##*/}"; done)"
        else
                MON_STATE="build failed (see the log)"
                MON_REASON=monitor_build_failed
                log "USAGE MONITOR DID NOT BUILD (see the log). The tenant rows will not run."
        fi
fi
if [ -n "$MONITOR" ] && [ -z "$GPU_UUID" ]; then
        MONITOR=
        MON_STATE="not usable (no GPU UUID)"
        MON_REASON=no_gpu_uuid
fi
meta monitor "$MON_STATE${MON_INTERVAL_MS:+, --interval-ms $MON_INTERVAL_MS}"

wait "$NVCC1" "$NVCC2"
cat "$WORK"/nvcc-*.log >>"$LOG" 2>/dev/null
SPIN=$BIN/spin
OVH=$BIN/overhead
[ "$(cat "$WORK/nvcc-spin.rc" 2>/dev/null)" = 0 ] || { log "spin.cu did not build"; SPIN=; }
[ "$(cat "$WORK/nvcc-ovh.rc" 2>/dev/null)" = 0 ] || { log "overhead.cu did not build"; OVH=; }
log "builds done"

# PID namespaces for the "containers".
UNSHARE=()
if timeout 10 unshare --pid --fork --kill-child true >/dev/null 2>&1; then
        UNSHARE=(unshare --pid --fork --kill-child)
        meta pidns "own (unshare --pid --fork --kill-child)"
elif timeout 10 unshare --pid --fork true >/dev/null 2>&1; then
        UNSHARE=(unshare --pid --fork)
        meta pidns "own (unshare --pid --fork)"
else
        meta pidns "none: unshare --pid failed, tenants share the host's"
        log "unshare --pid --fork does not work here: tenants run in the host's PID namespace"
fi
PIDNS=$([ ${#UNSHARE[@]} -gt 0 ] && echo own || echo host)

# ---------------------------------------------------------------- the monitor
MONPID=
MON_RAN=no
# monitor_start REGION...: once every region file exists (up to 5 s), start the monitor.
monitor_start() {
        local r i
        MONPID=
        [ -n "$MONITOR" ] || return 1
        for i in $(seq 50); do
                local all=1
                for r in "$@"; do
                        [ -e "$r" ] || all=0
                done
                [ $all = 1 ] && break
                sleep 0.1
        done
        local -a args=()
        [ -n "$MON_INTERVAL_MS" ] && args+=(--interval-ms "$MON_INTERVAL_MS")
        [ -n "$MON_VERBOSE" ] && args+=(--verbose)
        for r in "$@"; do
                args+=("$r=$GPU_UUID")
        done
        echo "--- monitor: ${args[*]}" >>"$LOG"
        timeout -k 2 90 "$MONITOR" "${args[@]}" >>"$WORK/monitor.log" 2>&1 &
        MONPID=$!
        BG_PIDS+=("$MONPID")
        return 0
}
# monitor_stop: stop it; MON_RAN says how it went ("no", "yes" or "exited_early").
monitor_stop() {
        MON_RAN=no
        [ -n "$MONPID" ] || return 0
        MON_RAN=yes
        if ! kill -0 "$MONPID" 2>/dev/null; then
                wait "$MONPID"
                log "the monitor had exited before the end of the run (rc $?)"
                MON_RAN=exited_early
        else
                kill -TERM "$MONPID" 2>/dev/null
                wait "$MONPID" 2>/dev/null
        fi
        cat "$WORK/monitor.log" >>"$LOG" 2>/dev/null
        : >"$WORK/monitor.log"
        MONPID=
}

# ---------------------------------------------------------------- spin groups
# spin_group SECTION "KEY=V ..." MODE SECS WARM SPEC...
# One process per SPEC, all at once (a common window when more than one):
#   -  no preload (the baseline), plain process
#   N  its own "container": LD_PRELOAD=libvgpu.so, its own region, CUDA_DEVICE_SM_LIMIT_0=N
#      (0: the preload without a limit), under unshare --pid --fork
# The monitor runs with the regions of the group when it is built.
spin_group() {
        local section=$1 keys=$2 mode=$3 secs=$4 warm=$5
        shift 5
        local -a specs=("$@") regions=() pids=()
        local n=$# i=0 spec start_at=0 g rc line apps=
        local -a rcs=()
        g=$(mktemp -d "$WORK/g.XXXXXX")
        if [ -z "$SPIN" ]; then
                for spec in "${specs[@]}"; do
                        i=$((i + 1))
                        echo "F section=$section $keys tenant=$i limit=$(lim "$spec") reason=spin.cu_did_not_build" >>"$RES"
                done
                return 1
        fi
        for spec in "${specs[@]}"; do
                i=$((i + 1))
                [ "$spec" = - ] && continue
                if [ -n "$MKREGION" ]; then
                        "$MKREGION" "$g/t$i.region" 0 "$spec" >>"$LOG" 2>&1
                fi
                regions+=("$g/t$i.region")
        done
        [ "$n" -gt 1 ] && start_at=$(($(date +%s%N) + 2500000000))
        echo "--- spin_group $section $keys mode=$mode secs=$secs warm=$warm specs=${specs[*]}" >>"$LOG"
        i=0
        for spec in "${specs[@]}"; do
                i=$((i + 1))
                local -a cmd=(timeout -k 2 $((${secs%.*} + 25)))
                if [ "$spec" = - ]; then
                        cmd+=("$SPIN")
                        [ "$n" = 1 ] && cmd+=(--calibrate)
                else
                        cmd+=("${UNSHARE[@]}" env LD_PRELOAD="$LIBVGPU" CUDA_DEVICE_MEMORY_SHARED_CACHE="$g/t$i.region"
                                LIBCUDA_LOG_LEVEL="$SPIN_LOG_LEVEL")
                        [ "$spec" != 0 ] && cmd+=(CUDA_DEVICE_SM_LIMIT_0="$spec")
                        cmd+=("$SPIN")
                fi
                cmd+=(--mode "$mode" --secs "$secs" --warm "$warm" --start-at "$start_at" --label "t$i")
                "${cmd[@]}" >"$g/t$i.out" 2>"$g/t$i.err" &
                pids+=($!)
        done
        MONPID=
        [ ${#regions[@]} -gt 0 ] && monitor_start "${regions[@]}"
        if [ "$n" -gt 1 ] && [ ${#regions[@]} -gt 0 ]; then
                (sleep 4; timeout 15 nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader \
                        >"$g/apps.txt" 2>&1) &
                apps=$!
        fi
        for i in "${!pids[@]}"; do
                wait "${pids[$i]}"
                rcs[i]=$?
        done
        [ -n "$apps" ] && wait "$apps"
        monitor_stop
        i=0
        for spec in "${specs[@]}"; do
                i=$((i + 1))
                rc=${rcs[$((i - 1))]}
                {
                        echo "--- t$i (limit $(lim "$spec")) rc=$rc"
                        cat "$g/t$i.out"
                        tail -n 60 "$g/t$i.err"
                } >>"$LOG"
                line=$(grep -m1 '^SPIN ' "$g/t$i.out")
                # The limiter's steps (LIBCUDA_LOG_LEVEL 4): on the monitor's own share, or
                # on NVML's device-wide utilization (no monitor data).
                local own dw
                own=$(grep -c ' own share ' "$g/t$i.err")
                dw=$(grep -c ' device-wide share ' "$g/t$i.err")
                if [ -n "$line" ] && [ "$rc" = 0 ]; then
                        echo "R section=$section $keys tenant=$i limit=$(lim "$spec") monitor=$MON_RAN pidns=$PIDNS steps_own=$own steps_devwide=$dw :: $line" >>"$RES"
                else
                        local why
                        why=$(grep -m1 -o 'err=[A-Za-z_0-9]*' "$g/t$i.out" || true)
                        [ "$rc" = 124 ] || [ "$rc" = 137 ] && why="timed out"
                        echo "F section=$section $keys tenant=$i limit=$(lim "$spec") reason=exit_${rc}${why:+_${why// /_}}" >>"$RES"
                fi
        done
        if [ -f "$g/apps.txt" ]; then
                { echo "--- nvidia-smi compute apps during the run:"; cat "$g/apps.txt"; } >>"$LOG"
        fi
        return 0
}
lim() { if [ "$1" = - ]; then echo none; else echo "$1"; fi; }

# alone_round REP: every alone row once (baselines first), if it fits.
alone_round() {
        local rep=$1 mode limit need=$((${ALONE_SECS%.*} + 4))
        for mode in short long burst; do
                for limit in - 10 30 50 90; do
                        if fits "$need"; then
                                spin_group alone "mode=$mode rep=$rep" "$mode" "$ALONE_SECS" "$ALONE_WARM" "$limit"
                        else
                                echo "N section=alone mode=$mode tenant=1 limit=$(lim "$limit") rep=$rep reason=time_budget" >>"$RES"
                        fi
                done
        done
        log "alone runs, round $rep, done"
        render
}

# ---------------------------------------------------------------- 0. warm-up
if [ -n "$SPIN" ]; then
        timeout 30 "$SPIN" --mode short --secs 1.5 --warm 0.5 --label warmup >>"$LOG" 2>&1
        log "warm-up done"
fi

# ---------------------------------------------------------------- 1. call overhead
# Variants alternate within each round: none, the preload without limits, with limits.
if [ -n "$OVH" ]; then
        for rep in $(seq "$OVH_REPS"); do
                for v in none vgpu vgpu-limits; do
                        if ! fits 12; then
                                echo "N section=ovh variant=$v rep=$rep reason=time_budget" >>"$RES"
                                continue
                        fi
                        o=$WORK/ovh.$v.$rep
                        MONPID=
                        case $v in
                        none) cmd=("$OVH") ;;
                        vgpu)
                                [ -n "$MKREGION" ] && "$MKREGION" "$o.region" 0 0 >>"$LOG" 2>&1
                                cmd=(env LD_PRELOAD="$LIBVGPU" CUDA_DEVICE_MEMORY_SHARED_CACHE="$o.region" "$OVH") ;;
                        vgpu-limits)
                                [ -n "$MKREGION" ] && "$MKREGION" "$o.region" $((4096 << 20)) 90 >>"$LOG" 2>&1
                                cmd=(env LD_PRELOAD="$LIBVGPU" CUDA_DEVICE_MEMORY_SHARED_CACHE="$o.region"
                                        CUDA_DEVICE_MEMORY_LIMIT_0=4096m CUDA_DEVICE_SM_LIMIT_0=90 "$OVH") ;;
                        esac
                        timeout -k 2 30 "${cmd[@]}" --label "$v" --warm 1 --max-secs 4 >"$o.out" 2>"$o.err" &
                        p=$!
                        [ "$v" = vgpu-limits ] && monitor_start "$o.region"
                        wait "$p"
                        rc=$?
                        monitor_stop
                        { echo "--- overhead $v rep $rep rc=$rc"; cat "$o.out"; tail -n 20 "$o.err"; } >>"$LOG"
                        n_ok=0
                        while read -r line; do
                                echo "R section=ovh variant=$v rep=$rep monitor=$MON_RAN :: $line" >>"$RES"
                                n_ok=$((n_ok + 1))
                        done < <(grep '^OVERHEAD ' "$o.out")
                        if [ "$rc" != 0 ] || [ $n_ok -lt 2 ]; then
                                echo "F section=ovh variant=$v rep=$rep reason=exit_$rc" >>"$RES"
                        fi
                done
        done
        log "call overhead done"
else
        echo "F section=ovh variant=none reason=overhead.cu_did_not_build" >>"$RES"
fi
render

# ---------------------------------------------------------------- 2. alone, round 1
alone_round 1

# ---------------------------------------------------------------- 3. tenants at once
TB_NEED=$((${ALONE_SECS%.*} + 4))
for rep in $(seq "$TENANT_BASE_REPS"); do
        if fits "$TB_NEED"; then
                spin_group tbase "mode=mid rep=$rep" mid "$ALONE_SECS" "$ALONE_WARM" -
        else
                echo "N section=tbase mode=mid tenant=1 limit=none rep=$rep reason=time_budget" >>"$RES"
        fi
done
T_NEED=$((${TENANT_SECS%.*} + 8))
for cfg in -/- 30/60 20/70 50/50 10/30/60 10/20/30/30; do
        IFS=/ read -r -a specs <<<"$cfg"
        if [ "$cfg" != -/- ] && [ -z "$MONITOR" ]; then
                echo "N section=tenants cfg=$cfg reason=$MON_REASON" >>"$RES"
                continue
        fi
        if ! fits "$T_NEED"; then
                echo "N section=tenants cfg=$cfg reason=time_budget" >>"$RES"
                continue
        fi
        spin_group tenants "cfg=$cfg" mid "$TENANT_SECS" "$TENANT_WARM" "${specs[@]}"
done
log "tenants done"
render

# ---------------------------------------------------------------- 4. memory footprint
# python3 + torch under the preload, allocating until OOM; nvidia-smi says what it holds.
if python3 -c 'import torch' >/dev/null 2>&1; then
        cases=("none native")
        for limit in 4096m 8192m; do
                for conf in native backend:cudaMallocAsync expandable_segments:True; do
                        cases+=("$limit $conf")
                done
        done
        for c in "${cases[@]}"; do
                read -r limit conf <<<"$c"
                if ! fits 25; then
                        echo "N section=mem limit=$limit conf=$conf reason=time_budget" >>"$RES"
                        continue
                fi
                o=$WORK/mem.$limit.${conf//:/_}
                MONPID=
                if [ "$limit" = none ]; then
                        cmd=(python3 "$ROOT/bench/gpu/mem.py" --no-fill)
                else
                        bytes=$((${limit%m} << 20))
                        [ -n "$MKREGION" ] && "$MKREGION" "$o.region" "$bytes" 0 >>"$LOG" 2>&1
                        cmd=("${UNSHARE[@]}" env LD_PRELOAD="$LIBVGPU" CUDA_DEVICE_MEMORY_SHARED_CACHE="$o.region"
                                CUDA_DEVICE_MEMORY_LIMIT_0="$limit" LIBCUDA_LOG_LEVEL=3 PYTHONUNBUFFERED=1)
                        # native: PYTORCH_CUDA_ALLOC_CONF stays unset (unset at the top)
                        [ "$conf" != native ] && cmd+=(PYTORCH_CUDA_ALLOC_CONF="$conf")
                        cmd+=(python3 "$ROOT/bench/gpu/mem.py" --max-secs 30)
                fi
                timeout -k 2 60 "${cmd[@]}" --label "$limit/$conf" >"$o.out" 2>"$o.err" &
                p=$!
                [ "$limit" != none ] && monitor_start "$o.region"
                wait "$p"
                rc=$?
                monitor_stop
                { echo "--- mem $limit $conf rc=$rc"; cat "$o.out"; tail -n 40 "$o.err"; } >>"$LOG"
                line=$(grep -m1 '^MEM ' "$o.out")
                if [ -n "$line" ] && [ "$rc" = 0 ]; then
                        echo "R section=mem limit=$limit conf=$conf monitor=$MON_RAN :: $line" >>"$RES"
                        tv=$(echo "$line" | grep -o 'torch=[^ ]*' | cut -d= -f2)
                        [ -n "$tv" ] && ! grep -q '^M torch ' "$RES" && meta torch "$tv"
                else
                        echo "F section=mem limit=$limit conf=$conf reason=exit_$rc" >>"$RES"
                fi
        done
else
        echo "F section=mem limit=none conf=native reason=python3_has_no_torch" >>"$RES"
fi
log "memory done"
render

# ---------------------------------------------------------------- 5. alone, more rounds
for rep in $(seq 2 "$ALONE_REPS"); do
        alone_round "$rep"
done

render
log "done in $(($(date +%s) - T0)) s"
echo
cat "$TABLE"
