#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Runs INSIDE an old Debian root (chroot), with the project's sources at /src: builds the
# fake driver (libcuda.so.1, libnvidia-ml.so.1) into /opt/fake and chain-worker into
# /bin with that root's own compiler and glibc, as a program of such an image would be.
set -eu
cd /src
CFLAGS="-std=gnu11 -O1 -g -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Wall -Wno-unused-parameter -fPIC -pthread"
mkdir -p /opt/fake
# The same files as tests/fakes/*/meson.build: the GPU model (fake-cuda-*.c), shared by
# both libraries, the driver (fake-cuda.c) and every NVML source (fake-nvml*.c).
model=$(ls tests/fakes/cuda/fake-cuda-*.c)
nvml_sources=$(ls tests/fakes/nvml/fake-nvml*.c)
# shellcheck disable=SC2086
gcc $CFLAGS -shared -fvisibility=hidden -Wl,-Bsymbolic -Wl,-soname,libcuda.so.1 \
        -Ipreload -Itests/fakes/cuda -o /opt/fake/libcuda.so.1 \
        tests/fakes/cuda/fake-cuda.c $model -ldl -lpthread
# shellcheck disable=SC2086
gcc $CFLAGS -shared -fvisibility=hidden -Wl,-soname,libnvidia-ml.so.1 \
        -Isrc -Itests/fakes/cuda -Itests/fakes/nvml -o /opt/fake/libnvidia-ml.so.1 \
        $nvml_sources $model -ldl -lpthread
# shellcheck disable=SC2086
gcc $CFLAGS -Ipreload -Itests -Itests/preload -Itests/fakes/cuda -o /bin/chain-worker \
        tests/preload/chain-worker.c -L/opt/fake -l:libcuda.so.1 -l:libnvidia-ml.so.1 -ldl -lpthread
ldd --version | head -n 1
