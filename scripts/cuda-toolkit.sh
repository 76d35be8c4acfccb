#!/usr/bin/env bash
# Installs what `cargo build --features cuda` needs on a machine with no GPU
# and no CUDA toolkit, and prints the environment to build with:
#
#     eval "$(scripts/cuda-toolkit.sh)"
#     CARGO_TARGET_DIR=target/cuda cargo build --release -p netdsl-experiments --features cuda
#
# Only `export` lines go to stdout; progress goes to stderr. A second run only
# checks the stamps and prints the same lines (well under a second). In a
# script under `set -e`, assign first (`env=$(scripts/cuda-toolkit.sh)`, then
# `eval "$env"`): `eval "$(..)"` alone ignores a failed install.
#
# What it lays out under ${CUDA_TOOLKIT_DIR:-$HOME/.cache/netdsl-cuda}:
#   pip/      NVIDIA's CUDA 13.0 wheels from PyPI (`pip install --target`):
#             nvcc, NVRTC, cuBLAS and headers under pip/nvidia/cu13/
#   root/     CUDA_ROOT for cudarc's and dfdx's build scripts:
#             include -> pip/nvidia/cu13/include (holds cuda.h, cuda_fp16.h)
#             lib64/  unversioned lib*.so links (the wheels ship only .so.13)
#   stub/     a link-only libcuda.so.1 (see below), reached through LIBRARY_PATH
#   smi/      a stand-in `nvidia-smi`, put on PATH only when no working one exists
#
# Why each piece (shared/notes/cuda.md has the details):
# - Pin 13.0: a GPU machine with driver 580 (CUDA 13.0) refuses PTX from a
#   newer nvcc (CUDA_ERROR_UNSUPPORTED_PTX_VERSION).
# - cudarc 0.9.15 links `-lcuda -lnvrtc -lcublas -lcublasLt` (dfdx enables
#   neither curand nor cudnn, so no curand wheel). libcuda comes with the
#   driver, never with a wheel, so the link uses a stub with SONAME
#   libcuda.so.1 that defines every `cu*` entry point cudarc declares in its
#   src/driver/sys.rs. Each stub function returns CUDA_ERROR_STUB_LIBRARY (34)
#   and the two error-text functions say "stub", so a binary that loads it by
#   mistake fails with that message.
#   The stub lives in its own folder that is only on the link search path:
#   never copy it to a GPU machine, where the driver's libcuda.so.1 must load.
# - dfdx's build.rs runs `nvidia-smi --query-gpu=compute_cap --format=csv` and
#   panics if that fails, even when CUDA_COMPUTE_CAP is set; the stand-in
#   prints the cap that CUDA_COMPUTE_CAP names (default 90: H100/H200, sm_90).
# - dfdx bakes `$CUDA_ROOT/include` and its OUT_DIR into the binary for NVRTC;
#   keep CUDA_TOOLKIT_DIR and CARGO_TARGET_DIR fixed, so those paths stay the
#   same from build to build (scripts/gpu-carry.sh records them, and
#   scripts/gpu-check.sh recreates them on the GPU machine).
set -euo pipefail

dir=${CUDA_TOOLKIT_DIR:-$HOME/.cache/netdsl-cuda}
compute_cap=${CUDA_COMPUTE_CAP:-90}
python=${PYTHON:-python3}
repo=$(cd "$(dirname "$0")/.." && pwd)

# NVIDIA's CUDA 13.0.x wheels; 13.0.85 is the last CUDA CCCL of 13.0.
pins=(
    nvidia-cuda-nvcc==13.0.88
    nvidia-cuda-crt==13.0.88
    nvidia-nvvm==13.0.88
    nvidia-cuda-runtime==13.0.88
    nvidia-cuda-nvrtc==13.0.88
    nvidia-cuda-cccl==13.0.85
    nvidia-cublas==13.0.2.14
)

log() { echo "cuda-toolkit: $*" >&2; }

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
cu13=$dir/pip/nvidia/cu13

# --- 1. wheels ------------------------------------------------------------
# Installed into a fresh folder and renamed into place, so an interrupted run
# never leaves a half-installed pip/ that looks complete.
if [ "$(cat "$dir/pip/.pins" 2>/dev/null)" != "${pins[*]}" ]; then
    log "installing ${pins[*]} into $dir/pip (about 1 GB of wheels, mostly cuBLAS)"
    rm -rf "$dir/pip.partial"
    # --no-deps: every wheel the build needs is pinned above.
    PIP_ROOT_USER_ACTION=ignore "$python" -m pip install --quiet --disable-pip-version-check --no-cache-dir --no-deps \
        --target "$dir/pip.partial" "${pins[@]}" >&2
    echo "${pins[*]}" >"$dir/pip.partial/.pins"
    rm -rf "$dir/pip"
    mv "$dir/pip.partial" "$dir/pip"
fi

# --- 2. CUDA_ROOT ---------------------------------------------------------
# Rebuilt every run: a few links, cheap, and always matching pip/.
mkdir -p "$dir/root/lib64"
ln -sfn "$cu13/include" "$dir/root/include"
for lib in "$cu13"/lib/lib*.so.*; do
    name=$(basename "$lib")
    ln -sfn "$lib" "$dir/root/lib64/${name%%.so.*}.so"
done
for need in include/cuda.h include/cuda_fp16.h lib64/libnvrtc.so lib64/libcublas.so lib64/libcublasLt.so; do
    [ -e "$dir/root/$need" ] || { log "missing $dir/root/$need after install"; exit 1; }
done

# --- 3. libcuda.so.1 stub (link only) --------------------------------------
# The entry points come from the cudarc source that Cargo.lock names.
cudarc_version=$(awk '/^name = "cudarc"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' "$repo/Cargo.lock")
[ -n "$cudarc_version" ] || { log "cudarc is not in Cargo.lock"; exit 1; }
find_sys_rs() {
    local f
    for f in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"cudarc-$cudarc_version"/src/driver/sys.rs; do
        if [ -f "$f" ]; then echo "$f" && return; fi
    done
}
sys_rs=$(find_sys_rs)
if [ -z "$sys_rs" ]; then
    log "fetching crates for cudarc $cudarc_version's source"
    (cd "$repo" && cargo fetch --locked >&2)
    sys_rs=$(find_sys_rs)
    [ -n "$sys_rs" ] || { log "no cudarc-$cudarc_version source in the cargo registry"; exit 1; }
fi
# Rebuilt when cudarc's declarations or this script change.
stamp="cudarc-$cudarc_version $(cksum <"$sys_rs") $(cksum <"${BASH_SOURCE[0]}")"
if [ "$(cat "$dir/stub/.source" 2>/dev/null)" != "$stamp" ]; then
    log "building the link-only libcuda.so.1 from $sys_rs"
    mkdir -p "$dir/stub"
    {
        echo "/* Generated by scripts/cuda-toolkit.sh from cudarc-$cudarc_version src/driver/sys.rs."
        echo "   Link-only stand-in for the driver's libcuda.so.1: never load it. */"
        echo "#define STUB(name) int name(void) { return 34; /* CUDA_ERROR_STUB_LIBRARY */ }"
        echo "#define MESSAGE(name) int name(int error, const char **text) {" \
            "*text = \"link-only libcuda.so.1 stub from scripts/cuda-toolkit.sh: no NVIDIA driver\";" \
            "return 0; }"
        grep -oE '^[[:space:]]*pub fn cu[A-Za-z0-9_]*\(' "$sys_rs" |
            sed -E 's/.*pub fn ([A-Za-z0-9_]+)\(/STUB(\1)/' | sort -u |
            sed -E 's/^STUB\((cuGetErrorString|cuGetErrorName)\)$/MESSAGE(\1)/'
    } >"$dir/stub/libcuda_stub.c"
    cc -shared -fPIC -O0 -Wl,-soname,libcuda.so.1 \
        -o "$dir/stub/libcuda.so.1" "$dir/stub/libcuda_stub.c"
    ln -sfn libcuda.so.1 "$dir/stub/libcuda.so"
    echo "$stamp" >"$dir/stub/.source"
    log "stub defines $(grep -cE '^(STUB|MESSAGE)\(' "$dir/stub/libcuda_stub.c") driver entry points"
fi

# --- 4. nvidia-smi stand-in ------------------------------------------------
mkdir -p "$dir/smi"
cat >"$dir/smi/nvidia-smi" <<'EOF'
#!/bin/sh
# Stand-in written by scripts/cuda-toolkit.sh for dfdx's build.rs on a machine
# without an NVIDIA driver: answers only `--query-gpu=compute_cap --format=csv`.
cap=${CUDA_COMPUTE_CAP:-90}
echo compute_cap
echo "$(echo "$cap" | sed 's/.$//').$(echo "$cap" | sed 's/.*\(.\)$/\1/')"
EOF
chmod +x "$dir/smi/nvidia-smi"
path=$cu13/bin
if ! nvidia-smi --query-gpu=compute_cap --format=csv >/dev/null 2>&1; then
    path=$path:$dir/smi
fi

"$cu13/bin/nvcc" --version >/dev/null || { log "nvcc in $cu13/bin does not run"; exit 1; }
log "ready: CUDA_ROOT=$dir/root, sm_$compute_cap"

# --- 5. the environment ----------------------------------------------------
q() { printf '%q' "$1"; }
echo "export CUDA_ROOT=$(q "$dir/root")"
echo "export CUDA_COMPUTE_CAP=$(q "$compute_cap")"
echo "export PATH=$(q "$path"):\"\$PATH\""
echo "export LIBRARY_PATH=$(q "$dir/stub")\${LIBRARY_PATH:+:\$LIBRARY_PATH}"
