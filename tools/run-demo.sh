#!/bin/bash
# The main job on an embedded default: build hami-dra, start the node daemon on mock GPUs
# in a throwaway directory tree (with a private system bus), drive it the way a kubelet
# does, look inside with hamictl, and say what happened.
set -euo pipefail
# shellcheck source=tools/lib.sh
. "$(dirname "$0")/lib.sh"
become_root "$0" "$@"
trap give_back EXIT
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
        give_back
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

say "A fake API server (TLS, node credentials) stands in for the cluster"
tests/fakes/start-fake-apiserver.sh "$demo/api" demo-node |
        sed -e 's/^/  /'
pids+=("$(cat "$demo/api/fake.pid")")
control=http://127.0.0.1:$(cat "$demo/api/control-port")

# The claim a user applies (deploy/examples/), allocated as the scheduler would: on
# hami-gpu-0 of this node, with a shareID and consumedCapacity equal to its requests.
# (The fake API server keeps no DeviceClasses: the daemon never reads them.)
example=deploy/examples/gpu-50-cores-10gi.yaml
say "The scheduler allocates the claim of $example"
/usr/bin/python3 tests/fakes/allocate-claim.py "$example" demo-node hami-gpu-0 > "$demo/claim.json"
/usr/bin/python3 - "$demo/claim.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
m = c["metadata"]
print("  ResourceClaim %s/%s, UID %s" % (m["namespace"], m["name"], m["uid"]))
for r in c["spec"]["devices"]["requests"]:
    print("  request %s: class %s, capacity.requests %s" % (r["name"], r["exactly"]["deviceClassName"],
          json.dumps(r["exactly"].get("capacity", {}).get("requests", {}))))
for r in c["status"]["allocation"]["devices"]["results"]:
    print("  allocated: %s/%s, shareID %s, consumedCapacity %s" % (r["pool"], r["device"], r["shareID"],
          json.dumps(r.get("consumedCapacity"))))
PY
read -r claim_ns claim_name claim_uid < <(/usr/bin/python3 -c \
        'import json, sys; m = json.load(open(sys.argv[1]))["metadata"]; print(m["namespace"], m["name"], m["uid"])' \
        "$demo/claim.json")
[ -n "$claim_uid" ]
/usr/bin/python3 -c 'import sys, urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "/claims", data=open(sys.argv[2], "rb").read(), method="POST"), timeout=10).read()' \
        "$control" "$demo/claim.json"

# Mock GPUs have no /dev/nvidia*: device nodes made with mknod stand in for them.
mkdir -p "$demo/devroot/dev" "$demo/driver"
for i in $(seq 0 7); do mknod "$demo/devroot/dev/nvidia$i" c 195 "$i"; done
mknod "$demo/devroot/dev/nvidiactl" c 195 255
mknod "$demo/devroot/dev/nvidia-uvm" c 509 0
mknod "$demo/devroot/dev/nvidia-uvm-tools" c 509 1
cat > "$demo/hami-dra.conf" <<CONF
[Plugin]
Kubeconfig=$demo/api/kubeconfig
[Container]
PreloadLibrary=$PWD/$BUILD/preload/libvgpu.so
CONF

say "Starting hami-dra-plugin with 8 mock GPUs (node demo-node) in $demo"
HAMI_DRA_DEV_ROOT=$demo/devroot HAMI_DRA_DRIVER_ROOT=$demo/driver \
"$BUILD/src/hami-dra-plugin" --config="$demo/hami-dra.conf" --backend=mock --mock-gpus=8 --node-name=demo-node \
        --registry-dir="$demo/plugins_registry" --plugins-dir="$demo/plugins" \
        --cdi-dir="$demo/cdi" --state-dir="$demo/state" \
        2> "$demo/daemon.log" &
daemon=$!
pids+=($daemon)

say "A kubelet finds the plugin, registers it, reads device health and prepares the claim"
/usr/bin/python3 tests/kubelet-sim.py --registry-dir "$demo/plugins_registry" --wait 20 \
        --claim "$claim_ns/$claim_name/$claim_uid" --keep | sed -e 's/^/  /'

say "The ResourceSlice the daemon published"
/usr/bin/python3 - "$control" <<'PY'
import json, sys, urllib.request
for s in json.load(urllib.request.urlopen(sys.argv[1] + "/slices", timeout=10)):
    spec = s["spec"]
    print("  %s: driver %s, pool %s generation %d, %d devices" % (s["metadata"]["name"], spec["driver"],
          spec["pool"]["name"], spec["pool"]["generation"], len(spec["devices"])))
    d = spec["devices"][0]
    print("  %s attributes:" % d["name"])
    for k, v in sorted(d["attributes"].items()):
        print("    %-34s %s" % (k, list(v.values())[0]))
    print("  %s capacity (allowMultipleAllocations: %s):" % (d["name"], d.get("allowMultipleAllocations")))
    for k, v in sorted(d["capacity"].items()):
        print("    %-8s %s, requests %s" % (k, v["value"], json.dumps(v.get("requestPolicy"))))
PY

say "The CDI spec the container runtime will read"
/usr/bin/python3 -m json.tool "$demo"/cdi/*.json | sed -e 's/^/  /'
echo

say "hamictl status / devices / claims (over the private system bus)"
"$BUILD/src/hamictl" status | sed -e 's/^/  /'
echo
"$BUILD/src/hamictl" devices | sed -e 's/^/  /'
echo
"$BUILD/src/hamictl" claims | sed -e 's/^/  /'

say "The kubelet unprepares the claim when its pod is gone"
/usr/bin/python3 tests/kubelet-sim.py --registry-dir "$demo/plugins_registry" \
        --claim "$claim_ns/$claim_name/$claim_uid" --unprepare-only | grep -v "^registration\|^kubelet would" | sed -e 's/^/  /'
echo "  CDI specs left: $(ls "$demo/cdi" | wc -l)"

say "What the daemon logged"
sed -e 's/^/  /' "$demo/daemon.log"

say "Stopping the daemon (SIGTERM)"
kill -TERM "$daemon"
wait "$daemon" && echo "  clean exit; sockets removed: $( [ -e "$demo/plugins_registry/hami-core-gpu.project-hami.io-reg.sock" ] && echo no || echo yes)"
