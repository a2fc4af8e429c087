#!/usr/bin/env bash
# Builds the library and the examples with `--features cuda` (release), also on a machine with
# no GPU and no CUDA toolkit.
#
#   scripts/build-cuda.sh                 # cargo build --release --features cuda --lib --examples
#   scripts/build-cuda.sh --bin foo ...   # extra arguments go to that cargo build
#
# What dfdx 0.13's `cuda` feature needs at build time, and where this script gets it:
# - `nvcc` on PATH: dfdx's build script compiles its ~60 `.cu` kernels to PTX, embedded in the
#   binary. From the PyPI wheels of CUDA 13.0 (nvcc, nvvm, crt, runtime headers, cccl).
# - `$CUDA_ROOT/include/cuda.h` (cudarc's build script looks for it) and, under
#   `$CUDA_ROOT/lib64`, `libcublas.so`, `libcublasLt.so`, `libnvrtc.so` and `libcuda.so` to link
#   against. cuBLAS and NVRTC come from their wheels; the wheels ship only `.so.13` files, so
#   unversioned links are made. `libcuda.so` is the driver and comes with no wheel: a stub with
#   soname `libcuda.so.1` that defines every `cu*` function cudarc declares is generated and
#   compiled with `cc`. At run time the real driver's `libcuda.so.1` is loaded instead.
# - an `nvidia-smi` that answers `--query-gpu=compute_cap --format=csv`: dfdx asks it before it
#   reads `CUDA_COMPUTE_CAP`. A two-line script stands in for it.
#
# Why CUDA 13.0 exactly: the PTX that nvcc writes must not be newer than what the GPU machine's
# driver can JIT-compile. That driver is 580.x (CUDA 13.0, PTX ISA up to 9.0); nvcc 13.2 writes
# PTX 9.2, which it refuses. Override with MVAE_CUDA_SERIES for another driver.
#
# On a machine that already has a toolkit (nvcc on PATH, and either a working nvidia-smi or
# CUDA_ROOT set) nothing is installed: it just builds (with the stand-in nvidia-smi only if
# there is no working one).
#
# Environment (all optional):
#   MVAE_CUDA_TOOLCHAIN   folder for the wheels, links and stubs (default: target/cuda-toolchain)
#   MVAE_CUDA_CAP         compute capability the stand-in nvidia-smi reports and the kernels
#                         are compiled for (default 9.0: H100 and H200)
#   MVAE_CUDA_SERIES      CUDA wheel series to install (default 13.0)
#   CARGO_TARGET_DIR      cargo's output folder (default: target/cuda, so that a `cuda` build
#                         does not overwrite the CPU build in target/release and vice versa)
#   CARGO_BUILD_JOBS      as for cargo (use 1 on a shared machine)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target/cuda}"

toolchain="${MVAE_CUDA_TOOLCHAIN:-$repo/target/cuda-toolchain}"
cap="${MVAE_CUDA_CAP:-9.0}"
series="${MVAE_CUDA_SERIES:-13.0}"
cargo_args=("$@")
[[ ${#cargo_args[@]} -gt 0 ]] || cargo_args=(--lib --examples)

log() { printf 'build-cuda: %s\n' "$*" >&2; }

# The stand-in nvidia-smi: prints the header line and the compute capability, whatever it is
# asked (dfdx only asks `--query-gpu=compute_cap --format=csv`).
write_fake_nvidia_smi() {
    mkdir -p "$toolchain/bin"
    cat >"$toolchain/bin/nvidia-smi" <<EOF
#!/bin/sh
# Build-time stand-in written by scripts/build-cuda.sh: there is no GPU on this machine.
printf 'compute_cap\n%s\n' '$cap'
EOF
    chmod +x "$toolchain/bin/nvidia-smi"
    export PATH="$toolchain/bin:$PATH"
    # dfdx parses this as a number without the dot (9.0 -> 90)
    export CUDA_COMPUTE_CAP="${cap//./}"
}

system_toolkit() {
    command -v nvcc >/dev/null 2>&1 || return 1
    [[ -n "${CUDA_ROOT:-}" ]] && return 0
    nvidia-smi --query-gpu=compute_cap --format=csv >/dev/null 2>&1
}

if system_toolkit; then
    log "using the installed toolkit: $(command -v nvcc)${CUDA_ROOT:+, CUDA_ROOT=$CUDA_ROOT}"
    if ! nvidia-smi --query-gpu=compute_cap --format=csv >/dev/null 2>&1; then
        log "no working nvidia-smi: building for compute capability $cap"
        write_fake_nvidia_smi
    fi
else
    wheels="$toolchain/wheels"
    root="$toolchain/root"
    # One pip call for every wheel: `pip install --target` into a folder that already holds
    # `nvidia/` skips the second package's files, so a changed list reinstalls from scratch.
    # --no-deps: the wheels' declared dependencies would pull in other CUDA versions.
    packages=(
        "nvidia-cuda-nvcc==$series.*"    # nvcc, ptxas
        "nvidia-nvvm==$series.*"         # cicc (nvcc's device front end) and libnvvm
        "nvidia-cuda-crt==$series.*"     # headers nvcc includes in every kernel (crt/)
        "nvidia-cuda-runtime==$series.*" # cuda_runtime.h, cuda.h
        "nvidia-cuda-cccl==$series.*"    # libcu++ headers some kernels include
        "nvidia-cublas==$series.*"       # libcublas.so.13, libcublasLt.so.13: linked
        "nvidia-cuda-nvrtc==$series.*"   # libnvrtc.so.13: linked
    )
    stamp="$wheels/.installed"
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "${packages[*]}" ]]; then
        log "installing CUDA $series wheels into $wheels (about 1 GB download)"
        rm -rf "$wheels"
        python3 -m pip install --quiet --no-deps --target "$wheels" "${packages[@]}"
        printf '%s' "${packages[*]}" >"$stamp"
    else
        log "CUDA $series wheels already in $wheels"
    fi
    cu="$(dirname "$(find "$wheels/nvidia" -maxdepth 3 -path '*/bin/nvcc' -print -quit)")/.."
    cu="$(cd "$cu" && pwd)"
    [[ -x "$cu/bin/nvcc" ]] || { log "nvcc not found in $wheels"; exit 1; }

    # CUDA_ROOT: include/ from the wheels, lib64/ with unversioned links and the driver stub.
    mkdir -p "$root/lib64"
    ln -sfn "$cu/include" "$root/include"
    for lib in cublas cublasLt nvrtc; do
        so="$(find "$wheels/nvidia" -name "lib$lib.so.[0-9]*" -print -quit)"
        [[ -n "$so" ]] || { log "lib$lib.so.* not found in $wheels"; exit 1; }
        ln -sfn "$so" "$root/lib64/lib$lib.so"
    done

    # The driver stub. The names come from the cudarc sources dfdx builds against (the version
    # Cargo.lock pins), so they match what the Rust code links whatever that version is.
    version="$(awk '/^name = "cudarc"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)"
    [[ -n "$version" ]] || { log "cudarc is not in Cargo.lock"; exit 1; }
    registry="${CARGO_HOME:-$HOME/.cargo}/registry/src"
    sys="$(find "$registry" -maxdepth 5 -path "*/cudarc-$version/src/driver/sys.rs" -print -quit 2>/dev/null || true)"
    if [[ -z "$sys" ]]; then
        log "fetching crate sources for cudarc $version"
        cargo fetch --locked
        sys="$(find "$registry" -maxdepth 5 -path "*/cudarc-$version/src/driver/sys.rs" -print -quit)"
    fi
    [[ -n "$sys" ]] || { log "cudarc-$version/src/driver/sys.rs not found under $registry"; exit 1; }
    stub="$toolchain/libcuda-stub.c"
    {
        echo "/* Link stub for libcuda.so.1, generated by scripts/build-cuda.sh from"
        echo "   $sys. Never run: the driver's own library replaces it at run time. */"
        grep -oE '\bpub fn cu[A-Za-z0-9_]+' "$sys" | sed 's/^pub fn //' | sort -u |
            sed 's/.*/int &(void) { return 999; }/'
    } >"$stub"
    count="$(grep -c '^int ' "$stub")"
    [[ "$count" -gt 100 ]] || { log "only $count cu* functions found in $sys"; exit 1; }
    cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$root/lib64/libcuda.so" "$stub"
    # Only so that a CUDA build's CPU paths can be run here (LD_LIBRARY_PATH=$root/lib64:...);
    # never put this folder on LD_LIBRARY_PATH on a machine with a GPU.
    ln -sfn libcuda.so "$root/lib64/libcuda.so.1"
    log "libcuda.so stub: $count functions from cudarc $version"

    write_fake_nvidia_smi
    export CUDA_ROOT="$root"
    export PATH="$toolchain/bin:$cu/bin:$PATH"
fi

log "nvcc $(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'), CUDA_ROOT=${CUDA_ROOT:-unset}, compute cap ${CUDA_COMPUTE_CAP:-from nvidia-smi}"
log "cargo build --release --features cuda ${cargo_args[*]}"
cargo build --release --features cuda "${cargo_args[@]}"

# Stripped copies of the example binaries for carrying to a GPU machine: the release profile
# keeps line tables (debug = 1), which makes each binary about 35 MB instead of about 10 MB.
out="$repo/target/cuda-bin"
mkdir -p "$out"
for src in examples/*.rs; do
    name="$(basename "$src" .rs)"
    bin="$CARGO_TARGET_DIR/release/examples/$name"
    if [[ -x "$bin" && "$bin" -nt "$out/$name" ]]; then
        strip -o "$out/$name" "$bin" 2>/dev/null || cp "$bin" "$out/$name" # no binutils: unstripped
    fi
done
log "stripped examples in $out: $(cd "$out" && ls | tr '\n' ' ')"

# dfdx 0.13 compiles a few kernels when first used, with NVRTC (concatenation, stacking, strided
# reshapes, dtype casts; the model's objective concatenates latents), and hands NVRTC two include
# folders whose absolute paths were fixed at build time: the toolkit's include/ (for
# cuda_fp16.h) and dfdx's build folder (cuda_utils.cuh). A binary carried to another machine
# finds neither, so the headers go with it, in nvrtc-include/, and nvrtc-include-paths.txt
# names the paths the binaries expect; scripts/device-check.sh links those paths to the folder.
include_dir=""
for var in CUDA_PATH CUDA_ROOT CUDA_TOOLKIT_ROOT_DIR CUDNN_LIB; do # dfdx's build.rs order
    dir="${!var:-}"
    if [[ -n "$dir" && -f "$dir/include/cuda.h" ]]; then include_dir="$dir/include"; break; fi
done
if [[ -z "$include_dir" ]]; then
    for dir in /usr /usr/local/cuda /opt/cuda /usr/lib/cuda; do
        if [[ -f "$dir/include/cuda.h" ]]; then include_dir="$dir/include"; break; fi
    done
fi
dfdx_out="$(grep -d skip -aoh "$CARGO_TARGET_DIR/release/build/dfdx-[0-9a-f]*/out" "$out"/* | sort -u | head -1 || true)"
if [[ -z "$include_dir" || -z "$dfdx_out" || ! -f "$dfdx_out/cuda_utils.cuh" ]]; then
    log "could not find the NVRTC include folders (toolkit: '$include_dir', dfdx: '$dfdx_out')"
    exit 1
fi
inc="$out/nvrtc-include"
rm -rf "$inc"
mkdir -p "$inc"
cp "$dfdx_out"/*.cuh "$include_dir/cuda_fp16.h" "$include_dir/cuda_fp16.hpp" "$inc/"
printf '%s\n' "$include_dir" "$dfdx_out" >"$out/nvrtc-include-paths.txt"
log "NVRTC headers in $inc for the paths in $out/nvrtc-include-paths.txt"
