"""`seqfuse bench`: our kernels beside PyTorch CPU, in one process, interleaved.

For each op and size: float32, forward+backward ("train") and forward under no_grad
("infer"); every contender is timed once per round, rounds repeat `--repeat` times (≥5),
and the median is reported with the ratio torch/ours (> 1 means we are faster).
Before a contender runs the process sleeps SETTLE_S, so the worker threads the other library
leaves spinning (OpenBLAS, OpenMP) have parked; without it each contender is timed while the
other's threads still hold the two cores. Then untimed calls (≥ WARM_CALLS, ≥ WARM_S) bring
the cores back from idle, and the next call is timed: steady state, as in consecutive
training steps.
PyTorch is optional (the `compat` extra); without it only our times are printed.
"""
from __future__ import annotations

import statistics
import time

import numpy as np

from . import backends, functional as F
from .tensor import Tensor, no_grad
from .utils import terminal_progress

SIZES = {
    "lstm": [(32, 100, 32, 32), (64, 100, 64, 128), (128, 200, 128, 256)],
    "gru": [(32, 100, 32, 32), (64, 100, 64, 128), (128, 200, 128, 256)],
    "simple_rnn": [(32, 100, 32, 32), (64, 100, 64, 128), (128, 200, 128, 256)],
    "conv1d": [(32, 500, 32, 32, 7), (64, 1000, 128, 128, 5)],
    "embedding": [(10_000, 128, 64, 500, False), (100_000, 300, 256, 200, True)],
}
_GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}
SETTLE_S = 0.2
WARM_CALLS, WARM_S = 2, 0.05


def ours(op, size, rng):
    """(train, infer) closures running our op on the current backend."""
    if op in _GATES:
        B, T, Fe, H = size
        G = _GATES[op]
        arrays = [rng.standard_normal((B, T, Fe)), rng.standard_normal((Fe, G * H)) * 0.1,
                  rng.standard_normal((H, G * H)) * 0.1,
                  rng.standard_normal((2, G * H) if op == "gru" else (G * H,)) * 0.1]
        call = getattr(F, op)
        first = lambda *t: call(*t)[0]  # noqa: E731
    elif op == "conv1d":
        B, L, C, O, K = size
        arrays = [rng.standard_normal((B, L, C)), rng.standard_normal((K, C, O)) * 0.1,
                  rng.standard_normal(O) * 0.1]
        first = lambda x, k, b: F.conv1d(x, k, b)  # noqa: E731
    else:
        V, D, B, T, sparse = size
        ids = rng.integers(0, V, (B, T))
        table = Tensor(rng.standard_normal((V, D)).astype(np.float32), requires_grad=True)

        def train():
            table.grad = None
            F.embedding(ids, table, sparse=sparse).sum().backward()

        def infer():
            with no_grad():
                F.embedding(ids, table)
        return train, infer
    tensors = [Tensor(a.astype(np.float32), requires_grad=True) for a in arrays]

    def train():
        for t in tensors:
            t.grad = None
        first(*tensors).sum().backward()

    def infer():
        with no_grad():
            first(*tensors)
    return train, infer


def theirs(op, size, rng):
    """(train, infer) closures for the same computation in PyTorch, or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    if op in _GATES:
        B, T, Fe, H = size
        module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "simple_rnn": torch.nn.RNN}[op](
            Fe, H, batch_first=True)
        x = torch.tensor(rng.standard_normal((B, T, Fe)), dtype=torch.float32, requires_grad=True)
        forward = lambda: module(x)[0]  # noqa: E731
        params = [x, *module.parameters()]
    elif op == "conv1d":
        B, L, C, O, K = size
        x = torch.tensor(rng.standard_normal((B, C, L)), dtype=torch.float32, requires_grad=True)
        w = torch.tensor(rng.standard_normal((O, C, K)) * 0.1, dtype=torch.float32, requires_grad=True)
        b = torch.zeros(O, requires_grad=True)
        forward = lambda: torch.nn.functional.conv1d(x, w, b)  # noqa: E731
        params = [x, w, b]
    else:
        V, D, B, T, sparse = size
        module = torch.nn.Embedding(V, D, sparse=sparse)
        ids = torch.tensor(rng.integers(0, V, (B, T)))
        forward = lambda: module(ids)  # noqa: E731
        params = list(module.parameters())

    def train():
        for p in params:
            p.grad = None
        forward().sum().backward()

    def infer():
        with torch.no_grad():
            forward()
    return train, infer


def _median_ms(fn_by_name, repeat):
    """Interleaved rounds: in each round every contender is timed once, in steady state.

    Before its timed call a contender gets the settle pause (the other library's threads
    park) and then warms up with untimed calls of its own, at least WARM_CALLS and WARM_S:
    on the 2-vCPU VM the first one or two calls after an idle pause run both libraries'
    two-thread loops several ms slower (the idle vCPU is slow to come back), which is not
    what consecutive training steps see.
    """
    samples = {name: [] for name in fn_by_name}
    for _ in range(repeat):
        for name, fn in fn_by_name.items():
            time.sleep(SETTLE_S)
            start, calls = time.perf_counter(), 0
            while calls < WARM_CALLS or time.perf_counter() - start < WARM_S:
                fn()
                calls += 1
            start = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(s) for name, s in samples.items()}


def run(ops, names, repeat=5, quick=False, print_fn=print, markdown=False):
    """Time every op × size × mode; returns rows (op, size, mode, contender, ms, torch/ours)."""
    rows = []
    sizes = {op: SIZES[op][:1] if quick else SIZES[op] for op in ops}
    progress = terminal_progress(2 * sum(map(len, sizes.values())), unit_name="row")   # stderr, terminal only
    print_fn = progress.printer(print_fn)
    header = ("op", "size", "mode", "backend", "ms", "torch ms", "torch/ours")
    if markdown:
        print_fn("| " + " | ".join(header) + " |")
        print_fn("|" + "---|" * len(header))
    else:
        print_fn(f"{header[0]:<11}{header[1]:<26}{header[2]:<7}{header[3]:<10}{header[4]:>9}"
                 f"{header[5]:>10}{header[6]:>12}")
    for op in ops:
        for size in sizes[op]:
            rng = np.random.default_rng(0)
            contenders = {}
            for name in names:
                with backends.use_backend(name):
                    contenders[name] = ours(op, size, rng)
            torch_pair = theirs(op, size, rng)
            for mode, index in (("train", 0), ("infer", 1)):
                progress.update(len(rows) // len(names), [("timing", f"{op} {size} {mode}")])
                fns = {}
                for name, pair in contenders.items():
                    fns[name] = _in_backend(name, pair[index])
                if torch_pair is not None:
                    fns["torch"] = torch_pair[index]
                times = _median_ms(fns, repeat)
                for name in names:
                    ratio = times["torch"] / times[name] if "torch" in times else float("nan")
                    row = (op, str(size), mode, name, times[name], times.get("torch", float("nan")), ratio)
                    rows.append(row)
                    if markdown:
                        print_fn(f"| {op} | {size} | {mode} | {name} | {times[name]:.2f} | "
                                 f"{row[5]:.2f} | {ratio:.2f} |")
                    else:
                        print_fn(f"{op:<11}{str(size):<26}{mode:<7}{name:<10}{times[name]:>9.2f}"
                                 f"{row[5]:>10.2f}{ratio:>12.2f}")
    progress.clear()
    return rows


def _in_backend(name, fn):
    def call():
        with backends.use_backend(name):
            fn()
    return call


def parse_ops(text, known) -> list[str]:
    """--ops "a,b" -> ["a", "b"], every name in `known` (all of them when text is None)."""
    if text is None:
        return list(known)
    ops = [op.strip() for op in text.split(",") if op.strip()]
    unknown = [op for op in ops if op not in known]
    if unknown or not ops:
        raise ValueError(f"--ops: unknown {unknown or text!r}; expected some of {sorted(known)}")
    return ops


def main(args) -> int:
    ops = parse_ops(args.ops, SIZES)
    if args.repeat < 1:
        raise ValueError(f"--repeat must be >= 1, got {args.repeat}")
    for option in ("json", "max_seconds"):
        if getattr(args, option, None) is not None:
            raise ValueError(f"--{option.replace('_', '-')} is for --device cuda only")
    names = args.backends.split(",") if args.backends else \
        [n for n in backends.available() if backends.get(n).DEVICE == "cpu" and n != "reference"]
    for name in names:
        backends.get(name)
    run(ops, names, args.repeat, args.quick, markdown=args.markdown)
    return 0
