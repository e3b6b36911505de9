"""F.conv1d and the conv1d kernels: reference vs central differences and a naive loop, every
backend × option × dtype vs the reference, edge cases, bad input, and torch/Keras oracles."""
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
# float64: only summation order differs, ~1e-13 relative; 1e-10 leaves room for long sums.
# float32: forward sums of C·K products, ~1e-6 relative to the largest output; gradients sum
# over B·L_out rows, hence the looser 1e-4.
FORWARD_TOL = {np.float32: 1e-5, np.float64: 1e-10}
GRAD_TOL = {np.float32: 1e-4, np.float64: 1e-10}

# (strides, dilation_rate) pairs; stride and dilation together is allowed here as in PyTorch.
STEPS = [(1, 1), (2, 1), (1, 2), (3, 1), (2, 3)]
PADDINGS = ["valid", "same", "causal"]


def assert_close(actual, expected, tol, what=""):
    """Max error relative to the largest expected magnitude (robust where outputs cross 0)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(float(np.abs(expected).max(initial=0.0)), 1e-30)
    err = float(np.abs(actual.astype(np.float64) - expected).max(initial=0.0)) / scale
    assert err <= tol, f"{what}: relative error {err:.2e} > {tol:.0e}"


def naive_conv1d(x, kernel, strides, dilation_rate):
    """x: [B,L,C] already padded, kernel: [K,C,O]; one output row at a time."""
    B, L, C = x.shape
    K, _, O = kernel.shape
    length_out = (L - dilation_rate * (K - 1) - 1) // strides + 1
    out = np.zeros((B, length_out, O))
    for t in range(length_out):
        for k in range(K):
            out[:, t] += x[:, t * strides + k * dilation_rate] @ kernel[k]
    return out


def inputs(B, L, C, O, K, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((B, L, C)).astype(dtype), rng.standard_normal((K, C, O)).astype(dtype),
            rng.standard_normal(O).astype(dtype))


def run(backend, x, kernel, bias, **options):
    """Forward and every gradient of sum(conv1d(...) * R) through F on `backend`."""
    xt, kt, bt = (en.Tensor(a, requires_grad=True) for a in (x, kernel, bias))
    with en.use_backend(backend):
        out = F.conv1d(xt, kt, bt, **options)
        weights = np.random.default_rng(1).standard_normal(out.shape).astype(x.dtype)
        (out * weights).sum().backward()
    return out.numpy(), xt.grad, kt.grad, bt.grad


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("strides,dilation_rate", STEPS)
def test_reference_matches_central_differences(padding, strides, dilation_rate):
    x, kernel, bias = inputs(2, 9, 3, 2, 3)
    options = dict(strides=strides, padding=padding, dilation_rate=dilation_rate)
    out, dx, dkernel, dbias = run("reference", x, kernel, bias, **options)
    weights = np.random.default_rng(1).standard_normal(out.shape)

    def loss():
        with en.use_backend("reference"):
            return float((F.conv1d(x, kernel, bias, **options).numpy() * weights).sum())

    # The loss is linear in each argument, so central differences are exact up to rounding.
    for name, analytic, array in (("x", dx, x), ("kernel", dkernel, kernel), ("bias", dbias, bias)):
        assert_close(analytic, numerical_gradient(loss, array), 1e-8, name)


@pytest.mark.parametrize("strides,dilation_rate", STEPS)
def test_reference_forward_matches_naive_loop(strides, dilation_rate):
    x, kernel, _ = inputs(2, 12, 3, 4, 3)
    expected = naive_conv1d(x, kernel, strides, dilation_rate)
    assert_close(backends.get("reference").conv1d_forward(x, kernel, None, strides, dilation_rate), expected, 1e-12)


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("strides,dilation_rate", STEPS)
def test_backend_matches_reference(backend, dtype, padding, strides, dilation_rate):
    x, kernel, bias = inputs(3, 17, 5, 6, 3, dtype, seed=strides * 10 + dilation_rate)
    options = dict(strides=strides, padding=padding, dilation_rate=dilation_rate)
    got, expected = run(backend, x, kernel, bias, **options), run("reference", x, kernel, bias, **options)
    assert got[0].dtype == dtype and got[1].dtype == dtype
    for name, a, b in zip(("out", "dx", "dkernel", "dbias"), got, expected):
        assert_close(a, b, (FORWARD_TOL if name == "out" else GRAD_TOL)[dtype], f"{backend} {name}")


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("dtype", DTYPES)
def test_backend_kernel_table_matches_reference_at_bench_like_width(backend, dtype):
    # Channel counts past one register tile (and not a multiple of it) exercise the edges.
    # The bias is fused into the kernels: forward starts from it, backward returns its sum.
    x, kernel, bias = inputs(2, 40, 37, 45, 4, dtype)
    module, ref = backends.get(backend), backends.get("reference")
    grad = np.random.default_rng(2).standard_normal((2, 37, 45)).astype(dtype)
    for b in (bias, None):
        assert_close(module.conv1d_forward(x, kernel, b, 1, 1), ref.conv1d_forward(x, kernel, b, 1, 1),
                     FORWARD_TOL[dtype], "out")
    got = module.conv1d_backward(grad, x, kernel, 1, 1)
    assert len(got) == 3 and all(a.dtype == dtype for a in got)
    for name, a, b in zip(("dx", "dkernel", "dbias"), got, ref.conv1d_backward(grad, x, kernel, 1, 1)):
        assert_close(a, b, GRAD_TOL[dtype], name)
    assert_close(got[2], grad.sum(axis=(0, 1)), GRAD_TOL[dtype], "dbias = grad summed")


@pytest.mark.parametrize("backend", ["reference"] + FAST)
def test_float32_dbias_is_summed_exactly(backend):
    # 8 × 4,000 rows per column: summed in float32 row after row the bias gradient loses
    # ~3e-6 of its largest entry; every backend sums it in float64 and rounds once.
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, 4002, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 4)).astype(np.float32)
    grad = (rng.standard_normal((8, 4000, 4)) + 0.5).astype(np.float32)
    dbias = backends.get(backend).conv1d_backward(grad, x, kernel, 1, 1)[2]
    exact = grad.astype(np.float64).sum(axis=(0, 1))
    assert dbias.dtype == np.float32
    assert np.abs(dbias - exact).max() <= 2e-7 * np.abs(exact).max()


EDGES = [  # (B, L, C, O, K, strides, dilation_rate, padding)
    (1, 5, 2, 3, 1, 1, 1, "valid"),    # K=1: a plain per-row matmul
    (2, 4, 3, 2, 4, 1, 1, "valid"),    # L=K: one output row
    (1, 7, 1, 1, 3, 1, 3, "valid"),    # span d(K-1)+1 = L exactly
    (2, 9, 2, 2, 2, 4, 1, "valid"),    # stride > K: rows no window reads get zero gradient
    (1, 1, 2, 2, 3, 1, 1, "same"),     # L=1 with padding on both sides
    (2, 6, 2, 3, 2, 1, 1, "same"),     # even kernel: the extra padding row goes right
    (2, 7, 2, 2, 3, 3, 1, "same"),     # L not a multiple of the stride
    (1, 5, 2, 2, 3, 2, 2, "causal"),   # causal with stride and dilation
    (1, 1, 1, 1, 1, 1, 1, "causal"),   # smallest possible
]


@pytest.mark.parametrize("B,L,C,O,K,strides,dilation_rate,padding", EDGES)
def test_edge_cases_every_backend(B, L, C, O, K, strides, dilation_rate, padding):
    x, kernel, bias = inputs(B, L, C, O, K)
    options = dict(strides=strides, padding=padding, dilation_rate=dilation_rate)
    expected = run("reference", x, kernel, bias, **options)
    left, right = F._window_padding(L, dilation_rate * (K - 1) + 1, strides, padding, "conv1d")
    padded = F._pad_length(x, left, right)
    assert_close(expected[0], naive_conv1d(padded, kernel, strides, dilation_rate) + bias, 1e-12, "naive")
    for backend in FAST:
        for name, a, b in zip(("out", "dx", "dkernel", "dbias"), run(backend, x, kernel, bias, **options),
                              expected):
            assert_close(a, b, 1e-10, f"{backend} {name}")


@pytest.mark.parametrize("L,K,strides,padding,expected", [
    (10, 3, 1, "same", 10), (10, 3, 3, "same", 4), (10, 4, 2, "valid", 4), (10, 3, 2, "causal", 5)])
def test_output_length_follows_keras(L, K, strides, padding, expected):
    x, kernel, _ = inputs(1, L, 1, 1, K)
    assert F.conv1d(x, kernel, strides=strides, padding=padding).shape == (1, expected, 1)


def test_causal_output_never_sees_the_future():
    x, kernel, _ = inputs(1, 8, 2, 2, 3)
    changed = x.copy()
    changed[:, 5:] += 1.0
    a = F.conv1d(x, kernel, padding="causal", dilation_rate=2).numpy()
    b = F.conv1d(changed, kernel, padding="causal", dilation_rate=2).numpy()
    np.testing.assert_array_equal(a[:, :5], b[:, :5])
    assert not np.allclose(a[:, 5:], b[:, 5:])


def test_one_graph_node_per_call():
    x, kernel, bias = inputs(1, 6, 2, 2, 3)
    out = F.conv1d(en.Tensor(x, requires_grad=True), en.Tensor(kernel, requires_grad=True), bias)
    assert out._node.fn is F._Conv1D and len(out._node.inputs) == 3


@pytest.mark.parametrize("args,kwargs,error,match", [
    ((np.zeros((1, 2, 1)), np.zeros((3, 1, 1))), {}, ValueError, "empty"),
    ((np.zeros((1, 0, 1)), np.zeros((1, 1, 1))), {"padding": "same"}, ValueError, "empty"),
    ((np.zeros((1, 5, 2)), np.zeros((3, 3, 1))), {}, ValueError, "kernel must have shape"),
    ((np.zeros((1, 5, 2)), np.zeros((3, 2, 4)), np.zeros(3)), {}, ValueError, "bias must have shape"),
    ((np.zeros((1, 5, 2)), np.zeros((3, 2, 4))), {"padding": "full"}, ValueError, "padding"),
    ((np.zeros((1, 5, 2)), np.zeros((3, 2, 4))), {"strides": 0}, ValueError, "strides"),
    ((np.zeros((1, 5, 2)), np.zeros((3, 2, 4))), {"dilation_rate": 1.5}, ValueError, "dilation_rate"),
    ((np.zeros((5, 2)), np.zeros((3, 2, 4))), {}, ValueError, "x must have 3 dimensions"),
    ((np.zeros((1, 5, 2), np.int64), np.zeros((3, 2, 4))), {}, TypeError, "x must be float"),
    ((np.zeros((1, 5, 2), np.float32), np.zeros((3, 2, 4))), {}, TypeError, "dtype"),
])
def test_bad_input_is_a_clear_error(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        F.conv1d(*args, **kwargs)


@pytest.mark.parametrize("backend", CPU)
def test_kernel_table_rejects_bad_shapes(backend):
    module = backends.get(backend)
    with pytest.raises(ValueError, match="empty|shorter"):
        module.conv1d_forward(np.zeros((1, 2, 1)), np.zeros((3, 1, 1)), None, 1, 1)
    with pytest.raises(ValueError):
        module.conv1d_forward(np.zeros((1, 5, 2)), np.zeros((3, 4, 1)), None, 1, 1)
    if backend != "reference":  # the reference trusts functional's checks
        with pytest.raises(ValueError, match="bias"):
            module.conv1d_forward(np.zeros((1, 5, 2)), np.zeros((3, 2, 4)), np.zeros(3), 1, 1)
    with pytest.raises(ValueError):
        module.conv1d_backward(np.zeros((1, 9, 1)), np.zeros((1, 5, 1)), np.zeros((3, 1, 1)), 1, 1)


@settings(max_examples=25, deadline=None)
@given(B=st.integers(1, 3), L=st.integers(1, 12), C=st.integers(1, 4), O=st.integers(1, 4),
       K=st.integers(1, 4), strides=st.integers(1, 3), dilation_rate=st.integers(1, 3),
       padding=st.sampled_from(PADDINGS), seed=st.integers(0, 2**16))
def test_hypothesis_every_backend_matches_reference(B, L, C, O, K, strides, dilation_rate, padding, seed):
    if padding == "valid" and L < dilation_rate * (K - 1) + 1:
        with pytest.raises(ValueError, match="empty"):
            F.conv1d(np.zeros((B, L, C)), np.zeros((K, C, O)), padding=padding, dilation_rate=dilation_rate)
        return
    x, kernel, bias = inputs(B, L, C, O, K, seed=seed)
    options = dict(strides=strides, padding=padding, dilation_rate=dilation_rate)
    expected = run("reference", x, kernel, bias, **options)
    if padding == "same":
        assert expected[0].shape[1] == -(-L // strides)
    for backend in FAST:
        for name, a, b in zip(("out", "dx", "dkernel", "dbias"), run(backend, x, kernel, bias, **options),
                              expected):
            assert_close(a, b, 1e-10, f"{backend} {name}")


# External oracles (the compat extra); skipped cleanly when not installed.

@pytest.mark.parametrize("strides,dilation_rate", STEPS)
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_torch_conv1d_oracle(strides, dilation_rate, padding):
    torch = pytest.importorskip("torch")
    if padding == "same" and strides > 1:
        pytest.skip("torch.nn.functional.conv1d supports padding='same' only with stride 1")
    x, kernel, bias = inputs(2, 11, 3, 4, 3)
    out, dx, dkernel, dbias = run(en.get_backend(), x, kernel, bias, strides=strides, padding=padding,
                                  dilation_rate=dilation_rate)
    tx, tk, tb = (torch.tensor(a, requires_grad=True) for a in (x, kernel, bias))
    # torch is channels-first: x (B,C,L), weight (O,C,K).
    ty = torch.nn.functional.conv1d(tx.permute(0, 2, 1), tk.permute(2, 1, 0), tb, stride=strides,
                                    padding=padding, dilation=dilation_rate).permute(0, 2, 1)
    (ty * torch.tensor(np.random.default_rng(1).standard_normal(out.shape))).sum().backward()
    for name, a, b in (("out", out, ty.detach()), ("dx", dx, tx.grad), ("dkernel", dkernel, tk.grad),
                       ("dbias", dbias, tb.grad)):
        assert_close(a, b.numpy(), 1e-10, f"torch {name}")


@pytest.mark.parametrize("padding", ["same", "causal", "valid"])
@pytest.mark.parametrize("L,K,strides,dilation_rate", [(10, 3, 1, 1), (10, 4, 1, 1), (11, 3, 2, 1),
                                                       (10, 4, 3, 1), (12, 3, 1, 3), (9, 2, 1, 2)])
def test_keras_conv1d_oracle(keras, padding, L, K, strides, dilation_rate):
    import torch
    x, kernel, bias = inputs(2, L, 3, 4, K, np.float32)
    layer = keras.layers.Conv1D(4, K, strides=strides, padding=padding, dilation_rate=dilation_rate)
    layer.build((None, L, 3))
    layer.set_weights([kernel, bias])
    tx = torch.tensor(x, requires_grad=True)
    ty = layer(tx)
    out, dx, dkernel, dbias = run(en.get_backend(), x, kernel, bias, strides=strides, padding=padding,
                                  dilation_rate=dilation_rate)
    (ty * torch.tensor(np.random.default_rng(1).standard_normal(out.shape).astype(np.float32))).sum().backward()
    assert_close(out, ty.detach().cpu().numpy(), FORWARD_TOL[np.float32], "keras out")
    assert_close(dx, tx.grad.cpu().numpy(), GRAD_TOL[np.float32], "keras dx")
    assert_close(dkernel, layer.kernel.value.grad.cpu().numpy(), GRAD_TOL[np.float32], "keras dkernel")
