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
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import check  # noqa: E402
from tenants import GPU0, fake_gpu_processes, gpu_env, require_meson_env, tenant_env  # noqa: E402

MiB = 1 << 20
CONTEXT = 520 * MiB
LIMIT_MIB = 4096


def real_memory(env):
    return sum(memory for _, memory in fake_gpu_processes(env, 1000)[0].values())


def run(with_monitor):
    tmp = tempfile.mkdtemp(prefix="hami-footprint-", dir="/var/tmp")
    region = os.path.join(tmp, "tenant.region")
    state = os.path.join(tmp, "fake-cuda.state")
    env = tenant_env(state, region, FAKE_CUDA_CONTEXT_MEMORY=CONTEXT, CUDA_DEVICE_MEMORY_LIMIT="%dm" % LIMIT_MIB)
    plain = dict(gpu_env(state), FAKE_CUDA_CONTEXT_MEMORY=str(CONTEXT))
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
    require_meson_env()

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
