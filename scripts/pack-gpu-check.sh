#!/usr/bin/env bash
# Builds the examples with --features cuda and packs the folder that
# scripts/gpu-check.sh runs from on a GPU machine (no Rust or network there):
#
#   scripts/pack-gpu-check.sh [--with-libs] [DIR]   (default DIR: target/gpu-check)
#   # copy DIR to the GPU machine, then there:
#   bash DIR/gpu-check.sh
#
# It installs the toolchain first (scripts/cuda-toolchain.sh; set
# CUDA_COMPUTE_CAP for the GPU, default 90 for H100/H200). MNIST comes from
# $MNIST_DIR (default ../shared/data/mnist beside the repository).
# --with-libs also packs CUDA 13's cuBLAS, cuRAND and NVRTC (about 800 MiB),
# for a GPU machine that has a driver but not those libraries; without it the
# folder is about 40 MiB and gpu-check.sh finds the libraries there.
set -euo pipefail
cd "$(dirname "$0")/.."

with_libs=false
if [[ "${1:-}" == --with-libs ]]; then
    with_libs=true
    shift
fi
dir="${1:-target/gpu-check}"
mnist="${MNIST_DIR:-$(cd .. && pwd)/shared/data/mnist}"
target="${CARGO_TARGET_DIR:-$PWD/target}"

eval "$(scripts/cuda-toolchain.sh)"
cargo build --release --features cuda --example lenet --example infer

rm -rf "$dir"
mkdir -p "$dir/bin" "$dir/mnist" "$dir/nvrtc/include" "$dir/nvrtc/dfdx"
cp "$target/release/examples/lenet" "$target/release/examples/infer" "$dir/bin/"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    if [[ -e "$mnist/$f.gz" ]]; then
        cp "$mnist/$f.gz" "$dir/mnist/"
    else
        cp "$mnist/$f" "$dir/mnist/"
    fi
done
cp scripts/gpu-check.sh "$dir/"
chmod -R u+w "$dir"

# dfdx compiles its reshape, concat, stack and dtype kernels with NVRTC at run
# time, with two include paths of the build machine compiled into the binary:
# CUDA's include folder (for cuda_fp16.h) and dfdx's build-script output
# folder (for its .cuh files). gpu-check.sh recreates them where missing.
cp "$CUDA_ROOT/include/cuda_fp16.h" "$CUDA_ROOT/include/cuda_fp16.hpp" "$dir/nvrtc/include/"
out_dir=""
for d in "$target"/release/build/dfdx-*/out; do
    if [[ -e "$d/cuda_utils.cuh" ]] && grep -qaF "$d" "$dir/bin/lenet"; then
        out_dir="$d"
    fi
done
[[ -n "$out_dir" ]] || { echo "dfdx's OUT_DIR not found in the lenet binary" >&2; exit 1; }
cp "$out_dir"/*.cuh "$dir/nvrtc/dfdx/"
grep -qaF "$CUDA_ROOT/include" "$dir/bin/lenet" ||
    { echo "the CUDA include path is not in the lenet binary" >&2; exit 1; }
printf 'include %s\ndfdx %s\n' "$CUDA_ROOT/include" "$out_dir" >"$dir/nvrtc/paths.txt"

if $with_libs; then
    mkdir -p "$dir/lib"
    for f in libcublas.so.13 libcublasLt.so.13 libnvrtc.so.13 libnvrtc-builtins.so.13.0 libcurand.so.10; do
        cp "$CUDA_ROOT/lib/$f" "$dir/lib/"
    done
fi
echo "packed $dir ($(du -sh "$dir" | cut -f1)), for compute capability $CUDA_COMPUTE_CAP:"
echo "  copy it to a machine with an NVIDIA GPU and run: bash $(basename "$dir")/gpu-check.sh"
