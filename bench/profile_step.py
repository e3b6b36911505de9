"""Where one recurrent training step's time goes, on the C++ backend (bench/RESULTS.md).

Times each part of `F.<op>(x, kernel, recurrent_kernel, bias)[0].sum().backward()` (the
training step `seqfuse bench` times) on its own, in a steady-state loop (median of --repeat
calls after warm-up calls), and the whole step, with the step's GEMM work in GFLOP/s:

    python bench/profile_step.py lstm 64 100 64 128

forward: the kernel's time loop with the input projection; backward: its backward loop
(with dx and the bias sums); dkernel, drecurrent: the weight-gradient GEMMs engine/_recurrent.py
runs after the loop; step - parts: graph, copies and what the parts do not see (cold caches).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from engine import _blas, backends
from engine.backends import _projection, cpp_cpu
from engine.benchmark import ours

GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}


def median_ms(fn, repeat):
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("op", choices=sorted(GATES))
    parser.add_argument("size", type=int, nargs=4, metavar=("B", "T", "F", "H"))
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    op, (B, T, Fe, H), G = args.op, args.size, GATES[args.op]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, Fe)).astype(np.float32)
    kernel = (rng.standard_normal((Fe, G * H)) * 0.1).astype(np.float32)
    U = (rng.standard_normal((H, G * H)) * 0.1).astype(np.float32)
    bias = (rng.standard_normal((2, G * H) if op == "gru" else G * H) * 0.1).astype(np.float32)
    h0 = np.zeros((B, H), np.float32)
    dhs = rng.standard_normal((T, B, H)).astype(np.float32)

    if op == "lstm":
        forward = lambda: cpp_cpu.lstm_forward(x, kernel, bias, U, h0, h0, None, None)  # noqa: E731
        hs, cs, gates = forward()
        backward = lambda: cpp_cpu.lstm_backward(dhs, h0, U, h0, h0, hs, cs, gates, None, None,  # noqa: E731
                                                 kernel=kernel)
        dz = du = backward()[0]
    elif op == "gru":
        forward = lambda: cpp_cpu.gru_forward(x, kernel, bias[0], U, bias[1], h0, None, None)  # noqa: E731
        hs, gates, uh = forward()
        backward = lambda: cpp_cpu.gru_backward(dhs, U, bias[1], h0, hs, gates, uh, None, None,  # noqa: E731
                                                kernel=kernel)
        dz, _, du, _, _ = backward()
    else:
        forward = lambda: cpp_cpu.simple_rnn_forward(x, kernel, bias, U, h0, None, None)  # noqa: E731
        hs = forward()
        backward = lambda: cpp_cpu.simple_rnn_backward(dhs, U, h0, hs, None, None, kernel=kernel)  # noqa: E731
        dz = du = backward()[0]
    rows = T * B
    x_rows = _projection.time_major(x, False).reshape(rows, Fe)
    parts = {
        "forward": median_ms(forward, args.repeat),
        "backward": median_ms(backward, args.repeat),
        "dkernel": median_ms(lambda: _blas.matmul_tn(x_rows, dz.reshape(rows, -1)), args.repeat),
        "drecurrent": median_ms(lambda: _blas.matmul_tn(hs.reshape(rows, H), du.reshape(rows, -1)),
                                args.repeat),
    }
    with backends.use_backend("cpp"):
        step = ours(op, (B, T, Fe, H), np.random.default_rng(0))[0]  # what `seqfuse bench` times
        total = median_ms(step, args.repeat)
    # GEMM flops: forward x·W and h·U; backward dz·Uᵀ and dz·Wᵀ; xᵀ·dz and hᵀ·dz.
    gflop = {"forward": 2 * rows * (Fe + H) * G * H, "backward": 2 * rows * (Fe + H) * G * H,
             "dkernel": 2 * rows * Fe * G * H, "drecurrent": 2 * rows * H * G * H}
    print(f"{op} (B,T,F,H) = {(B, T, Fe, H)}, float32, cpp, median of {args.repeat}")
    for name, ms in parts.items():
        print(f"  {name:<12}{ms:9.2f} ms  {gflop[name] / ms / 1e6:6.0f} GFLOP/s")
    step_gflop = sum(gflop.values())
    print(f"  {'step':<12}{total:9.2f} ms  {step_gflop / total / 1e6:6.0f} GFLOP/s "
          f"({step_gflop / 1e9:.2f} GFLOP)")
    print(f"  {'step - parts':<12}{total - sum(parts.values()):9.2f} ms")


if __name__ == "__main__":
    main()
