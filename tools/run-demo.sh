#!/bin/bash
# The main job on an embedded default: build hami-dra, start the node daemon on mock GPUs
# in a throwaway directory tree (with a private system bus), drive it the way a kubelet
# does, look inside with hamictl, and say what happened.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh

BUILD=${BUILD:-build-demo}
if [ ! -f "$BUILD/build.ninja" ]; then
        meson setup "$BUILD" >/dev/null
fi
meson compile -C "$BUILD" >/dev/null
export HAMI_DRA_BUILD_ROOT=$PWD/$BUILD

demo=$(mktemp -d /tmp/hami-dra-demo.XXXXXX)
pids=()
cleanup() {
        for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
        wait 2>/dev/null || true
        rm -rf "$demo"
}
trap cleanup EXIT

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }

# A private system bus with our bus policy, so hamictl works without touching the host's.
mkdir -p "$demo/bus/system.d"
cp dbus/org.projecthami.Dra1.conf "$demo/bus/system.d/"
mkdir -p "$demo/bus/services"
sed -e "s|@SOCKET@|$demo/bus/socket|" -e "s|@DIR@|$demo/bus|" tests/fakes/private-system-bus.conf \
        > "$demo/bus/system.conf"
dbus-daemon --config-file="$demo/bus/system.conf" --nofork --nopidfile 2>/dev/null &
pids+=($!)
export DBUS_SYSTEM_BUS_ADDRESS=unix:path=$demo/bus/socket
for _ in $(seq 50); do [ -S "$demo/bus/socket" ] && break; sleep 0.1; done

say "Starting hami-dra-plugin with 8 mock GPUs (node demo-node) in $demo"
"$BUILD/src/hami-dra-plugin" --config= --backend=mock --mock-gpus=8 --node-name=demo-node \
        --registry-dir="$demo/plugins_registry" --plugins-dir="$demo/plugins" \
        --cdi-dir="$demo/cdi" --state-dir="$demo/state" --kubeconfig= \
        2> "$demo/daemon.log" &
daemon=$!
pids+=($daemon)

say "A kubelet finds the plugin, registers it and reads device health"
/usr/bin/python3 tests/kubelet-sim.py --registry-dir "$demo/plugins_registry" --wait 20

say "What the daemon logged"
sed -e 's/^/  /' "$demo/daemon.log"

say "hamictl status / devices (over the private system bus)"
"$BUILD/src/hamictl" status | sed -e 's/^/  /'
echo
"$BUILD/src/hamictl" devices | sed -e 's/^/  /'

say "Stopping the daemon (SIGTERM)"
kill -TERM "$daemon"
wait "$daemon" && echo "  clean exit; sockets removed: $( [ -e "$demo/plugins_registry/hami-core-gpu.project-hami.io-reg.sock" ] && echo no || echo yes)"
