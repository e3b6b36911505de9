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
# An editable install (pip install -e .) maps engine._C to its own build whatever PYTHONPATH
# says: say so rather than let the old extension run unnoticed.
repo=$PWD
loaded=$(cd / && PYTHONPATH="$repo" "$py" -c 'import engine._C as C; print(C.__file__)' 2>/dev/null || true)
case "$loaded" in
  "$repo"/engine/*) ;;
  *) echo "tools/build_ext.sh: note: with PYTHONPATH=$repo this Python loads engine._C from" \
          "${loaded:-nowhere}, not from this build (an editable install's import hook?);" \
          "rebuild that one with: $py -m pip install --no-deps -e ." >&2 ;;
esac
