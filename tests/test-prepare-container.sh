#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# A real container runtime consumes our CDI spec: podman + runc run a busybox rootfs
# with --device <our CDI IDs>, and we check inside the container the environment, the
# mounts, /etc/ld.so.preload, the device nodes (mknod fixtures) and that the claim's
# shared-region directory is writable. Runs podman in a private mount namespace with a
# tmpfs /run (so /run/cdi and podman's state never touch the host); images under $WORK.
# Needs root, podman, runc and busybox-static; skipped (77) without them.
set -euo pipefail

SETUP=${1:?usage: test-prepare-container.sh PATH/prepare-container-setup}
for tool in podman runc busybox unshare; do
        command -v $tool >/dev/null || { echo "SKIP: $tool missing"; exit 77; }
done
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }

eval "$("$SETUP")"
WORK=$ROOT/podman
trap 'rm -rf "$ROOT"' EXIT
mkdir -p $WORK/root $WORK/tmp $WORK/bbroot/bin $WORK/bbroot/etc
cp "$(command -v busybox)" $WORK/bbroot/bin/busybox
for applet in sh cat env grep ls stat touch head sort test; do ln -sf busybox $WORK/bbroot/bin/$applet; done

DEVICES=()
for id in $CDI_IDS; do DEVICES+=(--device "$id"); done

OUT=$(unshare -m --propagation private bash -c '
set -e
mount -t tmpfs tmpfs /run
mkdir -p /run/cdi /run/podman-run
cp "$0"/*.json /run/cdi/
podman --runtime runc --root "$1"/root --runroot /run/podman-run --tmpdir "$1"/tmp \
        --cgroup-manager=cgroupfs --events-backend=none \
        run --rm --ulimit nofile=$(ulimit -Hn):$(ulimit -Hn) --ulimit nproc=32768:32768 --network=none \
        --cgroup-parent=/hami-prepare-test "${@:2}" --rootfs "$1"/bbroot /bin/sh -c "
                echo ENV-BEGIN; env | sort; echo ENV-END
                echo PRELOAD=\$(cat /etc/ld.so.preload)
                ls -l /dev/nvidia0 /dev/nvidia1 /dev/nvidiactl /dev/nvidia-uvm /dev/nvidia-uvm-tools
                grep -E \" /(etc/ld.so.preload|run/hami-dra|usr/lib|usr/bin|var/tmp)\" /proc/mounts
                cat /usr/lib/x86_64-linux-gnu/libcuda.so.1
                ls -l /run/hami-dra/vgpu.cache
                test -w /run/hami-dra/vgpu.cache && echo SHARED-WRITABLE
                touch /run/hami-dra/written-by-container 2>/dev/null
                (echo x >> /usr/lib/x86_64-linux-gnu/libcuda.so.1) 2>/dev/null || echo LIBS-READONLY
        "
# The same claim in a container running as an ordinary user: it must share the limit too.
podman --runtime runc --root "$1"/root --runroot /run/podman-run --tmpdir "$1"/tmp \
        --cgroup-manager=cgroupfs --events-backend=none \
        run --rm --user 1000:1000 --ulimit nofile=$(ulimit -Hn):$(ulimit -Hn) --ulimit nproc=32768:32768 \
        --network=none --cgroup-parent=/hami-prepare-test "${@:2}" --rootfs "$1"/bbroot /bin/sh -c "
                test -r /run/hami-dra/vgpu.cache && test -w /run/hami-dra/vgpu.cache && echo NONROOT-WRITABLE
        "
' "$CDI_DIR" "$WORK" "${DEVICES[@]}" 2>&1) || { echo "podman failed:"; echo "$OUT"; exit 1; }
echo "$OUT"

fail=0
expect() {
        if ! grep -qE -- "$1" <<<"$OUT"; then echo "MISSING: $1"; fail=1; fi
}
# hami-gpu-1 has the lower PCI bus id in the fixture: CUDA index 0.
expect '^CUDA_DEVICE_MEMORY_LIMIT_1=10240m$'
expect '^CUDA_DEVICE_SM_LIMIT_1=50$'
expect '^CUDA_DEVICE_MEMORY_LIMIT_0=24576m$'
expect '^CUDA_DEVICE_SM_LIMIT_0=100$'
expect '^CUDA_DEVICE_MEMORY_SHARED_CACHE=/run/hami-dra/vgpu.cache$'
if grep -qE '^CUDA_DEVICE_MEMORY_LIMIT=' <<<"$OUT"; then echo "UNEXPECTED: unsuffixed limit with two GPUs"; fail=1; fi
expect "^PRELOAD=$PRELOAD\$"
expect '^crw.* 195, +0 .*/dev/nvidia0$'
expect '^crw.* 195, +1 .*/dev/nvidia1$'
expect '^crw.* 195, +255 .*/dev/nvidiactl$'
expect '^crw.* 509, +0 .*/dev/nvidia-uvm$'
expect '^crw.* 509, +1 .*/dev/nvidia-uvm-tools$'
expect ' /etc/ld.so.preload [a-z0-9]+ ro,'
expect ' /run/hami-dra/vgpu.cache [a-z0-9]+ rw,nosuid,nodev,noexec'
expect ' /usr/lib/x86_64-linux-gnu/libcuda.so.1 [a-z0-9]+ ro,'
expect ' /usr/bin/nvidia-smi [a-z0-9]+ ro,'
expect "^not really libcuda$"
expect '^-rw-rw-rw- .* /run/hami-dra/vgpu.cache$'
expect '^SHARED-WRITABLE$'
expect '^LIBS-READONLY$'
expect '^NONROOT-WRITABLE$'
[ "$(stat -c %a "$STATE_DIR/claims")" = 700 ] || { echo "HOST: $STATE_DIR/claims is not 0700"; fail=1; }
# The region file alone is mounted: what the container creates beside it stays in the
# container, never in the claim's directory on the host.
[ ! -e "$STATE_DIR/claims/$CLAIM_UID/vgpu/written-by-container" ] || { echo "HOST: a container file reached the claim directory"; fail=1; }
[ "$(ls "$STATE_DIR/claims/$CLAIM_UID/vgpu")" = vgpu.cache ] || { echo "HOST: vgpu/ holds $(ls "$STATE_DIR/claims/$CLAIM_UID/vgpu")"; fail=1; }
[ $fail = 0 ] && echo "container test passed"
exit $fail
