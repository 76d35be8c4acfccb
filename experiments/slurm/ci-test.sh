#!/usr/bin/env bash
# The Slurm array test, for real: starts a single-node cluster on this machine
# (local-cluster.sh; root), submits a 4-task array of tiny runs through
# study.sbatch into one folder, waits, runs `study report` on it, and checks
# that every expected result is there and identical (every field but
# wall-clock seconds and the thread count) to the same runs made without
# Slurm. Then submits the array again: every task must find its jobs finished
# (what a requeued task does) and change nothing.
#
#   experiments/slurm/ci-test.sh                              # builds what cargo test builds
#   STUDY_BIN=target/debug/study experiments/slurm/ci-test.sh # .ci/run, after cargo test
#
# Last, a task that Slurm requeues while it trains (`scontrol requeue`) must
# resume from its checkpoint and end with the result of an uninterrupted run.
#
# Skips (exit 0, one line saying why) only where Slurm cannot start. The last
# line on stdout is the count: `slurm: 3 passed, 0 failed` (or 1 skipped).
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { echo "slurm ci-test: $*" >&2; }
fail() { say "FAILED: $*"; echo "slurm: 0 passed, 1 failed"; exit 1; }

if ! experiments/slurm/local-cluster.sh; then
    say "SKIPPED: Slurm could not start on this machine (local-cluster.sh failed; see above)"
    echo "slurm: 0 passed, 0 failed, 1 skipped"
    exit 0
fi

# The binary the tests use (cargo test builds it into target/debug).
if [ -z "${STUDY_BIN:-}" ]; then
    cargo test -p netdsl-experiments --no-run >&2
fi
study=$(realpath "${STUDY_BIN:-target/debug/study}")
[ -x "$study" ] || fail "$study was not built"

work=$(mktemp -d /tmp/study-slurm.XXXXXX)
trap 'rm -rf "$work"' EXIT
# Six jobs (three variants, two seeds) over four tasks: two tasks run two jobs.
args=(dnn1 dnn2-do cnn3a --seeds "0,1" --epochs 1 --limit 2000)
expected=(dnn1.s0 dnn1.s1 dnn2-do.s0 dnn2-do.s1 cnn3a.s0 cnn3a.s1)

submit() {
    # One CPU per task: two tasks run at once on a 2-CPU node, sharing the folder.
    STUDY_ARGS="${args[*]}" STUDY_OUT="$work/slurm" STUDY_BIN="$study" \
        timeout 900 sbatch --wait --parsable --array=0-3 --cpus-per-task=1 --mem=1G \
        --chdir="$work" --output="$work/task-%a.$1.log" experiments/slurm/study.sbatch
}

say "submitting a 4-task array: study run ${args[*]}"
if ! job=$(submit first); then
    cat "$work"/task-*.first.log >&2 || true
    fail "the array job did not finish well"
fi
say "array job $job finished"

"$study" run "${args[@]}" --out "$work/plain" 2>"$work/plain.log" >/dev/null \
    || { cat "$work/plain.log" >&2; fail "the runs without Slurm failed"; }
"$study" report --out "$work/slurm" >"$work/report.md" \
    || fail "study report on the array's folder failed"

# same DIR_A DIR_B STEM...: every <stem>.json is in DIR_A and equal, but for the clock, to DIR_B's.
same() {
python3 - "$@" <<'PY'
import json, os, sys
slurm, plain, stems = sys.argv[1], sys.argv[2], sys.argv[3:]

def without_clock(path):
    with open(path) as f:
        v = json.load(f)
    v["train_seconds"] = v["test_seconds"] = 0
    v["settings"]["threads"] = 0
    for e in v["epochs"]:
        e["seconds"] = 0
    return v

bad = []
for stem in stems:
    a, b = (os.path.join(d, stem + ".json") for d in (slurm, plain))
    if not os.path.exists(a):
        bad.append(f"{stem}.json is missing from {slurm}")
    elif without_clock(a) != without_clock(b):
        bad.append(f"{stem}.json differs from the run without Slurm")
extra = sorted(f for f in os.listdir(slurm) if f.endswith(".json") and f[:-5] not in stems)
if extra:
    bad.append(f"unexpected results: {extra}")
for line in bad:
    print("slurm ci-test:", line, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}
same "$work/slurm" "$work/plain" "${expected[@]}" || fail "the array's results differ from the runs without Slurm"
for f in results.md seeds.csv bands/cnn3a.svg bands/dnn1.svg; do
    [ -s "$work/slurm/$f" ] || fail "study report wrote no $f"
done
# shellcheck disable=SC2016 # backquotes of Markdown
grep -qF '| `cnn3a` | 2 | 1 |' "$work/report.md" || fail "the report has no 2-seed row of cnn3a: $(cat "$work/report.md")"

# Again, as a requeued array would: every job is found finished and kept.
before=$(cd "$work/slurm" && sha256sum ./*.json)
submit again >/dev/null || { cat "$work"/task-*.again.log >&2; fail "the second array job failed"; }
after=$(cd "$work/slurm" && sha256sum ./*.json)
[ "$before" = "$after" ] || fail "the second array job changed results"
skipped=$(cat "$work"/task-*.again.log | grep -c "finished already" || true)
[ "$skipped" = 6 ] || fail "expected 6 jobs finished already, the logs say $skipped: $(cat "$work"/task-*.again.log)"

say "ok: 6 results over 4 array tasks, identical to the runs without Slurm; a second array skipped all 6"

# A task requeued while it trains resumes from its checkpoint. (Slurm holds a
# requeued job about two minutes before it starts again.)
requeue_args=(cnn3a --seeds 0 --epochs 4 --limit 2000)
job=$(STUDY_ARGS="${requeue_args[*]}" STUDY_OUT="$work/requeue" STUDY_BIN="$study" \
    sbatch --parsable --array=0-0 --chdir="$work" --output="$work/requeue.log" \
    experiments/slurm/study.sbatch)
for _ in $(seq 600); do
    [ -f "$work/requeue/cnn3a.s0.safetensors" ] && break
    sleep 0.2
done
[ -f "$work/requeue/cnn3a.s0.safetensors" ] || fail "task ${job}_0 wrote no checkpoint: $(cat "$work/requeue.log")"
[ -f "$work/requeue/cnn3a.s0.json" ] && fail "task ${job}_0 finished before it could be requeued"
scontrol requeue "${job}_0" || fail "scontrol requeue ${job}_0 failed"
say "requeued task ${job}_0 after its first checkpoint; waiting for it to run again"
"$study" run "${requeue_args[@]}" --out "$work/requeue-plain" 2>/dev/null >/dev/null \
    || fail "the 4-epoch run without Slurm failed"
for _ in $(seq 600); do
    squeue -h -j "$job" 2>/dev/null | grep -q . || break
    sleep 1
done
squeue -h -j "$job" 2>/dev/null | grep -q . && fail "task ${job}_0 did not finish within 10 minutes of its requeue"
grep -q "DUE TO JOB REQUEUE" "$work/requeue.log" || fail "task ${job}_0 was not requeued: $(cat "$work/requeue.log")"
grep -q "cnn3a.s0: resuming after epoch" "$work/requeue.log" \
    || fail "the requeued task did not resume from its checkpoint: $(cat "$work/requeue.log")"
same "$work/requeue" "$work/requeue-plain" cnn3a.s0 || fail "the requeued run differs from an uninterrupted one"
say "ok: the requeued task resumed from its checkpoint and equals an uninterrupted run"
echo "slurm: 3 passed, 0 failed"
