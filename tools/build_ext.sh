#!/usr/bin/env bash
# Development build of engine._C in place (for PYTHONPATH=. work without reinstalling).
# usage: tools/build_ext.sh [build-dir]   (uses the python on PATH, or $PYTHON)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python}
dir=${1:-build/dev}
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DPython_EXECUTABLE="$(command -v "$py")" \
  -Dpybind11_DIR="$("$py" -m pybind11 --cmakedir)" >/dev/null
cmake --build "$dir"
