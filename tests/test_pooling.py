"""F.max_pool1d, F.global_max_pool1d, F.global_avg_pool1d: reference vs central differences,
every backend × option × dtype vs the reference, edge cases, bad input, torch/Keras oracles."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine as en
import engine.functional as F
from engine import backends
from engine.testing import numerical_gradient

# The CPU backends (the GPU one has its own tests: tests/test_gpu_conv_embedding.py).
CPU = [n for n in backends.available() if backends.get(n).DEVICE == "cpu"]
FAST = [name for name in CPU if name != "reference"]
DTYPES = (np.float32, np.float64)
# Max pooling copies values and routes gradients, so every backend must agree exactly;
# the averages differ only by summation order (float32 ~1e-6, float64 ~1e-15 relative).
AVG_TOL = {np.float32: 1e-5, np.float64: 1e-12}
# (pool_size, strides, padding): overlapping (s < P), gapped (s > P) and the default s = P.
OPTIONS = [(2, None, "valid"), (3, 1, "valid"), (3, 2, "same"), (2, 3, "valid"), (2, 3, "same"),
           (4, 1, "same"), (1, 1, "valid"), (5, 2, "same")]


def distinct(shape, dtype=np.float64, seed=0):
    """Values at least 0.01 apart, so each window has one clear maximum (no ties)."""
    rng = np.random.default_rng(seed)
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.01 - 1.0).astype(dtype)


def run_max_pool(backend, x, **options):
    xt = en.Tensor(x, requires_grad=True)
    with en.use_backend(backend):
        out = F.max_pool1d(xt, **options)
        weights = np.random.default_rng(1).standard_normal(out.shape).astype(x.dtype)
        (out * weights).sum().backward()
    return out.numpy(), xt.grad


def naive_max_pool(x, pool_size, strides, padding):
    """One window at a time over the unpadded rows it covers (Keras's definition of "same")."""
    B, L, C = x.shape
    if padding == "same":
        length_out = -(-L // strides)
        left = max(0, (length_out - 1) * strides + pool_size - L) // 2
    else:
        length_out, left = (L - pool_size) // strides + 1, 0
    out = np.empty((B, length_out, C))
    for t in range(length_out):
        start = t * strides - left
        out[:, t] = x[:, max(start, 0):start + pool_size].max(axis=1)
    return out


@pytest.mark.parametrize("pool_size,strides,padding", OPTIONS)
def test_reference_max_pool_matches_naive_and_central_differences(pool_size, strides, padding):
    x = distinct((2, 9, 3))
    options = dict(pool_size=pool_size, strides=strides, padding=padding)
    out, dx = run_max_pool("reference", x, **options)
    np.testing.assert_array_equal(out, naive_max_pool(x, pool_size, strides or pool_size, padding))
    weights = np.random.default_rng(1).standard_normal(out.shape)

    def loss():
        with en.use_backend("reference"):
            return float((F.max_pool1d(x, **options).numpy() * weights).sum())

    # eps is far below the 0.01 gap between values, so no window changes its winner.
    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pool_size,strides,padding", OPTIONS)
def test_backend_max_pool_matches_reference(backend, dtype, pool_size, strides, padding):
    x = distinct((3, 13, 5), dtype, seed=pool_size)
    options = dict(pool_size=pool_size, strides=strides, padding=padding)
    (out, dx), (ref_out, ref_dx) = run_max_pool(backend, x, **options), run_max_pool("reference", x, **options)
    assert out.dtype == dtype and dx.dtype == dtype
    np.testing.assert_array_equal(out, ref_out)
    # Overlapping windows add gradients in a different order: float32 rounding only.
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-6 if dtype == np.float32 else 1e-14, atol=1e-7)


@pytest.mark.parametrize("backend", CPU)
def test_max_pool_ties_and_nan_follow_argmax(backend):
    module = backends.get(backend)
    x = np.array([[[1.0], [1.0], [np.nan], [2.0], [0.0], [-np.inf]]])
    out, argmax = module.max_pool1d_forward(x, 2, 2)
    np.testing.assert_array_equal(argmax.ravel(), [0, 2, 4])  # first of a tie; NaN wins
    assert np.isnan(out[0, 1, 0]) and out[0, 2, 0] == 0.0
    dx = module.max_pool1d_backward(np.ones_like(out), argmax, 6)
    np.testing.assert_array_equal(dx.ravel(), [1, 0, 1, 0, 1, 0])


@pytest.mark.parametrize("backend", CPU)
def test_max_pool_kernel_table_rejects_bad_input(backend):
    module = backends.get(backend)
    with pytest.raises(ValueError, match="empty"):
        module.max_pool1d_forward(np.zeros((1, 2, 1)), 3, 1)
    with pytest.raises(IndexError):  # numpy's own message in the reference, ours elsewhere
        module.max_pool1d_backward(np.ones((1, 1, 1)), np.array([[[5]]]), 3)
    with pytest.raises(ValueError):
        module.max_pool1d_backward(np.ones((1, 2, 1)), np.zeros((1, 1, 1), np.int64), 3)


@pytest.mark.parametrize("args,kwargs,error,match", [
    ((np.zeros((1, 2, 1)),), {"pool_size": 3}, ValueError, "empty"),
    ((np.zeros((1, 0, 1)),), {"padding": "same"}, ValueError, "empty"),
    ((np.zeros((1, 4, 1)),), {"padding": "causal"}, ValueError, "padding"),
    ((np.zeros((1, 4, 1)),), {"pool_size": 0}, ValueError, "pool_size"),
    ((np.zeros((1, 4, 1)),), {"strides": -1}, ValueError, "strides"),
    ((np.zeros((4, 1)),), {}, ValueError, "3 dimensions"),
    ((np.zeros((1, 4, 1), np.int32),), {}, TypeError, "float"),
])
def test_max_pool_bad_input_is_a_clear_error(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        F.max_pool1d(*args, **kwargs)


@settings(max_examples=25, deadline=None)
@given(B=st.integers(1, 3), L=st.integers(1, 12), C=st.integers(1, 4), pool_size=st.integers(1, 4),
       strides=st.one_of(st.none(), st.integers(1, 4)), padding=st.sampled_from(["valid", "same"]),
       seed=st.integers(0, 2**16))
def test_hypothesis_max_pool_every_backend(B, L, C, pool_size, strides, padding, seed):
    options = dict(pool_size=pool_size, strides=strides, padding=padding)
    x = distinct((B, L, C), seed=seed)
    if padding == "valid" and L < pool_size:
        with pytest.raises(ValueError, match="empty"):
            F.max_pool1d(x, **options)
        return
    expected = run_max_pool("reference", x, **options)
    np.testing.assert_array_equal(expected[0], naive_max_pool(x, pool_size, strides or pool_size, padding))
    for backend in FAST:
        out, dx = run_max_pool(backend, x, **options)
        np.testing.assert_array_equal(out, expected[0])
        np.testing.assert_allclose(dx, expected[1], rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
def test_global_max_pool(dtype):
    x = distinct((2, 5, 3), dtype)
    xt = en.Tensor(x, requires_grad=True)
    out = F.global_max_pool1d(xt)
    np.testing.assert_array_equal(out.numpy(), x.max(axis=1))
    out.sum().backward()
    np.testing.assert_array_equal(xt.grad, (x == x.max(axis=1, keepdims=True)).astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_global_avg_pool_with_and_without_mask(dtype):
    x = distinct((3, 4, 2), dtype)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 1, 0, 1]], dtype=bool)
    xt = en.Tensor(x, requires_grad=True)
    out = F.global_avg_pool1d(xt, mask=mask)
    expected = (x * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out.numpy(), expected, rtol=AVG_TOL[dtype])
    out.sum().backward()
    np.testing.assert_allclose(xt.grad, np.broadcast_to(mask[:, :, None] / mask.sum(axis=1)[:, None, None],
                                                         x.shape), rtol=AVG_TOL[dtype])
    np.testing.assert_allclose(F.global_avg_pool1d(x).numpy(), x.mean(axis=1), rtol=AVG_TOL[dtype])


def test_global_avg_pool_fully_masked_row_is_nan_as_keras():
    x = distinct((2, 3, 2))
    xt = en.Tensor(x, requires_grad=True)
    out = F.global_avg_pool1d(xt, mask=np.array([[True, False, True], [False, False, False]]))
    assert np.isfinite(out.numpy()[0]).all() and np.isnan(out.numpy()[1]).all()
    out[0].sum().backward()
    np.testing.assert_array_equal(xt.grad[1], 0.0)  # no gradient leaks into a fully masked row


@pytest.mark.parametrize("call,match", [
    (lambda: F.global_avg_pool1d(np.zeros((2, 3, 1)), mask=np.ones((2, 4), bool)), "mask must have shape"),
    (lambda: F.global_avg_pool1d(np.zeros((2, 0, 1))), "at least one step"),
    (lambda: F.global_max_pool1d(np.zeros((2, 0, 1))), "at least one step"),
    (lambda: F.global_max_pool1d(np.zeros((2, 3))), "3 dimensions"),
])
def test_global_pool_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# External oracles (the compat extra); skipped cleanly when not installed.

@pytest.mark.parametrize("pool_size,strides", [(2, 2), (3, 1), (3, 2), (2, 3)])
def test_torch_max_pool1d_oracle(pool_size, strides):
    torch = pytest.importorskip("torch")
    x = distinct((2, 11, 3))
    out, dx = run_max_pool(en.get_backend(), x, pool_size=pool_size, strides=strides)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.max_pool1d(tx.permute(0, 2, 1), pool_size, strides).permute(0, 2, 1)
    (ty * torch.tensor(np.random.default_rng(1).standard_normal(out.shape))).sum().backward()
    np.testing.assert_array_equal(out, ty.detach().numpy())
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("L,pool_size,strides", [(10, 2, None), (11, 3, 2), (10, 4, 1), (9, 2, 3), (7, 5, 2)])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_keras_max_pooling1d_oracle(keras, L, pool_size, strides, padding):
    x = distinct((2, L, 3), np.float32)
    layer = keras.layers.MaxPooling1D(pool_size, strides=strides, padding=padding)
    expected = keras.ops.convert_to_numpy(layer(x))
    out, _ = run_max_pool(en.get_backend(), x, pool_size=pool_size, strides=strides, padding=padding)
    np.testing.assert_array_equal(out, expected)


def test_keras_global_pooling_oracle(keras):
    import torch
    x = distinct((3, 5, 4), np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 1, 0, 1]], dtype=bool)
    tx = torch.tensor(x, requires_grad=True)
    expected = keras.layers.GlobalAveragePooling1D()(tx, mask=torch.tensor(mask))
    expected.sum().backward()
    xt = en.Tensor(x, requires_grad=True)
    out = F.global_avg_pool1d(xt, mask=mask)
    out.sum().backward()
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=AVG_TOL[np.float32])
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), rtol=AVG_TOL[np.float32])
    np.testing.assert_array_equal(F.global_max_pool1d(x).numpy(),
                                  keras.ops.convert_to_numpy(keras.layers.GlobalMaxPooling1D()(x)))
