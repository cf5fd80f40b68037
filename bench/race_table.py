"""Reads the JSON lines of bench/race-pytorch.sh and prints the table of medians.
Then one ratio line per ResNet workload that ran (`resnet train ratio ...`,
`resnet infer-256 ratio ...`); the last line is still
`lenet train ratio (static-nn / pytorch samples/s): R`."""
import json
import statistics
import sys

rows = [json.loads(l) for l in sys.stdin if l.startswith("{")]
by = {}
for r in rows:
    by.setdefault((r["workload"], r["side"]), []).append(r)

order = ["lenet-train", "mlp-train", "lenet-infer-1", "lenet-infer-64", "lenet-infer-1000",
         "resnet-train", "resnet-infer-256"]
med = lambda xs: statistics.median(xs) if xs else float("nan")
print()
print(f"{'workload':<18}{'static-nn/s':>13}{'pytorch/s':>12}{'ratio':>8}"
      f"{'sn step us':>12}{'pt step us':>12}{'sn RSS MiB':>12}{'pt RSS MiB':>12}  rounds")
ratios = {}
for w in order:
    s, p = by.get((w, "static-nn"), []), by.get((w, "pytorch"), [])
    if not s or not p:
        continue
    ss, ps = med([r["samples_per_s"] for r in s]), med([r["samples_per_s"] for r in p])
    # ratio of medians, plus the median of the per-round ratios (same round = same load)
    ratios[w] = ss / ps
    per_round = med([a["samples_per_s"] / b["samples_per_s"] for a, b in zip(s, p)])
    print(f"{w:<18}{ss:>13.0f}{ps:>12.0f}{ratios[w]:>8.2f}"
          f"{med([r['median_step_us'] for r in s]):>12.1f}{med([r['median_step_us'] for r in p]):>12.1f}"
          f"{max(r['peak_rss_kib'] for r in s) / 1024:>12.1f}{max(r['peak_rss_kib'] for r in p) / 1024:>12.1f}"
          f"  {len(s)}/{len(p)} (per-round ratio median {per_round:.2f})")
print()
for w, label in [("resnet-train", "resnet train"), ("resnet-infer-256", "resnet infer-256")]:
    if w in ratios:
        print(f"{label} ratio (static-nn / pytorch samples/s): {ratios[w]:.2f}")
print(f"lenet train ratio (static-nn / pytorch samples/s): {ratios.get('lenet-train', float('nan')):.2f}")
