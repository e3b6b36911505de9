"""The pytest-benchmark suite every bench_<op>.py instantiates: forward+backward ("train") and
forward-only under no_grad ("infer"), float32, on every available CPU backend and torch CPU
(when importable), at issue 3's sizes (engine.benchmark.SIZES). The computations are the ones
`seqfuse bench` times, so both report the same thing.

    python -m pytest bench/bench_lstm.py --benchmark-only [-m "not slow"]
"""
from __future__ import annotations

import numpy as np
import pytest

from engine import backends
from engine.benchmark import SIZES, ours, theirs

ENGINES = [n for n in backends.available() if backends.get(n).DEVICE == "cpu"] + ["torch"]


def make_tests(op):
    """(test_train, test_infer) for op; sizes after the second are marked slow."""
    sizes = [pytest.param(s, id=str(s), marks=[pytest.mark.slow] if i >= 2 else [])
             for i, s in enumerate(SIZES[op])]

    def run(benchmark, engine, size, mode):
        benchmark.group = f"{op} {mode} {size}"
        rng = np.random.default_rng(0)
        if engine == "torch":
            pytest.importorskip("torch")
            pair = theirs(op, size, rng)
            step = pair[mode == "infer"]
        else:
            with backends.use_backend(engine):
                pair = ours(op, size, rng)

            def step():
                with backends.use_backend(engine):
                    pair[mode == "infer"]()
        benchmark.pedantic(step, rounds=5, warmup_rounds=1)

    @pytest.mark.parametrize("size", sizes)
    @pytest.mark.parametrize("engine", ENGINES)
    def test_train(benchmark, engine, size):
        run(benchmark, engine, size, "train")

    @pytest.mark.parametrize("size", sizes)
    @pytest.mark.parametrize("engine", ENGINES)
    def test_infer(benchmark, engine, size):
        run(benchmark, engine, size, "infer")

    return test_train, test_infer
