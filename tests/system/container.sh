# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
# A real systemd in a container, for the system suite and bench/cold-start.sh: sourced,
# not run. systemd-nspawn boots PID 1 over a throwaway overlay root (lower: the host's
# / read-only, upper: a tmpfs); the host's root is never booted over or written to.
#
#   container_up [--probe]   packages, overlay, meson install --destdir, boot; sets
#                            X (nsenter prefix), ROOT (/proc/<pid1>/root), REG, DRA,
#                            DAEMON (real|standin), PROTO (getinfo|line),
#                            KUBELET_SIM (its path inside, when tests/kubelet-sim.py exists),
#                            DBUS_POLICY (when the D-Bus policy got installed)
#   apiserver_up NODE        the strict fake API server (tests/fakes/fake-apiserver.py) in
#                            the container's network namespace, so on the service's
#                            127.0.0.1; node credentials and the kubelet's kubeconfig at
#                            its default path (/etc/kubernetes/kubelet.conf) in the
#                            container; sets FAKE_PID, API_CONTROL (control port)
#   IN cmd...                run cmd inside the container
#   NET cmd...               run cmd (a host program) in the container's network namespace
#   teardown                 kill the fake, poweroff, unmount, remove our cgroups (trap EXIT)
#
# The caller defines skip, ok, bad and ms, and sets BUILD and SRC.

container_up() {
        local probe=0
        [ "${1:-}" = --probe ] && probe=1
        # ------------------------------------------------------------------ packages
        need=()
        command -v systemd-nspawn >/dev/null || need+=(systemd-container)
        [ -x /usr/bin/busctl ] || need+=(systemd)
        command -v dbus-daemon >/dev/null || need+=(dbus)
        [ -x /usr/lib/polkit-1/polkitd ] || need+=(polkitd)
        if [ ${#need[@]} -gt 0 ]; then
                echo "installing ${need[*]}"
                DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
                        --no-install-recommends "${need[@]}" >/dev/null ||
                        skip "cannot install ${need[*]}"
        fi
        command -v systemd-nspawn >/dev/null || skip "systemd-nspawn is not available"
        grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null
        grep -qw overlay /proc/filesystems || skip "no overlayfs in this kernel"

        # ------------------------------------------------------------------ which daemon
        UNIT=$BUILD/units/hami-dra-plugin.service
        [ -f "$UNIT" ] || { echo "no $UNIT: build first"; exit 1; }
        DAEMON_PATH=$(sed -n 's/^ExecStart=//p' "$UNIT")
        if [ -x "$BUILD/src/hami-dra-plugin" ]; then
                DAEMON=real
                PROTO=getinfo
        else
                # Until the daemon links (gRPC and GPU back-end branches), a stand-in with the
                # same socket handling and the real sandbox.c stands in for it.
                DAEMON=standin
                PROTO=line
        fi
        echo "daemon: $DAEMON ($DAEMON_PATH)"

        # ------------------------------------------------------------------ set-up, teardown
        W=$(mktemp -d /tmp/hami-dra-system.XXXXXX)
        R=$W/ovl/merged
        MACHINE=hami-sys-$$
        CG=hami-dra-system-$$
        NSPAWN_PID=
        LEADER=
        FAKE_PID=

        if [ "${KEEP:-0}" = 1 ]; then
                trap 'echo "KEEP=1: container $MACHINE leader $LEADER root $R fake API server ${FAKE_PID:-none}"' EXIT
        else
                trap teardown EXIT
        fi
        trap 'exit 1' INT TERM

        mkdir -p "$W/ovl"
        mount -t tmpfs -o size=2G,mode=0755 hami-dra-system "$W/ovl" || skip "cannot mount a tmpfs"
        mkdir -p "$W/ovl/upper" "$W/ovl/work" "$R"
        mount -t overlay hami-dra-system-root -o "lowerdir=/,upperdir=$W/ovl/upper,workdir=$W/ovl/work" "$R" ||
                skip "cannot mount an overlay over /"

        # ------------------------------------------------------------------ install into the overlay
        t=$(date +%s%N)
        # Into merged, not upper: /lib is a symlink in the lower layer and must stay one.
        meson install -C "$BUILD" --no-rebuild --quiet --destdir "$R" >"$W/install.log" 2>&1 ||
                { cat "$W/install.log"; bad "meson install --destdir"; exit 1; }
        if [ "$DAEMON" = standin ]; then
                install -D -m 0755 "$BUILD/tests/system/standin-plugin" "$R$DAEMON_PATH"
        fi
        [ $probe = 1 ] && install -D -m 0755 "$BUILD/tests/system/sandbox-probe" "$R/usr/local/libexec/hami-dra-sandbox-probe"
        mkdir -p "$R/etc/systemd/system/hami-dra-plugin.service.d"
        {
                echo "[Service]"
                if [ "$DAEMON" = real ]; then
                        # No GPU and no API server here: mock GPUs.
                        echo "ExecStart="
                        echo "ExecStart=$DAEMON_PATH --backend=mock --mock-gpus=2 --node-name=systest"
                fi
                # Sanitizer builds: LeakSanitizer needs ptrace(2), which both sandboxes forbid.
                echo "Environment=ASAN_OPTIONS=detect_leaks=0"
                # Runs inside the service's sandbox once it is ready: what it may not do.
                [ $probe = 1 ] && echo "ExecStartPost=-/usr/bin/timeout 10 /usr/local/libexec/hami-dra-sandbox-probe"
        } >"$R/etc/systemd/system/hami-dra-plugin.service.d/50-system-test.conf"
        # Host units with no business in the test container.
        for u in postgresql.service apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer \
                 e2scrub_reap.service fstrim.timer dpkg-db-backup.timer systemd-timesyncd.service \
                 getty@tty1.service console-getty.service systemd-firstboot.service podman.service podman.socket \
                 podman-restart.service podman-auto-update.service podman-auto-update.timer; do
                ln -sf /dev/null "$R/etc/systemd/system/$u"
        done
        # D-Bus policy and polkit actions (branch dbus): dbus-daemon and polkitd read
        # /usr/share only; a build for /usr/local installs them under it.
        DBUS_POLICY=
        for f in dbus-1/system.d/org.projecthami.Dra1.conf dbus-1/system-services/org.projecthami.Dra1.service \
                 polkit-1/actions/org.projecthami.dra1.policy; do
                local installed
                installed=$(find "$R/usr/share/$f" "$R/usr/local/share/$f" -maxdepth 0 2>/dev/null | head -n 1)
                [ -n "$installed" ] || continue
                [ "$installed" = "$R/usr/share/$f" ] || install -D -m 0644 "$installed" "$R/usr/share/$f"
                [ "${f%%/*}" = dbus-1 ] && DBUS_POLICY=/usr/share/dbus-1/system.d/org.projecthami.Dra1.conf
        done

        # The kubelet simulator (branch grpc) and the .proto files it compiles, for use
        # inside the container: the endpoint it is told is a path in there.
        TESTLIB=/usr/local/lib/hami-dra-test
        KUBELET_SIM=
        if [ -f "$SRC/tests/kubelet-sim.py" ] && [ "$DAEMON" = real ]; then
                mkdir -p "$R$TESTLIB/tests" "$R$TESTLIB/build"
                cp "$SRC/tests/kubelet-sim.py" "$SRC/tests/restart-load.py" "$R$TESTLIB/tests/"
                cp -r "$SRC/proto" "$R$TESTLIB/"
                KUBELET_SIM=$TESTLIB/tests/kubelet-sim.py
        fi
        ok "installed the build into the overlay ($(ms "$t") ms)"

        # ------------------------------------------------------------------ boot
        t=$(date +%s%N)
        export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1
        (
                # nspawn in a cgroup of our own, so that what it leaves behind is ours to remove.
                for h in unified systemd; do
                        [ -d "/sys/fs/cgroup/$h" ] || continue
                        mkdir -p "/sys/fs/cgroup/$h/$CG" && echo $BASHPID >"/sys/fs/cgroup/$h/$CG/cgroup.procs"
                done
                # CAP_BPF and bpf(): DeviceAllow= and IPAddressDeny= are enforced inside.
                # --private-network: the host's network units must not touch the host's links.
                exec setsid systemd-nspawn --quiet --register=no --keep-unit -D "$R" -M "$MACHINE" \
                        --console=passive --private-network \
                        --capability=CAP_NET_ADMIN,CAP_BPF --system-call-filter=bpf -b
        ) >"$W/nspawn.log" 2>&1 </dev/null &
        NSPAWN_PID=$!
        # PID 1 of the container: the child of nspawn whose innermost NSpid is 1.
        for _ in $(seq 200); do
                for c in $(ps -o pid= --ppid "$NSPAWN_PID" 2>/dev/null); do
                        [ "$(awk '/^NSpid/ {print $NF}' "/proc/$c/status" 2>/dev/null)" = 1 ] && { LEADER=$c; break; }
                done
                [ -n "$LEADER" ] && break
                kill -0 "$NSPAWN_PID" 2>/dev/null || break
                sleep 0.05
        done
        if [ -z "$LEADER" ]; then
                cat "$W/nspawn.log"
                skip "systemd-nspawn cannot boot a container here"
        fi
        X="nsenter -t $LEADER -a"
        state=
        for _ in $(seq 300); do
                state=$($X systemctl is-system-running 2>/dev/null)
                case "$state" in running | degraded) break ;; esac
                sleep 0.1
        done
        case "$state" in
        running | degraded) ok "container booted: $state ($(ms "$t") ms)" ;;
        *) bad "container did not finish booting: $state"; $X systemctl --failed --no-pager; exit 1 ;;
        esac
        ROOT=/proc/$LEADER/root

        REG=$(sed -n 's/^ListenStream=//p' "$BUILD/units/hami-dra-plugin.socket")
        DRA=$(sed -n 's/^ListenStream=//p' "$BUILD/units/hami-dra-plugin-dra.socket")

        # A stand-in for an NVIDIA node (/dev/null's major:minor): BindPaths= must carry it in.
        IN sh -c 'touch /dev/nvidiactl && mount --bind /dev/null /dev/nvidiactl'
}

IN() { $X "$@"; }
NET() { nsenter -t "$LEADER" -n "$@"; }

apiserver_up() {
        local node=$1 pki=$W/pki state=$W/fake-state.json port
        sh "$SRC/tests/fakes/make-certs.sh" "$pki" "$node" || return 1
        # A host process (host files, our own child: teardown kills it by its PID) that
        # listens on the container's loopback. A simple command, not the NET function (that
        # would fork a subshell): nsenter without a PID namespace and env exec, so $! is
        # the PID of python itself.
        nsenter -t "$LEADER" -n /usr/bin/python3 \
                "$SRC/tests/fakes/fake-apiserver.py" --certs "$pki" --state-file "$state" --node "$node" \
                >"$W/fake.log" 2>&1 </dev/null &
        FAKE_PID=$!
        for _ in $(seq 100); do
                [ -s "$state" ] && break
                kill -0 "$FAKE_PID" 2>/dev/null || break
                sleep 0.1
        done
        [ -s "$state" ] || { cat "$W/fake.log"; return 1; }
        port=$(/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["port"])' "$state")
        API_CONTROL=http://127.0.0.1:$(/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["control"])' "$state")
        # Where kubeadm puts them: the cluster CA, and the kubelet's client certificate and
        # key in one PEM file, named twice by kubelet.conf.
        install -D -m 0644 "$pki/ca.crt" "$R/etc/kubernetes/pki/ca.crt"
        install -d -m 0700 "$R/var/lib/kubelet/pki"
        cat "$pki/client.crt" "$pki/client.key" >"$R/var/lib/kubelet/pki/kubelet-client-current.pem"
        chmod 0600 "$R/var/lib/kubelet/pki/kubelet-client-current.pem"
        (umask 077; cat >"$R/etc/kubernetes/kubelet.conf") <<EOT
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority: /etc/kubernetes/pki/ca.crt
    server: https://127.0.0.1:$port
  name: default-cluster
contexts:
- context:
    cluster: default-cluster
    namespace: default
    user: default-auth
  name: default-context
current-context: default-context
users:
- name: default-auth
  user:
    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem
    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem
EOT
}

# apiserver_post PATH FILE: POST a JSON file to the fake's control port.
apiserver_post() {
        NET /usr/bin/python3 -c 'import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=open(sys.argv[2], "rb").read(), method="POST"), timeout=10).read()' \
                "$API_CONTROL$1" "$2"
}

# apiserver_get PATH: the fake's control port's answer on stdout.
apiserver_get() {
        NET /usr/bin/python3 -c 'import sys, urllib.request
sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' "$API_CONTROL$1"
}

teardown() {
        local t; t=$(date +%s%N)
        if [ -n "$FAKE_PID" ] && kill -TERM "$FAKE_PID" 2>/dev/null; then
                for _ in $(seq 20); do kill -0 "$FAKE_PID" 2>/dev/null || break; sleep 0.1; done
                kill -KILL "$FAKE_PID" 2>/dev/null
                wait "$FAKE_PID" 2>/dev/null
        fi
        if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
                [ -n "$LEADER" ] && nsenter -t "$LEADER" -a systemctl poweroff --no-block >/dev/null 2>&1
                for _ in $(seq 100); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.1; done
                # nspawn: the first SIGTERM halts the container, the second kills it.
                kill -0 "$NSPAWN_PID" 2>/dev/null && kill -TERM "$NSPAWN_PID" && sleep 2
                kill -0 "$NSPAWN_PID" 2>/dev/null && kill -TERM "$NSPAWN_PID" && sleep 1
                kill -0 "$NSPAWN_PID" 2>/dev/null && kill -KILL "$NSPAWN_PID"
        fi
        umount -R "$W/ovl/merged" 2>/dev/null
        umount "$W/ovl" 2>/dev/null
        for h in unified systemd; do
                [ -d "/sys/fs/cgroup/$h/$CG" ] && find "/sys/fs/cgroup/$h/$CG" -depth -type d -exec rmdir {} \; 2>/dev/null
        done
        rm -rf "$W"
        echo "teardown: $(ms "$t") ms"
}
