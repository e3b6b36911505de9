"""Compile-check that the C++ kernels vectorize the same loops on every x86-64 level.

A portable build (SEQFUSE_NATIVE=OFF) compiles the extension for x86-64-v4 (AVX-512),
x86-64-v3 (AVX2) and baseline x86-64 (SSE2), and a native build on an AVX2-only CPU is the
v3 case. GCC's auto-vectorizer does not treat them alike: without -fno-trapping-math it
if-converted the float tanh's clamps only with AVX-512 mask registers, so every activation
loop of LSTM, GRU and SimpleRNN ran one element at a time on AVX2 and SSE2, 40% of an LSTM
inference there, and no test noticed (results were right, only slow).

This compiles one file that instantiates every CPU kernel template (float and double) with
the extension's own compile options (read from CMakeLists.txt) at each level, collects GCC's
"loop vectorized" remarks for kernels/cpu/*.hpp, and fails if a loop vectorized at
x86-64-v4 is not vectorized at another level.

usage: python tools/check_vectorized.py        (exit status 1 on a missing loop)
Needs g++ (GCC's -fopt-info); without it the check is reported and skipped.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LEVELS = ("x86-64-v4", "x86-64-v3", "x86-64")
HEADERS = ("lstm", "gru", "simple_rnn", "conv1d", "embedding", "max_pool1d")
# Loops a level may leave scalar, by level and header, with the reason.
EXEMPT = {
    ("x86-64", "max_pool1d"): "SSE2 has no blend: GCC 12 does not if-convert the float "
                              "compare that picks an int64 position (memory-bound anyway)",
}
KERNELS = ("lstm_forward", "lstm_backward", "gru_forward", "gru_backward", "simple_rnn_forward",
           "simple_rnn_backward", "conv1d_forward", "conv1d_backward", "embedding_forward",
           "embedding_sum_segments", "max_pool1d_forward", "max_pool1d_backward")


def compile_options() -> list[str]:
    """The options seqfuse_extension() in CMakeLists.txt gives every build of the extension."""
    text = (ROOT / "CMakeLists.txt").read_text()
    found = re.search(r"target_compile_options\(\$\{name\} PRIVATE ([^$)]*)\$\{ARGN\}\)", text)
    if not found:
        raise SystemExit("check_vectorized: no target_compile_options(${name} PRIVATE ... ${ARGN}) "
                         "in CMakeLists.txt")
    return found.group(1).split()


def unit() -> str:
    """Every kernel template instantiated for float and double (the bindings' instantiations)."""
    lines = [f'#include "cpu/{h}.hpp"' for h in HEADERS]
    for fn in KERNELS:
        for t in ("float", "double"):
            lines.append(f"template decltype(seqfuse::{fn}<{t}>) seqfuse::{fn}<{t}>;")
    return "\n".join(lines) + "\n"


def vectorized(level: str, source: Path) -> set[str]:
    """kernels/cpu/<file>.hpp:<line> of every loop GCC vectorized at `level`."""
    done = subprocess.run(["g++", "-std=gnu++17", *compile_options(), f"-march={level}", "-fopenmp",
                           "-DSEQFUSE_OPENMP=1", f"-I{ROOT / 'kernels'}", "-c", str(source), "-o",
                           "/dev/null", "-fopt-info-vec-optimized"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"check_vectorized: g++ -march={level} failed:\n{done.stderr[-4000:]}")
    return set(re.findall(r"(kernels/cpu/\w+\.hpp:\d+):\d+: optimized: loop vectorized", done.stderr))


def main() -> int:
    if shutil.which("g++") is None:
        print("check_vectorized: no g++ here; skipped")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "kernels_check.cpp"
        source.write_text(unit())
        loops = {level: vectorized(level, source) for level in LEVELS}
    reference = loops[LEVELS[0]]
    status = 0
    for level in LEVELS[1:]:
        scalar = sorted(reference - loops[level])
        exempt = [loop for loop in scalar if (level, Path(loop.split(":")[0]).stem) in EXEMPT]
        missing = [loop for loop in scalar if loop not in exempt]
        print(f"{level}: {len(loops[level])} loops vectorized, {len(reference)} at {LEVELS[0]}"
              + (f"; not vectorized here: {', '.join(missing)}" if missing else "")
              + (f"; exempt: {', '.join(exempt)}" if exempt else ""))
        status |= bool(missing)
    return status


if __name__ == "__main__":
    sys.exit(main())
