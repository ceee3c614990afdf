#!/bin/bash
# Make docs/dashboard.png: build hami-dra, run tools/dashboard/demo.py (the real daemon on
# mock GPUs with its metrics socket, a real Prometheus scraping it on loopback, two
# minutes of claims and processes driven as a kubelet would), and draw
# deploy/grafana/hami-dra.json from that Prometheus with tools/render-dashboard.
#   tools/dashboard-demo.sh [--stub] [--seconds N] [--png OUT] [--keep DIR]
# --stub: tools/dashboard/stub-exporter.py instead of the daemon (simulated numbers),
# into /tmp/hami-dra-dashboard-stub.png unless --png says otherwise.
# Needs prometheus and chromium (apt-get install prometheus chromium); root, for the
# device-node fixtures. See docs/metrics.md, "Grafana dashboard".
set -euo pipefail
# shellcheck source=tools/lib.sh
. "$(dirname "$0")/lib.sh"
become_root "$0" "$@"
trap give_back EXIT
cd "$(dirname "$0")/.."

for p in prometheus chromium; do
        command -v "$p" >/dev/null || { echo "dashboard-demo: $p is not installed (apt-get install $p)" >&2; exit 1; }
done
args=("$@")
has() { printf '%s\n' "${args[@]}" | grep -qx -- "$1"; }

# The stub's numbers are simulated: they never go to docs/ unless asked for by name.
if has --stub; then
        has --png || args+=(--png /tmp/hami-dra-dashboard-stub.png)
        /usr/bin/python3 tools/dashboard/demo.py "${args[@]}"
        exit 0
fi
has --png || args+=(--png docs/dashboard.png)

BUILD=${BUILD:-build-dashboard-demo}
if [ ! -f "$BUILD/build.ninja" ]; then
        nice meson setup "$BUILD" >/dev/null
fi
nice ninja -C "$BUILD" src/hami-dra-plugin preload/libvgpu.so tests/preload/tenant-worker \
        tests/fakes/cuda/libcuda.so.1 tests/fakes/nvml/libnvidia-ml.so.1 >/dev/null

export HAMI_DRA_BUILD_ROOT=$PWD/$BUILD
export HAMI_DRA_LIBVGPU=$PWD/$BUILD/preload/libvgpu.so
export HAMI_DRA_TENANT_WORKER=$PWD/$BUILD/tests/preload/tenant-worker
export HAMI_DRA_PRELOAD_LIB_PATH=$PWD/$BUILD/tests/fakes/cuda:$PWD/$BUILD/tests/fakes/nvml
/usr/bin/python3 tools/dashboard/demo.py "${args[@]}"
