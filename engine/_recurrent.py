"""The recurrent ops behind F.lstm, F.gru and F.simple_rnn: validation and one autograd node.

Kept out of functional.py so that file stays a short list of public ops. The backend runs
the time loop together with the input projection x·kernel + bias and its gradients dx and
dbias (docs/kernels.md); the node does the weight-gradient GEMMs once after the loop, or the
C++ SimpleRNN and GRU backwards sum them inside theirs (the weights_in_loop choice).
Layouts are Keras's: x (B,T,F) batch-major, kernel (F,G·H), recurrent_kernel (H,G·H), with
G = 4 gates for lstm (i,f,c,o), 3 for gru (z,r,h), 1 for simple_rnn.
"""
from __future__ import annotations

import numpy as np

from . import _blas, backends
from .backends._projection import processing_order
from .function import Function
from .tensor import Tensor, array_module, is_grad_enabled

_GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}
_STATES = {"lstm": 2, "gru": 1, "simple_rnn": 1}


def _shape_error(op, name, expected, actual):
    return ValueError(f"{op}: {name} must have shape {expected}, got {tuple(actual)}")


def _float_arg(x, op, name, dtype=None, shape=None, shape_text=None, xp=None):
    """x as a float Tensor; a plain array goes to the device of `xp` (x's), as Keras converts."""
    if not isinstance(x, Tensor):
        x = Tensor(x if xp is None else xp.asarray(x))
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: {name} must be float32 or float64, got {x.dtype}")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{op}: {name} must have x's dtype {dtype}, got {x.dtype}")
    if shape is not None and tuple(x.shape) != shape:
        raise _shape_error(op, name, shape_text or shape, x.shape)
    return x


def _constant(x, xp):
    """A mask-like argument: a plain array, never differentiated."""
    return xp.asarray(x.data if isinstance(x, Tensor) else x)


def _check(op, x, kernel, recurrent_kernel, bias, initial_state, mask, dropout_mask, reset_after):
    """Validated (x, kernel, recurrent_kernel, bias, states, mask [B,T] bool, dropout_mask [B,H])."""
    x = _float_arg(x, op, "x")
    if x.ndim != 3:
        raise ValueError(f"{op}: x must have shape (batch, timesteps, features), got {x.shape}")
    B, T, F = x.shape
    if T == 0:
        raise ValueError(f"{op}: x must have at least one timestep, got shape {x.shape} (B,T,F)")
    if B == 0:
        raise ValueError(f"{op}: x must have at least one sequence, got shape {x.shape} (B,T,F)")
    G, dtype = _GATES[op], x.dtype
    xp = array_module(x.data)
    recurrent_kernel = _float_arg(recurrent_kernel, op, "recurrent_kernel", dtype, xp=xp)
    H = recurrent_kernel.shape[0] if recurrent_kernel.ndim == 2 else -1
    if H < 1 or recurrent_kernel.shape != (H, G * H):
        raise _shape_error(op, "recurrent_kernel", f"(units, {G}*units)", recurrent_kernel.shape)
    kernel = _float_arg(kernel, op, "kernel", dtype, (F, G * H),
                        f"(features, {G}*units) = {(F, G * H)}", xp=xp)
    if bias is not None:
        shape = (2, G * H) if op == "gru" and reset_after else (G * H,)
        bias = _float_arg(bias, op, "bias", dtype, shape,
                          f"{shape} (reset_after={reset_after})" if op == "gru" else None, xp=xp)
    states = _check_states(op, initial_state, dtype, (B, H), xp)
    if mask is not None:
        mask = _constant(mask, xp)
        if mask.dtype.kind not in "biu":
            raise TypeError(f"{op}: mask must be bool (or integer 0/1), got {mask.dtype}")
        if mask.shape != (B, T):
            raise _shape_error(op, "mask", (B, T), mask.shape)
        mask = mask.astype(bool, copy=False)
    if dropout_mask is not None:
        dropout_mask = _constant(dropout_mask, xp)
        if dropout_mask.dtype != dtype:
            raise TypeError(f"{op}: recurrent_dropout_mask must have x's dtype {dtype}, got {dropout_mask.dtype}")
        if dropout_mask.shape != (B, H):
            raise _shape_error(op, "recurrent_dropout_mask", (B, H), dropout_mask.shape)
        dropout_mask = xp.ascontiguousarray(dropout_mask)
    return x, kernel, recurrent_kernel, bias, states, mask, dropout_mask


def _check_states(op, initial_state, dtype, shape, xp):
    n = _STATES[op]
    if initial_state is None:
        return [None] * n
    if isinstance(initial_state, (Tensor, np.ndarray)) or hasattr(initial_state, "__cuda_array_interface__"):
        initial_state = [initial_state]
    states = list(initial_state)
    if len(states) != n:
        expected = "[h0, c0]" if n == 2 else "[h0]"
        raise ValueError(f"{op}: initial_state must be a list {expected} of {n} arrays, got {len(states)}")
    names = ["initial_state[0] (h0)", "initial_state[1] (c0)"]
    return [_float_arg(s, op, names[i], dtype, shape, xp=xp) for i, s in enumerate(states)]


class _Recurrent(Function):
    """One graph node for a whole recurrent layer call: every timestep, forward and backward."""

    zero_output_grads = False  # the final states' gradients are None when unused

    @staticmethod
    def forward(ctx, x, kernel, U, bias, h0, c0, *, op, mask, dropout_mask, go_backwards,
                return_sequences, zero_output_for_mask, reset_after):
        xp = array_module(x)
        backend = backends.for_array(x)
        B, T, F = x.shape
        H = U.shape[0]
        mask_t = None if mask is None else mask.T       # [T,B] in processing order
        if go_backwards and mask_t is not None:
            mask_t = mask_t[::-1]
        mask_t = None if mask_t is None else xp.ascontiguousarray(mask_t)
        x, kernel, U = (xp.ascontiguousarray(a) for a in (x, kernel, U))
        input_bias = recurrent_bias = None
        if bias is not None:
            split = op == "gru" and reset_after
            input_bias = xp.ascontiguousarray(bias[0] if split else bias)
            recurrent_bias = xp.ascontiguousarray(bias[1]) if split else None
        h0 = xp.zeros((B, H), x.dtype) if h0 is None else xp.ascontiguousarray(h0)
        c0 = xp.zeros((B, H), x.dtype) if op == "lstm" and c0 is None else c0
        c0 = None if c0 is None else xp.ascontiguousarray(c0)
        cs = gates = uh = None
        # Function.apply records a node (so backward may run) only in grad mode with some input
        # requiring a gradient; otherwise the kernel keeps no cs/gates/uh, only per-step scratch.
        save = is_grad_enabled() and any(ctx.needs_input_grad)
        fn = _kernel(backend, op, "forward")
        projection = (x, kernel, input_bias)
        if op == "lstm":
            hs, cs, gates = fn(*projection, U, h0, c0, mask_t, dropout_mask,
                               go_backwards=go_backwards, save=save)
        elif op == "gru":
            hs, gates, uh = fn(*projection, U, recurrent_bias, h0, mask_t, dropout_mask,
                               reset_after=reset_after, go_backwards=go_backwards, save=save)
        else:
            hs = fn(*projection, U, h0, mask_t, dropout_mask, go_backwards=go_backwards, save=save)
        # Keras outputs zeros before a row's first unmasked step (or at every masked step with
        # zero_output_for_mask) and the carried state elsewhere.
        factor = None
        if mask_t is not None:
            keep = mask_t if zero_output_for_mask else xp.cumsum(mask_t, axis=0) > 0
            factor = keep.astype(x.dtype)[:, :, None]
        out = hs if factor is None else hs * factor
        outputs = _blas.contiguous(out.transpose(1, 0, 2)) if return_sequences else out[-1].copy()
        ctx.__dict__.update(op=op, backend=backend, x=x, kernel=kernel, U=U, h0=h0, c0=c0,
                            recurrent_bias=recurrent_bias, hs=hs, cs=cs, gates=gates, uh=uh,
                            mask_t=mask_t, dropout_mask=dropout_mask, factor=factor,
                            go_backwards=go_backwards, return_sequences=return_sequences,
                            reset_after=reset_after, has_bias=bias is not None)
        if op == "lstm":
            return outputs, hs[-1].copy(), cs[-1].copy()
        return outputs, hs[-1].copy()

    @staticmethod
    def backward(ctx, g_out, g_h, g_c=None):
        # None: no gradient reached that output (zero_output_grads below).
        c = ctx
        xp = array_module(c.hs)
        T, B, H = c.hs.shape
        if g_out is None:
            g_out = xp.zeros((B, T, H) if c.return_sequences else (B, H), c.hs.dtype)
        if c.return_sequences and c.factor is None and xp is np and g_h is None:
            # The output's gradient as it came, its rows read where they lie: the C++ kernels
            # take any strides (the others copy what they need in C order).
            dhs = _blas.unit_rows(g_out).transpose(1, 0, 2)
        else:
            if c.return_sequences:
                dhs = _blas.contiguous(g_out.transpose(1, 0, 2), copy=True)  # updated below
            else:
                dhs = xp.zeros((T, B, H), c.hs.dtype)
                dhs[-1] = g_out
            if c.factor is not None:
                dhs *= c.factor
            if g_h is not None:
                dhs[-1] += g_h
        fn = _kernel(c.backend, c.op, "backward")
        need = c.needs_input_grad
        # The kernel also returns dx = dxw·kernelᵀ (in x's layout) when given the kernel.
        dx_args = dict(kernel=c.kernel if need[0] else None, go_backwards=c.go_backwards)
        # It returns the bias gradient too, in the layer's bias layout (docs/kernels.md).
        # The graph is freed after this call (Tensor.backward), so the kernel may write its
        # gradients over the gates and GRU's uh (the C++ one does: arrays less to touch),
        # except where the GRU weight gradient without reset_after still reads r from them.
        overwrite = c.op == "lstm" or (c.op == "gru" and c.reset_after)
        dc0 = weights = None
        # The C++ SimpleRNN and GRU (reset_after) backwards sum the weight gradients inside
        # their loops, while each step's gradient rows are in L2, and keep no dz, dxw or du
        # (docs/kernels.md); not with recurrent dropout, whose dU sums the dropped states.
        in_loop = c.dropout_mask is None and need[1] and need[2] and \
            getattr(c.backend, "weights_in_loop", _never)()
        if c.op == "lstm":
            dc_T = xp.zeros((B, H), c.hs.dtype) if g_c is None else xp.ascontiguousarray(g_c)
            dxw, dx, dbias, dh0, dc0 = fn(dhs, dc_T, c.U, c.h0, c.c0, c.hs,
                                          c.cs, c.gates, c.mask_t, c.dropout_mask,
                                          overwrite_saved=overwrite, **dx_args)
            du = dxw
        elif c.op == "gru":
            if in_loop and c.reset_after:  # (without it dU's candidate columns sum (r*hd)ᵀ·du)
                dx_args["x"] = c.x
            dxw, dx, du, dbias, dh0, *weights = fn(
                dhs, c.U, c.recurrent_bias, c.h0, c.hs, c.gates, c.uh, c.mask_t, c.dropout_mask,
                reset_after=c.reset_after, overwrite_saved=overwrite, **dx_args)
            weights = weights[0] if weights else None
        elif in_loop:
            dxw, dx, dbias, dh0, weights = fn(dhs, c.U, c.h0, c.hs, c.mask_t, None, x=c.x,
                                              **dx_args)
        else:
            dxw, dx, dbias, dh0 = fn(dhs, c.U, c.h0, c.hs, c.mask_t, c.dropout_mask, **dx_args)
            du = dxw
        if overwrite:
            c.gates = c.uh = None  # may hold the gradients now
        if weights is not None:
            dkernel, dU = weights[:c.x.shape[2]], weights[c.x.shape[2]:]
        else:
            dkernel, dU = _weight_grads(c, dxw, du, need[1], need[2])
        dbias = dbias if need[3] and c.has_bias else None
        return dx, dkernel, dU, dbias, dh0 if need[4] else None, dc0 if need[5] else None


def _never():
    return False


def _weight_grads(c, dxw, du, need_kernel, need_U):
    """(dkernel, dU), None where not needed: dkernel = Σ_t x_tᵀ·dxw_t and dU = Σ_t hd_{t-1}ᵀ·du_t
    over every step's rows, where hd_{t-1} is the (dropped) state the step multiplied, h0 at
    the first step. Where du is dxw (LSTM, SimpleRNN) both are one GEMM over [x_t | hd_{t-1}],
    so the gradient is read once (_blas.matmul_tn_sequences: x and the states read in place,
    no time-major copies). GRU's du is the candidate's columns only, [T,B,H]: the recurrent
    gradient's z,r columns are dxw's, so dU's z,r columns come from dxw, in one GEMM with
    dkernel's; where our tile runs them, GRU's three products are one call
    (_blas.matmul_tn_blocks), which packs x and the states once for all of them."""
    F = c.x.shape[2]
    x = (processing_order(c.x, c.go_backwards), None)
    dm = c.dropout_mask
    states = (c.hs, c.h0) if dm is None else (c.hs * dm, c.h0 * dm)
    if du is dxw:
        if need_kernel and need_U:
            both = _blas.matmul_tn_sequences([x, states], dxw)
            return both[:F], both[F:]
        return (_blas.matmul_tn_sequences([x], dxw) if need_kernel else None,
                _blas.matmul_tn_sequences([states], dxw) if need_U else None)
    if not need_U:
        return (_blas.matmul_tn_sequences([x], dxw) if need_kernel else None), None
    H, xp = c.hs.shape[2], array_module(dxw)
    if c.reset_after:
        candidate = states
    else:
        # Without reset_after the candidate's recurrent input is r*hd, not hd (docs/kernels.md).
        hd = xp.concatenate([states[1][None], states[0][:-1]])
        candidate = (c.gates[:, :, H:2 * H] * hd, None)
    if need_kernel:
        # [dkernel; dU] in one call where our tile runs them: x and the states with dxw's z,r
        # columns, x with its candidate columns, the candidate's input with du.
        both = _blas.matmul_tn_blocks(
            [x, states] if c.reset_after else [x, states, candidate],
            [(dxw[:, :, :2 * H], 0, [(0, 0), (1, F)]), (dxw[:, :, 2 * H:], 2 * H, [(0, 0)]),
             (du, 2 * H, [(1 if c.reset_after else 2, F)])])
        if both is not None:
            return both[:F], both[F:]
    dU_h = _blas.matmul_tn_sequences([candidate], du)
    if not need_kernel:
        return None, xp.concatenate([_blas.matmul_tn_sequences([states], dxw[:, :, :2 * H]), dU_h], axis=1)
    zr = _blas.matmul_tn_sequences([x, states], dxw[:, :, :2 * H])
    dkernel = xp.concatenate([zr[:F], _blas.matmul_tn_sequences([x], dxw[:, :, 2 * H:])], axis=1)
    return dkernel, xp.concatenate([zr[F:], dU_h], axis=1)


def _kernel(backend, op, direction):
    fn = getattr(backend, f"{op}_{direction}", None)
    if fn is None:
        raise NotImplementedError(f"{op}: backend {backend.NAME!r} has no {op}_{direction} yet; "
                                  "choose another with engine.use_backend(...)")
    return fn


def run(op, x, kernel, recurrent_kernel, bias, initial_state=None, mask=None, go_backwards=False,
        return_sequences=True, recurrent_dropout_mask=None, zero_output_for_mask=False,
        reset_after=True):
    """Validate the arguments and apply the recurrent node; see F.lstm / F.gru / F.simple_rnn."""
    x, kernel, recurrent_kernel, bias, states, mask, dropout_mask = _check(
        op, x, kernel, recurrent_kernel, bias, initial_state, mask, recurrent_dropout_mask,
        bool(reset_after))
    h0, c0 = (states + [None])[:2]
    return _Recurrent.apply(x, kernel, recurrent_kernel, bias, h0, c0, op=op, mask=mask,
                            dropout_mask=dropout_mask, go_backwards=bool(go_backwards),
                            return_sequences=bool(return_sequences),
                            zero_output_for_mask=bool(zero_output_for_mask),
                            reset_after=bool(reset_after))
