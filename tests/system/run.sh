#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# The `system` suite: hami-dra-plugin under a real systemd.
#
# Boots systemd as PID 1 of a systemd-nspawn container whose root is a throwaway
# overlay (lower: the host's / read-only, upper: a tmpfs): the host's root is never
# booted over and never written to. Installs this build into it (meson install
# --destdir into the overlay), runs `systemctl enable --now hami-dra-plugin.socket` and
# proves socket activation, restart without a lost connection, both sandbox layers,
# the systemd-analyze security figure, busctl and a real polkitd (allow root, deny
# nobody), and a clean stop.
#
# Prepare, end to end: the strict fake API server runs in the container's network
# namespace (the service's loopback) with node credentials and the kubelet's
# /etc/kubernetes/kubelet.conf, holding one allocated claim (a share: consumedCapacity
# and shareID) for the container's node. The kubelet simulator prepares exactly that
# claim through the shipped unit, unchanged (its BindPaths= carry the /dev/nvidia*
# fixtures in; the preload library is the installed libvgpu.so), and the suite checks:
# the CDI device in the answer, the spec in /run/cdi (schema-valid, with the limits),
# `hamictl claims` listing it, the journal entry with MESSAGE_ID=<prepared> and every
# audit field's value, the installed catalog's text under `journalctl -x`, the
# ResourceSlice in the fake; then unprepare: the unprepared entry, the spec gone.
# Teardown always runs (it kills the fake too).
#
# Needs root. Exits 77 (skip) only when systemd-nspawn cannot run here at all.
# Env: HAMI_DRA_BUILD_ROOT, HAMI_DRA_SOURCE_ROOT (set by meson),
#      KEEP=1 leaves the container running for a look (teardown by hand: see the end).
set -uo pipefail

BUILD=${HAMI_DRA_BUILD_ROOT:?run through meson test}
SRC=${HAMI_DRA_SOURCE_ROOT:?run through meson test}
EXPOSURE_GOAL=1.3
PY=/usr/bin/python3
CLIENT="$PY $SRC/tests/system/client.py"

skip() { echo "SKIP: $*"; exit 77; }
pass=0; fail=0; skipped=0
ok()  { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
skipped() { skipped=$((skipped + 1)); echo "skip - $*"; }
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi; }
contains() { grep -qF -- "$2" <<<"$1"; }
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
# journal_wait TEXT SECONDS: the service's latest journal line with TEXT, once one is
# there (empty after SECONDS).
journal_wait() {
        local line= i
        for ((i = 0; i < $2 * 10; i++)); do
                line=$(IN journalctl -u hami-dra-plugin.service -o cat --no-pager -n 40 | grep -F -- "$1" | tail -n 1)
                [ -n "$line" ] && break
                sleep 0.1
        done
        echo "$line"
}

[ "$(id -u)" = 0 ] || skip "needs root (systemd-nspawn, overlayfs, cgroups)"

T0=$(date +%s%N)
# shellcheck source=tests/system/container.sh
source "$SRC/tests/system/container.sh"
container_up --probe
# /dev/nvidia0 as a node of a device the unit does not allow (fuse, 10:229): bound in
# by BindPaths=, refused by the device cgroup (DevicePolicy=closed via PrivateDevices=).
IN mknod -m 0666 /dev/nvidia0 c 10 229
# An address outside IPAddressAllow= on the container's own loopback.
IN ip addr add 203.0.113.1/32 dev lo

# ------------------------------------------------------------------ the API server, a claim
# The real daemon runs as node "systest" (the drop-in of container_up); it reads the
# kubelet's kubeconfig at start, so the fake is up before the first connection.
NODE=systest
DRIVER=$(basename "$(sed -n 's/^ListenStream=//p' "$BUILD/units/hami-dra-plugin.socket")" -reg.sock)
CLAIM_NS=systest-ns
CLAIM_NAME=systest-claim
CLAIM_UID=$(cat /proc/sys/kernel/random/uuid)
SHARE_ID=$(cat /proc/sys/kernel/random/uuid)
CDI_ID=k8s.$DRIVER/claim=$CLAIM_UID-hami-gpu-0-$SHARE_ID
CDI_SPEC=/run/cdi/k8s.$DRIVER-claim_$CLAIM_UID.json
API=
if [ "$DAEMON" = real ] && [ -n "$KUBELET_SIM" ]; then
        if apiserver_up "$NODE" >"$W/apiserver-up.log" 2>&1; then
                API=yes
                ok "fake API server in the container's network namespace ($API_CONTROL)"
        else
                bad "fake API server did not start: $(cat "$W/apiserver-up.log")"
        fi
fi
if [ -n "$API" ]; then
        # What the scheduler would have written: 10 GiB and 30% of hami-gpu-0, allocated.
        cat >"$W/claim.json" <<JSON
{"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
 "metadata": {"namespace": "$CLAIM_NS", "name": "$CLAIM_NAME", "uid": "$CLAIM_UID"},
 "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": "$DRIVER",
     "capacity": {"requests": {"memory": "10Gi", "cores": "30"}}}}]}},
 "status": {"allocation": {"devices": {"results": [
     {"request": "gpu", "driver": "$DRIVER", "pool": "$NODE", "device": "hami-gpu-0",
      "shareID": "$SHARE_ID", "consumedCapacity": {"memory": "10Gi", "cores": "30"}}]}}}}
JSON
        check "claim $CLAIM_NS/$CLAIM_NAME ($CLAIM_UID) allocated in the fake" apiserver_post /claims "$W/claim.json"
fi

# ------------------------------------------------------------------ static checks
check "systemd-analyze verify: no complaints" \
        bash -c "out=\$($X systemd-analyze verify --man=no hami-dra-plugin.service hami-dra-plugin.socket hami-dra-plugin-dra.socket hami-dra-metrics.socket hami-dra-webhook.service 2>&1) && [ -z \"\$out\" ] || { echo \"\$out\" >&2; false; }"
check "tmpfiles.d created /run/cdi at boot" IN test -d /run/cdi

# ------------------------------------------------------------------ enable --now, first connection
check "systemctl enable --now hami-dra-plugin.socket" IN systemctl enable --now hami-dra-plugin.socket
check "registration socket unit active" IN systemctl is-active -q hami-dra-plugin.socket
check "DRA socket unit active (pulled in by Wants=)" IN systemctl is-active -q hami-dra-plugin-dra.socket
check "DRA socket enabled too (Also=)" IN systemctl is-enabled -q hami-dra-plugin-dra.socket
check "registration socket exists: $REG" test -S "$ROOT$REG"
check "DRA socket exists: $DRA" test -S "$ROOT$DRA"
check "service not started before the first connection" bash -c "! $X systemctl is-active -q hami-dra-plugin.service"

t=$(date +%s%N)
if [ -n "$KUBELET_SIM" ]; then
        # The kubelet simulator inside the container, where the endpoint path it is
        # given is valid: registration, GetInfo, health stream, prepare and unprepare.
        reply=$(IN env HAMI_DRA_SOURCE_ROOT="$TESTLIB" HAMI_DRA_BUILD_ROOT="$TESTLIB/build" \
                /usr/bin/python3 "$TESTLIB/tests/kubelet-sim.py" --wait 5 2>&1)
        echo "$reply" | sed 's/^/# kubelet-sim: /'
        if grep -q "^registration accepted" <<<"$reply"; then
                ok "the kubelet simulator registered on first contact ($(ms "$t") ms)"
        else
                bad "the kubelet simulator did not register"
        fi
        check "the health stream lists the mock GPUs" bash -c "grep -q '^devices: hami-gpu-0 healthy' <<<'$reply'"
elif reply=$($CLIENT $PROTO "$ROOT$REG" 2>&1); then
        ok "first connection on the registration socket answered ($(ms "$t") ms): $reply"
else
        bad "first connection on the registration socket: $reply"
        IN systemctl status --no-pager -n 0 hami-dra-plugin.service
        IN journalctl --no-pager -o cat -n 30 -u hami-dra-plugin.service
fi
# ExecStartPost= (the probe) may still run: wait for "active".
for _ in $(seq 50); do IN systemctl is-active -q hami-dra-plugin.service && break; sleep 0.1; done
check "the connection activated the service" IN systemctl is-active -q hami-dra-plugin.service
if [ "$DAEMON" = standin ]; then
        check "the DRA socket is served by the same service" bash -c "$CLIENT line $ROOT$DRA | grep -q 'standin dra'"
fi

MAIN=$(IN systemctl show -P MainPID hami-dra-plugin.service)
status_of() { IN cat "/proc/$MAIN/status" | awk -v k="$1:" '$1 == k {print $2}'; }

# ------------------------------------------------------------------ sandbox: the process layer
check "daemon: seccomp filter installed (Seccomp: 2)" test "$(status_of Seccomp)" = 2
check "daemon: NoNewPrivs: 1" test "$(status_of NoNewPrivs)" = 1
check "daemon: no effective capabilities" test "$(status_of CapEff)" = 0000000000000000
check "daemon: no permitted capabilities" test "$(status_of CapPrm)" = 0000000000000000
check "daemon: empty bounding set" test "$(status_of CapBnd)" = 0000000000000000
threads_filtered=$(IN sh -c "grep -h '^Seccomp:' /proc/$MAIN/task/*/status | sort -u | tr -d '\t '")
check "daemon: every thread filtered" test "$threads_filtered" = "Seccomp:2"
# LimitNOFILE=65536, or as close as systemd's own hard limit allows (setrlimit_closest()).
nofile_of() { IN cat "/proc/$1/limits" | awk '/^Max open files/ {print $4, $5}'; }
read -r _ pid1_hard <<<"$(nofile_of 1)"
want_nofile=$(( pid1_hard < 65536 ? pid1_hard : 65536 ))
check "daemon: the unit's LimitNOFILE=65536 in effect ($(nofile_of "$MAIN"), want $want_nofile both)" \
        test "$(nofile_of "$MAIN")" = "$want_nofile $want_nofile"
if [ "$DAEMON" = standin ]; then
        reply=$($CLIENT line "$ROOT$REG" violate 2>&1)
        check "daemon: forbidden personality(2) refused with EPERM ($reply)" \
                bash -c "[[ '$reply' == *errno=EPERM* ]]"
fi
check "daemon: journal says the sandbox is installed" \
        bash -c "$X journalctl -u hami-dra-plugin.service -o cat --no-pager | grep -q 'Sandbox installed'"

# ------------------------------------------------------------------ sandbox: the unit layer
IN journalctl --sync 2>/dev/null
probe=$(IN journalctl -u hami-dra-plugin.service -o cat --no-pager 2>/dev/null | grep -E '^(REFUSED|ALLOWED|DEVICE|NET) ')
sed 's/^/# probe: /' <<<"$probe"
for what in mount ptrace unshare-user reboot socket-netlink write-etc write-usr open-dev-kmsg open-dev-vda; do
        check "unit sandbox refuses $what" bash -c "grep -q '^REFUSED $what:' <<<'$probe'"
done
for what in write-state-dir write-cdi-dir; do
        check "unit sandbox allows $what" bash -c "grep -q '^ALLOWED $what' <<<'$probe'"
done
check "BindPaths= carries /dev/nvidiactl into the private /dev" \
        bash -c "grep -q '^DEVICE /dev/nvidiactl char 1:3 open=ok' <<<'$probe'"
check "DeviceAllow= refuses a device it does not name (/dev/nvidia0 as 10:229)" \
        bash -c "grep -q '^DEVICE /dev/nvidia0 char 10:229 open=EPERM' <<<'$probe'"
check "IPAddressAllow= lets loopback through" \
        bash -c "grep -q '^NET 127.0.0.1 sent' <<<'$probe'"
check "IPAddressDeny= refuses an address outside the API server networks" \
        bash -c "grep -q '^NET 203.0.113.1 EPERM' <<<'$probe'"

# ------------------------------------------------------------------ metrics (hami-dra-metrics.socket)
METRICS_PORT=$(sed -n 's/^ListenStream=//p' "$BUILD/units/hami-dra-metrics.socket")
# GET /metrics from inside the container's network, to 127.0.0.1 or to the public
# address on its loopback (so the scraper's address is public too).
metrics_get() {
        NET $PY - "$1" "$METRICS_PORT" <<'PY'
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2].rsplit(":", 1)[-1])), timeout=3)
s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
sys.stdout.write(data.decode(errors="replace"))
PY
}
check "metrics socket active (the service wants it)" IN systemctl is-active -q hami-dra-metrics.socket
if [ "$DAEMON" = real ]; then
        scraped=$(metrics_get 127.0.0.1 2>&1)
        metrics_ok() { head -1 <<<"$scraped" | grep -q ' 200 ' && grep -q '^hami_dra_build_info{' <<<"$scraped"; }
        metrics_refused() { ! metrics_get 203.0.113.1; }
        check "GET /metrics from loopback: 200 with hami_dra_build_info" metrics_ok
        check "  ... the GPUs in it (hami_dra_device_healthy)" contains "$scraped" "hami_dra_device_healthy{"
        check "the socket's IPAddressDeny= refuses a public scraper (203.0.113.1)" metrics_refused
fi

# ------------------------------------------------------------------ systemd-analyze security
exposure=$(IN systemd-analyze security --no-pager hami-dra-plugin.service 2>/dev/null |
        sed -n 's/.*Overall exposure level for hami-dra-plugin.service: \([0-9.]*\).*/\1/p')
check "systemd-analyze security: exposure ${exposure:-?} <= $EXPOSURE_GOAL" \
        awk -v e="${exposure:-99}" -v g="$EXPOSURE_GOAL" 'BEGIN { exit !(e <= g) }'
webhook_exposure=$(IN systemd-analyze security --no-pager hami-dra-webhook.service 2>/dev/null |
        sed -n 's/.*Overall exposure level for hami-dra-webhook.service: \([0-9.]*\).*/\1/p')
check "systemd-analyze security of the webhook: exposure ${webhook_exposure:-?} <= $EXPOSURE_GOAL" \
        awk -v e="${webhook_exposure:-99}" -v g="$EXPOSURE_GOAL" 'BEGIN { exit !(e <= g) }'
offline=$(systemd-analyze security --offline=yes --no-pager "$UNIT" 2>/dev/null |
        sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
check "systemd-analyze security --offline (build tree): ${offline:-?} <= $EXPOSURE_GOAL" \
        awk -v e="${offline:-99}" -v g="$EXPOSURE_GOAL" 'BEGIN { exit !(e <= g) }'

# ------------------------------------------------------------------ restart loses no connection
$CLIENT loop $PROTO "$ROOT$REG" 3 >"$W/loop.out" 2>&1 &
loop_pid=$!
sleep 0.7
check "systemctl restart hami-dra-plugin.service" IN systemctl restart hami-dra-plugin.service
wait $loop_pid
loop_rc=$?
MAIN2=$(IN systemctl show -P MainPID hami-dra-plugin.service)
loop_out=$(tail -n 1 "$W/loop.out")
if [ $loop_rc = 0 ]; then ok "no connection lost across the restart: $loop_out"; else bad "connections lost across the restart: $(cat "$W/loop.out")"; fi
check "a new instance serves after the restart (MainPID $MAIN -> $MAIN2)" test "$MAIN2" != "$MAIN" -a "$MAIN2" != 0
if [ "$DAEMON" = standin ]; then
        check "both instances answered the loop" bash -c "grep -q 'peers=2' <<<'$loop_out'"
fi
check "systemctl reload (SIGHUP) keeps it running" bash -c "$X systemctl reload hami-dra-plugin.service && sleep 0.3 && $X systemctl is-active -q hami-dra-plugin.service"
check "the same instance after the reload" test "$(IN systemctl show -P MainPID hami-dra-plugin.service)" = "$MAIN2"

# ------------------------------------------------------------------ D-Bus and polkit
# The daemon owns org.projecthami.Dra1 on the real system bus; a real polkitd
# (bus-activated) allows root and denies nobody on Rescan.
M="org.projecthami.Dra1 /org/projecthami/Dra1 org.projecthami.Dra1.Manager"
if [ "$DAEMON" != real ]; then
        skipped "busctl/polkit: the stand-in daemon has no D-Bus interface (the real daemon did not build)"
elif [ -z "$DBUS_POLICY" ]; then
        bad "meson install put no D-Bus policy (org.projecthami.Dra1.conf) under share/dbus-1"
else
        check "busctl sees org.projecthami.Dra1" bash -c "$X busctl --no-pager --acquired list | grep -q '^org.projecthami.Dra1 '"
        check "busctl introspects the Manager interface" \
                bash -c "$X busctl --no-pager introspect org.projecthami.Dra1 /org/projecthami/Dra1 | grep -q org.projecthami.Dra1.Manager"
        check "polkit: root may Rescan" IN busctl --no-pager call $M Rescan
        denied=$(IN setpriv --reuid=nobody --regid=nogroup --clear-groups busctl --no-pager call $M Rescan 2>&1)
        check "polkit: nobody may not Rescan ($denied)" bash -c "grep -qiE 'not authorized|access denied|interactive authentication' <<<'$denied'"
        # One state behind the three: STATUS= (systemctl), the D-Bus properties, hamictl.
        status_text=$(IN systemctl show -P StatusText hami-dra-plugin.service)
        bus_state=$(IN busctl --no-pager get-property $M State | sed 's/^s "\(.*\)"$/\1/')
        bus_reason=$(IN busctl --no-pager get-property $M StateReason | sed 's/^s "\(.*\)"$/\1/')
        ctl_state=$(IN hamictl --no-legend status | sed -n 's/^ *State: //p')
        echo "# StatusText: $status_text; D-Bus: $bus_state ($bus_reason); hamictl: $ctl_state"
        if [ "$bus_state" = degraded ]; then
                want_ctl="degraded ($bus_reason)"
                agree() { [[ "$status_text" == "Degraded: $bus_reason;"* ]] && [ "$ctl_state" = "$want_ctl" ]; }
        else
                want_ctl=$bus_state
                agree() { [[ "$status_text" != Degraded* ]] && [ "$ctl_state" = "$want_ctl" ]; }
        fi
        check "STATUS=, D-Bus State and hamictl status agree ($bus_state)" agree
fi

# ------------------------------------------------------------------ prepare, audited in the journal
# The kubelet simulator prepares the claim of the fake through the running service (the
# shipped unit: its private /dev, BindPaths= for the nodes, ProtectSystem=strict with
# /run/cdi writable, IPAddressAllow= for the API server on loopback).
audit_fields() { # MESSAGE_ID: KEY=VALUE lines of the claim's first entry with it
        IN journalctl --no-pager -o json MESSAGE_ID="$1" CLAIM_UID="$CLAIM_UID" |
                /usr/bin/python3 -c 'import json, sys
lines = [l for l in sys.stdin if l.strip()]
e = json.loads(lines[0]) if lines else {}
for k in ("CLAIM_UID", "CLAIM_NAMESPACE", "CLAIM_NAME", "DEVICE", "GPU_UUID", "MEMORY_LIMIT_MIB",
          "CORES_LIMIT", "SHARE_ID", "CDI_DEVICE", "PRIORITY"):
    print("%s=%s" % (k, e.get(k, "<missing>")))'
}
prepared_id=$(sed -n 's/^#define HAMI_MESSAGE_CLAIM_PREPARED "\([0-9a-f]\{32\}\)".*/\1/p' "$SRC/src/prepare.h")
unprepared_id=$(sed -n 's/^#define HAMI_MESSAGE_CLAIM_UNPREPARED "\([0-9a-f]\{32\}\)".*/\1/p' "$SRC/src/prepare.h")
SIM=(env HAMI_DRA_SOURCE_ROOT="$TESTLIB" HAMI_DRA_BUILD_ROOT="$TESTLIB/build" /usr/bin/python3 "$KUBELET_SIM" --wait 5)
if [ "$DAEMON" != real ] || [ -z "$KUBELET_SIM" ]; then
        skipped "prepare: needs the real daemon and tests/kubelet-sim.py (daemon: $DAEMON)"
elif [ -z "$API" ]; then
        bad "prepare: no fake API server"
else
        check "meson install put the journal catalog where journalctl reads it" \
                bash -c "ls $ROOT/usr/lib/systemd/catalog/hami-dra.catalog $ROOT/usr/local/lib/systemd/catalog/hami-dra.catalog 2>/dev/null | grep -q ."
        check "journalctl --update-catalog" IN journalctl --update-catalog

        # The ResourceSlice the daemon published for this node (asynchronously after start).
        slices=
        for _ in $(seq 100); do
                slices=$(apiserver_get /slices 2>/dev/null)
                contains "$slices" '"hami-gpu-1"' && break
                sleep 0.1
        done
        slice_info=$(/usr/bin/python3 -c 'import json, sys
slices = json.loads(sys.argv[1] or "[]")
mine = [s for s in slices if s["spec"].get("nodeName") == sys.argv[2] and s["spec"]["driver"] == sys.argv[3]]
devs = sorted(d["name"] for s in mine for d in s["spec"]["devices"])
uuid = [v.get("string") for s in mine for d in s["spec"]["devices"] if d["name"] == "hami-gpu-0"
        for k, v in d.get("attributes", {}).items() if k.split("/")[-1] == "uuid"]
print(len(mine), ",".join(devs), (uuid or [""])[0])' "$slices" "$NODE" "$DRIVER" 2>&1)
        read -r n_slices slice_devices GPU_UUID <<<"$slice_info"
        check "the fake holds the node's ResourceSlice: $n_slices slice, devices ${slice_devices:-none}" \
                test "$n_slices" = 1 -a "$slice_devices" = hami-gpu-0,hami-gpu-1
        check "hami-gpu-0 has its GPU UUID in the slice (${GPU_UUID:-none})" contains "${GPU_UUID:-x}" GPU-

        prep=$(IN "${SIM[@]}" --claim "$CLAIM_NS/$CLAIM_NAME/$CLAIM_UID" --keep 2>&1)
        sed 's/^/# kubelet-sim: /' <<<"$prep"
        check "prepare of $CLAIM_NS/$CLAIM_NAME answers hami-gpu-0 in pool $NODE" \
                contains "$prep" "of claim $CLAIM_NS/$CLAIM_NAME: devices $NODE/hami-gpu-0"
        check "prepare answers the CDI device and the shareID" contains "$prep" "hami-gpu-0: CDI devices $CDI_ID, share $SHARE_ID"
        check "the CDI spec is in /run/cdi in the container" test -f "$ROOT$CDI_SPEC"
        if [ -f "$ROOT$CDI_SPEC" ]; then
                cp "$ROOT$CDI_SPEC" "$W/spec.json"
                check "the CDI spec validates (tests/cdi-validate.py --exact-minimum)" \
                        /usr/bin/python3 "$SRC/tests/cdi-validate.py" --exact-minimum "$W/spec.json"
                spec_info=$(/usr/bin/python3 -c 'import json, sys
s = json.load(open(sys.argv[1]))
edits = s["devices"][0]["containerEdits"]
nodes = [n["path"] for n in s["containerEdits"].get("deviceNodes", []) + edits.get("deviceNodes", [])]
print(s["kind"] + "=" + s["devices"][0]["name"])
print("nodes=" + ",".join(sorted(nodes)))
print("env=" + ",".join(sorted(edits.get("env", []))))
print("mounts=" + ",".join(sorted(m["containerPath"] for m in s["containerEdits"].get("mounts", []) + edits.get("mounts", []))))' \
                        "$W/spec.json" 2>&1)
                sed 's/^/# spec: /' <<<"$spec_info"
                check "the spec names the device $CDI_ID" contains "$spec_info" "k8s.$DRIVER/claim=$CLAIM_UID-hami-gpu-0-$SHARE_ID"
                check "the spec hands in /dev/nvidiactl and /dev/nvidia0" bash -c "grep -q '^nodes=.*/dev/nvidia0' <<<'$spec_info' && grep -q '^nodes=.*/dev/nvidiactl' <<<'$spec_info'"
                check "the spec carries the limits (10240 MiB, 30%)" \
                        bash -c "grep -q '^env=.*CUDA_DEVICE_MEMORY_LIMIT_0=10240m' <<<'$spec_info' && grep -q '^env=.*CUDA_DEVICE_SM_LIMIT_0=30' <<<'$spec_info'"
                libvgpu=$(sed -n 's/^#PreloadLibrary=//p' "$BUILD/units/hami-dra.conf")
                check "the preload library is installed ($libvgpu)" test -f "$ROOT$libvgpu"
                check "the spec mounts it into the container" bash -c "grep -qE '^mounts=(.*,)?$libvgpu(,|\$)' <<<'$spec_info'"
        fi
        claims=$(IN hamictl claims 2>&1)
        sed 's/^/# hamictl claims: /' <<<"$claims"
        check "hamictl claims lists the prepared claim" \
                bash -c "grep -F '$CLAIM_UID' <<<'$claims' | grep -qF '$CLAIM_NAME'"

        IN journalctl --sync
        fields=$(audit_fields "$prepared_id")
        sed 's/^/# journal: /' <<<"$fields"
        check "journalctl MESSAGE_ID=$prepared_id shows the prepare of $CLAIM_UID" contains "$fields" "CLAIM_UID=$CLAIM_UID"
        for kv in "CLAIM_NAMESPACE=$CLAIM_NS" "CLAIM_NAME=$CLAIM_NAME" "DEVICE=hami-gpu-0" "GPU_UUID=${GPU_UUID:-?}" \
                  "MEMORY_LIMIT_MIB=10240" "CORES_LIMIT=30" "SHARE_ID=$SHARE_ID" "CDI_DEVICE=$CDI_ID"; do
                check "  audit field $kv" grep -qx -- "$kv" <<<"$fields"
        done
        explained=$(IN journalctl --no-pager -x MESSAGE_ID="$prepared_id" CLAIM_UID="$CLAIM_UID" 2>&1)
        sed -n 's/^/# journalctl -x: /p' <<<"$explained" | head -n 6
        check "journalctl -x explains it with the catalog (Subject: GPU claim $CLAIM_NS/$CLAIM_NAME prepared on hami-gpu-0)" \
                contains "$explained" "Subject: GPU claim $CLAIM_NS/$CLAIM_NAME prepared on hami-gpu-0"
        check "  ... with the claim's values filled in (CDI device $CDI_ID)" contains "$explained" "CDI device $CDI_ID"

        unprep=$(IN "${SIM[@]}" --claim "$CLAIM_NS/$CLAIM_NAME/$CLAIM_UID" --unprepare-only 2>&1)
        sed 's/^/# kubelet-sim: /' <<<"$unprep"
        check "unprepare of $CLAIM_NS/$CLAIM_NAME: done" contains "$unprep" "unprepare (v1) of claim $CLAIM_NS/$CLAIM_NAME: done"
        check "the CDI spec is gone" test ! -e "$ROOT$CDI_SPEC"
        IN journalctl --sync
        fields=$(audit_fields "$unprepared_id")
        check "journalctl MESSAGE_ID=$unprepared_id shows the unprepare of $CLAIM_UID" \
                bash -c "grep -qx 'CLAIM_UID=$CLAIM_UID' <<<'$fields' && grep -qx 'CDI_DEVICE=$CDI_ID' <<<'$fields'"
        claims=$(IN hamictl claims 2>&1)
        claims_rc=$?
        check "hamictl claims no longer lists it" bash -c "[ $claims_rc = 0 ] && ! grep -qF '$CLAIM_UID' <<<'$claims'"
fi

# ------------------------------------------------------------------ restarts and an upgrade under load
# 16 kubelet-like clients on long-lived connections (tests/restart-load.py, inside the
# container) loop GetInfo (1 s deadline), prepare and unprepare of a claim each while
# the service is restarted 20 times by systemctl; before every fifth restart a new
# binary file is put in place (an upgrade). Not one call may fail or miss its deadline.
# The restarts are 2.5 s apart: systemd refuses a sixth start within 10 s
# (StartLimitBurst=5, StartLimitIntervalSec=10s, the defaults), manual ones included.
LOAD_RESTARTS=${LOAD_RESTARTS:-20}
LOAD_LOG_LEVEL=${LOAD_LOG_LEVEL:-}   # debug: the stop's phases in the journal, for a look
if [ "$DAEMON" != real ] || [ -z "$KUBELET_SIM" ]; then
        skipped "restarts under load: needs the real daemon and tests/kubelet-sim.py (daemon: $DAEMON)"
elif [ -z "$API" ]; then
        bad "restarts under load: no fake API server"
else
        load_claims="["
        for i in $(seq 0 15); do
                uid=$(cat /proc/sys/kernel/random/uuid)
                share=$(cat /proc/sys/kernel/random/uuid)
                cat >"$W/load-claim.json" <<JSON
{"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
 "metadata": {"namespace": "load", "name": "load-$i", "uid": "$uid"},
 "status": {"allocation": {"devices": {"results": [
     {"request": "gpu", "driver": "$DRIVER", "pool": "$NODE", "device": "hami-gpu-0",
      "shareID": "$share", "consumedCapacity": {"memory": "1Gi", "cores": "5"}}]}}}}
JSON
                apiserver_post /claims "$W/load-claim.json" >/dev/null 2>&1 || bad "claim load/load-$i not stored in the fake"
                load_claims+="$([ $i = 0 ] || echo ,)[\"load\", \"load-$i\", \"$uid\"]"
        done
        echo "$load_claims]" >"$ROOT/run/load-claims.json"
        rm -f "$ROOT/run/load-stop"
        IN env HAMI_DRA_SOURCE_ROOT="$TESTLIB" HAMI_DRA_BUILD_ROOT="$TESTLIB/build" \
                $PY "$TESTLIB/tests/restart-load.py" --registration "$REG" --claims /run/load-claims.json \
                --stop-file /run/load-stop --seconds 240 >"$W/load.out" 2>"$W/load.err" &
        load_pid=$!
        for _ in $(seq 300); do grep -q '^started' "$W/load.err" 2>/dev/null && break; sleep 0.1; done
        daemon_bin=$(IN systemctl show -P ExecStart hami-dra-plugin.service | sed -n 's/.*path=\([^ ;]*\).*/\1/p')
        if [ -n "$LOAD_LOG_LEVEL" ]; then
                mkdir -p "$ROOT/etc/hami-dra/hami-dra.conf.d"
                printf '[Plugin]\nLogLevel=%s\n' "$LOAD_LOG_LEVEL" >"$ROOT/etc/hami-dra/hami-dra.conf.d/90-load.conf"
        fi
        t=$(date +%s%N)
        restarts_ok=0
        for n in $(seq "$LOAD_RESTARTS"); do
                next=$(( $(date +%s%N) + 2500000000 ))
                if [ $((n % 5)) = 0 ] && [ -n "$daemon_bin" ]; then   # an upgrade: a new file, then the restart
                        IN cp -p "$daemon_bin" "$daemon_bin.new" && IN mv -f "$daemon_bin.new" "$daemon_bin"
                fi
                if restart_err=$(IN systemctl restart hami-dra-plugin.service 2>&1); then
                        restarts_ok=$((restarts_ok + 1))
                else
                        echo "# restart $n: $restart_err"
                fi
                while [ "$(date +%s%N)" -lt $next ]; do sleep 0.05; done
        done
        restarts_ms=$(ms "$t")
        sleep 1
        IN touch /run/load-stop
        wait $load_pid
        summary=$(tail -n 1 "$W/load.out")
        echo "# restart-load: $summary"
        sed 's/^/# restart-load: /' "$W/load.err" | tail -n 5
        check "$restarts_ok of $LOAD_RESTARTS systemctl restarts (4 of them upgrades) under 16 clients in $restarts_ms ms" \
                test "$restarts_ok" = "$LOAD_RESTARTS"
        read -r load_failed load_missed load_min load_stuck <<<"$($PY -c 'import json, sys
s = json.loads(sys.argv[1])
print(s["failed"], s["missed_deadlines"], min(s["calls"].values()), s["stuck_clients"])' "$summary" 2>/dev/null || echo "? ? 0 ?")"
        check "the clients made calls through every restart ($load_min of each kind)" test "$load_min" -ge "$LOAD_RESTARTS"
        check "restarts under load: no call missed its deadline ($load_missed)" test "$load_missed" = 0
        # Until connections were kept open past gRPC for their clients (kept-connections.h)
        # about one restart in 40 lost a prepare ("Broken pipe"); none in 300 since.
        check "restarts under load: no call failed ($load_failed)" test "$load_failed" = 0
        check "restarts under load: every client finished" test "$load_stuck" = 0
        kept=$(IN journalctl -u hami-dra-plugin.service -o cat --no-pager | grep -c "kept in systemd's file descriptor store")
        fdstore_refused=$(IN journalctl -o cat --no-pager | grep -c -i "FileDescriptorStoreMax\|fd store.*full")
        echo "# stops that handed connections to systemd's file-descriptor store: $kept"
        if [ "$LOAD_LOG_LEVEL" = debug ]; then
                kept_past=$(IN journalctl -u hami-dra-plugin.service -o cat --no-pager |
                        sed -n 's/.*; \([0-9]*\) connection(s) kept open past gRPC.*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
                echo "# connections kept open past gRPC for their clients, over all stops: $kept_past"
        fi
        check "systemd took the connections handed to its store ($fdstore_refused complaints)" test "$fdstore_refused" = 0
        # What the service said around each failed call (its wall-clock time is the last field).
        for when in $($PY -c 'import json, sys
for f in json.loads(sys.argv[1])["failures"][:3]:
    print(int(f[-1]))' "$summary" 2>/dev/null); do
                echo "# journal around the failed call at $(date -d "@$when" +%T):"
                IN journalctl -u hami-dra-plugin.service -o short-precise --no-pager \
                        --since "@$((when - 2))" --until "@$((when + 2))" | grep -v -E "(Prepared|Unprepared) claim" |
                        tail -n 40 | sed 's/^/#   /'
        done
        check "the service is active after the restarts" IN systemctl is-active -q hami-dra-plugin.service
fi

# ------------------------------------------------------------------ the IP sandbox, named
# kubelet.conf pointed at 203.0.113.1 (on the container's loopback, outside the unit's
# IPAddressAllow=), reloaded: the daemon says the sandbox drops it and which drop-in
# allows it, in the journal and in StateReason; put back and reloaded, it recovers.
if [ "$DAEMON" = real ] && [ -n "$API" ]; then
        IN cp -p /etc/kubernetes/kubelet.conf /run/kubelet.conf.saved
        IN sed -i 's|server: https://127.0.0.1:[0-9]*|server: https://203.0.113.1:6443|' /etc/kubernetes/kubelet.conf
        IN systemctl reload hami-dra-plugin.service
        hint=$(journal_wait 'outside IPAddressAllow=' 20)
        echo "# journal: $hint"
        check "a connection the IP sandbox drops is named as such, with its drop-in" \
                contains "$hint" "203.0.113.1 is outside IPAddressAllow= of hami-dra-plugin.service: systemd drops its packets. If it is the API server, allow it with a drop-in: systemctl edit hami-dra-plugin.service, then [Service] IPAddressAllow=203.0.113.1"
        reason=$(IN busctl --no-pager get-property org.projecthami.Dra1 /org/projecthami/Dra1 org.projecthami.Dra1.Manager StateReason 2>&1)
        check "  ... and StateReason says it too" contains "$reason" "outside IPAddressAllow="
        IN cp -p /run/kubelet.conf.saved /etc/kubernetes/kubelet.conf
        IN systemctl reload hami-dra-plugin.service
        back=$(journal_wait 'The API server answers again' 15)
        check "the credentials put back and reloaded: the API server answers again" test -n "$back"
fi

# ------------------------------------------------------------------ the CDI directory removed
# Removed while the service runs (an operator's cleanup): a restart makes it again, so the
# sandbox can make it writable, and the service comes back instead of failing to start.
if IN rm -rf /run/cdi; then
        check "/run/cdi removed: systemctl restart still works" IN systemctl restart hami-dra-plugin.service
        check "  the service is active" IN systemctl is-active -q hami-dra-plugin.service
        check "  /run/cdi is back" IN test -d /run/cdi
        check "  and writable to the service (ExecStartPre= made it before the sandbox)" \
                bash -c "! $X journalctl -u hami-dra-plugin.service -o cat --no-pager -n 30 | grep -q 'Failed to set up prepare'"
fi

# ------------------------------------------------------------------ stop leaves nothing behind
check "systemctl stop hami-dra-plugin.socket" IN systemctl stop hami-dra-plugin.socket
check "service stopped with its socket (Requires=)" bash -c "! $X systemctl is-active -q hami-dra-plugin.service"
check "DRA socket unit stopped with it (PartOf=)" bash -c "! $X systemctl is-active -q hami-dra-plugin-dra.socket"
check "no stale registration socket file" test ! -e "$ROOT$REG"
check "no stale DRA socket file" test ! -e "$ROOT$DRA"
check "nothing left listening for the kubelet" bash -c "! $X ss -xlH 2>/dev/null | grep -q kubelet"
if IN systemctl --failed --no-legend --plain | grep -q hami-dra; then
        bad "failed units of ours: $(IN systemctl --failed --no-legend --plain | grep hami-dra)"
        IN journalctl --no-pager -o cat -n 30 -u hami-dra-plugin.service
else
        ok "no failed units of ours"
fi

echo "total: $(ms "$T0") ms, $pass passed, $fail failed, $skipped skipped"
[ $fail = 0 ]
