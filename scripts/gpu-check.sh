#!/usr/bin/env bash
# The GPU check: run on a machine with an NVIDIA GPU, its driver and the CUDA
# 13 libraries, with no Rust toolchain and no network. It uses the CUDA build
# of the examples that scripts/pack-gpu-check.sh made and packed beside it:
#
#   gpu-check/
#     gpu-check.sh     this script
#     bin/lenet, bin/infer   built with --features cuda (CUDA 13.0, sm_$CAP)
#     mnist/           the four MNIST files
#     nvrtc/           headers that dfdx compiles kernels with at run time,
#                      and paths.txt: where the build put them (see below)
#     lib/             only when packed with --with-libs: cuBLAS, cuRAND, NVRTC
#
#   bash gpu-check/gpu-check.sh [OUT]     (default OUT: gpu-check/out)
#
# For the class LeNet, and for the ResNet when this build of `lenet` knows
# one, it trains 1 epoch on CUDA (printing samples/s), evaluates the saved
# weights on CUDA and on the CPU, and checks that the two devices predict the
# same digit for at least 99.9% of the 10,000 test images. Each step has a
# time limit (GPU_CHECK_STEP_TIMEOUT, default 150 s) and the whole check one
# (GPU_CHECK_BUDGET, default 280 s), so that it ends within 5 minutes. The
# last line is `gpu-check: N passed, M failed`; the exit status is 0 when all
# passed.
#
# The libraries (libcublas.so.13, libcublasLt.so.13, libnvrtc.so.13 with its
# libnvrtc-builtins, libcurand.so.10) are looked for in lib/, on
# LD_LIBRARY_PATH, in ldconfig's cache, in /usr/local/cuda and in the
# nvidia/cu13 wheels of python3's site-packages (PyTorch's CUDA 13 build
# brings them). dfdx compiles a few kernels at run time with NVRTC and looks
# for their headers at the build machine's absolute paths (paths.txt); where
# those are missing they are created from nvrtc/ (which needs write access
# there, as root).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/out}"
step_timeout="${GPU_CHECK_STEP_TIMEOUT:-150}"
deadline=$(($(date +%s) + ${GPU_CHECK_BUDGET:-280}))
mkdir -p "$out"
export MNIST_DIR="$here/mnist"
passed=0
failed=0
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
finish() {
    echo "gpu-check: $passed passed, $failed failed"
    [[ $failed -eq 0 ]]
    exit
}
start=$(date +%s)
why() { [[ $1 -eq 124 ]] && echo "timed out" || echo "exit $1"; }
# The time limit of the next step: the step's own, or what is left.
limit() {
    local left=$((deadline - $(date +%s)))
    ((left < step_timeout)) && echo $((left > 1 ? left : 1)) || echo "$step_timeout"
}

echo "== the GPU"
if ! nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv; then
    fail "nvidia-smi does not answer: no GPU or no driver"
    finish
fi

echo "== the CUDA libraries"
libs=(libcublas.so.13 libcublasLt.so.13 libnvrtc.so.13 libcurand.so.10)
candidates=("$here/lib")
IFS=: read -r -a from_env <<<"${LD_LIBRARY_PATH:-}"
candidates+=("${from_env[@]}" /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib)
while read -r so; do candidates+=("$(dirname "$so")"); done < <(
    ldconfig -p 2>/dev/null | awk '/=> /{print $NF}' | grep -E 'lib(cublas|nvrtc|curand)\.so')
while read -r sp; do candidates+=("$sp/nvidia/cu13/lib"); done < <(
    python3 -c 'import site, sys; print("\n".join(site.getsitepackages() + [site.getusersitepackages()]))' 2>/dev/null)
ld=""
for lib in "${libs[@]}"; do
    found=""
    for d in "${candidates[@]}"; do
        [[ -n "$d" && -e "$d/$lib" ]] && { found="$d"; break; }
    done
    if [[ -z "$found" ]]; then
        fail "$lib not found (pack with --with-libs, or install CUDA 13's cuBLAS, cuRAND and NVRTC)"
        finish
    fi
    echo "$lib: $found"
    [[ ":$ld:" == *":$found:"* ]] || ld="${ld:+$ld:}$found"
done
export LD_LIBRARY_PATH="$ld${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if ldd "$here/bin/lenet" | grep 'not found'; then
    fail "bin/lenet cannot find the libraries above"
    finish
fi

echo "== the build's NVRTC header paths"
while read -r kind path; do
    for f in "$here/nvrtc/$kind"/*; do
        [[ -e "$path/$(basename "$f")" ]] && continue
        if mkdir -p "$path" 2>/dev/null && cp "$f" "$path/"; then
            echo "created $path/$(basename "$f")"
        else
            fail "cannot create $path (dfdx's run-time kernels look for their headers there)"
            finish
        fi
    done
done <"$here/nvrtc/paths.txt"

# check MODEL: train 1 epoch on CUDA, evaluate on CUDA and on the CPU,
# compare the predictions.
check() {
    local model="$1" dir="$out/$1"
    mkdir -p "$dir"
    echo "== $model: train 1 epoch on CUDA"
    local t0=$(date +%s)
    timeout "$(limit)" "$here/bin/lenet" --model "$model" --epochs 1 --quiet --out "$dir" \
        >"$dir/train.txt" 2>&1
    local rc=$?
    grep -E '^(device|Epoch|training time|test accuracy)' "$dir/train.txt"
    if [[ $rc -ne 0 ]] || ! grep -q '^device: CUDA$' "$dir/train.txt"; then
        fail "$model: training on CUDA ($(why $rc))"
        return
    fi
    local rate
    rate=$(grep -oE '\([0-9]+ samples/s' "$dir/train.txt" | tail -n 1 | tr -d '(')
    pass "$model: 1 epoch on CUDA, $rate, $(($(date +%s) - t0)) s with the evaluation"
    local weights
    weights=$(ls "$dir"/*.safetensors 2>/dev/null | head -n 1)

    for dev in cuda cpu; do
        echo "== $model: evaluate on $dev"
        local flag=""
        [[ $dev == cpu ]] && flag="--cpu"
        t0=$(date +%s)
        timeout "$(limit)" "$here/bin/infer" --model "$model" --weights "$weights" $flag \
            --predictions "$dir/predictions-$dev.txt" >"$dir/infer-$dev.txt" 2>&1
        rc=$?
        grep -E '^(device|test accuracy)' "$dir/infer-$dev.txt"
        if [[ $rc -ne 0 ]] || ! tail -n 1 "$dir/infer-$dev.txt" | grep -q '^test accuracy: '; then
            fail "$model: evaluating on $dev ($(why $rc))"
            return
        fi
        echo "($(($(date +%s) - t0)) s)"
    done
    grep -q '^device: CUDA$' "$dir/infer-cuda.txt" || { fail "$model: infer did not run on CUDA"; return; }
    pass "$model: evaluated on CUDA: $(tail -n 1 "$dir/infer-cuda.txt")"

    local same total
    total=$(wc -l <"$dir/predictions-cuda.txt")
    same=$(paste -d ' ' "$dir/predictions-cuda.txt" "$dir/predictions-cpu.txt" | awk '$1 == $2' | wc -l)
    if [[ $total -eq 10000 && $same -ge 9990 ]]; then
        pass "$model: CPU and CUDA agree on $same/$total test images"
    else
        fail "$model: CPU and CUDA agree on $same/$total test images (need 9990/10000)"
    fi
}

check lenet
if "$here/bin/lenet" --help | grep -qw resnet; then
    check resnet
else
    echo "== resnet: skipped (this build of lenet has no --model resnet)"
fi
echo "total: $(($(date +%s) - start)) s"
finish
