"""Time the C++ conv1d's algorithms per shape: a training step's kernels (forward + backward)
under each forced choice (direct, gemm, auto, ragged_gemm, wide_gemm), interleaved, the
minimum of --rounds rounds; prints a Markdown table with auto's pick per pass (forward, dx, dkernel:
d = direct, g = gemm). The measurements behind the "auto" rule in kernels/cpu/conv1d.hpp
(docs/kernels.md).

    flock /tmp/bench.lock env PYTHONPATH=. python tools/conv1d_choice.py --dtype float32
    SEQFUSE_BLAS_CORE=keep PYTHONPATH=. python tools/conv1d_choice.py   # OpenBLAS's own kernels
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from engine import _blas, _openblas, backends, tuning

CHANNELS = (8, 32, 64, 128, 200, 256)


def time_shape(cpp, C_ext, shape, dtype, rounds):
    """{choice: ms} for forward + backward at (B,L,C,O,K,strides,dilation), and auto's picks."""
    B, L, C, O, K, s, d = shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, L, C)).astype(dtype)
    kernel = rng.standard_normal((K, C, O)).astype(dtype)
    bias = rng.standard_normal(O).astype(dtype)
    grad = rng.standard_normal((B, (L - d * (K - 1) - 1) // s + 1, O)).astype(dtype)

    def step():
        cpp.conv1d_forward(x, kernel, bias, s, d)
        cpp.conv1d_backward(grad, x, kernel, s, d)
    times = {choice: [] for choice in ("direct", "gemm", "auto", "ragged_gemm", "wide_gemm")}
    for _ in range(rounds):  # interleaved, so a busy moment of a shared machine hits all alike
        for choice, samples in times.items():
            with tuning.forced("conv1d", choice):
                step()
                start = time.perf_counter()
                step()
                samples.append(time.perf_counter() - start)
    with tuning.forced("conv1d", "auto"):
        pick = "".join(v[0] for v in C_ext.conv1d_algorithm(x, kernel, s, d).values())
    return {choice: min(v) * 1e3 for choice, v in times.items()}, pick


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=520)
    parser.add_argument("--size", type=int, default=3, help="kernel size K")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    cpp = backends.get("cpp")
    if not cpp.available():
        raise SystemExit(cpp.why_unavailable())
    from engine import _C  # wired to NumPy's OpenBLAS by the cpp backend's import
    print(f"OpenBLAS kernels: {sorted(set(_openblas.picked.values()))}, width handed to the "
          f"extension: {_blas.vector_bytes} bytes; {args.dtype}, (B,L,K) = "
          f"({args.batch},{args.length},{args.size}), min of {args.rounds} interleaved rounds")
    print("| C | O | direct ms | gemm ms | auto ms | ragged_gemm ms | wide_gemm ms | auto picks "
          "| auto / faster |")
    print("|---|---|---|---|---|---|---|---|---|")
    for C in CHANNELS:
        for O in CHANNELS:
            shape = (args.batch, args.length, C, O, args.size, 1, 1)
            ms, pick = time_shape(cpp, _C, shape, np.dtype(args.dtype), args.rounds)
            best = min(ms["direct"], ms["gemm"])
            print(f"| {C} | {O} | {ms['direct']:.3f} | {ms['gemm']:.3f} | {ms['auto']:.3f} "
                  f"| {ms['ragged_gemm']:.3f} | {ms['wide_gemm']:.3f} | {pick} "
                  f"| {ms['auto'] / best:.2f} |", flush=True)


if __name__ == "__main__":
    main()
