"""The recurrent ops of the cupy backend: lstm, gru (both reset_after forms) and simple_rnn on
the GPU, and the choice between the two loop versions (docs/kernels.md is the contract).

- v1 (this module) is Haste's design: the input projection over all T·B rows is one GEMM
  (engine/backends/_projection.py, as the reference backend), then per time step one cuBLAS
  GEMM `hd_{t-1}·U` into a preallocated buffer and one fused pointwise kernel
  (kernels/cuda/<op>.cu) that applies gates, cell, mask and recurrent dropout and writes
  hs/cs/gates. The backward runs per step one fused pointwise kernel and the GEMM `dz_t·Uᵀ`
  (gru with reset_after=False adds the GEMM for d(r*hd)). Every buffer is allocated before
  the time loop.
- v2 is the persistent kernel of engine/backends/_cuda_persistent.py (the whole loop in one
  cooperative launch, the weights on chip), for the shapes its `supports` accepts.

`SEQFUSE_CUDA_RNN=v1|v2|auto` (default auto) chooses per call: auto takes v2 wherever it is
supported, v1 elsewhere; `loop_version` tells which one a call gets. The v1 loops
(`lstm_loop_forward`, ...) take the projection xw [T,B,G] and have the signatures of the
reference's private loops, so tests can run either version directly.

Example (needs a GPU):
    >>> import os, cupy
    >>> os.environ["SEQFUSE_CUDA_RNN"] = "v1"
    >>> x = cupy.ones((2, 5, 3), cupy.float32)
    >>> kernel, U = cupy.full((3, 8), 0.1, cupy.float32), cupy.full((2, 8), 0.1, cupy.float32)
    >>> h0 = cupy.zeros((2, 2), cupy.float32)
    >>> hs, cs, gates = lstm_forward(x, kernel, None, U, h0, h0, None, None)
    >>> hs.shape, gates.shape
    ((5, 2, 2), (5, 2, 8))

The table functions check every argument on the host (ValueError/TypeError naming the
argument, expected and actual, as the C++ bindings do) before cupy is touched.
"""
from __future__ import annotations

import os

import numpy as np

from . import _cuda, _cuda_persistent
from ._projection import bias_gradient, gru_candidate_gradient, projected_backward, projected_forward

try:
    import cupy
except ImportError:
    cupy = None

ENV = "SEQFUSE_CUDA_RNN"
VERSIONS = ("v1", "v2", "auto")
_THREADS = 256
_GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}

_cuda.declare("lstm", "lstm_step_forward<{T}>", "lstm_step_backward<{T}>")
_cuda.declare("gru", "gru_step_forward_after<{T}>", "gru_step_gates_before<{T}>",
              "gru_step_blend_before<{T}>", "gru_step_backward<{T}>", "gru_step_reset_before<{T}>")
_cuda.declare("simple_rnn", "simple_rnn_step_forward<{T}>", "simple_rnn_step_backward<{T}>")


# ---------------------------------------------------------------------------------------------
# The version choice

def loop_version(op: str, B: int, H: int, dtype) -> str:
    """"v1" or "v2": the loop a call of `op` ("lstm", "gru", "simple_rnn") with batch B, H
    units and `dtype` runs, by the environment variable SEQFUSE_CUDA_RNN (default "auto").

    auto: v2 where `_cuda_persistent.supports(op, B, H, dtype)` says so, v1 elsewhere.
    v2 where it is unsupported, or an unknown value: ValueError saying why.

    Example:
        >>> os.environ["SEQFUSE_CUDA_RNN"] = "v1"
        >>> loop_version("lstm", 16, 512, np.float32)
        'v1'
    """
    requested = os.environ.get(ENV, "auto")
    if requested not in VERSIONS:
        raise ValueError(f"{ENV} must be one of {', '.join(VERSIONS)}, got {requested!r}")
    if requested == "v1":
        return "v1"
    dtype = np.dtype(dtype)
    supported = bool(_cuda_persistent.supports(op, B, H, dtype))
    if requested == "auto":
        return "v2" if supported else "v1"
    if not supported:
        raise ValueError(f"{ENV}=v2, but the v2 persistent {op} kernel does not support "
                         f"B={B}, H={H}, {dtype} on this device (its recurrent weights must fit "
                         f"on chip); set {ENV}=v1 or auto")
    return "v2"


def _loop(op: str, direction: str, B: int, H: int, dtype):
    """The time loop `{op}_loop_{direction}` of the version `loop_version` chooses."""
    name = f"{op}_loop_{direction}"
    if loop_version(op, B, H, dtype) == "v2":
        return getattr(_cuda_persistent, name)
    return _V1_LOOPS[name]


# ---------------------------------------------------------------------------------------------
# Host-side argument checks (messages as bindings/common.hpp's)

def _dims(dims) -> str:
    return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


class _Args:
    """Checks one table call's arguments against the dtype of its first float array."""

    def __init__(self, op: str, first_name: str, first):
        self.op, self.arrays = op, []
        self._array(first_name, first)
        if np.dtype(first.dtype) not in (np.float32, np.float64):
            raise TypeError(f"{op}: {first_name} must be float32 or float64, got {first.dtype}")
        self.dtype = np.dtype(first.dtype)

    def _array(self, name, a):
        if not (hasattr(a, "shape") and hasattr(a, "dtype")):
            raise TypeError(f"{self.op}: {name} must be an array, got {type(a).__name__}")
        self.arrays.append((name, a))

    def ndim(self, name, a, ndim):
        if len(a.shape) != ndim:
            raise ValueError(f"{self.op}: {name} must have {ndim} dimensions, got shape "
                             f"{_dims(a.shape)}")

    def float_array(self, name, a, symbols=None, dims=None, optional=False):
        """a float array of the call's dtype and, when dims are given, of shape dims."""
        if a is None and optional:
            return
        self._array(name, a)
        if np.dtype(a.dtype) != self.dtype:
            raise TypeError(f"{self.op}: {name} must be {self.dtype} like the other float inputs, "
                            f"got {a.dtype}")
        if dims is not None and tuple(a.shape) != tuple(dims):
            raise ValueError(f"{self.op}: {name} must have shape {symbols} = {_dims(dims)}, got "
                             f"{_dims(a.shape)}")

    def mask(self, mask, T, B):
        if mask is None:
            return
        self._array("mask", mask)
        if np.dtype(mask.dtype) != np.bool_:
            raise TypeError(f"{self.op}: mask must be a bool array of shape (T, B) or None, got "
                            f"{mask.dtype}")
        if tuple(mask.shape) != (T, B):
            raise ValueError(f"{self.op}: mask must have shape (T, B) = {_dims((T, B))}, got "
                             f"{_dims(mask.shape)}")

    def recurrent(self, U, G):
        """Checks U [H, G·H]; returns H."""
        self.float_array("U", U)
        self.ndim("U", U, 2)
        H = U.shape[0]
        self.float_array("U", U, f"(H, {G}H)" if G > 1 else "(H, H)", (H, G * H))
        return H

    def recurrent_bias(self, rb, H, reset_after):
        """gru's [3H] recurrent bias: only with reset_after (otherwise it is inside xw)."""
        if rb is not None and not reset_after:
            raise ValueError("gru: recurrent_bias must be None when reset_after=False "
                             "(the whole bias is inside xw)")
        self.float_array("recurrent_bias", rb, "(3H,)", (3 * H,), optional=True)

    def on_device(self):
        """Last: every array is a GPU array (shape errors come first, so a host test with NumPy
        arrays sees them)."""
        for name, a in self.arrays:
            if not hasattr(a, "__cuda_array_interface__"):
                raise TypeError(f"{self.op}: {name} must be a GPU (cupy) array for the cupy "
                                f"backend, got {type(a).__module__}.{type(a).__name__}")


def _check_forward(op, x, kernel, bias, U, states, mask, dropout_mask, recurrent_bias=None,
                   reset_after=True):
    """Validates a forward's arguments; returns (B, H). states: {name: [B,H] array}."""
    G = _GATES[op]
    g = f"{G}H" if G > 1 else "H"
    args = _Args(op, "x", x)
    args.ndim("x", x, 3)
    B, T, F = x.shape
    H = args.recurrent(U, G)
    args.float_array("kernel", kernel, f"(F, {g})", (F, G * H))
    args.float_array("bias", bias, f"({g},)", (G * H,), optional=True)
    if op == "gru":
        args.recurrent_bias(recurrent_bias, H, reset_after)
    for name, state in states.items():
        args.float_array(name, state, "(B, H)", (B, H))
    args.mask(mask, T, B)
    args.float_array("dropout_mask", dropout_mask, "(B, H)", (B, H), optional=True)
    args.on_device()
    return B, H


def _check_backward(op, dhs, U, saved, mask, dropout_mask, kernel, recurrent_bias=None,
                    reset_after=True):
    """Validates a backward's arguments; returns (B, H).
    saved: {name: (array, its shape in symbols T, B, H, GH)}."""
    G = _GATES[op]
    args = _Args(op, "dhs", dhs)
    args.ndim("dhs", dhs, 3)
    T, B, _ = dhs.shape
    H = args.recurrent(U, G)
    args.float_array("dhs", dhs, "(T, B, H)", (T, B, H))
    if op == "gru":
        args.recurrent_bias(recurrent_bias, H, reset_after)
    for name, (a, symbols) in saved.items():
        dims = tuple({"T": T, "B": B, "H": H, f"{G}H": G * H}[s] for s in symbols)
        args.float_array(name, a, _dims(symbols), dims)
    args.mask(mask, T, B)
    args.float_array("dropout_mask", dropout_mask, "(B, H)", (B, H), optional=True)
    if kernel is not None:
        args.float_array("kernel", kernel)
        args.ndim("kernel", kernel, 2)
        if kernel.shape[1] != G * H:
            raise ValueError(f"{op}: kernel must have size {G * H} on axis 1, got shape "
                             f"{_dims(kernel.shape)}")
    args.on_device()
    return B, H


# ---------------------------------------------------------------------------------------------
# The kernel table (docs/kernels.md): checks, then the chosen loop inside the input projection

def lstm_forward(x, kernel, bias, U, h0, c0, mask, dropout_mask, *, go_backwards=False, save=True):
    """x: [B,T,F], kernel: [F,4H], bias: [4H] or None, U: [H,4H], h0/c0: [B,H], mask: [T,B]
    bool or None, dropout_mask: [B,H] or None -> (hs [T,B,H], cs [T,B,H], gates [T,B,4H]);
    without `save`, cs is only c_T [1,B,H] and gates is None."""
    B, H = _check_forward("lstm", x, kernel, bias, U, {"h0": h0, "c0": c0}, mask, dropout_mask)
    loop = projected_forward(_loop("lstm", "forward", B, H, x.dtype))
    return loop(x, kernel, bias, U, h0, c0, mask, dropout_mask, go_backwards=go_backwards,
                save=save)


def lstm_backward(dhs, dc_T, U, h0, c0, hs, cs, gates, mask, dropout_mask, *, kernel=None,
                  go_backwards=False, overwrite_saved=False):
    """dhs: [T,B,H], dc_T: [B,H]
    -> (dz [T,B,4H], dx [B,T,F] or None, dbias [4H], dh0 [B,H], dc0 [B,H]); overwrite_saved is
    allowed, not used (dz is a new array)."""
    saved = {"dc_T": (dc_T, "BH"), "h0": (h0, "BH"), "c0": (c0, "BH"), "hs": (hs, "TBH"),
             "cs": (cs, "TBH"), "gates": (gates, ("T", "B", "4H"))}
    B, H = _check_backward("lstm", dhs, U, saved, mask, dropout_mask, kernel)
    loop = projected_backward(_loop("lstm", "backward", B, H, dhs.dtype))
    return loop(dhs, dc_T, U, h0, c0, hs, cs, gates, mask, dropout_mask, kernel=kernel,
                go_backwards=go_backwards)


def gru_forward(x, kernel, bias, U, recurrent_bias, h0, mask, dropout_mask, reset_after=True, *,
                go_backwards=False, save=True):
    """x: [B,T,F], kernel: [F,3H], bias: [3H] (input bias) or None, U: [H,3H],
    recurrent_bias: [3H] or None, h0: [B,H] -> (hs [T,B,H], gates [T,B,3H], uh [T,B,H] or [0]
    when not reset_after); gates and uh are None when not `save`."""
    B, H = _check_forward("gru", x, kernel, bias, U, {"h0": h0}, mask, dropout_mask,
                          recurrent_bias, reset_after)
    loop = projected_forward(_loop("gru", "forward", B, H, x.dtype))
    return loop(x, kernel, bias, U, recurrent_bias, h0, mask, dropout_mask, reset_after,
                go_backwards=go_backwards, save=save)


def gru_backward(dhs, U, recurrent_bias, h0, hs, gates, uh, mask, dropout_mask, reset_after=True,
                 *, kernel=None, go_backwards=False, overwrite_saved=False):
    """dhs: [T,B,H] -> (dxw [T,B,3H], dx [B,T,F] or None, du [T,B,H] the candidate's columns
    of the recurrent gradient the loop writes, dbias [2,3H] (reset_after) or [3H], dh0 [B,H]);
    overwrite_saved is allowed, not used."""
    saved = {"h0": (h0, "BH"), "hs": (hs, "TBH"), "gates": (gates, ("T", "B", "3H"))}
    if reset_after:
        saved["uh"] = (uh, "TBH")
    B, H = _check_backward("gru", dhs, U, saved, mask, dropout_mask, kernel, recurrent_bias,
                           reset_after)
    loop = projected_backward(_loop("gru", "backward", B, H, dhs.dtype))
    return gru_candidate_gradient(loop(dhs, U, recurrent_bias, h0, hs, gates, uh, mask,
                                       dropout_mask, reset_after, kernel=kernel,
                                       go_backwards=go_backwards))


def simple_rnn_forward(x, kernel, bias, U, h0, mask, dropout_mask, *, go_backwards=False, save=True):
    """x: [B,T,F], kernel: [F,H], bias: [H] or None, U: [H,H], h0: [B,H] -> hs [T,B,H]
    (hs, the output, is all it keeps: `save` changes nothing here)."""
    B, H = _check_forward("simple_rnn", x, kernel, bias, U, {"h0": h0}, mask, dropout_mask)
    loop = projected_forward(_loop("simple_rnn", "forward", B, H, x.dtype))
    return loop(x, kernel, bias, U, h0, mask, dropout_mask, go_backwards=go_backwards)


def simple_rnn_backward(dhs, U, h0, hs, mask, dropout_mask, *, kernel=None, go_backwards=False):
    """dhs: [T,B,H] -> (dz [T,B,H], dx [B,T,F] or None, dbias [H], dh0 [B,H])."""
    saved = {"h0": (h0, "BH"), "hs": (hs, "TBH")}
    B, H = _check_backward("simple_rnn", dhs, U, saved, mask, dropout_mask, kernel)
    loop = projected_backward(_loop("simple_rnn", "backward", B, H, dhs.dtype))
    return loop(dhs, U, h0, hs, mask, dropout_mask, kernel=kernel, go_backwards=go_backwards)


# ---------------------------------------------------------------------------------------------
# The v1 loops: time-major, on cupy arrays, the reference loops' signatures and results

def _c(a):
    """A C-contiguous cupy array (no copy when it already is), or None."""
    return None if a is None else cupy.ascontiguousarray(a)


def _ptr(a):
    """A kernel's optional array argument: the array, or a null pointer (np.uint64(0)) for None;
    the kernels test the pointer."""
    return np.uint64(0) if a is None else a


class _Launcher:
    """The pointwise kernels `names` of kernels/cuda/<stem>.cu for one dtype, fetched before the
    time loop and launched over B·H threads: run(name, t, *args)."""

    def __init__(self, stem, dtype, B, H, *names):
        self.kernels = {n: _cuda.function(stem, n + "<{T}>", dtype) for n in names}
        self.grid, self.block = _cuda.blocks(B * H, _THREADS), (_THREADS,)
        self.B, self.H = np.int64(B), np.int64(H)

    def __call__(self, name, t, *args):
        self.kernels[name](self.grid, self.block, (self.B, self.H, np.int64(t), *args))


def _gemm_inputs(hd, hs, h0):
    """The GEMM input of every step, as views made before the loop: hd (the dropped state
    buffer the kernels rewrite each step) or h_{t-1} = h0, hs[0], ..., hs[T-2]."""
    T = hs.shape[0]
    return [hd] * T if hd is not None else [h0] + [hs[t] for t in range(T - 1)]


def _first_hd(h0, dropout_mask):
    """The dropped-state buffer [B,H] = h0·dm, or None without recurrent dropout."""
    return None if dropout_mask is None else h0 * dropout_mask


def _dh0(carry, dhd, dropout_mask):
    """dh0 = carry + (the last GEMM's dz_0·Uᵀ)·dm."""
    return carry + (dhd if dropout_mask is None else dhd * dropout_mask)


def lstm_loop_forward(xw, U, h0, c0, mask, dropout_mask, *, save=True):
    """xw: [T,B,4H], U: [H,4H], h0/c0: [B,H] -> (hs [T,B,H], cs [T,B,H], gates [T,B,4H]);
    without `save`, (hs, c_T [1,B,H], None)."""
    xw, U, h0, c0, mask, dm = (_c(a) for a in (xw, U, h0, c0, mask, dropout_mask))
    T, B, G = xw.shape
    H = U.shape[0]
    hs = cupy.empty((T, B, H), xw.dtype)
    cs = cupy.empty((T if save else 2, B, H), xw.dtype)      # inference: a ring of 2 steps
    gates = cupy.empty((T if save else 1, B, G), xw.dtype)   # inference: one step of scratch
    u = cupy.empty((B, G), xw.dtype)
    hd = _first_hd(h0, dm)
    inputs = _gemm_inputs(hd, hs, h0)
    run = _Launcher("lstm", xw.dtype, B, H, "lstm_step_forward")
    for t in range(T):
        cupy.matmul(inputs[t], U, out=u)
        run("lstm_step_forward", t, np.int32(save), xw, u, h0, c0, _ptr(mask), _ptr(dm), hs, cs,
            gates, _ptr(hd))
    if save:
        return hs, cs, gates
    last = (T - 1) % 2
    return hs, cs[last:last + 1], None


def lstm_loop_backward(dhs, dc_T, U, h0, c0, hs, cs, gates, mask, dropout_mask):
    """dhs: [T,B,H], dc_T: [B,H] -> (dz [T,B,4H], dbias [4H], dh0 [B,H], dc0 [B,H])."""
    dhs, U, c0, cs, gates, mask, dm = (_c(a) for a in (dhs, U, c0, cs, gates, mask, dropout_mask))
    T, B, H = dhs.shape
    Ut = cupy.ascontiguousarray(U.T)                         # [4H,H]
    dz = cupy.empty((T, B, 4 * H), dhs.dtype)
    carry, dhd = cupy.zeros((B, H), dhs.dtype), cupy.zeros((B, H), dhs.dtype)
    dc = cupy.array(dc_T, dtype=dhs.dtype, order="C")        # a copy: updated in place
    run = _Launcher("lstm", dhs.dtype, B, H, "lstm_step_backward")
    for t in reversed(range(T)):
        run("lstm_step_backward", t, dhs, c0, cs, gates, _ptr(mask), _ptr(dm), dhd, dz, carry, dc)
        cupy.matmul(dz[t], Ut, out=dhd)
    return dz, bias_gradient(dz), _dh0(carry, dhd, dm), dc


def gru_loop_forward(xw, U, recurrent_bias, h0, mask, dropout_mask, reset_after=True, *, save=True):
    """xw: [T,B,3H], U: [H,3H], recurrent_bias: [3H] or None, h0: [B,H]
    -> (hs [T,B,H], gates [T,B,3H], uh [T,B,H], or [0] if not reset_after); gates and uh are
    None when not `save`."""
    xw, U, rb, h0, mask, dm = (_c(a) for a in (xw, U, recurrent_bias, h0, mask, dropout_mask))
    T, B, G = xw.shape
    H = U.shape[0]
    steps = T if save else 1                                  # inference: one step of scratch
    hs = cupy.empty((T, B, H), xw.dtype)
    gates = cupy.empty((steps, B, G), xw.dtype)
    uh = cupy.empty((steps, B, H) if reset_after else (0,), xw.dtype)
    hd = _first_hd(h0, dm)
    inputs = _gemm_inputs(hd, hs, h0)
    run = _Launcher("gru", xw.dtype, B, H, "gru_step_forward_after", "gru_step_gates_before",
                    "gru_step_blend_before")
    flag = np.int32(save)
    if reset_after:
        u = cupy.empty((B, G), xw.dtype)
        for t in range(T):
            cupy.matmul(inputs[t], U, out=u)
            run("gru_step_forward_after", t, flag, xw, u, _ptr(rb), h0, _ptr(mask), _ptr(dm), hs,
                gates, uh, _ptr(hd))
    else:
        U_zr, U_h = cupy.ascontiguousarray(U[:, :2 * H]), cupy.ascontiguousarray(U[:, 2 * H:])
        u_zr, rh, u_h = (cupy.empty((B, n), xw.dtype) for n in (2 * H, H, H))
        for t in range(T):
            cupy.matmul(inputs[t], U_zr, out=u_zr)
            run("gru_step_gates_before", t, flag, xw, u_zr, inputs[t], gates, rh)
            cupy.matmul(rh, U_h, out=u_h)
            run("gru_step_blend_before", t, flag, xw, u_h, h0, _ptr(mask), _ptr(dm), hs, gates,
                _ptr(hd))
    return (hs, gates, uh) if save else (hs, None, None)


def gru_loop_backward(dhs, U, recurrent_bias, h0, hs, gates, uh, mask, dropout_mask,
                      reset_after=True):
    """dhs: [T,B,H] -> (dxw [T,B,3H], du [T,B,3H], dbias [2,3H] (reset_after) or [3H], dh0 [B,H]);
    du as the reference's (docs/kernels.md); recurrent_bias does not enter the gradients."""
    dhs, U, h0, hs, gates, mask, dm = (_c(a) for a in (dhs, U, h0, hs, gates, mask, dropout_mask))
    uh = _c(uh) if reset_after else None
    T, B, H = dhs.shape
    G = 3 * H
    Ut = cupy.ascontiguousarray(U.T)                          # [3H,H]; rows :2H = U_zrᵀ
    dxw, du = cupy.empty((T, B, G), dhs.dtype), cupy.empty((T, B, G), dhs.dtype)
    carry, dhd = cupy.zeros((B, H), dhs.dtype), cupy.zeros((B, H), dhs.dtype)
    run = _Launcher("gru", dhs.dtype, B, H, "gru_step_backward", "gru_step_reset_before")
    if reset_after:
        for t in reversed(range(T)):
            run("gru_step_backward", t, np.int32(1), dhs, h0, hs, gates, uh, _ptr(mask), _ptr(dm),
                dhd, dxw, du, np.uint64(0), carry)
            cupy.matmul(du[t], Ut, out=dhd)
    else:
        Ut_zr, Ut_h = Ut[:2 * H], Ut[2 * H:]                  # contiguous row blocks
        dn, drh, dzr = (cupy.empty((B, n), dhs.dtype) for n in (H, H, 2 * H))
        for t in reversed(range(T)):
            run("gru_step_backward", t, np.int32(0), dhs, h0, hs, gates, np.uint64(0), _ptr(mask),
                _ptr(dm), dhd, dxw, du, dn, carry)
            cupy.matmul(dn, Ut_h, out=drh)
            run("gru_step_reset_before", t, h0, hs, gates, _ptr(dm), drh, dxw, du, dzr, carry)
            cupy.matmul(dzr, Ut_zr, out=dhd)
    dbias = bias_gradient(dxw, du if reset_after else None)
    return dxw, du, dbias, _dh0(carry, dhd, dm)


def simple_rnn_loop_forward(xw, U, h0, mask, dropout_mask):
    """xw: [T,B,H], U: [H,H], h0: [B,H] -> hs [T,B,H], h_t = tanh(xw[t] + hd_{t-1}·U)."""
    xw, U, h0, mask, dm = (_c(a) for a in (xw, U, h0, mask, dropout_mask))
    T, B, H = xw.shape
    hs = cupy.empty((T, B, H), xw.dtype)
    u = cupy.empty((B, H), xw.dtype)
    hd = _first_hd(h0, dm)
    inputs = _gemm_inputs(hd, hs, h0)
    run = _Launcher("simple_rnn", xw.dtype, B, H, "simple_rnn_step_forward")
    for t in range(T):
        cupy.matmul(inputs[t], U, out=u)
        run("simple_rnn_step_forward", t, xw, u, h0, _ptr(mask), _ptr(dm), hs, _ptr(hd))
    return hs


def simple_rnn_loop_backward(dhs, U, h0, hs, mask, dropout_mask):
    """dhs: [T,B,H] -> (dz [T,B,H], dbias [H], dh0 [B,H])."""
    dhs, U, hs, mask, dm = (_c(a) for a in (dhs, U, hs, mask, dropout_mask))
    T, B, H = dhs.shape
    Ut = cupy.ascontiguousarray(U.T)
    dz = cupy.empty((T, B, H), dhs.dtype)
    carry, dhd = cupy.zeros((B, H), dhs.dtype), cupy.zeros((B, H), dhs.dtype)
    run = _Launcher("simple_rnn", dhs.dtype, B, H, "simple_rnn_step_backward")
    for t in reversed(range(T)):
        run("simple_rnn_step_backward", t, dhs, hs, _ptr(mask), _ptr(dm), dhd, dz, carry)
        cupy.matmul(dz[t], Ut, out=dhd)
    return dz, bias_gradient(dz), _dh0(carry, dhd, dm)


_V1_LOOPS = {f.__name__: f for f in (lstm_loop_forward, lstm_loop_backward, gru_loop_forward,
                                     gru_loop_backward, simple_rnn_loop_forward,
                                     simple_rnn_loop_backward)}
