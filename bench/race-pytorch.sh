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
# MAX_ISA=avx2 makes all three sides run as on an AVX2-only machine, to
# measure on a machine with AVX-512 what an AVX2-only one runs. Where the CPU
# can fault on `cpuid` (flag cpuid_fault, Intel), every side runs with
# bench/avx2only.c preloaded (built here with `cc`): the processes see a CPU
# without AVX-512 or AMX, so each library picks its AVX2 kernels by itself,
# ONNX Runtime's MLAS included, and GLIBC_TUNABLES keeps glibc's string
# functions off AVX-512 too. Elsewhere the race falls back to each side's own
# switch: STATIC_NN_MAX_ISA=avx2 for static-nn's direct convolutions (the
# gemm crate uses AVX2 anyway on stable Rust), ATEN_CPU_CAPABILITY=avx2,
# ONEDNN_MAX_CPU_ISA=AVX2 and MKL_ENABLE_INSTRUCTIONS=AVX2 for PyTorch; ONNX
# Runtime has none, so it then keeps AVX-512 (the table says which).
#
# PyTorch comes from $TORCH_VENV when set, else bench/.venv (created and
# filled with `pip install torch` from the default index on first use;
# git-ignored). Never run by CI.
# Where the `lenet` example finds MNIST ($MNIST_DIR, static-nn's cache, or a
# download into that cache, as the example always does), each round also runs
# the `lenet` example itself right after the LeNet training step
# (`lenet --epochs 2 --quiet`, its second epoch's samples/s: the workload
# lenet-example, static-nn only), for the example's epoch rate as a share of
# the race's step rate in the same round. Without MNIST it is left out (the
# script says so).
# The table has each side's GFLOP/s; after it come the sgemm figures, the
# share of the gemm crate's sgemm that LeNet training reaches, `resnet train
# ratio (...)` and `resnet infer-256 ratio (...)` for the ResNet workloads
# that ran, `lenet train ratio (static-nn / pytorch samples/s): R` and last
# `lenet infer-1000 ratio (static-nn / onnxruntime samples/s): R`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
SECS=${SECS:-2}
WORKLOADS=${WORKLOADS:-"sgemm-2048 lenet-train lenet-example mlp-train lenet-infer-1 lenet-infer-64 lenet-infer-1000 resnet-train resnet-infer-256"}

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
# PyTorch runs with OpenMP's default wait policy (OMP_WAIT_POLICY unset:
# libgomp's threads spin a while at a barrier, then sleep), as its users get
# it, and as static-nn's workers wait too (they spin between the ops of a
# step). Measured on the Intel Xeon (2026-12-05), the default ran PyTorch's
# steps 1.2-1.5x faster than OMP_WAIT_POLICY=PASSIVE, the race's default
# before then, which gave static-nn the spinning and PyTorch not. Set
# OMP_WAIT_POLICY=PASSIVE or ACTIVE to race PyTorch with either.
MAX_ISA=${MAX_ISA:-}
case $MAX_ISA in
    "" | avx2) ;;
    *)
        echo "MAX_ISA must be avx2 or unset, not '$MAX_ISA'" >&2
        exit 2
        ;;
esac

echo "building the static-nn side (cargo build --release --example race --example lenet) ..." >&2
cargo build --release --quiet --example race --example lenet >&2
TARGET=${CARGO_TARGET_DIR:-target}
SN="$TARGET/release/examples/race"
OUT=$(mktemp)
EXAMPLE_OUT=$(mktemp -d)
trap 'rm -rf "$OUT" "$EXAMPLE_OUT"' EXIT

# The `lenet` example's second epoch as a JSON line like the race's (its
# line `Epoch: 2/2, Loss: x (S samples/s, ...)`); nothing if it fails.
lenet_example() {
    local line
    line=$("$@" "$TARGET/release/examples/lenet" --epochs 2 --quiet --out "$EXAMPLE_OUT" 2>/dev/null |
        grep '^Epoch: 2/2' || true)
    [[ $line =~ \(([0-9.]+)\ samples/s ]] || return 0
    echo "{\"side\":\"static-nn\",\"workload\":\"lenet-example\",\"samples_per_s\":${BASH_REMATCH[1]},\"steps\":0,\"median_step_us\":0,\"peak_rss_kib\":0}"
}

# SIDE_ENV prefixes each side's command (`env`, then the capping variables).
SIDE_ENV=(env)
CAP_HOW=""
if [[ $MAX_ISA == avx2 ]]; then
    SHIM="$TARGET/avx2only.so"
    AVX512_OFF="glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD,-AVX512ER,-AVX512PF"
    if grep -qw cpuid_fault /proc/cpuinfo && cc -O2 -shared -fPIC -o "$SHIM" bench/avx2only.c &&
        [[ $(env LD_PRELOAD="$PWD/$SHIM" "$PY" -c 'import torch; print(torch.backends.cpu.get_cpu_capability())' 2>/dev/null) == AVX2 ]]; then
        SIDE_ENV+=(LD_PRELOAD="$PWD/$SHIM" GLIBC_TUNABLES="$AVX512_OFF")
        CAP_HOW="every side sees a CPU without AVX-512 (cpuid masked by bench/avx2only.c)"
    else
        echo "this CPU cannot hide AVX-512 (no cpuid_fault, or no cc): capping each side by its own switch" >&2
        SIDE_ENV+=(STATIC_NN_MAX_ISA=avx2 ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2)
        CAP_HOW="static-nn and PyTorch by their own switches; ONNX Runtime uncapped"
    fi
fi

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "CPU flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|avx512f|avx512bw|avx512vl|avx512_vnni)$' | tr '\n' ' ')${MAX_ISA:+(capped at $MAX_ISA: $CAP_HOW)}" >&2
echo "OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset (OpenMP default)}; torch $("$PY" -c 'import torch; print(torch.__version__)'), onnxruntime $("$PY" -c 'import onnxruntime; print(onnxruntime.__version__)'), static-nn $(git rev-parse --short HEAD 2>/dev/null || echo '?')" >&2

for r in $(seq 1 "$ROUNDS"); do
    for w in $WORKLOADS; do
        if [[ $w == lenet-example ]]; then
            line=$(lenet_example "${SIDE_ENV[@]}" RAYON_NUM_THREADS=2 timeout 600)
            if [[ -z $line ]]; then
                # from the next round on
                echo "the lenet example found no MNIST (set MNIST_DIR): leaving out lenet-example" >&2
                WORKLOADS=${WORKLOADS/lenet-example/}
            else
                echo "$line" | tee -a "$OUT" >&2
            fi
            continue
        fi
        sides=(sn pt)
        [[ $w == lenet-infer-* ]] && sides+=(ort)
        # rotate which side goes first, so none always runs warmer
        for ((i = 0; i < ${#sides[@]}; i++)); do
            case ${sides[(i + r) % ${#sides[@]}]} in
                sn) "${SIDE_ENV[@]}" RAYON_NUM_THREADS=2 "$SN" "$w" "$SECS" ;;
                pt) "${SIDE_ENV[@]}" OMP_NUM_THREADS=2 "$PY" bench/race_torch.py "$w" "$SECS" ;;
                ort) "${SIDE_ENV[@]}" OMP_NUM_THREADS=2 "$PY" bench/race_onnx.py "$w" "$SECS" ;;
            esac | tee -a "$OUT" >&2
        done
    done
done
MAX_ISA="$MAX_ISA" CAP_HOW="$CAP_HOW" "$PY" bench/race_table.py < "$OUT"
