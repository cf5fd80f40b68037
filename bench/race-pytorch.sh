#!/usr/bin/env bash
# Races static-nn against PyTorch (CPU, 2 threads) and, for LeNet inference,
# ONNX Runtime (2 intra-op threads, the same LeNet exported by
# torch.onnx.export) on the same machine, in the same run: LeNet and MLP training steps (batch 64, Adam), LeNet inference
# at batch 1, 64 and 1000 (static-nn: `forward_chunked`, its inference path
# for a batch; PyTorch: `model(x)` under no_grad), and MnistResNet's training step (resnet-train:
# batch 64, Adam, training mode) and inference (resnet-infer-256: batch 256,
# inference mode). Every workload runs for SECS seconds (after a short
# warm-up), so the ResNet ones, about 10x slower per sample than LeNet, simply
# take fewer steps per round and add no more time than the others. The two
# sides alternate, workload by workload, for ROUNDS rounds; the table shows
# medians. Each measurement is its own process, so the peak RSS column is
# that workload's alone. First, each side's 2048³ sgemm (the gemm crate's
# for static-nn, PyTorch's own), the machine's reference for GFLOP/s.
#
#   bench/race-pytorch.sh              # ROUNDS=5 SECS=2
#   ROUNDS=9 SECS=3 bench/race-pytorch.sh
#   TORCH_VENV=/path/to/venv bench/race-pytorch.sh   # reuse a venv with torch
#   MAX_ISA=avx2 bench/race-pytorch.sh   # on an AVX-512 machine: as on AVX2 only
#
# MAX_ISA=avx2 caps each side's vector instructions at AVX2 + FMA, to measure
# on a machine with AVX-512 what an AVX2-only machine runs: static-nn by
# STATIC_NN_MAX_ISA=avx2 (its direct convolutions; the gemm crate uses AVX2
# anyway on stable Rust), PyTorch by ATEN_CPU_CAPABILITY=avx2,
# ONEDNN_MAX_CPU_ISA=AVX2 and MKL_ENABLE_INSTRUCTIONS=AVX2. ONNX Runtime has
# no such switch: its MLAS kernels keep AVX-512, so against it the capped
# race is the harder one for static-nn.
#
# PyTorch comes from $TORCH_VENV when set, else bench/.venv (created and
# filled with `pip install torch` from the default index on first use;
# git-ignored). Never run by CI.
# The table has each side's GFLOP/s; after it come the sgemm figures, the
# share of the gemm crate's sgemm that LeNet training reaches, `resnet train
# ratio (...)` and `resnet infer-256 ratio (...)` for the ResNet workloads
# that ran, `lenet train ratio (static-nn / pytorch samples/s): R` and last
# `lenet infer-1000 ratio (static-nn / onnxruntime samples/s): R`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
SECS=${SECS:-2}
WORKLOADS=${WORKLOADS:-"sgemm-2048 lenet-train mlp-train lenet-infer-1 lenet-infer-64 lenet-infer-1000 resnet-train resnet-infer-256"}

VENV=${TORCH_VENV:-bench/.venv}
if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
    echo "installing PyTorch (CPU) into $VENV ..." >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip >&2
    # the default index (the only one reachable here); its wheel runs on the CPU
    "$VENV/bin/pip" install --quiet torch >&2
fi
if ! "$VENV/bin/python" -c 'import onnxruntime, onnx' 2>/dev/null; then
    echo "installing ONNX Runtime and onnx into $VENV ..." >&2
    "$VENV/bin/pip" install --quiet onnxruntime onnx >&2
fi
PY="$VENV/bin/python"
# On a busy machine OpenMP's spinning barriers make PyTorch collapse (10-50x
# slower steps when other processes compete for the 2 cores). A passive wait
# policy avoids that, so it is the default: the race then measures PyTorch at
# its best here. Set OMP_WAIT_POLICY=active to see the other behaviour.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
MAX_ISA=${MAX_ISA:-}
case $MAX_ISA in
    "") ;;
    avx2)
        export STATIC_NN_MAX_ISA=avx2 ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
        ;;
    *)
        echo "MAX_ISA must be avx2 or unset, not '$MAX_ISA'" >&2
        exit 2
        ;;
esac

echo "building the static-nn side (cargo build --release --example race) ..." >&2
cargo build --release --quiet --example race >&2
TARGET=${CARGO_TARGET_DIR:-target}
SN="$TARGET/release/examples/race"

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "CPU flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|avx512f|avx512bw|avx512vl|avx512_vnni)$' | tr '\n' ' ')${MAX_ISA:+(capped at $MAX_ISA: MAX_ISA=$MAX_ISA)}" >&2
echo "OMP_WAIT_POLICY=$OMP_WAIT_POLICY; torch $("$PY" -c 'import torch; print(torch.__version__)'), onnxruntime $("$PY" -c 'import onnxruntime; print(onnxruntime.__version__)'), static-nn $(git rev-parse --short HEAD 2>/dev/null || echo '?')" >&2

OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
for r in $(seq 1 "$ROUNDS"); do
    for w in $WORKLOADS; do
        sides=(sn pt)
        [[ $w == lenet-infer-* ]] && sides+=(ort)
        # rotate which side goes first, so none always runs warmer
        for ((i = 0; i < ${#sides[@]}; i++)); do
            case ${sides[(i + r) % ${#sides[@]}]} in
                sn) RAYON_NUM_THREADS=2 "$SN" "$w" "$SECS" ;;
                pt) OMP_NUM_THREADS=2 "$PY" bench/race_torch.py "$w" "$SECS" ;;
                ort) OMP_NUM_THREADS=2 "$PY" bench/race_onnx.py "$w" "$SECS" ;;
            esac | tee -a "$OUT" >&2
        done
    done
done
MAX_ISA="$MAX_ISA" "$PY" bench/race_table.py < "$OUT"
