"""Reads the JSON lines of bench/race-pytorch.sh and prints the table of medians:
samples/s of static-nn, PyTorch and (LeNet inference) ONNX Runtime, the
ratios, each side's achieved GFLOP/s, step times and peak RSS; then the
machine's sgemm reference (the gemm crate's 2048³, and PyTorch's), the share
of it that LeNet training reaches, one ratio line per ResNet workload that
ran, `lenet train ratio (static-nn / pytorch samples/s): R` and, last,
`lenet infer-1000 ratio (static-nn / onnxruntime samples/s): R`. Between
the table and those lines, each LeNet inference workload's ratio to ONNX
Runtime round by round, and the `lenet` example's epoch rate as a share of
the LeNet training step's, round by round (when lenet-example ran)."""
import os
import json
import statistics
import sys

# FLOPs per sample (multiply-adds count 2). Training: forward, weight
# gradients, and input gradients of every layer but the first (the data
# needs none): LeNet 0.784 + 0.784 + 0.549 MFLOP. Batch norm, activations
# and pooling are not counted.
MFLOP = {
    "lenet-train": 2.117, "mlp-train": 0.409, "lenet-infer-1": 0.784,
    "lenet-infer-64": 0.784, "lenet-infer-1000": 0.784,
    "resnet-train": 55.85, "resnet-infer-256": 18.69,
    "sgemm-2048": 2 * 2048 ** 3 / 1e6,
}
SIDES = ["static-nn", "pytorch", "onnxruntime"]

rows = [json.loads(l) for l in sys.stdin if l.startswith("{")]
by = {}
for r in rows:
    by.setdefault((r["workload"], r["side"]), []).append(r)

order = ["lenet-train", "mlp-train", "lenet-infer-1", "lenet-infer-64", "lenet-infer-1000",
         "resnet-train", "resnet-infer-256"]
med = lambda xs: statistics.median(xs) if xs else float("nan")
sps = lambda w, side: med([r["samples_per_s"] for r in by.get((w, side), [])])
gflops = lambda w, side: sps(w, side) * MFLOP[w] / 1e3

def cpu():
    try:
        info = open("/proc/cpuinfo").read().splitlines()
    except OSError:
        return "unknown CPU", ""
    model = next((l.split(":", 1)[1].strip() for l in info if l.startswith("model name")), "?")
    flags = next((l.split(":", 1)[1].split() for l in info if l.startswith("flags")), [])
    keep = [f for f in ("fma", "avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vnni") if f in flags]
    return model, " ".join(keep)


model, flags = cpu()
print()
cap = os.environ.get("MAX_ISA", "")
how = os.environ.get("CAP_HOW", "")
capped = f" (capped at {cap} by MAX_ISA: {how})" if cap else ""
print(f"machine: {model}; CPU flags: {flags or 'none of fma/avx2/avx512'}{capped}")
print(f"{'workload':<18}{'static-nn/s':>12}{'pytorch/s':>11}{'ort/s':>9}{'sn/pt':>7}{'sn/ort':>7}"
      f"{'sn GF/s':>9}{'pt GF/s':>9}{'ort GF/s':>9}{'sn step us':>11}{'pt step us':>11}"
      f"{'sn MiB':>8}{'pt MiB':>8}  rounds, lowest sn/pt round")
ratios, ort = {}, {}
for w in order:
    s, p, o = (by.get((w, side), []) for side in SIDES)
    if not s or not p:
        continue
    ratios[w] = sps(w, "static-nn") / sps(w, "pytorch")
    per_round = [a["samples_per_s"] / b["samples_per_s"] for a, b in zip(s, p)]
    if o:
        ort[w] = sps(w, "static-nn") / sps(w, "onnxruntime")
    fmt = lambda v, spec: format(v, spec) if v == v else " " * (len(format(1.0, spec)) - 1) + "-"
    print(f"{w:<18}{sps(w, 'static-nn'):>12.0f}{sps(w, 'pytorch'):>11.0f}"
          f"{fmt(sps(w, 'onnxruntime'), '>9.0f')}{ratios[w]:>7.2f}{fmt(ort.get(w, float('nan')), '>7.2f')}"
          f"{gflops(w, 'static-nn'):>9.1f}{gflops(w, 'pytorch'):>9.1f}{fmt(gflops(w, 'onnxruntime'), '>9.1f')}"
          f"{med([r['median_step_us'] for r in s]):>11.1f}{med([r['median_step_us'] for r in p]):>11.1f}"
          f"{max(r['peak_rss_kib'] for r in s) / 1024:>8.1f}{max(r['peak_rss_kib'] for r in p) / 1024:>8.1f}"
          f"  {len(s)}/{len(p)}, {min(per_round):.2f}")
# Both sides of a round run seconds apart, so the ratio within a round is
# the steadier measure when the machine's speed drifts between rounds.
for w in order:
    s, o = by.get((w, "static-nn"), []), by.get((w, "onnxruntime"), [])
    if s and o:
        pr = [a["samples_per_s"] / b["samples_per_s"] for a, b in zip(s, o)]
        print(f"{w} vs onnxruntime by round: {', '.join(f'{r:.2f}' for r in pr)} (median {med(pr):.2f})")
# The `lenet` example's second epoch (lenet-example) ran right after the
# race's LeNet step in each round: its rate as a share of that step's.
ex, st = by.get(("lenet-example", "static-nn"), []), by.get(("lenet-train", "static-nn"), [])
if ex and st:
    pr = [a["samples_per_s"] / b["samples_per_s"] for a, b in zip(ex, st)]
    e, t = med([r["samples_per_s"] for r in ex]), sps("lenet-train", "static-nn")
    print(f"lenet example epochs: {e:.0f} samples/s, {e / t:.2f} of the race's lenet-train step ({t:.0f}); "
          f"by round: {', '.join(f'{r:.2f}' for r in pr)} (median {med(pr):.2f})")
print()
g_sn, g_pt = gflops("sgemm-2048", "static-nn"), gflops("sgemm-2048", "pytorch")
if g_sn == g_sn:
    print(f"sgemm 2048³ GFLOP/s: gemm crate {g_sn:.1f}, pytorch {g_pt:.1f}")
    if "lenet-train" in ratios:
        share = 100 * gflops("lenet-train", "static-nn") / g_sn
        print(f"lenet train: {gflops('lenet-train', 'static-nn'):.1f} GFLOP/s, {share:.0f}% of the gemm crate's sgemm")
for w, label in [("resnet-train", "resnet train"), ("resnet-infer-256", "resnet infer-256")]:
    if w in ratios:
        print(f"{label} ratio (static-nn / pytorch samples/s): {ratios[w]:.2f}")
print(f"lenet train ratio (static-nn / pytorch samples/s): {ratios.get('lenet-train', float('nan')):.2f}")
print(f"lenet infer-1000 ratio (static-nn / onnxruntime samples/s): {ort.get('lenet-infer-1000', float('nan')):.2f}")
