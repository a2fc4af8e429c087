#!/usr/bin/env bash
# The one prepared check for a session that is lent a GPU machine. That machine has a driver
# and PyTorch but no Rust: build here first with scripts/build-cuda.sh, which leaves stripped
# binaries in target/cuda-bin/, then run this there with that folder carried, e.g.
#
#   run(command="bash scripts/device-check.sh", carry=["target/cuda-bin"], timeout_s=420)
#
# With the full MNIST carried too (a folder holding mnist/, named by MVAE_DATA), it also
# trains the paper's model on all 60,000 images on the GPU next to the PyTorch reference
# (benches/reference/mvae_mnist.py --device cuda), and on 2 CPU threads next to PyTorch on 2:
#
#   run(command="MVAE_DATA=.devdata bash scripts/device-check.sh",
#       carry=["target/cuda-bin", ".devdata"], timeout_s=480)
#
# It needs from the machine: the driver's libcuda.so.1 (found by the loader as usual) and
# libcublas.so.13, libcublasLt.so.13, libnvrtc.so.13 (CUDA 13), which PyTorch's wheels ship
# under site-packages/nvidia/cu13/lib. Everything it prints also goes to $OUT (or ./device-out):
# device-check.log (all of it, nvidia-smi and ldd included), cuda_check.json (and
# cuda_check-KIND.json per mixture aggregation, cuda_check-contrastive.json), mnist.json and,
# with MVAE_DATA, mnist-cuda.json, torch-cuda.json, mnist-cpu2.json, torch-cpu2.json.
#
# Each step has its own time limit and a failing step does not stop the later ones; the exit
# status is that of the first failing step.
#
# Environment (optional): MVAE_CUDA_BIN (default target/cuda-bin), MVAE_CUDA_LIBS (a folder
# with the .so.13 files, skips the search), MVAE_DATA (full data, above), CHECK_ARGS (extra
# flags for cuda_check).
set -uo pipefail
cd "$(dirname "$0")/.."
bin="${MVAE_CUDA_BIN:-target/cuda-bin}"
out="${OUT:-$PWD/device-out}"
mkdir -p "$out"
exec > >(tee -a "$out/device-check.log") 2>&1
status=0
step() { printf '\n== %s (%s)\n' "$1" "$(date +%T)"; }
# runs "$@" with a time limit (first argument, seconds), records the first failure
check() {
    local limit="$1"
    shift
    timeout "$limit" "$@"
    local rc=$?
    [[ $rc -eq 0 ]] || { echo "-> exit $rc: $*"; [[ $status -ne 0 ]] || status=$rc; }
    return 0
}

step "machine"
uname -a
nproc
# (output through process substitution, not a pipe: `check` must run in this shell to record)
check 30 nvidia-smi
check 30 nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv
lscpu | grep -E 'Model name|^CPU\(s\)|Flags' | cut -c1-200

step "CUDA 13 libraries"
libs="${MVAE_CUDA_LIBS:-}"
if [[ -z "$libs" ]]; then
    # Python's site-packages first (PyTorch's nvidia/cu13/lib), then the usual system places.
    roots=$(python3 -c 'import site, sys; print(" ".join(site.getsitepackages() + [site.getusersitepackages()]))' 2>/dev/null || true)
    for r in $roots /usr/local/cuda/lib64 /usr/local/lib /usr/lib/x86_64-linux-gnu /opt; do
        [[ -d "$r" ]] || continue
        so=$(find "$r" -name 'libcublas.so.13*' -print -quit 2>/dev/null)
        if [[ -n "$so" ]]; then
            libs=$(dirname "$so")
            break
        fi
    done
fi
if [[ -z "$libs" ]]; then
    echo "no libcublas.so.13 found: set MVAE_CUDA_LIBS"
    status=1
else
    echo "using $libs"
    ls "$libs" | grep -E 'cublas|nvrtc' || true
    # the nvrtc of the same wheel set may sit in a sibling folder
    nvrtc=$(find "$(dirname "$libs")" -name 'libnvrtc.so.13*' -print -quit 2>/dev/null)
    extra=${nvrtc:+:$(dirname "$nvrtc")}
    export LD_LIBRARY_PATH="$libs$extra${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

step "NVRTC include folders (dfdx compiles a few kernels at run time; docs/cuda.md)"
if [[ -f "$bin/nvrtc-include-paths.txt" ]]; then
    headers="$(cd "$bin/nvrtc-include" && pwd)"
    while read -r path; do
        if [[ -e "$path" ]]; then
            echo "$path exists"
        else
            mkdir -p "$(dirname "$path")" && ln -s "$headers" "$path" && echo "$path -> $headers"
        fi
    done <"$bin/nvrtc-include-paths.txt"
else
    echo "no $bin/nvrtc-include-paths.txt: concatenation on the GPU may fail (rebuild with scripts/build-cuda.sh)"
fi

step "binaries"
ls -la "$bin"
for b in "$bin"/*; do
    [[ -f "$b" && -x "$b" ]] || continue
    echo "# $b"
    ldd "$b"
done >"$out/ldd.tmp"
cat "$out/ldd.tmp"
if grep -q 'not found' "$out/ldd.tmp"; then
    echo "-> some libraries are not found (above)"
    [[ $status -ne 0 ]] || status=1
fi

rm -f "$out/ldd.tmp"

# The binaries' default data path is the build machine's checkout: name the folders here.
data="${MVAE_DATA:-}"
if [[ -n "$data" && ! -d "$data/mnist" ]]; then
    echo "MVAE_DATA=$data has no mnist/: the full-data steps are skipped"
    data=""
fi

step "cuda_check: CPU vs GPU, same seed and batches (one JSON line)"
# shellcheck disable=SC2086
check 180 "$bin/cuda_check" --data "${data:-examples/data}" ${CHECK_ARGS:-} \
    > >(tee "$out/cuda_check.json")
# The mixtures' objectives (strata, components, private latents) on the same comparison.
for kind in moe mopoe mmvae-plus; do
    step "cuda_check --aggregation $kind"
    # shellcheck disable=SC2086
    check 120 "$bin/cuda_check" --data "${data:-examples/data}" --aggregation "$kind" \
        --timed-steps 10 --k 200 ${CHECK_ARGS:-} > >(tee "$out/cuda_check-$kind.json")
done
# The contrastive term (a batch-coupled loss) on the same comparison.
step "cuda_check --contrastive 200"
# shellcheck disable=SC2086
check 120 "$bin/cuda_check" --data "${data:-examples/data}" --contrastive 200 \
    --timed-steps 10 --k 200 ${CHECK_ARGS:-} > >(tee "$out/cuda_check-contrastive.json")

step "mnist --cuda on the bundled 3,000 images, one epoch"
check 90 "$bin/mnist" --cuda --data examples/data --json > >(tee "$out/mnist.json")

if [[ -n "$data" ]]; then
    step "mnist --cuda, all 60,000 images, 2 epochs"
    check 180 "$bin/mnist" --cuda --data "$data" --epochs 2 --anneal-epochs 1 --json \
        > >(tee "$out/mnist-cuda.json")

    step "the PyTorch reference on the GPU, 2 epochs"
    check 150 python3 benches/reference/mvae_mnist.py --data "$data" --epochs 2 \
        --anneal-epochs 1 --device cuda > >(tee "$out/torch-cuda.json")

    step "the same on 2 CPU threads, one epoch each: mnist, then PyTorch"
    RAYON_NUM_THREADS=2 check 120 "$bin/mnist" --data "$data" --epochs 1 --anneal-epochs 1 \
        --json > >(tee "$out/mnist-cpu2.json")
    check 120 python3 benches/reference/mvae_mnist.py --data "$data" --epochs 1 \
        --anneal-epochs 1 --threads 2 > >(tee "$out/torch-cpu2.json")
fi

step "done: status $status"
exit "$status"
