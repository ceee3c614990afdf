#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Memory footprint probe for bench/gpu/run.sh (python3 + torch on the GPU machine).

Run it under libvgpu.so with CUDA_DEVICE_MEMORY_LIMIT_0 set (and PYTORCH_CUDA_ALLOC_CONF
as the case wants). It reads torch.cuda.mem_get_info() at start, allocates tensors until
torch raises OutOfMemoryError (256 MiB chunks, halved on each failure down to 2 MiB),
then, still holding them, asks nvidia-smi (in a child WITHOUT LD_PRELOAD, so it sees the
real driver) how much device memory this process really holds. Prints one line:

  MEM label=L key=value ...

--no-fill: only the start figures (the reference run without the preload).
"""

import argparse
import os
import subprocess
import sys
import time


def real_used_mib(pid):
    """This pid's device memory per the real driver: nvidia-smi, else pynvml; None if neither."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "CUDA_DEVICE_MEMORY_SHARED_CACHE")}
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             env=env, capture_output=True, text=True, timeout=20).stdout
        for line in out.splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) == 2 and parts[0] == str(pid) and parts[1].isdigit():
                return float(parts[1]), "nvidia-smi"
    except (OSError, subprocess.SubprocessError):
        pass
    code = ("import pynvml,sys\npynvml.nvmlInit()\nh=pynvml.nvmlDeviceGetHandleByIndex(0)\n"
            "for p in pynvml.nvmlDeviceGetComputeRunningProcesses(h):\n"
            "    if p.pid==int(sys.argv[1]) and p.usedGpuMemory is not None: print(p.usedGpuMemory/1048576)\n")
    try:
        out = subprocess.run([sys.executable, "-c", code, str(pid)], env=env, capture_output=True, text=True,
                             timeout=20).stdout.split()
        if out:
            return float(out[0]), "pynvml"
    except (OSError, subprocess.SubprocessError):
        pass
    return None, "none"


def host_pid():
    """Our pid as NVML sees it: /proc is the host's mount under `unshare --pid --fork`."""
    try:
        return int(os.readlink("/proc/self"))
    except (OSError, ValueError):
        return os.getpid()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--label", default="mem")
    ap.add_argument("--no-fill", action="store_true")
    ap.add_argument("--max-secs", type=float, default=40.0)
    a = ap.parse_args()

    t_start = time.monotonic()
    import torch  # noqa: E402 (timed above)
    t_import = time.monotonic() - t_start

    MiB = 1 << 20
    torch.cuda.init()
    free0, total0 = torch.cuda.mem_get_info(0)
    fields = {
        "label": a.label,
        "torch": torch.__version__,
        "alloc_conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "native") or "native",
        "limit": os.environ.get("CUDA_DEVICE_MEMORY_LIMIT_0", "none"),
        "free_start_mib": "%.0f" % (free0 / MiB),
        "total_start_mib": "%.0f" % (total0 / MiB),
        "import_s": "%.1f" % t_import,
        "pid": os.getpid(),
        "hostpid": host_pid(),
    }
    if not a.no_fill:
        held, chunk, oom, err = [], 256 * MiB, 0, ""
        deadline = time.monotonic() + a.max_secs
        while chunk >= 2 * MiB and time.monotonic() < deadline:
            try:
                held.append(torch.empty(chunk, dtype=torch.uint8, device="cuda"))
            except torch.OutOfMemoryError:
                oom += 1
                chunk //= 2
            except RuntimeError as e:  # anything else the allocator raises: say it, stop
                err = type(e).__name__ + ":" + str(e).splitlines()[0][:80].replace(" ", "_")
                break
        torch.cuda.synchronize()
        tensors = sum(t.numel() for t in held)
        free1, total1 = torch.cuda.mem_get_info(0)
        real, src = real_used_mib(host_pid())
        fields.update({
            "tensors_mib": "%.0f" % (tensors / MiB),
            "reserved_mib": "%.0f" % (torch.cuda.memory_reserved(0) / MiB),
            "ooms": oom,
            "reached_oom": int(chunk < 2 * MiB),
            "free_end_mib": "%.0f" % (free1 / MiB),
            "real_used_mib": "na" if real is None else "%.0f" % real,
            "real_src": src,
            "error": err or "none",
        })
        del held
    else:
        real, src = real_used_mib(host_pid())
        fields.update({"real_used_mib": "na" if real is None else "%.0f" % real, "real_src": src})
    print("MEM " + " ".join("%s=%s" % (k, v) for k, v in fields.items()), flush=True)


if __name__ == "__main__":
    main()
