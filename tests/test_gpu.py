"""GPU checks: run where CuPy and a CUDA device are present, skipped cleanly elsewhere."""
import numpy as np
import pytest

import engine as en
import engine.functional as F

pytestmark = pytest.mark.gpu

if "cupy" not in en.backends.available():
    pytest.skip(f"no GPU backend: {en.backends.why_unavailable().get('cupy', 'unknown')}",
                allow_module_level=True)

cupy = pytest.importorskip("cupy")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sparse", [False, True])
def test_embedding_on_gpu_matches_reference(dtype, sparse):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50, (4, 9))
    ids[0, :3] = 7  # repeated ids accumulate
    table = rng.standard_normal((50, 6)).astype(dtype)
    weights = rng.standard_normal((4, 9, 6)).astype(dtype)
    gpu = en.Tensor(cupy.asarray(table), requires_grad=True)
    (F.embedding(cupy.asarray(ids), gpu, sparse=sparse) * en.Tensor(cupy.asarray(weights))).sum().backward()
    cpu = en.Tensor(table, requires_grad=True)
    with en.use_backend("reference"):
        (F.embedding(ids, cpu, sparse=sparse) * en.Tensor(weights)).sum().backward()
    grad = gpu.grad.to_dense() if sparse else gpu.grad
    np.testing.assert_allclose(cupy.asnumpy(grad), cpu.grad.to_dense() if sparse else cpu.grad,
                               rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_gpu_ids_out_of_range_raise_index_error():
    table = en.Tensor(cupy.zeros((5, 2), np.float32), requires_grad=True)
    with pytest.raises(IndexError, match="got 5"):
        F.embedding(cupy.asarray([[1, 5]]), table)


def test_tensor_moves_between_devices():
    x = en.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    y = x.to("cuda")
    assert y.device == "cuda" and x.device == "cpu"
    np.testing.assert_array_equal(y.to("cpu").numpy(), x.numpy())
