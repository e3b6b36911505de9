"""Where one recurrent training step's time goes, on the C++ backend (bench/RESULTS.md).

Times each part of `F.<op>(x, kernel, recurrent_kernel, bias)[0].sum().backward()` (the
training step `seqfuse bench` times) on its own, in a steady-state loop (median of --repeat
calls after warm-up calls), and the whole step, with the step's GEMM work in GFLOP/s:

    python bench/profile_step.py lstm 64 100 64 128

forward: the kernel's time loop with the input projection; backward: its backward loop
(with dx and the bias sums; for SimpleRNN and GRU, where the weights_in_loop choice is on, with
the weight gradients summed in the loop too, as the step runs it); weights: the weight-gradient
GEMMs (dkernel and dU) as engine/_recurrent.py runs them after the loop (where the step sums
them in the loop, shown for comparison and not counted in "step - parts"); step - parts:
graph, copies and what the parts do not see (cold caches).

A/B of a change on a shared machine: put the change behind an environment variable the
kernel reads per call (for the experiment only), and

    python bench/profile_step.py lstm 64 100 64 128 --toggle VAR --repeat 60

times every part with VAR unset and VAR=1 alternating call by call in one process (each timed
call after one untimed call the same way), so both ways see the same neighbours. On the 2-vCPU
Zen 3 VM, where separate processes a few minutes apart read the same step 26 and 48 ms, this
resolved 1 ms in a 10 ms forward that alternating processes could not (bench/RESULTS.md,
session 27). A branch on the variable inside a kernel can change how the compiler builds the
unchanged side, so the final A/B is of two builds, with no edit in either:

    cp engine/_C.*.so /tmp/before.so    # built from main, before the change
    python bench/profile_step.py lstm 64 100 64 128 --against /tmp/before.so --repeat 60

loads the other build beside engine._C (as another module) and alternates the two the same
way; the first column is the build in engine/, the second the one named. In a portable build
(SEQFUSE_NATIVE=OFF) the levels are such builds: `--against engine/_C_x86_64_v3.*.so` times
a CPU's AVX2 code path beside its own (with SEQFUSE_ISA=x86-64-v4 or the native build as
engine._C). Two variants of a kernel choice (docs/kernels.md, "Choices per CPU") alternate
the same way:

    python bench/profile_step.py gru 64 100 64 128 --choice weights_in_loop=on,off --repeat 40

(the parts are set up once, as the choice stood at the start; the step follows each variant.)
"""
from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import statistics
import time
from types import SimpleNamespace

import numpy as np

import engine
from engine import _recurrent, backends
from engine.backends import cpp_cpu
from engine.benchmark import ours

GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}


def alternating_ms(fn, repeat, ways):
    """(median ms of each way): ways are two callables that set the process up one way (an
    environment variable, an extension build); they alternate call by call, and the process
    is left the first way."""
    times = [[], []]
    try:
        for _ in range(repeat):
            for i, way in enumerate(ways):
                way()
                fn()
                start = time.perf_counter()
                fn()
                times[i].append(time.perf_counter() - start)
    finally:
        ways[0]()
    return tuple(statistics.median(t) * 1e3 for t in times)


def toggle_ways(var):
    """VAR unset, then VAR=1 (alternating_ms)."""
    return (lambda: os.environ.pop(var, None), lambda: os.environ.__setitem__(var, "1"))


def choice_ways(spec):
    """NAME=A,B: the kernel choice NAME at A, then at B (alternating_ms); main() puts the
    choice back as it was."""
    name, _, values = spec.partition("=")
    variants = values.split(",")
    options = engine._C.choice_options()
    if name not in options or len(variants) != 2 or not set(variants) <= set(options[name]):
        known = "; ".join(f"{n}: {'|'.join(v)}" for n, v in options.items())
        raise ValueError(f"--choice must be NAME=A,B, a choice and two of its variants ({known}), "
                         f"got {spec!r}")
    return tuple((lambda v=v: engine._C.set_choice(name, v)) for v in variants)


def build_ways(path):
    """This checkout's engine._C, then the extension build at `path` (alternating_ms): each way
    points the C++ backend and the package's `_C` (which engine._blas imports per call) at it.
    The module takes the file's own name, so a portable build's other level (engine/_C_x86_64_v3...)
    loads too: the two instruction sets of one CPU alternate in one process."""
    name = os.path.basename(path).split(".")[0]
    spec = importlib.util.spec_from_file_location(f"against.{name}", path)
    other = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(other)
    ours_c = engine._C

    def use(module):
        engine._C = cpp_cpu._C = module
    return (lambda: use(ours_c), lambda: use(other))


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
    # Four positionals, not one with nargs=4: argparse's help cannot print a tuple metavar
    # for a positional (--help raised ValueError).
    for name, what in (("B", "batch rows"), ("T", "steps"), ("F", "input features"), ("H", "units")):
        parser.add_argument(name, type=int, help=what)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--against", metavar="SO",
                        help="time every part with engine._C and with the build at SO, alternating")
    parser.add_argument("--choice", metavar="NAME=A,B",
                        help="time every part with kernel choice NAME at A and at B, alternating")
    parser.add_argument("--toggle", metavar="VAR",
                        help="time every part with VAR unset and VAR=1, alternating call by call")
    args = parser.parse_args(argv)
    if sum(bool(a) for a in (args.against, args.toggle, args.choice)) > 1:
        parser.error("--against, --toggle and --choice are each an A/B: give one")
    try:
        ways = (build_ways(args.against) if args.against else toggle_ways(args.toggle) if args.toggle
                else choice_ways(args.choice) if args.choice else None)
    except ValueError as error:
        parser.error(str(error))
    before = dict(engine._C.choices())
    try:
        profile(args, ways)
    finally:
        for name, value in before.items():
            engine._C.set_choice(name, value)


def profile(args, ways):
    """Time the parts and the step (main's arguments; ways: an A/B or None) and print them."""
    time_ms = (lambda fn, repeat: alternating_ms(fn, repeat, ways)) if ways else median_ms
    op, (B, T, Fe, H), G = args.op, (args.B, args.T, args.F, args.H), GATES[args.op]
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
        uh = None
        backward = lambda: cpp_cpu.lstm_backward(dhs, h0, U, h0, h0, hs, cs, gates, None, None,  # noqa: E731
                                                 kernel=kernel)
        dz = du = backward()[0]
    elif op == "gru":
        forward = lambda: cpp_cpu.gru_forward(x, kernel, bias[0], U, bias[1], h0, None, None)  # noqa: E731
        hs, gates, uh = forward()
        backward = lambda **kw: cpp_cpu.gru_backward(dhs, U, bias[1], h0, hs, gates, uh, None,  # noqa: E731
                                                     None, kernel=kernel, **kw)
        dz, _, du, _, _ = backward()
    else:
        forward = lambda: cpp_cpu.simple_rnn_forward(x, kernel, bias, U, h0, None, None)  # noqa: E731
        hs, gates, uh = forward(), None, None
        backward = lambda **kw: cpp_cpu.simple_rnn_backward(dhs, U, h0, hs, None, None,  # noqa: E731
                                                            kernel=kernel, **kw)
        dz = du = backward()[0]
    # As the step runs it (engine/_recurrent.py): SimpleRNN's and GRU's C++ backwards sum the
    # weight gradients in their loops while the weights_in_loop choice is on.
    in_loop = op != "lstm" and cpp_cpu.weights_in_loop()
    if in_loop:
        backward = functools.partial(backward, x=x)
    rows = T * B
    layer = SimpleNamespace(op=op, x=x, go_backwards=False, dropout_mask=None, hs=hs, h0=h0,
                            reset_after=True, gates=gates, uh=uh)
    parts = {
        "forward": time_ms(forward, args.repeat),
        "backward": time_ms(backward, args.repeat),
        "weights": time_ms(lambda: _recurrent._weight_grads(layer, dz, du, True, True), args.repeat),
    }
    with backends.use_backend("cpp"):
        step = ours(op, (B, T, Fe, H), np.random.default_rng(0))[0]  # what `seqfuse bench` times
        parts["step"] = time_ms(step, args.repeat)
    # GEMM flops: forward x·W and h·U; backward dz·Uᵀ and dz·Wᵀ; weights xᵀ·dz and hᵀ·dz.
    gflop = {part: 2 * rows * (Fe + H) * G * H for part in ("forward", "backward", "weights")}
    gflop["step"] = sum(gflop.values())
    if in_loop:
        gflop["backward"] += gflop["weights"]
    print(f"{op} (B,T,F,H) = {(B, T, Fe, H)}, float32, cpp, median of {args.repeat}"
          + (f"; {args.toggle} unset | {args.toggle}=1" if args.toggle else "")
          + (f"; {args.choice.replace(',', ' | ')}" if args.choice else "")
          + (f"; engine._C | {args.against}" if args.against else "")
          + ("; backward with the weight gradients summed in its loop, as the step runs it "
             "(weights: the pass after the loop, not counted in step - parts)" if in_loop else ""))
    count = 2 if ways else 1
    times = {name: ms if ways else (ms,) for name, ms in parts.items()}
    for name, ms in times.items():
        cells = "  | ".join(f"{t:9.2f} ms  {gflop[name] / t / 1e6:6.0f} GFLOP/s" for t in ms)
        print(f"  {name:<12}{cells}" + (f"  ({gflop['step'] / 1e9:.2f} GFLOP)" if name == "step" else ""))
    counted = [name for name in times if name != "step" and not (in_loop and name == "weights")]
    rest = [times["step"][w] - sum(times[name][w] for name in counted) for w in range(count)]

    print(f"  {'step - parts':<12}" + "  | ".join(f"{t:9.2f} ms" for t in rest))


if __name__ == "__main__":
    main()
