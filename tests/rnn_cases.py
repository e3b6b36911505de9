"""Fresh random cases for the recurrent ops, shared by test_lstm/test_gru/test_simple_rnn.

A case is one op variant (lstm, gru, gru with reset_after=False, simple_rnn) with one set of
options (masks, go_backwards, dropout, initial state, ...), as a function of Tensors plus the
arrays to feed it. The same case drives the finite-difference check of the reference, the
backend matrix, and the torch oracle.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import pytest

import engine.functional as F
from engine import backends, testing
from engine.tensor import Tensor, no_grad
from oracles import keras_or_skip

# variant -> (functional op, extra keyword arguments, gates per unit)
VARIANTS = {
    "lstm": ("lstm", {}, 4),
    "gru": ("gru", {"reset_after": True}, 3),
    "gru_reset_before": ("gru", {"reset_after": False}, 3),
    "simple_rnn": ("simple_rnn", {}, 1),
}

OPTIONS = ("plain", "last_output", "no_bias", "mask_holes", "right_padding", "left_padding",
           "masked_row", "go_backwards", "go_backwards_mask", "zero_output_for_mask",
           "dropout", "initial_state", "everything")

# Relative error (max|diff| / max|expected|) allowed against the reference backend.
# float64: only summation order differs, so ~1e-10 leaves room for T steps of rounding.
# float32: fast backends may use a tanh approximation (~3e-7 rel, DESIGN §4) and other
# summation orders; 1e-5 on the forward, 1e-4 on gradients, which compound over T steps.
FORWARD_RTOL = {np.float64: 1e-10, np.float32: 1e-5}
GRAD_RTOL = {np.float64: 1e-10, np.float32: 1e-4}


@dataclass
class Case:
    variant: str
    option: str
    names: list
    arrays: list
    kwargs: dict = field(default_factory=dict)

    @property
    def op(self) -> str:
        return VARIANTS[self.variant][0]

    def fn(self, *tensors):
        """The op on Tensors given in `names` order -> tuple of outputs."""
        d = dict(zip(self.names, tensors))
        states = [d[k] for k in ("h0", "c0") if k in d] or None
        return getattr(F, self.op)(d["x"], d["kernel"], d["recurrent_kernel"], d.get("bias"),
                                   initial_state=states, **self.kwargs)

    def tensors(self):
        """Fresh leaf Tensors (requires_grad) for every array."""
        return [Tensor(a, requires_grad=True) for a in self.arrays]


def choice_values(name):
    """Every value of a C++ kernel choice (engine.tuning), none without the extension."""
    try:
        from engine import _C
    except ImportError:
        return []
    return _C.choice_options()[name]


def _seed(*parts) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


def random_mask(rng, B, T, option):
    """(B,T) bool for a masking option; every kind keeps at least one row partly unmasked."""
    if option in ("right_padding", "left_padding"):
        lengths = rng.integers(1, T + 1, size=B)
        lengths[0] = max(1, T - 1) if T > 1 else 1
        steps = np.arange(T)[None, :]
        if option == "right_padding":
            return steps < lengths[:, None]
        return steps >= (T - lengths)[:, None]
    mask = rng.random((B, T)) < 0.6
    mask[0, 0] = True
    if T > 1:
        mask[0, -1] = False
    if option == "masked_row" and B > 1:
        mask[-1] = False
    return mask


def make_case(variant, option="plain", B=3, T=5, F_=3, H=2, seed=None) -> Case:
    """A float64 case with fresh random inputs (seeded by its name); `cast` gives float32."""
    op, extra, G = VARIANTS[variant]
    rng = np.random.default_rng(_seed(variant, option, B, T, F_, H) if seed is None else seed)
    names = ["x", "kernel", "recurrent_kernel"]
    # Weights scaled to their fan-in, as Keras's initializers are: uniform(-0.6, 0.6) up to
    # F, H = 3, narrower beyond, so the recurrence stays contractive at any H. With the
    # unscaled range a long sequence at a large H is chaotic and float32 rounding, in any
    # summation order, grows step by step until two correct kernels disagree completely
    # (B=16, T=50, F=32, H=128: cpp's and numba's SimpleRNN forward 0.87-2.9 from the float64
    # reference, GRU 1e-4 to 1e-3; the GPU's v1 and v2 loops the same on an H200, 2026-12-04).
    kernel_limit, recurrent_limit = (0.6 * min(1.0, np.sqrt(3 / n)) for n in (F_, H))
    arrays = [rng.standard_normal((B, T, F_)), rng.uniform(-kernel_limit, kernel_limit, (F_, G * H)),
              rng.uniform(-recurrent_limit, recurrent_limit, (H, G * H))]
    if option != "no_bias":
        names.append("bias")
        shape = (2, G * H) if op == "gru" and extra["reset_after"] else (G * H,)
        arrays.append(rng.uniform(-0.3, 0.3, shape))
    if option in ("initial_state", "masked_row", "everything"):
        names.append("h0")
        arrays.append(rng.uniform(-0.8, 0.8, (B, H)))
        if op == "lstm":
            names.append("c0")
            arrays.append(rng.uniform(-0.8, 0.8, (B, H)))
    kwargs = dict(extra)
    if option in ("mask_holes", "right_padding", "left_padding", "masked_row", "go_backwards_mask",
                  "zero_output_for_mask", "everything"):
        kwargs["mask"] = random_mask(rng, B, T, option)
    if option in ("go_backwards", "go_backwards_mask", "everything"):
        kwargs["go_backwards"] = True
    if option == "zero_output_for_mask":
        kwargs["zero_output_for_mask"] = True
    if option in ("dropout", "everything"):
        rate = 0.3
        kwargs["recurrent_dropout_mask"] = (rng.random((B, H)) >= rate) / (1 - rate)
    if option in ("last_output", "everything"):
        kwargs["return_sequences"] = False
    return Case(variant, option, names, arrays, kwargs)


def cast(case: Case, dtype) -> Case:
    """The same case in another float dtype (the dropout mask follows x's dtype)."""
    kwargs = dict(case.kwargs)
    if "recurrent_dropout_mask" in kwargs:
        kwargs["recurrent_dropout_mask"] = kwargs["recurrent_dropout_mask"].astype(dtype)
    return Case(case.variant, case.option, case.names, [a.astype(dtype) for a in case.arrays], kwargs)


def bias_sum_case(backend_name, variant, B=64, T=100, F_=8, H=32, seed=0):
    """float32 (dbias, exact) from the backend's kernel table on a long sequence: the bias
    gradient the backward returns, and the float64 sum of the pre-activation gradients it
    returned with it (Σ dxw, and for gru with reset_after Σ of the recurrent gradient
    [dxw_zr | du], du being its candidate columns)."""
    op, extra, G = VARIANTS[variant]
    module = backends.get(backend_name)
    rng = np.random.default_rng(seed)
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    x, kernel, U = f32(B, T, F_), f32(F_, G * H) * 0.3, f32(H, G * H) * 0.3
    bias, h0, dhs = f32(G * H), np.zeros((B, H), np.float32), f32(T, B, H)
    if op == "lstm":
        hs, cs, gates = module.lstm_forward(x, kernel, bias, U, h0, h0, None, None)
        dxw, _, dbias, _, _ = module.lstm_backward(dhs, h0, U, h0, h0, hs, cs, gates, None, None)
        sums = [dxw]
    elif op == "gru":
        reset_after = extra["reset_after"]
        rb = bias if reset_after else None
        hs, gates, uh = module.gru_forward(x, kernel, bias, U, rb, h0, None, None, reset_after)
        dxw, _, du, dbias, _ = module.gru_backward(dhs, U, rb, h0, hs, gates, uh, None, None,
                                                   reset_after)
        sums = [dxw, np.concatenate([dxw[..., :2 * H], du], axis=-1)] if reset_after else [dxw]
    else:
        hs = module.simple_rnn_forward(x, kernel, bias, U, h0, None, None)
        dxw, _, dbias, _ = module.simple_rnn_backward(dhs, U, h0, hs, None, None)
        sums = [dxw]
    exact = np.stack([a.astype(np.float64).reshape(-1, G * H).sum(axis=0) for a in sums])
    return dbias, exact.reshape(dbias.shape)


def other_backends() -> list:
    """Every working CPU backend but the reference: the ones judged against it."""
    return [n for n in backends.available() if n != "reference" and backends.get(n).DEVICE == "cpu"]


def implements(backend_name, op) -> bool:
    module = backends.get(backend_name)
    return all(hasattr(module, f"{op}_{d}") for d in ("forward", "backward"))


def skip_unless_implemented(backend_name, op):
    if not implements(backend_name, op):
        pytest.skip(f"backend {backend_name!r} does not implement {op}_forward/{op}_backward yet")


def check_reference_gradients(case: Case):
    """Reference autograd vs float64 central differences, every input."""
    with backends.use_backend("reference"):
        testing.gradcheck(case.fn, case.tensors())


def check_backend(case: Case, backend_name, dtype):
    """Forward and every gradient of `backend_name` vs the reference on the same inputs."""
    skip_unless_implemented(backend_name, case.op)
    c = cast(case, dtype)
    errors = testing.backend_errors(c.fn, c.arrays, [True] * len(c.arrays), names=[backend_name])
    errors = errors[backend_name]
    kind = np.dtype(dtype).type
    bad = {k: e for k, e in errors.items()
           if not e <= (FORWARD_RTOL if k.startswith("forward") else GRAD_RTOL)[kind]}
    assert not bad, (f"{backend_name} vs reference, {case.variant}/{case.option}/{np.dtype(dtype).name} "
                     f"(inputs {c.names}): relative errors {bad}")
    return errors


# Options under which inference must match training bit for bit: the state-carrying paths.
INFERENCE_OPTIONS = ("plain", "mask_holes", "go_backwards_mask", "dropout", "initial_state",
                     "everything")


def check_inference(variant, option, backend_name, dtype):
    """Outputs and final states are bit-identical whether the forward saves for backward
    (inputs require grad) or not (no_grad, or constant inputs), and functional asks the kernel
    to save exactly when a node is recorded. H = 37 puts vector bodies and scalar tails in
    every gate loop; same arithmetic on the same inputs must round the same."""
    c = cast(make_case(variant, option, B=5, T=6, F_=4, H=37), dtype)
    skip_unless_implemented(backend_name, c.op)
    module = backends.get(backend_name)
    kernel = getattr(module, f"{c.op}_forward")
    calls = []  # (save, what the kernel returned)

    def spy(*args, **kwargs):
        result = kernel(*args, **kwargs)
        calls.append((kwargs.get("save", True), result))
        return result

    with pytest.MonkeyPatch.context() as mp, backends.use_backend(backend_name):
        mp.setattr(module, f"{c.op}_forward", spy)
        trained = c.fn(*c.tensors())
        with no_grad():
            inferred = c.fn(*c.tensors())
        constant = c.fn(*[Tensor(a) for a in c.arrays])
    for name, a, b, k in zip(["outputs", "h_T", "c_T"], trained, inferred, constant):
        np.testing.assert_array_equal(b.numpy(), a.numpy(), err_msg=f"{name} under no_grad")
        np.testing.assert_array_equal(k.numpy(), a.numpy(), err_msg=f"{name} of constant inputs")
    assert [save for save, _ in calls] == [True, False, False]
    if c.op == "simple_rnn":  # hs, its output, is all it keeps either way
        return
    for save, result in calls:
        saved = result[1:]
        if not save and c.op == "lstm":
            assert saved[0].shape == (1,) + result[0].shape[1:] and saved[1] is None
        elif not save:
            assert saved == (None, None)
        else:
            assert all(a is not None for a in saved)


# External oracles. float64 everywhere, so agreement is to rounding: 1e-9 relative leaves
# room for the different summation orders of torch's and Keras's GEMMs over T steps.
ORACLE_RTOL = 1e-9
TORCH_OPTIONS = ("plain", "initial_state", "go_backwards", "right_padding", "last_output")


def assert_close(name, actual, expected, rtol=ORACLE_RTOL):
    err = testing.relative_error(actual, expected)
    assert err <= rtol, f"{name}: relative error {err:.3g} > {rtol}"


def _cotangents(rng, shapes):
    return [rng.standard_normal(s) for s in shapes]


def check_against_torch(variant, option, B=3, T=6, F_=4, H=5):
    """Outputs, final states and every gradient vs torch.nn.LSTM/GRU/RNN (weights via engine.convert).

    go_backwards is torch on the time-reversed input; right_padding is a packed sequence,
    whose zero outputs past each length are Keras's zero_output_for_mask outputs.
    """
    torch = pytest.importorskip("torch")
    from engine import convert
    op = VARIANTS[variant][0]
    module_cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "simple_rnn": torch.nn.RNN}[op]
    torch.manual_seed(_seed(variant, option))
    module = module_cls(F_, H, batch_first=True).double()
    weights = getattr(convert, f"{op}_from_torch")(module.state_dict())
    rng = np.random.default_rng(_seed("torch", variant, option))
    x = rng.standard_normal((B, T, F_))
    n_states = 2 if op == "lstm" else 1
    states = [rng.uniform(-0.8, 0.8, (B, H)) for _ in range(n_states)] if option == "initial_state" else []
    lengths = rng.integers(1, T + 1, size=B) if option == "right_padding" else None
    return_sequences = option != "last_output"

    # torch
    tx = torch.tensor(x, requires_grad=True)
    tstates = [torch.tensor(s[None], requires_grad=True) for s in states]
    inp = tx.flip(1) if option == "go_backwards" else tx
    if lengths is not None:
        inp = torch.nn.utils.rnn.pack_padded_sequence(inp, torch.tensor(lengths), batch_first=True,
                                                      enforce_sorted=False)
    hx = None if not tstates else (tuple(tstates) if op == "lstm" else tstates[0])
    t_out, t_final = module(inp, hx)
    if lengths is not None:
        t_out, _ = torch.nn.utils.rnn.pad_packed_sequence(t_out, batch_first=True, total_length=T)
    t_final = list(t_final) if op == "lstm" else [t_final]
    t_results = [t_out if return_sequences else t_out[:, -1]] + [s[0] for s in t_final]

    # ours
    params = [Tensor(w, requires_grad=True) for w in weights]
    ex = Tensor(x, requires_grad=True)
    estates = [Tensor(s, requires_grad=True) for s in states]
    mask = None if lengths is None else np.arange(T)[None, :] < lengths[:, None]
    with backends.use_backend("reference"):
        e_results = getattr(F, op)(ex, *params, initial_state=estates or None, mask=mask,
                                   go_backwards=option == "go_backwards",
                                   return_sequences=return_sequences,
                                   zero_output_for_mask=lengths is not None)

    weights_out = _cotangents(rng, [tuple(r.shape) for r in e_results])
    for name, ours, theirs in zip(["outputs", "h_T", "c_T"], e_results, t_results):
        assert_close(f"{variant}/{option} {name}", ours.numpy(), theirs.detach().numpy())
    sum((r * Tensor(w)).sum() for r, w in zip(e_results, weights_out)).backward()
    sum((r * torch.tensor(w)).sum() for r, w in zip(t_results, weights_out)).backward()

    assert_close(f"{variant}/{option} dx", ex.grad, tx.grad.numpy())
    for i, (ours, theirs) in enumerate(zip(estates, tstates)):
        assert_close(f"{variant}/{option} d initial_state[{i}]", ours.grad, theirs.grad[0].numpy())
    grads = {k: p.grad for k, p in module.named_parameters()}
    if op != "gru":
        # bias = b_ih + b_hh, so d bias = d b_ih; zeroing b_hh's gradient makes the converter say so.
        grads["bias_hh_l0"] = torch.zeros_like(grads["bias_hh_l0"])
    expected = getattr(convert, f"{op}_from_torch")(grads)
    for name, p, g in zip(["kernel", "recurrent_kernel", "bias"], params, expected):
        assert_close(f"{variant}/{option} d{name}", p.grad, g)


# Keras 3.15's torch backend returns float32 from ops.matmul even for float64 operands
# (dtypes.result_type("float64", "float64") is "float32" there), so Keras agrees with us only
# to float32 rounding, a few 1e-8 relative; 1e-6 still catches any semantic difference.
KERAS_RTOL = 1e-6
KERAS_OPTIONS = ("mask_holes", "go_backwards_mask", "masked_row", "zero_output_for_mask",
                 "left_padding", "dropout", "everything", "no_bias")


def check_against_keras(variant, option, B=3, T=5, F_=3, H=4):
    """Outputs and final states vs keras.layers.LSTM/GRU/SimpleRNN (float64) on the same case.

    Keras draws a separate recurrent-dropout mask per gate; its cell is given our single mask
    for every gate so that the two compute the same thing.
    """
    keras = keras_or_skip()
    case = make_case(variant, option, B, T, F_, H)
    op, extra, _ = VARIANTS[variant]
    layer_cls = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "simple_rnn": keras.layers.SimpleRNN}[op]
    kw = case.kwargs
    dropout = kw.get("recurrent_dropout_mask")
    layer = layer_cls(H, return_sequences=kw.get("return_sequences", True), return_state=True,
                      go_backwards=kw.get("go_backwards", False), use_bias="bias" in case.names,
                      zero_output_for_mask=kw.get("zero_output_for_mask", False),
                      recurrent_dropout=0.3 if dropout is not None else 0.0, dtype="float64", **extra)
    layer.build((B, T, F_))
    d = dict(zip(case.names, case.arrays))
    layer.set_weights([d[k] for k in ("kernel", "recurrent_kernel", "bias") if k in d])
    if dropout is not None:
        count = {"lstm": 4, "gru": 3, "simple_rnn": None}[op]
        m = keras.ops.convert_to_tensor(dropout)
        layer.cell.get_recurrent_dropout_mask = lambda h: m if count is None else [m] * count
    states = [d[k] for k in ("h0", "c0") if k in d]
    mask = kw.get("mask")
    theirs = layer(case.arrays[0], mask=None if mask is None else keras.ops.convert_to_tensor(mask),
                   initial_state=states or None, training=dropout is not None)
    with backends.use_backend("reference"):
        ours = case.fn(*[Tensor(a) for a in case.arrays])
    for name, a, b in zip(["outputs", "h_T", "c_T"], ours, theirs):
        assert_close(f"{variant}/{option} {name} vs Keras", a.numpy(), keras.ops.convert_to_numpy(b),
                     KERAS_RTOL)


def check_mask_semantics(variant):
    """Without oracles: zeros before the first unmasked step, carried output after it, and
    h_T = h0 for an all-masked row."""
    case = make_case(variant, "initial_state", B=2, T=4)
    with backends.use_backend("reference"):
        out = case.fn(*[Tensor(a) for a in case.arrays])[0].numpy()
        case.kwargs["mask"] = np.array([[False, True, False, True], [False] * 4])
        masked, masked_h = (r.numpy() for r in case.fn(*[Tensor(a) for a in case.arrays])[:2])
    h0 = case.arrays[case.names.index("h0")]
    assert np.all(masked[0, 0] == 0) and np.all(masked[1] == 0)
    np.testing.assert_array_equal(masked[0, 2], masked[0, 1])
    np.testing.assert_array_equal(masked_h[1], h0[1])
    # Step 0 was skipped, so step 1 ran from the initial state, not from step 0's state.
    assert not np.allclose(masked[0, 1], out[0, 1])


def check_one_node(variant):
    """The whole call is one graph node over the given tensors; no_grad records nothing."""
    case = make_case(variant, "initial_state")
    tensors = case.tensors()
    with backends.use_backend("reference"):
        results = case.fn(*tensors)
        assert len({id(r._node) for r in results}) == 1
        assert all(t is n for t, n in zip(tensors, results[0]._node.inputs))
        with no_grad():
            assert not any(r.requires_grad for r in case.fn(*tensors))


def check_bad_input(variant):
    """Each bad argument raises before any kernel runs, naming the argument and the shapes."""
    case = make_case(variant, "initial_state", B=2, T=3, F_=3, H=2)
    d = dict(zip(case.names, case.arrays))
    op = getattr(F, case.op)
    extra = {k: v for k, v in case.kwargs.items() if k == "reset_after"}
    x, k, u, b = d["x"], d["kernel"], d["recurrent_kernel"], d["bias"]
    states = [d["h0"][:1]] + ([d["c0"]] if "c0" in d else [])
    bad = [
        (ValueError, "at least one timestep", (x[:, :0], k, u, b), {}),
        (ValueError, "x must have shape", (x[0], k, u, b), {}),
        (ValueError, r"kernel must have shape \(features", (x, k[:2], u, b), {}),
        (ValueError, "recurrent_kernel must have shape", (x, k, u[:, :-1], b), {}),
        (ValueError, "bias must have shape", (x, k, u, b[..., :-1]), {}),
        (TypeError, "kernel must have x's dtype float64, got float32", (x, k.astype(np.float32), u, b), {}),
        (TypeError, "x must be float32 or float64", (x.astype(np.int64), k, u, b), {}),
        (ValueError, r"mask must have shape \(2, 3\), got \(3, 2\)", (x, k, u, b),
         {"mask": np.ones((3, 2), bool)}),
        (TypeError, "mask must be bool", (x, k, u, b), {"mask": np.ones((2, 3))}),
        (ValueError, "recurrent_dropout_mask must have shape", (x, k, u, b),
         {"recurrent_dropout_mask": np.ones((2, 3))}),
        (ValueError, "initial_state must be a list", (x, k, u, b), {"initial_state": [d["h0"]] * 3}),
        (ValueError, r"initial_state\[0\] \(h0\) must have shape \(2, 2\)", (x, k, u, b),
         {"initial_state": states}),
    ]
    for error, message, args, kwargs in bad:
        with pytest.raises(error, match=message):
            op(*args, **kwargs, **extra)


def check_cpp_boundary(variant):
    """engine._C is a C boundary: bad arrays handed straight to it raise, naming the argument."""
    _C = pytest.importorskip("engine._C")
    case = make_case(variant, "plain", B=2, T=3, F_=3, H=2)
    d = dict(zip(case.names, case.arrays))
    x, k, u = d["x"], d["kernel"], d["recurrent_kernel"]
    G, H = k.shape[1], u.shape[0]
    h0, mask_t = np.zeros((2, H)), None
    rest = {"lstm": (u, h0, h0, mask_t, None), "gru": (u, None, h0, mask_t, None),
            "simple_rnn": (u, h0, mask_t, None)}[case.op]
    forward = getattr(_C, f"{case.op}_forward")
    bad = [
        (ValueError, r"kernel must have shape \(F, %s\) = \(3, %d\), got \(2, %d\)"
         % ({4: "4H", 3: "3H", 1: "H"}[G // H], G, G), (x, k[:2], None)),
        (ValueError, r"bias must have shape", (x, k, np.zeros(G + 1))),
        (ValueError, r"x must have 3 dimensions", (x[0], k, None)),
        (TypeError, r"kernel must be float64 like the other float inputs, got float32",
         (x, k.astype(np.float32), None)),
    ]
    for error, message, projection in bad:
        with pytest.raises(error, match=message):
            forward(*projection, *rest)
    # backward's kernel (for dx) must match the gates: [F, G].
    outputs = forward(x, k, None, *rest)
    hs = outputs if case.op == "simple_rnn" else outputs[0]
    backward = getattr(_C, f"{case.op}_backward")
    saved = {"lstm": lambda: (hs, np.zeros((2, H)), u, h0, h0, hs, outputs[1], outputs[2], None, None),
             "gru": lambda: (hs, u, None, h0, hs, outputs[1], outputs[2], None, None),
             "simple_rnn": lambda: (hs, u, h0, hs, None, None)}[case.op]()
    with pytest.raises(ValueError, match=r"kernel must have size %d on axis 1" % G):
        backward(*saved, kernel=k[:, :-1])
    grads = backward(*saved, kernel=k, go_backwards=True)
    assert grads[1].shape == x.shape
    assert backward(*saved)[1] is None


def check_state_gradient_layouts(variant, dtype):
    """The C++ backwards read dhs and hs where they lie (bindings/rnn_checks.hpp, sequence_arg):
    dhs as the [B,T,H] output gradient transposed, a broadcast (Sum's backward), reversed in
    time, and, copied first, rows with a stride or a misaligned view; hs batch-major as the
    forward wrote it. Every layout must give what the same values in C order give, bit for
    bit, forward and go_backwards."""
    _C = pytest.importorskip("engine._C")
    c = cast(make_case(variant, "plain", B=5, T=6, F_=4, H=37), dtype)
    d = dict(zip(c.names, c.arrays))
    x, k, u = d["x"], d["kernel"], d["recurrent_kernel"]
    B, T, _ = x.shape
    H = u.shape[0]
    h0 = np.zeros((B, H), dtype)
    rng = np.random.default_rng(7)
    batch_major = rng.standard_normal((B, T, H)).astype(dtype)
    wide = rng.standard_normal((T, B, 2 * H)).astype(dtype)
    packed = np.zeros(T * B * H * dtype().itemsize + 1, np.uint8)[1:].view(dtype).reshape(T, B, H)
    packed[...] = batch_major.transpose(1, 0, 2)
    layouts = {
        "transposed output gradient": batch_major.transpose(1, 0, 2),
        "broadcast": np.broadcast_to(batch_major[0, 0], (T, B, H)),
        "broadcast over the batch": np.broadcast_to(batch_major[0][:, None], (T, B, H)),
        "reversed in time": batch_major.transpose(1, 0, 2)[::-1],
        "strided rows (copied)": wide[:, :, ::2],
        "misaligned (copied)": packed,
    }
    forward, backward = getattr(_C, f"{c.op}_forward"), getattr(_C, f"{c.op}_backward")
    for go_backwards in (False, True):
        if c.op == "lstm":
            hs, cs, gates = forward(x, k, None, u, h0, h0, None, None, go_backwards=go_backwards)
            run = lambda dhs: backward(dhs, h0, u, h0, h0, hs, cs, gates, None, None,  # noqa: E731
                                       kernel=k, go_backwards=go_backwards)
        elif c.op == "gru":
            ra = c.kwargs["reset_after"]
            hs, gates, uh = forward(x, k, None, u, None, h0, None, None, ra, go_backwards=go_backwards)
            run = lambda dhs: backward(dhs, u, None, h0, hs, gates, uh, None, None, ra,  # noqa: E731
                                       kernel=k, go_backwards=go_backwards)
        else:
            hs = forward(x, k, None, u, h0, None, None, go_backwards=go_backwards)
            run = lambda dhs: backward(dhs, u, h0, hs, None, None, kernel=k,  # noqa: E731
                                       go_backwards=go_backwards)
        for name, dhs in layouts.items():
            expected = run(np.ascontiguousarray(dhs))
            for i, (a, b) in enumerate(zip(run(dhs), expected)):
                np.testing.assert_array_equal(a, b, err_msg=f"{name}: result {i}")
        # hs as the forward wrote it (batch-major) and as a C-order copy read the same.
        assert not hs.flags.c_contiguous
        expected = run(layouts["transposed output gradient"])
        hs = np.ascontiguousarray(hs)
        for i, (a, b) in enumerate(zip(run(layouts["transposed output gradient"]), expected)):
            np.testing.assert_array_equal(a, b, err_msg=f"hs in C order: result {i}")


_STATES_OF = {"lstm": ("h_T", "c_T"), "gru": ("h_T",), "simple_rnn": ("h_T",)}


def check_state_gradient_alone(case: Case, backend_name, dtype):
    """Only a final state gets a gradient (h_T, or LSTM's c_T), as under a loss on the last
    state: the node's backward gets None for the outputs no gradient reached
    (zero_output_grads, engine/function.py). Every gradient against the reference."""
    skip_unless_implemented(backend_name, case.op)
    c = cast(case, dtype)
    for index in range(1, len(_STATES_OF[case.op]) + 1):
        grads = {}
        for name in ("reference", backend_name):
            with backends.use_backend(name):
                tensors = c.tensors()
                c.fn(*tensors)[index].sum().backward()
                grads[name] = [t.grad for t in tensors]
        for n, a, b in zip(c.names, grads[backend_name], grads["reference"]):
            err = testing.relative_error(a, b)
            assert err <= GRAD_RTOL[np.dtype(dtype).type], f"output {index}: grad of {n} off by {err}"


def check_output_gradient_alone(case: Case, backend_name, dtype):
    """Only the sequence output gets a gradient (the final states' are zeros), as under a loss
    on the outputs: the layer hands the output's gradient to the backward as it came (no
    time-major copy; engine/_recurrent.py), a fresh array here and Sum's read-only broadcast
    below. Forward and every gradient against the reference."""
    skip_unless_implemented(backend_name, case.op)
    c = cast(case, dtype)
    first = lambda *t: c.fn(*t)[0]  # noqa: E731
    errors = testing.backend_errors(first, c.arrays, [True] * len(c.arrays), names=[backend_name])
    bad = {k: e for k, e in errors[backend_name].items()
           if not e <= (FORWARD_RTOL if k.startswith("forward") else GRAD_RTOL)[np.dtype(dtype).type]}
    assert not bad, f"{backend_name}, {case.variant}/{case.option}: relative errors {bad}"
    grads = {}
    for name in ("reference", backend_name):
        with backends.use_backend(name):
            tensors = [Tensor(a, requires_grad=True) for a in c.arrays]
            first(*tensors).sum().backward()
            grads[name] = [t.grad for t in tensors]
    for n, a, b in zip(c.names, grads[backend_name], grads["reference"]):
        err = testing.relative_error(a, b)
        assert err <= GRAD_RTOL[np.dtype(dtype).type], f"sum(): grad of {n} off by {err}"
