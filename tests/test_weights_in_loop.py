"""SimpleRNN's weight gradients summed inside its C++ backward loop (LoopWeights,
kernels/cpu/gemm_tn.hpp; the "weights_in_loop" choice, SEQFUSE_WEIGHTS_IN_LOOP) or after it
(engine/_recurrent.py's _weight_grads): each way forced, with every option of the shared suite
(masks, go_backwards, initial states; with recurrent dropout the layer asks for them after the
loop either way), B = 83 split over two threads' row ranges, and one step of a few rows; in
float64 T = 45 steps, several blocks (a block fills part of the L2: about 20 float64 steps of
these rows on a 2 MiB L2, 10 on 1 MiB or less), in float32 T = 4, since the float32
forward's error grows with the steps past the suite's 1e-5 (1.6e-5 with dropout at T = 12 on
the baseline x86-64 build); the kernel test below runs float32 over 45 steps against its own
dz."""
from __future__ import annotations

import numpy as np
import pytest

import rnn_cases as rc
from engine import backends, tuning

pytestmark = pytest.mark.skipif(not backends.get("cpp").available(), reason="engine._C not built")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("option", rc.OPTIONS)
@pytest.mark.parametrize("way", rc.choice_values("weights_in_loop"))
def test_every_weights_in_loop_way_matches_reference(way, option, dtype):
    with tuning.forced("weights_in_loop", way):
        T = 45 if dtype == np.float64 else 4
        rc.check_backend(rc.make_case("simple_rnn", option, B=83, T=T, F_=21, H=37), "cpp", dtype)
        rc.check_backend(rc.make_case("simple_rnn", option, B=3, T=1, F_=2, H=5), "cpp", dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_in_loop_weights_are_the_gemm_of_the_gradient_rows(go_backwards, dtype):
    # The kernel itself, against [x_t | h_{t-1}]ᵀ·dz summed in NumPy from the dz the same
    # kernel returns without x, with a mask with holes; and the same bits on every call.
    from engine import _C
    rng = np.random.default_rng(3)
    B, T, F_, H = 83, 45, 21, 37
    f = lambda *shape: (rng.standard_normal(shape) * 0.5).astype(dtype)  # noqa: E731
    x, kernel, U, bias, h0, dhs = f(B, T, F_), f(F_, H), f(H, H), f(H), f(B, H), f(T, B, H)
    mask = np.ascontiguousarray(rng.random((T, B)) < 0.7)
    hs = _C.simple_rnn_forward(x, kernel, bias, U, h0, mask, None, go_backwards=go_backwards)
    apart = _C.simple_rnn_backward(dhs, U, h0, hs, mask, None, kernel=kernel, go_backwards=go_backwards)
    dz = apart[0]
    inside = _C.simple_rnn_backward(dhs, U, h0, hs, mask, None, kernel=kernel,
                                    go_backwards=go_backwards, x=x)
    assert inside[0] is None and apart[4] is None
    for name, a, b in zip(("dx", "dbias", "dh0"), apart[1:4], inside[1:4]):
        np.testing.assert_array_equal(a, b, err_msg=name)
    xs = x[:, ::-1] if go_backwards else x
    states = np.concatenate([h0[None], np.asarray(hs)[:-1]])
    expected = np.concatenate([np.einsum("btf,tbh->fh", xs, dz), np.einsum("tbk,tbh->kh", states, dz)])
    tol = 1e-10 if dtype == np.float64 else 2e-5
    assert np.abs(inside[4] - expected).max() <= tol * np.abs(expected).max()
    again = _C.simple_rnn_backward(dhs, U, h0, hs, mask, None, kernel=kernel,
                                   go_backwards=go_backwards, x=x)
    np.testing.assert_array_equal(again[4], inside[4])


@pytest.mark.parametrize("B, T", [(0, 3), (3, 0)])
def test_in_loop_weights_of_no_rows_are_zeros(B, T):
    from engine import _C
    F_, H = 2, 4
    U, h0 = np.ones((H, H), np.float32), np.ones((B, H), np.float32)
    hs, dhs = np.zeros((T, B, H), np.float32), np.ones((T, B, H), np.float32)
    weights = _C.simple_rnn_backward(dhs, U, h0, hs, None, None, x=np.ones((B, T, F_), np.float32))[4]
    assert weights.shape == (F_ + H, H) and not weights.any()


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


def test_a_layers_backward_asks_for_them_without_dropout_only(monkeypatch):
    from engine.backends import cpp_cpu
    kernel = cpp_cpu.simple_rnn_backward
    seen = []

    def spy(*args, **kwargs):
        seen.append(kwargs.get("x") is not None)
        return kernel(*args, **kwargs)
    monkeypatch.setattr(cpp_cpu, "simple_rnn_backward", spy)
    for option in ("plain", "dropout"):
        rc.check_backend(rc.make_case("simple_rnn", option, B=4, T=3, F_=2, H=5), "cpp", np.float64)
    with tuning.forced("weights_in_loop", "off"):
        rc.check_backend(rc.make_case("simple_rnn", "plain", B=4, T=3, F_=2, H=5), "cpp", np.float64)
    assert True in seen and False in seen
    assert seen[-1] is False
