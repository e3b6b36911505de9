#!/usr/bin/env bash
# The device check: build, GPU tests, parity and a quick CPU bench on a lent GPU machine.
# usage: bench/gpu_check.sh OUT_DIR      (the machine has no network: deps are preinstalled)
# Writes OUT_DIR/{env,build,tests_gpu,tests_all,parity,bench}.txt; every step runs even if
# an earlier one fails, and each step's exit status is recorded in OUT_DIR/status.txt.
set -u
out=${1:?usage: bench/gpu_check.sh OUT_DIR}
mkdir -p "$out"
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
step() {
  local name=$1; shift
  timeout "${STEP_TIMEOUT:-240}" "$@" > "$out/$name.txt" 2>&1
  echo "$name $?" >> "$out/status.txt"
}
: > "$out/status.txt"
step env bash -c "date -u; nvidia-smi; $py -c 'import cupy, numpy, numba, torch; print(cupy.__version__, numpy.__version__, numba.__version__, torch.__version__)'"
step build "$py" -m pip install --no-build-isolation --no-deps -e .
step tests_gpu env KERAS_BACKEND=torch "$py" -m pytest -q -p no:cacheprovider -m gpu tests/
step parity "$py" -m engine parity
step info "$py" -m engine info
step tests_all env KERAS_BACKEND=torch "$py" -m pytest -q -p no:cacheprovider -x tests/ -m "not gpu"
step bench "$py" -m engine bench --quick --repeat 5 --markdown
cat "$out/status.txt"
