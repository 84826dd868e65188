#!/usr/bin/env python3
"""The memory model against measured per-rank peaks: for each configuration, `trainer bench` (one SFT step,
ranks as processes, each rank's VmHWM) and `trainer estimate` with the same flags; prints a markdown table.
  tools/bench/estimator_table.py [--trainer PATH] CONFIG...   CONFIG = model:seq_len:sp[:mode][:ckpt][:bf16][:z1|:z2|:z3]
  e.g. shape:qwen-vocab-100m:1024:1:zigzag-ring:ckpt  builtin:tiny-qwen2:16384:4::ckpt
Memory does not depend on the machine's load; the load average is printed beside each row anyway."""
import json, os, subprocess, sys

args = sys.argv[1:]
trainer = os.path.join(os.path.dirname(__file__), "..", "..", "src", "Trainer", "bin", "Release", "net10.0", "linux-x64", "trainer")
if args[:1] == ["--trainer"]:
    trainer, args = args[1], args[2:]
if not args:
    sys.exit(__doc__)

print("| model | T | SP | mode | ZeRO | dtype | ckpt | measured peak/rank MiB | peak − baseline MiB | predicted peak MiB | predicted moment | error | load |")
print("|---|---:|---:|---|---:|---|---|---:|---:|---:|---|---:|---:|")
for config in args:
    parts = config.split(":")
    # model names themselves hold one ':' (builtin:…, shape:…)
    model, seq, sp = ":".join(parts[:2]), parts[2], parts[3]
    mode = (parts[4] if len(parts) > 4 and parts[4] else "zigzag-ring")
    flags = set(parts[5:])
    common = ["--model", model, "--seq-len", seq, "--sp", sp, "--mode", mode]
    if "ckpt" in flags: common.append("--gradient-checkpointing")
    zero = next((f[1:] for f in flags if f in ("z1", "z2", "z3")), None)
    if zero: common += ["--zero-stage", zero]
    bench = common + (["--dtype", "bf16"] if "bf16" in flags else [])
    estimate = common + (["--bf16"] if "bf16" in flags else [])
    measured = json.loads(subprocess.run([trainer, "bench", *bench, "--launch", "processes", "--steps", "1", "--warmup", "0", "--json"],
                                         check=True, capture_output=True, text=True).stdout)[0]
    load = open("/proc/loadavg").read().split()[0]
    predicted = json.loads(subprocess.run([trainer, "estimate", *estimate, "--json"], check=True, capture_output=True, text=True).stdout)
    peak = max(measured["rank_peak_bytes"]) / 2**20
    base = max(measured["rank_baseline_bytes"]) / 2**20
    pred = predicted["peak_bytes"] / 2**20
    print(f"| {model} | {seq} | {sp} | {mode} | {zero or 0} | {measured['dtype']} | {'yes' if 'ckpt' in flags else 'no'} | {peak:.1f} | {peak - base:.1f} | "
          f"{pred:.1f} | {predicted['peak_moment']} | {100 * (pred - peak) / peak:+.1f}% | {load} |", flush=True)
