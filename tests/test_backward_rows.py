"""Both places LSTM's and GRU's C++ backwards write a step's gradient rows (GradientRows,
kernels/cpu/projection.hpp; the "backward_rows" choice, SEQFUSE_BACKWARD_ROWS): in place, or
in a workspace the step's GEMMs read and that is then streamed out. "auto" streams only where
a thread's rows of a step outgrow half the L2, beyond these sizes, so each way is forced, with
every option of the shared suite (masks, dropout, go_backwards, initial states; GRU with
reset_after and without), B = 83 split over two threads' row ranges, and one step of a few rows.
(SimpleRNN writes its rows in place either way.) Each way also with overwrite_saved, the
gradients written over the arrays the forward saved (LSTM's gates; GRU's gates and uh)."""
from __future__ import annotations

import numpy as np
import pytest

import rnn_cases as rc
from engine import backends, tuning

pytestmark = pytest.mark.skipif(not backends.get("cpp").available(), reason="engine._C not built")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("option", rc.OPTIONS)
@pytest.mark.parametrize("rows", rc.choice_values("backward_rows"))
@pytest.mark.parametrize("variant", ["lstm", "gru", "gru_reset_before"])
def test_every_backward_rows_way_matches_reference(variant, rows, option, dtype):
    with tuning.forced("backward_rows", rows):
        rc.check_backend(rc.make_case(variant, option, B=83, T=12, F_=21, H=37), "cpp", dtype)
        rc.check_backend(rc.make_case(variant, option, B=3, T=1, F_=2, H=5), "cpp", dtype)


def _kernel_inputs(op, dtype, B=83, T=12, F_=21, H=37, seed=0):
    """(saved, backward, over): the arrays the C++ forward saved that its backward may write
    over (LSTM's gates; GRU's gates, and uh with reset_after), a call of the backward on a
    list of them (with a mask with holes, a dropout mask and go_backwards: every path of the
    row pass), and where in its result the gradient written over each one is."""
    from engine import _C
    G = 4 if op == "lstm" else 3
    rng = np.random.default_rng(seed)
    f = lambda *shape: (rng.standard_normal(shape) * 0.5).astype(dtype)  # noqa: E731
    x, kernel, U, bias, h0 = f(B, T, F_), f(F_, G * H), f(H, G * H), f(G * H), f(B, H)
    mask = np.ascontiguousarray(rng.random((T, B)) < 0.7)
    dm = ((rng.random((B, H)) >= 0.3) / 0.7).astype(dtype)
    dhs = f(T, B, H)
    if op == "lstm":
        hs, cs, gates = _C.lstm_forward(x, kernel, bias, U, h0, h0, mask, dm, go_backwards=True)
        return [gates], lambda saved, **kw: _C.lstm_backward(
            dhs, h0, U, h0, h0, hs, cs, saved[0], mask, dm, kernel=kernel, go_backwards=True,
            **kw), [0]
    reset_after = op == "gru"
    rb = f(G * H) if reset_after else None
    hs, gates, uh = _C.gru_forward(x, kernel, bias, U, rb, h0, mask, dm, reset_after,
                                   go_backwards=True)
    saved = [gates, uh] if reset_after else [gates]
    return saved, lambda saved, **kw: _C.gru_backward(
        dhs, U, rb, h0, hs, saved[0], saved[1] if reset_after else uh, mask, dm, reset_after,
        kernel=kernel, go_backwards=True, **kw), [0, 2][:len(saved)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", rc.choice_values("backward_rows"))
@pytest.mark.parametrize("op", ["lstm", "gru", "gru_reset_before"])
def test_gradients_written_over_the_saved_arrays_are_the_same(op, rows, dtype):
    # overwrite_saved (engine/_recurrent.py passes it: the graph is freed after backward): LSTM's
    # dz and GRU's dxw are written over the gates array, GRU's du over uh with reset_after,
    # bit for bit what new arrays get.
    saved, backward, over_at = _kernel_inputs(op, dtype)
    with tuning.forced("backward_rows", rows):
        apart = backward([a.copy() for a in saved])
        kept = [a.copy() for a in saved]
        over = backward(saved, overwrite_saved=True)
    for a, i in zip(saved, over_at):
        assert np.shares_memory(over[i], a)
    for name, a, b in zip(("gradient", "dx", "second", "third", "fourth"), apart, over):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert not any(np.array_equal(a, k) for a, k in zip(saved, kept))
    # Not the caller's to give: read-only, or copied to C order first -> new arrays.
    def readonly(a):
        a = a.copy()
        a.flags.writeable = False
        return a
    for make in (readonly, lambda a: np.ascontiguousarray(a.transpose(1, 0, 2)).transpose(1, 0, 2)):
        given = [make(a) for a in kept]
        before = [a.copy() for a in given]
        result = backward(given, overwrite_saved=True)
        for a, b, i in zip(given, before, over_at):
            assert not np.shares_memory(result[i], a)
            np.testing.assert_array_equal(a, b)
        for name, a, b in zip(("gradient", "dx", "second", "third", "fourth"), apart, result):
            np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize("variant", ["lstm", "gru", "gru_reset_before"])
def test_a_layers_backward_gives_its_saved_arrays_to_the_kernel(variant, monkeypatch):
    # engine/_recurrent.py: LSTM and GRU with reset_after hand the gates (and uh) over; GRU
    # without reset_after keeps them, since its weight gradient reads r from them after the
    # kernel. (SimpleRNN saves nothing but hs, which its weight gradient reads.)
    from engine.backends import cpp_cpu
    case = rc.make_case(variant, "plain", B=4, T=3, F_=2, H=5)
    kernel = getattr(cpp_cpu, f"{case.op}_backward")
    seen = []

    def spy(*args, **kwargs):
        seen.append(kwargs["overwrite_saved"])
        return kernel(*args, **kwargs)
    monkeypatch.setattr(cpp_cpu, f"{case.op}_backward", spy)
    rc.check_backend(case, "cpp", np.float64)
    assert seen and set(seen) == {variant != "gru_reset_before"}
