"""conv1d, max_pool1d, the global poolings and embedding on the GPU (the cupy backend)
against the NumPy reference on the CPU, forward and every gradient.

Each failure names the op, its options, the dtype and the output or gradient that differs.
Tolerances (relative to the largest reference magnitude): float32 1e-5 forward and 1e-4
gradients (sums of C·K products forward, of B·L_out rows for dkernel), float64 1e-10 (only
the summation order differs). Max pooling moves values and adds gradients in the reference's
order, so it must match exactly.
"""
import numpy as np
import pytest

import engine as en
import engine.functional as F
from engine import backends
from engine.backends import _cuda_conv
from engine.testing import backend_errors

pytestmark = pytest.mark.gpu

if "cupy" not in en.backends.available():
    pytest.skip(f"no GPU backend: {en.backends.why_unavailable().get('cupy', 'unknown')}",
                allow_module_level=True)

cupy = pytest.importorskip("cupy")

FORWARD_TOL = {np.float32: 1e-5, np.float64: 1e-10}
GRAD_TOL = {np.float32: 1e-4, np.float64: 1e-10}


def assert_matches_reference(fn, arrays, requires_grad, dtype, what):
    """fn on the GPU vs the reference on the CPU: every output and gradient within tolerance."""
    errors = backend_errors(fn, arrays, requires_grad, names=["cupy"])["cupy"]
    bad = {key: err for key, err in errors.items()
           if not err <= (FORWARD_TOL if key.startswith("forward") else GRAD_TOL)[dtype]}
    assert not bad, f"{what} {np.dtype(dtype).name}: relative errors beyond tolerance {bad}"


def conv_inputs(B, L, C, O, K, dtype, seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for shape in ((B, L, C), (K, C, O), (O,))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", [1, 3, 5])
@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
@pytest.mark.parametrize("dilation_rate", [1, 2])
@pytest.mark.parametrize("strides", [1, 2, 3])
def test_conv1d(strides, dilation_rate, padding, K, dtype):
    x, kernel, bias = conv_inputs(3, 23, 5, 6, K, dtype, seed=strides * 100 + dilation_rate * 10 + K)
    options = dict(strides=strides, padding=padding, dilation_rate=dilation_rate)
    what = f"conv1d K={K} {options}"
    assert_matches_reference(lambda a, w, b: F.conv1d(a, w, b, **options), [x, kernel, bias],
                             [True, True, True], dtype, what)
    assert_matches_reference(lambda a, w: F.conv1d(a, w, None, **options), [x, kernel],
                             [True, True], dtype, what + " no bias")


def test_conv1d_bench_width_float32():
    x, kernel, bias = conv_inputs(4, 1000, 128, 128, 5, np.float32, seed=7)
    assert_matches_reference(lambda a, w, b: F.conv1d(a, w, b, padding="same"), [x, kernel, bias],
                             [True, True, True], np.float32, "conv1d C=O=128 L=1000 K=5 same")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv1d_in_chunks(monkeypatch, dtype):
    # 7 output rows of cols per chunk: chunk edges fall inside batch rows.
    x, kernel, bias = conv_inputs(3, 20, 4, 5, 3, dtype, seed=3)
    monkeypatch.setattr(_cuda_conv, "COLS_BYTES", 7 * 3 * 4 * np.dtype(dtype).itemsize)
    assert len(_cuda_conv.chunks(3 * 16, 3 * 4 * np.dtype(dtype).itemsize)) == 7
    assert_matches_reference(lambda a, w, b: F.conv1d(a, w, b, strides=1, dilation_rate=2),
                             [x, kernel, bias], [True, True, True], dtype, "conv1d chunked")


def test_conv1d_backward_is_deterministic():
    x, kernel, _ = conv_inputs(4, 50, 16, 8, 3, np.float32, seed=4)
    grad = np.random.default_rng(5).standard_normal((4, 24, 8)).astype(np.float32)
    module = backends.get("cupy")
    first, second = (module.conv1d_backward(cupy.asarray(grad), cupy.asarray(x), cupy.asarray(kernel), 2, 1)
                     for _ in range(2))
    for name, a, b in zip(("dx", "dkernel", "dbias"), first, second):
        np.testing.assert_array_equal(cupy.asnumpy(a), cupy.asnumpy(b), err_msg=name)


def test_conv1d_too_short_input_raises_as_reference():
    module = backends.get("cupy")
    with pytest.raises(ValueError, match="shorter than the window span"):
        module.conv1d_forward(cupy.zeros((1, 2, 1)), cupy.zeros((3, 1, 1)), None, 1, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool1d_ties_and_nan_follow_argmax(dtype):
    module = backends.get("cupy")
    x = np.array([[[1.0], [1.0], [np.nan], [2.0], [0.0], [-np.inf]]], dtype)
    out, argmax = module.max_pool1d_forward(cupy.asarray(x), 2, 2)
    np.testing.assert_array_equal(cupy.asnumpy(argmax).ravel(), [0, 2, 4])  # first of a tie; NaN wins
    out = cupy.asnumpy(out)
    assert out.dtype == dtype and np.isnan(out[0, 1, 0]) and out[0, 2, 0] == 0.0
    dx = module.max_pool1d_backward(cupy.ones(out.shape, dtype), argmax, 6)
    np.testing.assert_array_equal(cupy.asnumpy(dx).ravel(), [1, 0, 1, 0, 1, 0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool_size,strides", [(2, 2), (3, 1), (2, 3), (5, 2), (4, 1)])
def test_max_pool1d_matches_reference_exactly(dtype, pool_size, strides):
    # Small integers: many ties; NaN and -inf columns; overlapping windows (s < P) add.
    rng = np.random.default_rng(pool_size * 10 + strides)
    x = rng.integers(-3, 3, (4, 31, 7)).astype(dtype)
    x[0, 5, 1] = x[2, 17, 4] = np.nan
    x[3, :, 6] = -np.inf
    module, ref = backends.get("cupy"), backends.get("reference")
    out, argmax = module.max_pool1d_forward(cupy.asarray(x), pool_size, strides)
    ref_out, ref_argmax = ref.max_pool1d_forward(x, pool_size, strides)
    what = f"max_pool1d P={pool_size} s={strides} {np.dtype(dtype).name}"
    np.testing.assert_array_equal(cupy.asnumpy(argmax), ref_argmax, err_msg=what + " argmax")
    np.testing.assert_array_equal(cupy.asnumpy(out), ref_out, err_msg=what + " out")
    grad = rng.standard_normal(ref_out.shape).astype(dtype)
    dx = module.max_pool1d_backward(cupy.asarray(grad), argmax, x.shape[1])
    np.testing.assert_array_equal(cupy.asnumpy(dx), ref.max_pool1d_backward(grad, ref_argmax, x.shape[1]),
                                  err_msg=what + " dx")


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_max_pool1d_through_functional(padding):
    x = (np.random.default_rng(0).permutation(3 * 13 * 5).reshape(3, 13, 5) * 0.01).astype(np.float32)
    assert_matches_reference(lambda a: F.max_pool1d(a, 3, 2, padding=padding), [x], [True],
                             np.float32, f"max_pool1d 3/2 {padding}")


def test_max_pool1d_backward_any_argmax_order():
    # Not a forward's argmax (rows revisited after others): the one-thread-per-column kernel.
    argmax = np.array([[[2, 0], [2, 1], [0, 1], [3, 5], [0, 5], [2, 0], [6, 7]]], np.int64)
    grad = np.arange(1.0, 15.0).reshape(1, 7, 2)
    dx = backends.get("cupy").max_pool1d_backward(cupy.asarray(grad), cupy.asarray(argmax), 8)
    expected = backends.get("reference").max_pool1d_backward(grad, argmax, 8)
    np.testing.assert_array_equal(cupy.asnumpy(dx), expected)


def test_max_pool1d_argmax_out_of_range_raises_before_writing():
    module = backends.get("cupy")
    with pytest.raises(IndexError, match=r"argmax must lie in \[0, 3\), got 5"):
        module.max_pool1d_backward(cupy.ones((1, 1, 1)), cupy.asarray([[[5]]]), 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_poolings(dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 11, 4)).astype(dtype)
    mask = rng.random((3, 11)) > 0.3
    mask[:, 0] = True
    assert_matches_reference(F.global_max_pool1d, [x], [True], dtype, "global_max_pool1d")
    assert_matches_reference(F.global_avg_pool1d, [x], [True], dtype, "global_avg_pool1d")
    assert_matches_reference(lambda a: F.global_avg_pool1d(a, mask=mask), [x], [True], dtype,
                             "global_avg_pool1d masked")


def on_device_of(ids, table):
    """ids where `table` is: the reference gets NumPy ids, the GPU cupy ids."""
    return ids if table.device == "cpu" else cupy.asarray(ids)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sparse", [False, True])
def test_embedding_many_repeated_ids(dtype, sparse):
    # 3,200 ids into 5 rows: atomicAdd contention on every row.
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 5, (64, 50))
    table = rng.standard_normal((5, 16)).astype(dtype)
    assert_matches_reference(lambda t: F.embedding(on_device_of(ids, t), t, sparse=sparse), [table], [True],
                             dtype, f"embedding sparse={sparse}")


@pytest.mark.parametrize("sparse", [False, True])
def test_embedding_loses_no_update(sparse):
    # Each row's gradient is the count of its ids: small integers, exact in float32.
    ids = np.random.default_rng(3).integers(0, 7, (128, 200))
    table = en.Tensor(cupy.zeros((7, 33), np.float32), requires_grad=True)
    F.embedding(cupy.asarray(ids), table, sparse=sparse).sum().backward()
    grad = table.grad.to_dense() if sparse else table.grad
    expected = np.repeat(np.bincount(ids.ravel(), minlength=7)[:, None], 33, axis=1)
    np.testing.assert_array_equal(cupy.asnumpy(grad), expected)


def test_embedding_ids_out_of_range_raise_and_leave_the_table():
    module = backends.get("cupy")
    original = np.arange(20.0).reshape(10, 2)
    table = en.Tensor(cupy.asarray(original), requires_grad=True)
    for bad in (10, -1, 2**40):
        ids = cupy.asarray([[0, 1], [bad, 2]])
        with pytest.raises(IndexError, match=str(bad)):
            F.embedding(ids, table)
        with pytest.raises(IndexError, match=str(bad)):
            module.embedding_backward(ids, cupy.ones((2, 2, 2)), 10)
        with pytest.raises(IndexError, match=str(bad)):
            module.embedding_coalesce(ids.reshape(-1), cupy.ones((4, 2)), 10)
    np.testing.assert_array_equal(table.numpy(), original)
    assert table.grad is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ids", [[0, 9, 0, 9, 4, 0], [9], [3, 3, 3], list(range(10))[::-1], []],
                         ids=["ends repeated", "last", "one id thrice", "reversed", "empty"])
def test_embedding_coalesce_matches_reference(dtype, ids):
    ids = np.array(ids, np.int64)
    values = np.random.default_rng(ids.size).standard_normal((ids.size, 4)).astype(dtype)
    rows, summed = backends.get("cupy").embedding_coalesce(cupy.asarray(ids), cupy.asarray(values), 10)
    ref_rows, ref_summed = backends.get("reference").embedding_coalesce(ids, values, 10)
    np.testing.assert_array_equal(cupy.asnumpy(rows), ref_rows)
    # Each id's rows are added in the order they occur, as the reference: exact.
    np.testing.assert_array_equal(cupy.asnumpy(summed), ref_summed)


@pytest.mark.parametrize("layout", ["broadcast", "reversed", "transposed"])
def test_embedding_reads_strided_grads(layout):
    rng = np.random.default_rng(4)
    ids = rng.integers(0, 12, 30)
    base = cupy.asarray(rng.standard_normal((30, 7)))
    grad = {"broadcast": cupy.broadcast_to(base[:1], base.shape), "reversed": base[::-1],
            "transposed": cupy.ascontiguousarray(base.T).T}[layout]
    module, ref = backends.get("cupy"), backends.get("reference")
    host = cupy.asnumpy(grad)
    dense = module.embedding_backward(cupy.asarray(ids), grad, 12)
    np.testing.assert_allclose(cupy.asnumpy(dense), ref.embedding_backward(ids, host, 12),
                               rtol=1e-12, atol=1e-12, err_msg=layout)
    rows, summed = module.embedding_coalesce(cupy.asarray(ids), grad, 12)
    ref_rows, ref_summed = ref.embedding_coalesce(ids, host, 12)
    np.testing.assert_array_equal(cupy.asnumpy(rows), ref_rows)
    np.testing.assert_array_equal(cupy.asnumpy(summed), ref_summed, err_msg=layout)
