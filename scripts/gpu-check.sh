#!/usr/bin/env bash
# The one script to run on a GPU machine: an H100/H200 with an NVIDIA driver
# (CUDA 13.0, driver 580) and the CUDA 13 libraries inside its Python
# environment's `nvidia-*` packages, but no Rust toolchain and no network.
# It runs what scripts/gpu-carry.sh gathered here beforehand:
#
#     scripts/gpu-carry.sh      # on the build machine -> target/gpu-carry
#     scripts/gpu-check.sh      # on the GPU machine, from the repository root
#
# Steps, each logged with its status and time (a failed step does not stop
# the later ones; the exit status is non-zero if any failed):
#   0. unpack the binaries (carried as .xz) into target/gpu-check-bin
#      (GPU_CHECK_BIN), check their sha256;
#   1. find libcublas.so.13, libcublasLt.so.13 and libnvrtc.so.13 in the
#      Python environment and put their folders on LD_LIBRARY_PATH;
#   2. ask the driver for its version and devices (a clean error instead of
#      cudarc's panic in `CudaDevice::new` when there is none);
#   3. copy cuda_fp16.h/.hpp and dfdx's .cuh files to the absolute include
#      paths baked into the binaries (NVRTC reads them at run time);
#   4. the runtime's Cuda-against-Cpu layer tests (nn::cuda_tests): forward
#      and gradients of every layer kind, the fused convolution blocks
#      included, in f32 (relative error <= 1e-4) and f64 (<= 1e-10);
#   5. the study's networks on both devices (experiments/tests/cuda.rs): every
#      network, same parameters and batches, losses, weights and evaluation
#      within 1e-3 (accuracy 0.003), and `study run --device cuda` end to end;
#   6. `study bench --device cuda cnn3a cnn4a dnn2`;
#   7. `study run cnn3a --epochs 2 --device cuda`, its validation accuracy
#      against the CPU run's, computed by gpu-carry.sh on the build machine and
#      carried (cpu-reference/cnn3a.json): |difference| <= 0.01.
#
# At most 8 minutes: the steps' time limits (TEST_TIMEOUT, STUDY_TEST_TIMEOUT,
# BENCH_TIMEOUT, RUN_TIMEOUT, seconds) add up to 7.5. Everything goes to
# $OUT/gpu-check.log (OUT defaults to target/gpu-check), each step's output to
# $OUT/steps/, the figures (measured errors, epoch times, accuracies) to
# $OUT/gpu-figures.txt, step 7's results to $OUT/results.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

carry=${GPU_CARRY_DIR:-target/gpu-carry}
out=${OUT:-target/gpu-check}
mkdir -p "$out"
out=$(cd "$out" && pwd)

failed=()
summary=()
rm -rf "$out/steps" "$out/results" "$out/gpu-figures.txt"
mkdir -p "$out/steps"
# step NAME TIMEOUT COMMAND...: runs COMMAND with a time limit, logs its status;
# its output also goes to $out/steps/NAME.log (spaces as dashes).
step() {
    local name=$1 limit=$2
    shift 2
    echo
    echo "=== $name: $*"
    local start=$SECONDS status
    timeout "$limit" "$@" 2>&1 | tee "$out/steps/${name// /-}.log"
    status=${PIPESTATUS[0]}
    local line="$name: exit $status in $((SECONDS - start)) s"
    [ "$status" = 124 ] && line="$line (timed out after $limit s)"
    echo "=== $line"
    summary+=("$line")
    [ "$status" = 0 ] || failed+=("$name")
}
finish() {
    echo
    echo "=== summary"
    [ "${#summary[@]}" = 0 ] || printf '  %s\n' "${summary[@]}"
    if [ "${#failed[@]}" = 0 ]; then
        echo "gpu-check: all steps passed"
        exit 0
    fi
    echo "gpu-check: failed: ${failed[*]}"
    exit 1
}

# figures OUT CARRY: the measured numbers of steps 4-7 from their logs, and
# the validation accuracy of step 7 against the carried CPU run's (exit 1
# when they differ by more than 0.01 or either is missing).
figures() {
    local out=$1 carry=$2
    echo "gpu-check figures, $(date -u +%FT%TZ), binaries $(head -n 1 "$carry/MANIFEST")"
    grep -h '^cuda: ' "$out/steps/run.log" 2>/dev/null | head -n 1
    [ "${#summary[@]}" = 0 ] || printf '  %s\n' "${summary[@]}"
    echo
    echo "runtime layer tests, CUDA against CPU (tolerance: relative error 1e-4 in f32, 1e-10 in f64):"
    grep -hE 'largest relative error|skipped|test result' "$out/steps/cuda-tests.log" 2>/dev/null | sed 's/^/  /'
    echo
    echo "study networks, CUDA against CPU (tolerances: first step's loss 1e-4; losses, weights, evaluation loss 1e-3; accuracy 0.003):"
    grep -hE 'Drift|skipped|on cuda|test result' "$out/steps/study-cuda-tests.log" 2>/dev/null | sed 's/^/  /'
    echo
    echo "study bench --device cuda (seconds per training epoch and per test evaluation):"
    grep -hE 'train_epoch_s=|Colab GPU' "$out/steps/bench.log" 2>/dev/null | sed 's/^/  /'
    echo
    echo "study run cnn3a --epochs 2 --device cuda, validation accuracy against the CPU's:"
    python3 - "$out/results/cnn3a.json" "$carry/cpu-reference/cnn3a.json" <<'EOF'
import json, sys

def load(path, device):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        print(f"  {device}: no result ({e})")
        return None

gpu, cpu = load(sys.argv[1], "cuda"), load(sys.argv[2], "cpu (carried)")
for name, r in (("cuda", gpu), ("cpu (carried)", cpu)):
    if r:
        epochs = ", ".join(f"{e['seconds']:.2f} s" for e in r["epochs"])
        last = r["epochs"][-1]
        print(f"  {name}: val_acc {last['val_accuracy']:.4f} val_loss {last['val_loss']:.4f} "
              f"test_acc {r['test_accuracy']:.4f}; epochs {epochs}; train {r['train_seconds']:.2f} s")
if not (gpu and cpu):
    sys.exit(1)
d = abs(gpu["epochs"][-1]["val_accuracy"] - cpu["epochs"][-1]["val_accuracy"])
ok = d <= 0.01
print(f"  |val_acc cuda - cpu| = {d:.4f} (tolerance 0.01): {'ok' if ok else 'too far apart'}")
sys.exit(0 if ok else 1)
EOF
}

# Everything below goes to the log too.
main() {
    echo "gpu-check $(date -u +%FT%TZ) on $(hostname)"
    if [ ! -f "$carry/paths.env" ]; then
        echo "gpu-check: no $carry/paths.env: run scripts/gpu-carry.sh on the build machine and carry $carry"
        exit 1
    fi
    cat "$carry/MANIFEST"
    # shellcheck source=/dev/null
    . "$carry/paths.env"
    echo "baked in: CUDA_INCLUDE_DIR=$CUDA_INCLUDE_DIR DFDX_OUT_DIR=$DFDX_OUT_DIR sm_$CUDA_COMPUTE_CAP"

    # --- 0. the binaries, carried as .xz --------------------------------------
    python=${PYTHON:-python3}
    # Not under $OUT: on a lent machine what lies there travels back.
    bin=${GPU_CHECK_BIN:-target/gpu-check-bin}
    rm -rf "$bin" && mkdir -p "$bin" && bin=$(cd "$bin" && pwd)
    for packed in "$carry"/bin/*.xz; do
        name=$(basename "$packed" .xz)
        if command -v xz >/dev/null; then
            xz -dc "$packed" >"$bin/$name"
        else
            "$python" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$packed" "$bin/$name"
        fi
        chmod +x "$bin/$name"
        want=$(sed -n "s/^$name: .* sha256 \([0-9a-f]*\)$/\1/p" "$carry/MANIFEST")
        have=$(sha256sum "$bin/$name" | cut -d' ' -f1)
        if [ -z "$want" ] || [ "$want" != "$have" ]; then
            echo "gpu-check: $name unpacked with sha256 $have, MANIFEST says ${want:-nothing}"
            exit 1
        fi
        echo "$name: unpacked to $bin, sha256 as in MANIFEST"
    done

    # --- 1. the CUDA 13 libraries of the Python environment -----------------
    search_dirs=$("$python" -c 'import site, sys; print("\n".join(dict.fromkeys(site.getsitepackages() + [site.getusersitepackages()] + sys.path)))' 2>/dev/null)
    lib_dirs=()
    for lib in libcublas.so.13 libcublasLt.so.13 libnvrtc.so.13; do
        # shellcheck disable=SC2086
        found=$(find $search_dirs -maxdepth 5 -name "$lib" 2>/dev/null | head -n 1)
        [ -n "$found" ] || found=$(find / -xdev -name "$lib" -not -path '*/netdsl-cuda/*' 2>/dev/null | head -n 1)
        if [ -z "$found" ]; then
            echo "gpu-check: $lib not found in the Python environment or elsewhere"
            failed+=("find $lib")
            continue
        fi
        echo "$lib: $found"
        lib_dirs+=("$(dirname "$(readlink -f "$found")")")
    done
    ld_path=$(printf '%s\n' "${lib_dirs[@]}" | awk '!seen[$0]++' | paste -sd:)
    export LD_LIBRARY_PATH=$ld_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    for exe in "$bin"/*; do
        # ldd's output read once: `ldd | grep -q` under pipefail fails at random
        # when grep stops reading early (ldd then dies of SIGPIPE).
        libs=$(ldd "$exe")
        echo "ldd $(basename "$exe"):"
        grep -E 'cuda|cublas|nvrtc|not found' <<<"$libs" | sed 's/^/  /'
        if grep -q 'libcuda.so.1 => not found' <<<"$libs"; then
            echo "gpu-check: no libcuda.so.1: this machine has no NVIDIA driver (or it is not on the loader's path)"
        fi
        if grep -q 'not found' <<<"$libs"; then failed+=("libraries of $(basename "$exe")"); fi
        if grep -q 'netdsl-cuda/stub' <<<"$libs"; then
            echo "gpu-check: $(basename "$exe") loads the link-only libcuda stub; remove it from LD_LIBRARY_PATH"
            failed+=("stub libcuda")
        fi
    done
    [ "${#failed[@]}" = 0 ] || finish

    # --- 2. the driver and the devices ----------------------------------------
    nvidia-smi || true
    step "driver" 60 "$python" - <<'EOF'
import ctypes, sys
try:
    cuda = ctypes.CDLL("libcuda.so.1")
except OSError as e:
    sys.exit(f"no NVIDIA driver: {e}")
def check(what, r):
    if r != 0:
        sys.exit(f"{what} failed with CUresult {r}")
check("cuInit", cuda.cuInit(0))
v, n = ctypes.c_int(), ctypes.c_int()
check("cuDriverGetVersion", cuda.cuDriverGetVersion(ctypes.byref(v)))
check("cuDeviceGetCount", cuda.cuDeviceGetCount(ctypes.byref(n)))
print(f"driver CUDA {v.value // 1000}.{v.value % 1000 // 10}, {n.value} device(s)")
for i in range(n.value):
    dev, name, major, minor = ctypes.c_int(), ctypes.create_string_buffer(256), ctypes.c_int(), ctypes.c_int()
    check("cuDeviceGet", cuda.cuDeviceGet(ctypes.byref(dev), i))
    cuda.cuDeviceGetName(name, 256, dev)
    cuda.cuDeviceGetAttribute(ctypes.byref(major), 75, dev)  # COMPUTE_CAPABILITY_MAJOR
    cuda.cuDeviceGetAttribute(ctypes.byref(minor), 76, dev)  # COMPUTE_CAPABILITY_MINOR
    print(f"device {i}: {name.value.decode()}, sm_{major.value}{minor.value}")
nvrtc = ctypes.CDLL("libnvrtc.so.13")
major, minor = ctypes.c_int(), ctypes.c_int()
nvrtc.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
# A newer NVRTC than the driver writes PTX the driver refuses
# (CUDA_ERROR_UNSUPPORTED_PTX_VERSION) for dfdx's five run-time kernels.
print(f"NVRTC {major.value}.{minor.value}")
if n.value == 0:
    sys.exit("no CUDA device")
EOF
    [ "${#failed[@]}" = 0 ] || finish

    # --- 3. the include paths baked into the binaries -------------------------
    # NVRTC reads them when dfdx first compiles reshape_to, concat, concat_along,
    # stack or to_dtype; `cp -n` keeps any real header already there.
    mkdir -p "$CUDA_INCLUDE_DIR" "$DFDX_OUT_DIR" &&
        cp -n "$carry"/include/* "$CUDA_INCLUDE_DIR"/ &&
        cp -n "$carry"/dfdx-out/*.cuh "$DFDX_OUT_DIR"/ ||
        failed+=("include paths")
    ls -l "$CUDA_INCLUDE_DIR"/cuda_fp16.h* "$DFDX_OUT_DIR"/*.cuh

    # --- 4.-7. tests, bench, two epochs ---------------------------------------
    if ls "$carry"/data/*-ubyte.gz >/dev/null 2>&1; then
        export FASHION_MNIST_DIR=$PWD/$carry/data
    fi
    study=$bin/study

    step "cuda tests" "${TEST_TIMEOUT:-60}" "$bin/runtime-tests" nn::cuda_tests --test-threads 1 --nocapture
    step "study cuda tests" "${STUDY_TEST_TIMEOUT:-150}" \
        env STUDY_BIN="$study" "$bin/study-cuda-tests" --test-threads 1 --nocapture
    step "bench" "${BENCH_TIMEOUT:-120}" "$study" bench --device cuda cnn3a cnn4a dnn2
    step "run" "${RUN_TIMEOUT:-120}" "$study" run cnn3a --epochs 2 --device cuda --out "$out/results"

    # --- the figures ------------------------------------------------------------
    figures "$out" "$carry" >"$out/gpu-figures.txt" || failed+=("figures")
    echo
    cat "$out/gpu-figures.txt"

    finish
}
main 2>&1 | tee "$out/gpu-check.log"
exit "${PIPESTATUS[0]}"
