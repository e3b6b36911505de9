"""GRU speed (reset_after=True, the form torch computes): forward+backward and forward-only
through engine.functional, float32, on every
available CPU backend and torch CPU beside it (when importable), at issue 3's sizes.

    python -m pytest bench/bench_gru.py --benchmark-only [-m "not slow"]

Each case runs 5 timed rounds after a warm-up round (which also pays any Numba compile).
Compare rows within one group (one size and mode); the biggest size is marked slow.
"""
from __future__ import annotations

import numpy as np
import pytest

import engine as en
import engine.functional as F
from engine import backends
from engine.benchmark import SIZES as BENCH_SIZES

OP, GATES = "gru", 3
# (B, T, F, H) from issue 3; the biggest is marked slow so `-m "not slow"` skips it.
SIZES = [pytest.param(s, id="B%d-T%d-F%d-H%d" % s, marks=[pytest.mark.slow] if i == 2 else [])
         for i, s in enumerate(BENCH_SIZES[OP])]
ENGINES = [n for n in backends.available() if backends.get(n).DEVICE == "cpu"
           and hasattr(backends.get(n), f"{OP}_forward")] + ["torch"]


def _ours(backend, size, train):
    B, T, F_, H = size
    rng = np.random.default_rng(0)
    params = [rng.standard_normal((B, T, F_)), rng.uniform(-0.2, 0.2, (F_, GATES * H)),
              rng.uniform(-0.2, 0.2, (H, GATES * H)), rng.uniform(-0.2, 0.2, (2, GATES * H))]
    x, kernel, recurrent, bias = (en.Tensor(a.astype(np.float32), requires_grad=train) for a in params)

    def step():
        with en.use_backend(backend):
            if not train:
                with en.no_grad():
                    return F.gru(x, kernel, recurrent, bias)
            for t in (x, kernel, recurrent, bias):
                t.grad = None
            F.gru(x, kernel, recurrent, bias)[0].sum().backward()
    return step


def _torch(size, train):
    torch = pytest.importorskip("torch")
    B, T, F_, H = size
    module = torch.nn.GRU(F_, H, batch_first=True)
    x = torch.randn(B, T, F_, requires_grad=train)

    def step():
        if not train:
            with torch.no_grad():
                return module(x)
        module.zero_grad(set_to_none=True)
        x.grad = None
        module(x)[0].sum().backward()
    return step


def _run(benchmark, engine, size, train):
    benchmark.group = f"{OP} {'fwd+bwd' if train else 'fwd'} {size}"
    step = _torch(size, train) if engine == "torch" else _ours(engine, size, train)
    benchmark.pedantic(step, rounds=5, warmup_rounds=1)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("engine", ENGINES)
def test_forward_backward(benchmark, engine, size):
    _run(benchmark, engine, size, train=True)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("engine", ENGINES)
def test_forward(benchmark, engine, size):
    _run(benchmark, engine, size, train=False)
