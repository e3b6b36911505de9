#!/usr/bin/env bash
# The device check of issue 9, in one call on a GPU machine that has CuPy, PyTorch (cuDNN),
# numba, pybind11, scikit-build-core, cmake and pytest but no network:
#   env (nvidia-smi, versions, seqfuse info) -> tools/check_cuda.py (in the background, beside
#   the build) -> build -> pytest -m gpu -> seqfuse parity --device cuda -> the README's main
#   job with --device cuda (and on the CPU, to compare) -> seqfuse bench --device cuda --json
#   -> one results JSON.
# usage: bench/gpu_check.sh OUT_DIR
# OUT_DIR gets six files (the device tool returns at most 8):
#   results.json   card, steps (exit code, seconds, limit), tests, parity rows, bench rows,
#                  the main job's histories on cuda and cpu (bench/gpu_results.py writes it;
#                  its --markdown renders RESULTS.md tables from it)
#   log.txt        every step's output in order, each under an "== step" line
#   steps.tsv      name, exit code, seconds, limit: one line per step (124/137 = timed out)
#   tests_gpu.xml  pytest's JUnit report;  parity.json, bench.json  those steps' own JSON
# Every step runs even if an earlier one failed, each under its own timeout, and the limits
# shrink so the whole stays under TOTAL_S (default 450 s: the check must end within 8 minutes).
# PYTHON overrides python3 (the CPU tests run this script with a stub).
set -u
out=${1:?usage: bench/gpu_check.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
total=${TOTAL_S:-450}
export PYTHONUNBUFFERED=1 KERAS_BACKEND=torch
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log=$out/log.txt
: > "$log"
: > "$out/steps.tsv"
rm -f "$out"/{results,parity,bench}.json "$out/tests_gpu.xml"
deadline=$(( $(date +%s) + total ))

# limit NOMINAL STEPS_AFTER: NOMINAL seconds, less if the steps still to come (each kept
# 20 s and the summary 15 s) would not fit before the deadline; at least 5 s.
limit() {
  local left=$(( deadline - $(date +%s) - 20 * $2 - 15 ))
  (( left < $1 )) && set -- "$left"
  (( $1 < 5 )) && set -- 5
  echo "$1"
}

record() {  # record NAME EXIT_CODE START_NS LIMIT
  local seconds
  seconds=$(awk -v a="$3" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$seconds" "$4" >> "$out/steps.tsv"
  echo "== $1: exit $2 after ${seconds}s (limit ${4}s)" >> "$log"
}

step() {  # step NAME NOMINAL_S STEPS_AFTER COMMAND...
  local name=$1 seconds begin rc
  seconds=$(limit "$2" "$3")
  shift 3
  echo "== $name: $*" >> "$log"
  begin=$(date +%s%N)
  timeout --kill-after=5 "$seconds" "$@" >> "$log" 2>&1 < /dev/null
  rc=$?
  record "$name" "$rc" "$begin" "$seconds"
}

step env 30 7 bash -c "date -u; uname -a; nvidia-smi; \
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader \
    > '$work/gpu.csv'; nvcc --version | tail -n 2; $py --version; \
  $py -c 'import cupy, numpy, numba, torch; print(\"cupy\", cupy.__version__, \"numpy\", numpy.__version__, \
\"numba\", numba.__version__, \"torch\", torch.__version__, \"cudnn\", torch.backends.cudnn.version(), \
\"torch sees cuda:\", torch.cuda.is_available())'"

# nvcc for two architectures is the slow part and needs no GPU: it runs beside the build.
check_limit=$(limit 240 6)
check_begin=$(date +%s%N)
timeout --kill-after=5 "$check_limit" "$py" tools/check_cuda.py > "$work/check_cuda.txt" 2>&1 < /dev/null &
check_pid=$!

step build 150 6 "$py" -m pip install --no-build-isolation --no-deps -e .
step info 20 5 "$py" -m engine info

timeout_plugin=()
"$py" -c "import pytest_timeout" 2>/dev/null && timeout_plugin=(--timeout 90)
step tests_gpu 210 4 "$py" -m pytest -q -p no:cacheprovider -m gpu -rfE --continue-on-collection-errors \
  "${timeout_plugin[@]}" --junitxml="$out/tests_gpu.xml" tests/
step parity 90 3 "$py" -m engine parity --device cuda --json "$out/parity.json"
step train_cuda 90 2 "$py" -m engine train --data movie_reviews --model lstm --epochs 3 --device cuda \
  --verbose 2 --history "$work/train_cuda.json"
# The same job on the CPU (~5 s), for the summary's side-by-side losses.
step train_cpu 60 1 "$py" -m engine train --data movie_reviews --model lstm --epochs 3 \
  --verbose 2 --history "$work/train_cpu.json"

wait "$check_pid"
check_rc=$?
echo "== check_cuda: $py tools/check_cuda.py (ran beside the build)" >> "$log"
cat "$work/check_cuda.txt" >> "$log"
record check_cuda "$check_rc" "$check_begin" "$check_limit"

bench_limit=$(limit 150 0)
step bench "$bench_limit" 0 "$py" -m engine bench --device cuda --json "$out/bench.json" \
  --max-seconds $(( bench_limit > 60 ? bench_limit - 45 : 15 ))

# The summary goes to the log and to stdout (the end of the device tool's reply).
echo "== results" >> "$log"
timeout 15 "$py" bench/gpu_results.py "$out" --gpu-csv "$work/gpu.csv" \
  --train "$work/train_cuda.json" --train-cpu "$work/train_cpu.json" 2>&1 | tee -a "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "bench/gpu_results.py failed; steps:"; cat "$out/steps.tsv"; }
