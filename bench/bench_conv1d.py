"""pytest-benchmark: F.conv1d float32 per CPU backend, beside torch.nn.functional.conv1d.

Forward+backward ("train": x, kernel and bias gradients) and forward only under no_grad
("infer"), "valid" padding, sizes (B, L, C, O, K) from issue 3.
Run: PYTHONPATH=. python -m pytest bench/bench_conv1d.py -p no:cacheprovider --benchmark-only
"""
import numpy as np
import pytest

import engine as en
import engine.functional as F
from engine.benchmark import SIZES

CPU = [n for n in en.backends.available() if en.backends.get(n).DEVICE == "cpu" and n != "reference"]


def _arrays(size):
    B, L, C, O, K = size
    rng = np.random.default_rng(0)
    return [(rng.standard_normal(shape) * scale).astype(np.float32)
            for shape, scale in (((B, L, C), 1.0), ((K, C, O), 0.1), ((O,), 0.1))]


@pytest.mark.parametrize("size", SIZES["conv1d"], ids=str)
@pytest.mark.parametrize("backend", CPU)
def test_conv1d_train(benchmark, backend, size):
    tensors = [en.Tensor(a, requires_grad=True) for a in _arrays(size)]

    def step():
        for t in tensors:
            t.grad = None
        with en.use_backend(backend):
            F.conv1d(*tensors).sum().backward()

    benchmark(step)
    assert all(t.grad is not None for t in tensors)


@pytest.mark.parametrize("size", SIZES["conv1d"], ids=str)
@pytest.mark.parametrize("backend", CPU)
def test_conv1d_infer(benchmark, backend, size):
    arrays = _arrays(size)

    def step():
        with en.use_backend(backend), en.no_grad():
            return F.conv1d(*arrays)

    assert benchmark(step).shape == (size[0], size[1] - size[4] + 1, size[3])


def _torch_tensors(size):
    torch = pytest.importorskip("torch")
    x, kernel, bias = _arrays(size)
    # torch is channels-first: x (B,C,L), weight (O,C,K); the layout change is not timed.
    return torch, [torch.tensor(a, requires_grad=True) for a in
                   (x.transpose(0, 2, 1).copy(), kernel.transpose(2, 1, 0).copy(), bias)]


@pytest.mark.parametrize("size", SIZES["conv1d"], ids=str)
def test_torch_conv1d_train(benchmark, size):
    torch, tensors = _torch_tensors(size)

    def step():
        for t in tensors:
            t.grad = None
        torch.nn.functional.conv1d(*tensors).sum().backward()

    benchmark(step)
    assert all(t.grad is not None for t in tensors)


@pytest.mark.parametrize("size", SIZES["conv1d"], ids=str)
def test_torch_conv1d_infer(benchmark, size):
    torch, tensors = _torch_tensors(size)

    def step():
        with torch.no_grad():
            return torch.nn.functional.conv1d(*tensors)

    assert tuple(benchmark(step).shape) == (size[0], size[3], size[1] - size[4] + 1)
