# SPDX-License-Identifier: Apache-2.0
"""What the tests of containers sharing the fake GPU have in common (test-sharing.py,
test-footprint.py, ../integration/test-daemon-monitor.py): a tenant's environment, the
fake GPU's own account of it (fake-gpu-share), and the variables meson sets."""

import os
import subprocess
import sys

GPU0 = "GPU-00000000-0000-0000-0000-000000000000"
NEEDED = ("HAMI_DRA_LIBVGPU", "HAMI_DRA_MONITOR", "HAMI_DRA_TENANT_WORKER", "HAMI_DRA_FAKE_GPU_SHARE",
          "HAMI_DRA_PRELOAD_LIB_PATH", "HAMI_DRA_FAKE_NVML_CONFIG")


def require_meson_env(names=NEEDED):
    for var in names:
        if not os.environ.get(var):
            print("SKIP: %s is not set: run through meson test" % var)
            sys.exit(77)


def gpu_env(state):
    """What the fake driver, the fake NVML and the monitor need: one shared fake GPU."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LD_LIBRARY_PATH": os.environ["HAMI_DRA_PRELOAD_LIB_PATH"],
        "FAKE_CUDA_STATE": state,
        "FAKE_NVML_CONFIG": os.environ["HAMI_DRA_FAKE_NVML_CONFIG"],
    }


def tenant_env(state, region, **limits):
    """A process of one container: libvgpu.so preloaded, its region, its limits (e.g.
    CUDA_DEVICE_SM_LIMIT="30") and fake-driver knobs given as keyword arguments."""
    env = gpu_env(state)
    env["LD_PRELOAD"] = os.environ["HAMI_DRA_LIBVGPU"]
    env["CUDA_DEVICE_MEMORY_SHARED_CACHE"] = region
    env.update({k: str(v) for k, v in limits.items()})
    return env


def fake_gpu_processes(env, window_ms):
    """The fake GPU's truth over the last window_ms: ({host pid: (busy permille, memory
    bytes)}, device busy permille)."""
    out = subprocess.run([os.environ["HAMI_DRA_FAKE_GPU_SHARE"], "0", str(window_ms)], env=env,
                         capture_output=True, text=True, check=True).stdout
    per_pid, device = {}, 0
    for line in out.splitlines():
        words = line.split()
        if words[0] == "device":
            device = int(words[1])
        else:
            per_pid[int(words[0])] = (int(words[1]), int(words[2]))
    return per_pid, device
