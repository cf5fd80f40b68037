#!/usr/bin/env bash
# Typed overhead: the typed LeNetClass against the same computation written
# directly with the ops (benches/common/raw_lenet.rs). Each run of
# `race typed-overhead` alternates blocks of 5 typed and 5 hand-written steps
# in one process (same load for both) and reports the median over blocks of
# typed time / ops time - 1; this script repeats it ROUNDS times and prints
# the median of those.
#
#   bench/typed-overhead.sh            # ROUNDS=5 SECS=3
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
SECS=${SECS:-3}
cargo build --release --quiet --example race >&2
SN="${CARGO_TARGET_DIR:-target}/release/examples/race"
for r in $(seq 1 "$ROUNDS"); do "$SN" typed-overhead "$SECS"; done | tee /dev/stderr | python3 -c '
import json, statistics, sys
rows = [json.loads(l) for l in sys.stdin if l.startswith("{")]
for k, name in [("train_overhead", "training step, batch 64"), ("infer64_overhead", "inference, batch 64")]:
    v = sorted(r[k] for r in rows)
    print(f"typed overhead, {name}: {100 * statistics.median(v):+.1f}% (median of {len(v)} runs; range {100 * v[0]:+.1f}% .. {100 * v[-1]:+.1f}%)")
'
