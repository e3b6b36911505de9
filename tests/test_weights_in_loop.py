"""SimpleRNN's and GRU's (reset_after) weight gradients summed inside their C++ backward loops
(LoopWeights, kernels/cpu/gemm_tn.hpp; the "weights_in_loop" choice, SEQFUSE_WEIGHTS_IN_LOOP)
or after them (engine/_recurrent.py's _weight_grads): each way forced, with every option of the
shared suite (masks, go_backwards, initial states; with recurrent dropout, and for GRU without
reset_after, the layer asks for them after the loop either way), B = 83 split over two
threads' row ranges, and one step of a few rows; in float64 T = 45 steps, several blocks (a
block fills part of the L2: about 20 float64 SimpleRNN steps of these rows on a 2 MiB L2, 10
on 1 MiB or less; fewer for GRU, whose rows are four times wider), in float32 T = 4, since the
float32 forward's error grows with the steps past the suite's 1e-5 (1.6e-5 with dropout at
T = 12 on the baseline x86-64 build); the kernel tests below run float32 over 45 steps against
the kernels' own gradients.
"""
from __future__ import annotations

import numpy as np
import pytest

import rnn_cases as rc
from engine import backends, tuning

pytestmark = pytest.mark.skipif(not backends.get("cpp").available(), reason="engine._C not built")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("option", rc.OPTIONS)
@pytest.mark.parametrize("way", rc.choice_values("weights_in_loop"))
@pytest.mark.parametrize("variant", ["simple_rnn", "gru"])
def test_every_weights_in_loop_way_matches_reference(variant, way, option, dtype):
    with tuning.forced("weights_in_loop", way):
        T = 45 if dtype == np.float64 else 4
        rc.check_backend(rc.make_case(variant, option, B=83, T=T, F_=21, H=37), "cpp", dtype)
        rc.check_backend(rc.make_case(variant, option, B=3, T=1, F_=2, H=5), "cpp", dtype)


def _kernel_case(op, dtype, go_backwards):
    """(backward(**kw) calling op's C++ backward on fresh inputs with a mask with holes, x,
    weights(result) -> [dkernel; dU] from the gradient rows a call without x returns, the
    index of the weights in the result): SimpleRNN's [x_t | h_{t-1}]ᵀ·dz; GRU's three
    products, x and h_{t-1} with dxw's z,r columns, x with its candidate columns, h_{t-1}
    with du."""
    from engine import _C
    rng = np.random.default_rng(3)
    B, T, F_, H = 83, 45, 21, 37
    G = 3 * H if op == "gru" else H
    f = lambda *shape: (rng.standard_normal(shape) * 0.5).astype(dtype)  # noqa: E731
    x, kernel, U, bias, h0, dhs = f(B, T, F_), f(F_, G), f(H, G), f(G), f(B, H), f(T, B, H)
    mask = np.ascontiguousarray(rng.random((T, B)) < 0.7)
    xs = x[:, ::-1] if go_backwards else x
    if op == "gru":
        rb = f(G)
        hs, gates, uh = _C.gru_forward(x, kernel, bias, U, rb, h0, mask, None, True,
                                       go_backwards=go_backwards)
        backward = lambda **kw: _C.gru_backward(dhs, U, rb, h0, hs, gates, uh, mask, None, True,  # noqa: E731
                                                kernel=kernel, go_backwards=go_backwards, **kw)
        rows = lambda r: (r[0], np.concatenate([r[0][:, :, :2 * H], r[2]], axis=2))  # noqa: E731
    else:
        hs = _C.simple_rnn_forward(x, kernel, bias, U, h0, mask, None, go_backwards=go_backwards)
        backward = lambda **kw: _C.simple_rnn_backward(dhs, U, h0, hs, mask, None, kernel=kernel,  # noqa: E731
                                                       go_backwards=go_backwards, **kw)
        rows = lambda r: (r[0], r[0])  # noqa: E731
    states = np.concatenate([h0[None], np.asarray(hs)[:-1]])

    def weights(result):
        kernel_rows, recurrent_rows = rows(result)
        return np.concatenate([np.einsum("btf,tbg->fg", xs, kernel_rows),
                               np.einsum("tbk,tbg->kg", states, recurrent_rows)])
    return backward, x, weights, 5 if op == "gru" else 4


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("op", ["simple_rnn", "gru"])
def test_in_loop_weights_are_the_gemms_of_the_gradient_rows(op, go_backwards, dtype):
    # The kernel itself, against NumPy's sums of the gradient rows the same kernel returns
    # without x; its other outputs bit for bit the same; and the same bits on every call.
    backward, x, weights, at = _kernel_case(op, dtype, go_backwards)
    apart, inside = backward(), backward(x=x)
    assert apart[at] is None
    rows = (0, 2) if op == "gru" else (0,)  # the gradient rows, kept in the loop: None
    for i, value in enumerate(inside[:at]):
        if i in rows:
            assert value is None and apart[i] is not None
        else:
            np.testing.assert_array_equal(apart[i], value, err_msg=f"output {i}")
    expected = weights(apart)
    tol = 1e-10 if dtype == np.float64 else 2e-5
    assert inside[at].shape == expected.shape
    assert np.abs(inside[at] - expected).max() <= tol * np.abs(expected).max()
    np.testing.assert_array_equal(backward(x=x)[at], inside[at])


@pytest.mark.parametrize("B, T", [(0, 3), (3, 0)])
def test_in_loop_weights_of_no_rows_are_zeros(B, T):
    from engine import _C
    F_, H = 2, 4
    U, h0 = np.ones((H, H), np.float32), np.ones((B, H), np.float32)
    hs, dhs = np.zeros((T, B, H), np.float32), np.ones((T, B, H), np.float32)
    weights = _C.simple_rnn_backward(dhs, U, h0, hs, None, None, x=np.ones((B, T, F_), np.float32))[4]
    assert weights.shape == (F_ + H, H) and not weights.any()
    U3, gates = np.ones((H, 3 * H), np.float32), np.zeros((T, B, 3 * H), np.float32)
    weights = _C.gru_backward(dhs, U3, None, h0, hs, gates, hs.copy(), None, None, True,
                              x=np.ones((B, T, F_), np.float32))[5]
    assert weights.shape == (F_ + H, 3 * H) and not weights.any()


def test_in_loop_weights_check_their_input():
    from engine import _C
    rng = np.random.default_rng(0)
    B, T, F_, H = 4, 3, 2, 5
    x, kernel, U = (rng.standard_normal(s).astype(np.float32) for s in ((B, T, F_), (F_, H), (H, H)))
    h0 = np.zeros((B, H), np.float32)
    hs = _C.simple_rnn_forward(x, kernel, None, U, h0, None, None)
    dhs = np.ones((T, B, H), np.float32)
    with pytest.raises(ValueError, match=r"simple_rnn: x must have shape \(B, T, F\)"):
        _C.simple_rnn_backward(dhs, U, h0, hs, None, None, x=x[:, :2])
    with pytest.raises(TypeError, match="x"):
        _C.simple_rnn_backward(dhs, U, h0, hs, None, None, x=x.astype(np.float64))
    with pytest.raises(ValueError, match="dropout_mask"):
        _C.simple_rnn_backward(dhs, U, h0, hs, None, np.ones((B, H), np.float32), x=x)
    U3 = rng.standard_normal((H, 3 * H)).astype(np.float32)
    hs, gates, uh = _C.gru_forward(x, rng.standard_normal((F_, 3 * H)).astype(np.float32), None,
                                   U3, None, h0, None, None, True)
    with pytest.raises(ValueError, match=r"gru: x must have shape \(B, T, F\)"):
        _C.gru_backward(dhs, U3, None, h0, hs, gates, uh, None, None, True, x=x[:, :2])
    with pytest.raises(ValueError, match="dropout_mask"):
        _C.gru_backward(dhs, U3, None, h0, hs, gates, uh, None, np.ones((B, H), np.float32), True, x=x)
    hs, gates, _ = _C.gru_forward(x, rng.standard_normal((F_, 3 * H)).astype(np.float32), None,
                                  U3, None, h0, None, None, False)
    with pytest.raises(ValueError, match="reset_after"):
        _C.gru_backward(dhs, U3, None, h0, hs, gates, np.zeros(0, np.float32), None, None, False, x=x)


@pytest.mark.parametrize("op", ["simple_rnn", "gru"])
def test_a_layers_backward_asks_for_them_where_they_apply(op, monkeypatch):
    # Without dropout (and for GRU with reset_after) and with the choice on; never otherwise.
    from engine.backends import cpp_cpu
    kernel = getattr(cpp_cpu, f"{op}_backward")
    seen = []

    def spy(*args, **kwargs):
        seen.append(kwargs.get("x") is not None)
        return kernel(*args, **kwargs)
    monkeypatch.setattr(cpp_cpu, f"{op}_backward", spy)

    def run(variant, option):
        seen.clear()
        rc.check_backend(rc.make_case(variant, option, B=4, T=3, F_=2, H=5), "cpp", np.float64)
        return seen[-1]
    # Forced on: where the first-use timing found the loop slower (the baseline x86-64 build
    # on the Zen 4) this process runs "off".
    with tuning.forced("weights_in_loop", "on"):
        assert run(op, "plain") is True
        assert run(op, "dropout") is False
        if op == "gru":
            assert run("gru_reset_before", "plain") is False
    with tuning.forced("weights_in_loop", "off"):
        assert run(op, "plain") is False
