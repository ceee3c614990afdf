#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Render bench/gpu/run.sh's results file as one Markdown table (stdout).

The results file holds lines written by run.sh:
  M key value...                         metadata (the header)
  R k=v ... :: PROBE k=v ...             one probe's output line for one case
  N k=v ... reason=why                   a case that was not run
  F k=v ... reason=why                   a case that failed
Every figure printed comes from an R line; nothing is estimated or filled in.
"""

import statistics
import sys


def kv(text):
    out = {}
    for tok in text.split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            out[k] = v
    return out


def load(path):
    meta, runs, notrun, failed = {}, [], [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for order, line in enumerate(f):
            line = line.rstrip("\n")
            if line.startswith("M "):
                parts = line[2:].split(" ", 1)
                meta[parts[0]] = parts[1] if len(parts) > 1 else ""
            elif line.startswith("R ") and " :: " in line:
                case, probe = line[2:].split(" :: ", 1)
                d = kv(case)
                d["_order"] = order
                d["_probe"] = probe.split(" ", 1)[0]
                d["_p"] = kv(probe)
                runs.append(d)
            elif line.startswith("N ") or line.startswith("F "):
                d = kv(line[2:])
                d["_order"] = order
                (notrun if line[0] == "N" else failed).append(d)
    return meta, runs, notrun, failed


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def f0(x):
    return "n/a" if x is None else "{:,.0f}".format(x)


def f1(x):
    return "n/a" if x is None else "{:.1f}".format(x)


def sgn(x):
    return "n/a" if x is None else "{:+.1f}".format(x)


def match(d, **want):
    return all(d.get(k) == v for k, v in want.items())


def why_missing(notrun, failed, **want):
    """'not run (...)' / 'failed (...)' for a case without results."""
    for d in failed:
        if match(d, **want):
            return "failed (%s)" % d.get("reason", "?").replace("_", " ")
    for d in notrun:
        if match(d, **want):
            return "not run (%s)" % d.get("reason", "?").replace("_", " ")
    return "not run"


def steps(rs):
    """Whether the monitor ran, and what the limiter steered by (its LIBCUDA_LOG_LEVEL=4 lines)."""
    mon = ",".join(sorted({r.get("monitor", "?") for r in rs}))
    own = sum(int(r.get("steps_own", "0") or 0) for r in rs)
    dw = sum(int(r.get("steps_devwide", "0") or 0) for r in rs)
    return "monitor: %s; limiter steps on own share / device-wide: %d / %d" % (mon, own, dw)


MODES = [("short", "short kernels (20 µs)"), ("long", "long kernels (5 ms)"),
         ("burst", "bursts (200 µs kernels, 40-60 ms on / 40-60 ms off)"), ("mid", "200 µs kernels")]


def main():
    meta, runs, notrun, failed = load(sys.argv[1])
    everything = sorted(runs + notrun + failed, key=lambda d: d["_order"])  # file order
    rows = []

    def row(measure, setting, result, vs, n, notes):
        rows.append("| %s | %s | %s | %s | %s | %s |" % (measure, setting, result, vs, n, notes))

    # Baselines: each workload alone, no preload, no limit.
    base = {}
    for mode, desc in MODES:
        section = "tbase" if mode == "mid" else "alone"
        rs = [r for r in runs if match(r, section=section, mode=mode, limit="none") and r["_probe"] == "SPIN"]
        if not rs:
            if mode != "mid" or any(match(d, section="tbase") for d in notrun + failed):
                row("alone, no preload, no limit (baseline)", desc,
                    why_missing(notrun, failed, section=section, mode=mode, limit="none"), "", 0, "")
            continue
        kps = med([num(r["_p"].get("kps")) for r in rs])
        busy = med([num(r["_p"].get("busy_pct")) for r in rs])
        kus = med([num(r["_p"].get("mean_kernel_us")) for r in rs])
        calib = med([num(r["_p"].get("calib_us")) for r in rs])
        base[mode] = (kps, busy)
        row("alone, no preload, no limit (baseline)", desc,
            "%s kernels/s, GPU busy %s %%" % (f0(kps), f1(busy)), "", len(rs),
            "kernel %s µs in the run (%s µs launched alone); runs: %s kernels/s" % (
                f1(kus), f1(calib), ", ".join(f0(num(r["_p"].get("kps"))) for r in rs)))

    # Alone under SM limits.
    for mode, desc in MODES[:3]:
        for limit in ("10", "30", "50", "90"):
            rs = [r for r in runs if match(r, section="alone", mode=mode, limit=limit) and r["_probe"] == "SPIN"]
            setting = "%s, SM limit %s %%" % (desc, limit)
            if not rs:
                row("alone under a limit", setting, why_missing(notrun, failed, section="alone", mode=mode,
                                                                  limit=limit), "", 0, "")
                continue
            kps = med([num(r["_p"].get("kps")) for r in rs])
            busy = med([num(r["_p"].get("busy_pct")) for r in rs])
            bk = base.get(mode, (None, None))
            share = 100.0 * kps / bk[0] if kps is not None and bk[0] else None
            # What the limit allows: the limit, or less when the workload alone uses less.
            allowed = float(limit) if bk[1] is None else min(float(limit), bk[1])
            vs = "busy %s pts" % sgn(busy - allowed if busy is not None else None)
            shares = [100.0 * num(r["_p"].get("kps")) / bk[0] if bk[0] and num(r["_p"].get("kps")) is not None
                      else None for r in rs]
            row("alone under a limit", setting,
                "share %s %% (%s kernels/s), GPU busy %s %%" % (f1(share), f0(kps), f1(busy)), vs, len(rs),
                "shares per run: %s; %s" % (", ".join(f1(s) for s in shares), steps(rs)))

    # Tenants at once.
    cfgs = []
    for d in everything:
        if d.get("section") == "tenants" and d.get("cfg") not in cfgs:
            cfgs.append(d.get("cfg"))
    bk = base.get("mid", (None, None))
    for cfg in cfgs:
        rs = [r for r in runs if match(r, section="tenants", cfg=cfg) and r["_probe"] == "SPIN"]
        setting = "%s tenants, limits %s (200 µs kernels)" % (len(cfg.split("/")), cfg.replace("-", "none"))
        bad = [d for d in notrun + failed if match(d, section="tenants", cfg=cfg)]
        if not rs or (bad and len(rs) < len(cfg.split("/"))):
            row("tenants at once", setting, why_missing(notrun, failed, section="tenants", cfg=cfg), "",
                len(rs), "")
            continue
        rs.sort(key=lambda r: int(r.get("tenant", "0")))
        parts, vss, busy_sum = [], [], 0.0
        for r in rs:
            kps, busy = num(r["_p"].get("kps")), num(r["_p"].get("busy_pct"))
            share = 100.0 * kps / bk[0] if kps is not None and bk[0] else None
            lim = r.get("limit")
            parts.append("%s: %s %%" % ("none" if lim in ("-", "0") else lim, f1(share)))
            if lim not in ("-", "0") and busy is not None:
                vss.append(sgn(busy - float(lim)))
            busy_sum += busy or 0.0
        shares_sum = sum(100.0 * num(r["_p"].get("kps")) / bk[0] for r in rs
                         if bk[0] and num(r["_p"].get("kps")) is not None)
        row("tenants at once", setting, " · ".join(parts) + " (sum %s %%)" % f1(shares_sum),
            ("busy " + " · ".join(vss) + " pts") if vss else "", 1,
            "GPU busy per tenant: %s %%; %s; pid ns: %s" % (
                " · ".join(f1(num(r["_p"].get("busy_pct"))) for r in rs), steps(rs), rs[0].get("pidns", "?")))

    # Memory.
    mems = []
    for d in everything:
        if d.get("section") == "mem":
            key = (d.get("limit"), d.get("conf"))
            if key not in mems:
                mems.append(key)
    for limit, conf in mems:
        rs = [r for r in runs if match(r, section="mem", limit=limit, conf=conf) and r["_probe"] == "MEM"]
        setting = "torch, %s, PYTORCH_CUDA_ALLOC_CONF %s" % (
            "no preload" if limit == "none" else "limit " + limit, conf.replace("_", " "))
        if not rs:
            row("memory footprint", setting, why_missing(notrun, failed, section="mem", limit=limit, conf=conf),
                "", 0, "")
            continue
        p = rs[0]["_p"]
        real = num(p.get("real_used_mib"))
        lim_mib = None
        if limit.endswith("m"):
            lim_mib = num(limit[:-1])
        elif limit.endswith("g"):
            lim_mib = num(limit[:-1]) * 1024 if num(limit[:-1]) is not None else None
        if limit == "none":
            res = "free at start %s of %s MiB; process holds %s MiB" % (
                f0(num(p.get("free_start_mib"))), f0(num(p.get("total_start_mib"))), f0(real))
            vs = ""
        else:
            res = "tensors %s MiB; process holds %s MiB (%s); free at start %s of %s MiB" % (
                f0(num(p.get("tensors_mib"))), f0(real), p.get("real_src", "?"),
                f0(num(p.get("free_start_mib"))), f0(num(p.get("total_start_mib"))))
            vs = "held %s MiB" % ("n/a" if real is None or lim_mib is None else "{:+,.0f}".format(real - lim_mib))
        notes = "OOM reached: %s; reserved %s MiB; error: %s; monitor: %s" % (
            "yes" if p.get("reached_oom") == "1" else ("n/a" if "reached_oom" not in p else "no"),
            p.get("reserved_mib", "n/a"), p.get("error", "n/a"), rs[0].get("monitor", "?"))
        row("memory footprint", setting, res, vs, len(rs), notes)

    # Overhead.
    variants = []
    for d in everything:
        if d.get("section") == "ovh" and d.get("variant") not in variants:
            variants.append(d.get("variant"))
    names = {"none": "no preload", "vgpu": "libvgpu.so, no limits",
             "vgpu-limits": "libvgpu.so, limits 4096m + SM 90 %"}
    ref = {}
    for what, desc in (("launch", "ns per empty-kernel cuLaunchKernel"),
                       ("alloc", "ns per cuMemAlloc+cuMemFree pair, 4 KiB")):
        for v in variants:
            rs = [r for r in runs if match(r, section="ovh", variant=v) and r["_probe"] == "OVERHEAD"
                  and r["_p"].get("what") == what]
            setting = "%s, %s" % (desc, names.get(v, v))
            if not rs:
                row("call overhead", setting, why_missing(notrun, failed, section="ovh", variant=v), "", 0, "")
                continue
            m = med([num(r["_p"].get("median_ns")) for r in rs])
            p99 = med([num(r["_p"].get("p99_ns")) for r in rs])
            if v == "none":
                ref[what] = m
            vs = ""
            if v != "none" and ref.get(what) is not None and m is not None:
                vs = "median {:+,.0f} ns".format(m - ref[what])
            row("call overhead", setting, "median %s, p99 %s" % (f0(m), f0(p99)), vs, len(rs),
                "calls per run: %s" % ", ".join(r["_p"].get("n", "?") for r in rs))

    print("## GPU bench: %s" % meta.get("gpu", "unknown GPU"))
    print()
    print("%s, driver %s, CUDA %s (nvcc %s), torch %s; %s; %s." % (
        meta.get("gpu", "?"), meta.get("driver", "?"), meta.get("cuda", "?"), meta.get("nvcc", "?"),
        meta.get("torch", "?"), meta.get("date", "?"), meta.get("host", "?")))
    print("libvgpu.so: %s. Usage monitor: %s. Tenants' PID namespaces: %s. Wall time: %s s." % (
        meta.get("libvgpu", "?"), meta.get("monitor", "?"), meta.get("pidns", "?"), meta.get("wall_s", "?")))
    print()
    print("| measurement | setting | result | vs limit | runs | notes |")
    print("|---|---|---|---|---:|---|")
    for r in rows:
        print(r)
    print()
    print("Share = the run's kernels/s ÷ the same workload's kernels/s alone without any limit "
          "(baseline rows, same script run); GPU busy = the time the GPU ran that process's kernels "
          "in the measured window (GPU timer stamps); each row is the median of its runs.")


if __name__ == "__main__":
    main()
