#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""What counts against a container's memory limit is its real device footprint, its
contexts included (about 520 MiB each on an H200; FAKE_CUDA_CONTEXT_MEMORY here). A
tenant under a 4 GiB limit, with the usage monitor running, allocates 64 MiB at a time
until refused: the memory the (fake) driver really holds for it must stay within the
limit (one 2 MiB granule over at most), and cuMemGetInfo must tell the limit minus the
footprint. A second process of the same container, with no room left for a context,
gets CUDA_ERROR_OUT_OF_MEMORY from cuCtxCreate and a message saying why, not a hang.
Without the monitor (the control) the footprint overshoots by the context."""

import os
import subprocess
import sys
import tempfile
import shutil
import time

GPU0 = "GPU-00000000-0000-0000-0000-000000000000"
MiB = 1 << 20
CONTEXT = 520 * MiB
LIMIT_MIB = 4096


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)
    print("ok: " + msg, flush=True)


def tenant_env(tmp, region):
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LD_LIBRARY_PATH": os.environ["HAMI_DRA_PRELOAD_LIB_PATH"],
        "LD_PRELOAD": os.environ["HAMI_DRA_LIBVGPU"],
        "FAKE_CUDA_STATE": os.path.join(tmp, "fake-cuda.state"),
        "FAKE_NVML_CONFIG": os.environ["HAMI_DRA_FAKE_NVML_CONFIG"],
        "FAKE_CUDA_CONTEXT_MEMORY": str(CONTEXT),
        "CUDA_DEVICE_MEMORY_LIMIT": "%dm" % LIMIT_MIB,
        "CUDA_DEVICE_MEMORY_SHARED_CACHE": region,
    }


def real_memory(env):
    out = subprocess.run([os.environ["HAMI_DRA_FAKE_GPU_SHARE"], "0", "1000"], env=env, capture_output=True,
                         text=True, check=True).stdout
    return sum(int(line.split()[2]) for line in out.splitlines() if not line.startswith("device"))


def run(with_monitor):
    tmp = tempfile.mkdtemp(prefix="hami-footprint-", dir="/var/tmp")
    region = os.path.join(tmp, "tenant.region")
    env = tenant_env(tmp, region)
    plain = dict(env)
    del plain["LD_PRELOAD"]
    monitor = None
    worker = os.environ["HAMI_DRA_TENANT_WORKER"]
    try:
        # A first process of the container teaches the monitor what a context costs.
        first = subprocess.run([worker, "contextonly", "1"], env=env, capture_output=True, text=True, timeout=30)
        if with_monitor:
            monitor = subprocess.Popen([os.environ["HAMI_DRA_MONITOR"], "%s=%s" % (region, GPU0)], env=plain,
                                       stdout=subprocess.DEVNULL)
            # The first process again, now watched (the monitor learns from live processes).
            first = subprocess.run([worker, "contextonly", "1"], env=env, capture_output=True, text=True,
                                   timeout=30)
        check(first.returncode == 0, "a process holds a context (%s)" % first.stdout.strip())
        filler = subprocess.Popen([worker, "fill", "64", "3"], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        line = filler.stdout.readline()
        print(line.strip())
        held = real_memory(plain)
        second = subprocess.run([worker, "context"], env=env, capture_output=True, text=True, timeout=30)
        out, _ = filler.communicate(timeout=30)
        check(filler.returncode == 0, "the filler ran (%s)" % out.strip())
        return line, held, second
    finally:
        if monitor:
            monitor.terminate()
            monitor.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    for var in ("HAMI_DRA_LIBVGPU", "HAMI_DRA_MONITOR", "HAMI_DRA_TENANT_WORKER", "HAMI_DRA_FAKE_GPU_SHARE",
                "HAMI_DRA_PRELOAD_LIB_PATH", "HAMI_DRA_FAKE_NVML_CONFIG"):
        if not os.environ.get(var):
            print("SKIP: %s is not set: run through meson test" % var)
            sys.exit(77)

    line, held, _ = run(with_monitor=False)
    print("control, no monitor: the driver holds %d MiB under a %d MiB limit" % (held // MiB, LIMIT_MIB))
    check(held > LIMIT_MIB * MiB, "without the monitor the context goes uncounted (the fake is honest)")

    line, held, second = run(with_monitor=True)
    print("with the monitor: the driver holds %d MiB under a %d MiB limit" % (held // MiB, LIMIT_MIB))
    check(held <= LIMIT_MIB * MiB + 2 * MiB, "the real footprint stays within the limit")
    check(held >= (LIMIT_MIB - 64) * MiB, "and the container can use it (%d MiB)" % (held // MiB))
    words = line.split()
    free_start, total = int(words[4]), int(words[7].rstrip(";"))
    check(total == LIMIT_MIB and free_start <= LIMIT_MIB - CONTEXT // MiB,
          "cuMemGetInfo at start counts the context: %d of %d MiB free" % (free_start, total))
    check(int(words[13]) * MiB <= 2 * MiB + 64 * MiB, "cuMemGetInfo after: what is left (%s MiB)" % words[13])
    print(second.stdout.strip(), second.stderr.strip())
    check("context: 2" in second.stdout, "a second process gets CUDA_ERROR_OUT_OF_MEMORY for its context")
    check("a CUDA context needs about 520 MiB" in second.stderr, "and is told why")
    print("footprint: all checks passed")


main()
