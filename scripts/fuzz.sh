#!/usr/bin/env bash
# Coverage-guided fuzzing of static-nn's file readers with cargo-fuzz (libFuzzer).
#
#   scripts/fuzz.sh TARGET SECONDS [libFuzzer args...]
#   scripts/fuzz.sh list
#
# Targets (fuzz/fuzz_targets/): idx_raw, idx_gz (the IDX reader, raw and
# gzip), weights (the safetensors loader), image (PNG/JPEG reading, mnistify).
#
# The corpus of TARGET lives in fuzz/corpus/TARGET (not committed); it is
# seeded from fuzz/seeds/TARGET, which `cargo test --test integration
# -- --ignored write_fuzz_seeds` regenerates from the test suite's own file
# generators, and for `weights` also from tests/fixtures/weights. Crashes go
# to fuzz/artifacts/TARGET/, the log to fuzz/logs/. Every crash must become a
# regression test with its subject in tests/integration/.
#
# Needs `cargo install cargo-fuzz`. cargo-fuzz uses unstable rustc flags:
# RUSTC_BOOTSTRAP=1 is set here, for this script's cargo only, never for the
# library build or CI. FUZZ_SANITIZER=address|none (default none: the crate
# is safe Rust, and without ASan each run is several times faster);
# debug assertions (integer overflow checks) are always on.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(idx_raw idx_gz weights image)
if [[ "${1:-}" == list ]]; then
    printf '%s\n' "${targets[@]}"
    exit 0
fi
if [[ $# -lt 2 ]] || ! [[ "$2" =~ ^[0-9]+$ ]]; then
    echo "usage: $0 TARGET SECONDS [libFuzzer args...]   (targets: ${targets[*]})" >&2
    exit 2
fi
target=$1
secs=$2
shift 2
case " ${targets[*]} " in
*" $target "*) ;;
*)
    echo "unknown target '$target' (targets: ${targets[*]})" >&2
    exit 2
    ;;
esac
command -v cargo-fuzz >/dev/null || {
    echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
    exit 2
}

export RUSTC_BOOTSTRAP=1
unset CARGO_TARGET_DIR # the fuzz build keeps its own, fuzz/target
sanitizer=${FUZZ_SANITIZER:-none}
build=(--sanitizer "$sanitizer" --debug-assertions)

# -timeout: a run slower than this is reported as a hang. A picture may
# announce up to 2^25 pixels from a few hundred bytes, and decoding and
# resizing that many takes seconds (more on a loaded machine): allow 30 s.
timeout=10
case $target in
weights) max_len=65536 ;;
image) max_len=16384 timeout=30 ;;
*) max_len=8192 ;;
esac

corpus=fuzz/corpus/$target
artifacts=fuzz/artifacts/$target
mkdir -p "$corpus" "$artifacts" fuzz/logs
if [[ -d fuzz/seeds/$target ]]; then
    cp -n fuzz/seeds/"$target"/* "$corpus"/ 2>/dev/null || true
fi
if [[ $target == weights ]]; then
    for f in tests/fixtures/weights/*.safetensors; do
        [[ $(stat -c %s "$f") -le $max_len ]] && cp -n "$f" "$corpus"/ || true
    done
fi

cargo fuzz build "${build[@]}" "$target"

log=fuzz/logs/$target-$(date -u +%Y%m%dT%H%M%SZ).log
echo "fuzzing $target for ${secs}s; log: $log"
set +e
cargo fuzz run "${build[@]}" "$target" "$corpus" -- \
    -max_total_time="$secs" -max_len="$max_len" -timeout="$timeout" -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e

execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
crashes=$(find "$artifacts" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)
echo "== $target: ${secs}s, ${execs:-?} executions, corpus $(find "$corpus" -type f | wc -l) files, exit $rc, artifacts in $artifacts: $crashes"
exit "$rc"
