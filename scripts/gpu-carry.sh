#!/usr/bin/env bash
# Builds the CUDA `study` binary and the CUDA test executables on a machine
# without a GPU, and gathers what scripts/gpu-check.sh needs on a GPU machine
# (no Rust, no network, files travel up to 64 MiB together with the work
# tree) into one ignored folder, then prints its size:
#
#     scripts/gpu-carry.sh          # -> target/gpu-carry (GPU_CARRY_DIR)
#
#   bin/study.xz        the `study` binary, `--features cuda`, stripped
#   bin/runtime-tests.xz  the runtime's unit tests with `--features cuda`
#                       (nn::cuda_tests compares Cuda with Cpu), stripped
#   bin/study-cuda-tests.xz  experiments/tests/cuda.rs (the study's networks
#                       on both devices, `study --device cuda`), stripped
#                       (xz: 38 MB of stripped binaries become about 7 MB, which
#                       with the 31 MB of data keeps the carry under 64 MiB)
#   cpu-reference/      `study run cnn3a --epochs 2` on this machine's CPU, which
#                       gpu-check.sh compares with the same run on the GPU
#   include/            cuda_fp16.h and .hpp: NVRTC 13 has no built-in copy,
#                       and dfdx compiles five kernels with NVRTC at run time
#   dfdx-out/           dfdx's four .cuh files, included by those kernels
#   paths.env           the absolute include paths baked into the binaries
#                       (CUDA_INCLUDE_DIR, DFDX_OUT_DIR) and the compute cap
#   data/               Fashion-MNIST (about 30 MB), for `study run` there
#   MANIFEST            each binary's size, sha256 and the libraries it needs
#
# The link-only libcuda.so.1 stub is never copied: the GPU machine's driver
# provides libcuda.so.1, its Python environment libcublas/libnvrtc.
set -euo pipefail
cd "$(dirname "$0")/.."

# (an assignment first: `eval "$(..)"` alone would hide a failed install from set -e)
cuda_env=$(scripts/cuda-toolkit.sh)
eval "$cuda_env"
# A fixed target dir keeps dfdx's OUT_DIR, baked into the binaries, stable.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda}
carry=${GPU_CARRY_DIR:-target/gpu-carry}
# 64 MiB travel: the carry and the work tree's files (tracked, or untracked
# and not ignored) together.
tree=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- | tail -n 1 | cut -f1)
limit=$((64 * 1024 * 1024 - tree))

log() { echo "gpu-carry: $*" >&2; }

log "building study (--features cuda) in $CARGO_TARGET_DIR"
cargo build --release -p netdsl-experiments --features cuda
study=$CARGO_TARGET_DIR/release/study
log "building the runtime's unit tests (--features cuda)"
tests=$(cargo test --release -p netdsl-runtime --features cuda --lib --no-run --message-format=json |
    python3 -c '
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["target"]["name"] == "netdsl_runtime":
        print(msg["executable"])
')
[ -x "$tests" ] || { log "no test executable for netdsl-runtime"; exit 1; }
log "building experiments/tests/cuda.rs (--features cuda)"
study_tests=$(cargo test --release -p netdsl-experiments --features cuda --test cuda --no-run --message-format=json |
    python3 -c '
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["target"]["name"] == "cuda":
        print(msg["executable"])
')
[ -x "$study_tests" ] || { log "no test executable for experiments/tests/cuda.rs"; exit 1; }

rm -rf "$carry"
mkdir -p "$carry/bin" "$carry/include" "$carry/dfdx-out" "$carry/data" "$carry/cpu-reference"
strip -o "$carry/bin/study" "$study"
strip -o "$carry/bin/runtime-tests" "$tests"
strip -o "$carry/bin/study-cuda-tests" "$study_tests"

# The two include paths dfdx bakes in: `$CUDA_ROOT/include` (its build.rs
# reads CUDA_ROOT) and its OUT_DIR under this target dir.
include_dir=$CUDA_ROOT/include
target_abs=$(cd "$CARGO_TARGET_DIR" && pwd)
out_dirs=$(grep -aohE "$target_abs/release/build/dfdx-[0-9a-f]{16}/out" "$carry"/bin/* | sort -u || true)
[ "$(echo "$out_dirs" | grep -c .)" = 1 ] || { log "expected one dfdx OUT_DIR in the binaries, found: ${out_dirs:-none}"; exit 1; }
grep -aqF "$include_dir" "$carry/bin/runtime-tests" || { log "$include_dir is not baked into the tests"; exit 1; }
cp "$include_dir"/cuda_fp16.h "$include_dir"/cuda_fp16.hpp "$carry/include/"
cp "$out_dirs"/*.cuh "$carry/dfdx-out/"
cat >"$carry/paths.env" <<EOF
CUDA_INCLUDE_DIR=$include_dir
DFDX_OUT_DIR=$out_dirs
CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP
EOF

data=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
if ls "$data"/*-ubyte.gz >/dev/null 2>&1; then
    cp "$data"/*-ubyte.gz "$carry/data/"
else
    log "no Fashion-MNIST in $data: gpu-check.sh will need the GPU machine's own"
fi

# The CPU's figure for gpu-check.sh's step 7, by the same binary: `--device
# cpu` never calls the driver, so the link-only stub lets it start here.
log "study run cnn3a --epochs 2 on the CPU (the reference for the GPU run)"
reference=$(mktemp -d)
LD_LIBRARY_PATH=$CUDA_ROOT/../stub:$CUDA_ROOT/../pip/nvidia/cu13/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
    FASHION_MNIST_DIR=$data "$study" run cnn3a --epochs 2 --out "$reference" >&2
cp "$reference/cnn3a.json" "$carry/cpu-reference/"
rm -rf "$reference"

{
    echo "built $(date -u +%FT%TZ) from $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' (uncommitted changes)')"
    for bin in "$carry"/bin/*; do
        echo
        echo "$(basename "$bin"): $(stat -c %s "$bin") bytes, sha256 $(sha256sum "$bin" | cut -d' ' -f1)"
        readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/  needs \1/p'
    done
} >"$carry/MANIFEST"
# gpu-check.sh unpacks them (xz, or Python's lzma) and checks the sha256 above.
xz -6 "$carry"/bin/*

size=$(du -sb "$carry" | cut -f1)
log "$(cat "$carry/MANIFEST")"
echo "$carry: $size bytes ($((size / 1024 / 1024)) MiB); with the work tree's $tree bytes, $((size + tree)) of 67108864"
[ "$size" -le "$limit" ] || { log "over 64 MiB with the work tree: it will not travel"; exit 1; }
