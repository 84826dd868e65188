#!/usr/bin/env python3
"""The longest sequence `trainer estimate` predicts to fit a per-rank budget, by bisection (to 1,024 tokens).
  tools/bench/predict_max_len.py [--trainer PATH] --budget-gib 80 -- ESTIMATE_FLAGS...
  e.g. --budget-gib 80 -- --model shape:qwen2.5-7b --sp 8 --stage sft --bf16 --gradient-checkpointing --zero-stage 3 --offload
Prints one JSON object: the flags, max_len (0 when even 1,024 does not fit), and the peak and its moment there.
These are predictions of the memory model, not measurements."""
import json, os, subprocess, sys

args = sys.argv[1:]
trainer = os.path.join(os.path.dirname(__file__), "..", "..", "src", "Trainer", "bin", "Release", "net10.0", "linux-x64", "trainer")
if args[:1] == ["--trainer"]:
    trainer, args = args[1], args[2:]
if args[:1] != ["--budget-gib"] or "--" not in args:
    sys.exit(__doc__)
budget = float(args[1]) * 2**30
flags = args[args.index("--") + 1:]

def estimate(t):
    out = subprocess.run([trainer, "estimate", *flags, "--seq-len", str(t), "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)

step = 1024
lo, hi = 0, step
while estimate(hi)["peak_bytes"] <= budget and hi < 1 << 24:
    lo, hi = hi, hi * 2
while hi - lo > step:
    mid = (lo + hi) // 2 // step * step
    if estimate(mid)["peak_bytes"] <= budget: lo = mid
    else: hi = mid
at = estimate(lo if lo > 0 else step)
print(json.dumps({"flags": " ".join(flags), "budget_gib": budget / 2**30, "max_len": lo,
                  "peak_gib": round(at["peak_bytes"] / 2**30, 2), "moment": at.get("peak_moment")}))
