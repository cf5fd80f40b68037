#!/usr/bin/env bash
# Typed overhead: the typed LeNetClass against the same computation written
# directly with the ops (benches/common/raw_lenet.rs), alternating in one run.
# Prints the median of per-round ratios (typed time / ops time - 1).
#
#   bench/typed-overhead.sh            # ROUNDS=7 SECS=2
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-7}
SECS=${SECS:-2}
cargo build --release --quiet --example race >&2
SN="${CARGO_TARGET_DIR:-target}/release/examples/race"
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
for r in $(seq 1 "$ROUNDS"); do
    for pair in "lenet-train lenet-train-ops" "lenet-infer-64 lenet-infer-64-ops"; do
        set -- $pair
        if (( r % 2 )); then a=$1; b=$2; else a=$2; b=$1; fi
        "$SN" "$a" "$SECS" | tee -a "$OUT" >&2
        "$SN" "$b" "$SECS" | tee -a "$OUT" >&2
    done
done
python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
for typed, ops in [("lenet-train", "lenet-train-ops"), ("lenet-infer-64", "lenet-infer-64-ops")]:
    t = [r["samples_per_s"] for r in rows if r["workload"] == typed]
    o = [r["samples_per_s"] for r in rows if r["workload"] == ops]
    per_round = sorted(b / a - 1 for a, b in zip(t, o))  # extra time of typed vs ops
    med = statistics.median(per_round)
    print(f"{typed:<16} typed {statistics.median(t):>9.0f}/s  ops {statistics.median(o):>9.0f}/s  "
          f"typed overhead {100 * med:+.1f}% (median of {len(per_round)} rounds; "
          f"range {100 * per_round[0]:+.1f}% .. {100 * per_round[-1]:+.1f}%)")
PY
