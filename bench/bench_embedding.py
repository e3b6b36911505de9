"""pytest-benchmark: embedding forward+backward per CPU backend, beside torch.nn.Embedding.

Run: pytest bench/bench_embedding.py --benchmark-only   (sizes from issue 3)
"""
import numpy as np
import pytest

import engine as en
import engine.functional as F
from engine.benchmark import SIZES

CPU = [n for n in en.backends.available() if en.backends.get(n).DEVICE == "cpu" and n != "reference"]


@pytest.mark.parametrize("size", SIZES["embedding"], ids=str)
@pytest.mark.parametrize("backend", CPU)
def test_embedding_train(benchmark, backend, size):
    V, D, B, T, sparse = size
    rng = np.random.default_rng(0)
    ids = rng.integers(0, V, (B, T))
    table = en.Tensor(rng.standard_normal((V, D)).astype(np.float32), requires_grad=True)

    def step():
        table.grad = None
        with en.use_backend(backend):
            F.embedding(ids, table, sparse=sparse).sum().backward()

    benchmark(step)
    assert table.grad is not None


@pytest.mark.parametrize("size", SIZES["embedding"], ids=str)
def test_torch_embedding_train(benchmark, size):
    torch = pytest.importorskip("torch")
    V, D, B, T, sparse = size
    module = torch.nn.Embedding(V, D, sparse=sparse)
    ids = torch.tensor(np.random.default_rng(0).integers(0, V, (B, T)))

    def step():
        module.weight.grad = None
        module(ids).sum().backward()

    benchmark(step)
    assert module.weight.grad is not None
