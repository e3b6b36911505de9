"""Both places LSTM's and GRU's C++ backwards write a step's gradient rows (GradientRows,
kernels/cpu/projection.hpp; the "backward_rows" choice, SEQFUSE_BACKWARD_ROWS): in place, or
in a workspace the step's GEMMs read and that is then streamed out. "auto" streams only where
a thread's rows of a step outgrow half the L2, beyond these sizes, so each way is forced, with
every option of the shared suite (masks, dropout, go_backwards, initial states; GRU with
reset_after and without), B = 83 split over two threads' row ranges, and one step of a few rows.
(SimpleRNN writes its rows in place either way.)"""
from __future__ import annotations

import numpy as np
import pytest

import rnn_cases as rc
from engine import backends, tuning

pytestmark = pytest.mark.skipif(not backends.get("cpp").available(), reason="engine._C not built")


def _ways():
    try:
        from engine import _C
    except ImportError:
        return []
    return _C.choice_options()["backward_rows"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("option", rc.OPTIONS)
@pytest.mark.parametrize("rows", _ways())
@pytest.mark.parametrize("variant", ["lstm", "gru", "gru_reset_before"])
def test_every_backward_rows_way_matches_reference(variant, rows, option, dtype):
    with tuning.forced("backward_rows", rows):
        rc.check_backend(rc.make_case(variant, option, B=83, T=12, F_=21, H=37), "cpp", dtype)
        rc.check_backend(rc.make_case(variant, option, B=3, T=1, F_=2, H=5), "cpp", dtype)


def _kernel_inputs(op, dtype, B=83, T=12, F_=21, H=37, seed=0):
    """Forward outputs and backward arguments of the C++ kernel with a mask with holes, a
    dropout mask and go_backwards: every path of the row pass."""
    from engine import _C
    G = 4 if op == "lstm" else 3
    rng = np.random.default_rng(seed)
    f = lambda *shape: (rng.standard_normal(shape) * 0.5).astype(dtype)  # noqa: E731
    x, kernel, U, bias, h0 = f(B, T, F_), f(F_, G * H), f(H, G * H), f(G * H), f(B, H)
    mask = np.ascontiguousarray(rng.random((T, B)) < 0.7)
    dm = ((rng.random((B, H)) >= 0.3) / 0.7).astype(dtype)
    dhs = f(T, B, H)
    if op == "lstm":
        forward = _C.lstm_forward(x, kernel, bias, U, h0, h0, mask, dm, go_backwards=True)
        return forward, lambda gates, **kw: _C.lstm_backward(
            dhs, h0, U, h0, h0, forward[0], forward[1], gates, mask, dm, kernel=kernel,
            go_backwards=True, **kw)
    reset_after = op == "gru"
    rb = f(G * H) if reset_after else None
    forward = _C.gru_forward(x, kernel, bias, U, rb, h0, mask, dm, reset_after, go_backwards=True)
    return forward, lambda gates, **kw: _C.gru_backward(
        dhs, U, rb, h0, forward[0], gates, forward[2], mask, dm, reset_after, kernel=kernel,
        go_backwards=True, **kw)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", _ways())
@pytest.mark.parametrize("op", ["lstm", "gru", "gru_reset_before"])
def test_gradient_written_over_the_gates_is_the_same(op, rows, dtype):
    # overwrite_gates (engine/_recurrent.py passes it: the graph is freed after backward): LSTM's
    # dz and GRU's dxw are written over the gates array, bit for bit what a new array gets.
    forward, backward = _kernel_inputs(op, dtype)
    gates = forward[2] if op == "lstm" else forward[1]
    with tuning.forced("backward_rows", rows):
        apart = backward(gates.copy())
        kept = gates.copy()
        over = backward(gates, overwrite_gates=True)
    assert over[0] is gates or np.shares_memory(over[0], gates)
    for name, a, b in zip(("gradient", "dx", "second", "third", "fourth"), apart, over):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert not np.array_equal(gates, kept)
    # Not the caller's to give: read-only, or copied to C order first -> a new array.
    readonly = kept.copy()
    readonly.flags.writeable = False
    strided = np.ascontiguousarray(kept.transpose(1, 0, 2)).transpose(1, 0, 2)
    for given in (readonly, strided):
        before = given.copy()
        result = backward(given, overwrite_gates=True)
        assert not np.shares_memory(result[0], given)
        np.testing.assert_array_equal(given, before)
        np.testing.assert_array_equal(result[0], apart[0])


@pytest.mark.parametrize("variant", ["lstm", "gru", "gru_reset_before", "simple_rnn"])
def test_a_layers_backward_gives_its_gates_to_the_kernel(variant, monkeypatch):
    # engine/_recurrent.py: LSTM and GRU with reset_after hand the gates over; GRU without
    # reset_after keeps them, since its weight gradient reads r from them after the kernel.
    from engine.backends import cpp_cpu
    case = rc.make_case(variant, "plain", B=4, T=3, F_=2, H=5)
    seen = []
    op = case.op
    if op != "simple_rnn":
        kernel = getattr(cpp_cpu, f"{op}_backward")

        def spy(*args, **kwargs):
            seen.append(kwargs["overwrite_gates"])
            return kernel(*args, **kwargs)
        monkeypatch.setattr(cpp_cpu, f"{op}_backward", spy)
    rc.check_backend(case, "cpp", np.float64)
    assert set(seen) <= {variant != "gru_reset_before"} and (op == "simple_rnn" or seen)
