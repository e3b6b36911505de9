"""What the Numba kernels' GEMM (engine/backends/_numba_gemm.py) reaches on one core, hot
data, beside np.dot on one OpenBLAS thread (the kernels' alternative), float32.

    PYTHONPATH=$PWD python tools/numba_gemm_peak.py

Shapes (M, K, N) = C[M,N] = A[M,K]·B[K,N]: one thread's recurrent step and conv1d block, and
a large square one. Prints GFLOP/s, best of 7 timings of ~0.2 GFLOP each.
"""
from __future__ import annotations

import time

import numpy as np
from numba import njit

import engine  # noqa: F401  (engine/_openblas.py re-picks OpenBLAS's kernels per CPU at import)
from engine import _blas
from engine.backends import _numba_gemm as gemm

SHAPES = [(16, 32, 128), (32, 64, 512), (32, 128, 512), (32, 512, 128), (64, 384, 1024),
          (256, 640, 128), (2048, 2048, 2048)]


@njit(nogil=True)
def _repeat(calls, a, K, bp, c, tile):
    for _ in range(calls):
        gemm.gemm(a, 0, K, 1, bp, c, False, tile)


def _best(fn, calls):
    best = float("inf")
    for _ in range(7):
        start = time.perf_counter()
        fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def main():
    rng = np.random.default_rng(0)
    print(f"{'M,K,N':>16} {'ours':>8} {'np.dot':>8}  GFLOP/s, one core, {gemm.VECTOR_BYTES}-byte vectors")
    for M, K, N in SHAPES:
        a = rng.standard_normal((M, K)).astype(np.float32)
        b = rng.standard_normal((K, N)).astype(np.float32)
        c, bp, tile = np.empty((M, N), np.float32), gemm.packed(b), gemm.tile_scratch(np.float32)
        flop = 2.0 * M * K * N
        calls = max(1, int(2e8 / flop))
        _repeat(1, a.reshape(-1), K, bp, c, tile)
        ours = _best(lambda: _repeat(calls, a.reshape(-1), K, bp, c, tile), calls)

        def blas():
            for _ in range(calls):
                np.dot(a, b, c)
        with _blas.single_threaded():
            theirs = _best(blas, calls)
        print(f"{str((M, K, N)):>16} {flop / ours / 1e9:8.0f} {flop / theirs / 1e9:8.0f}")


if __name__ == "__main__":
    main()
