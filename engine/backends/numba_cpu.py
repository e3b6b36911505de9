"""Numba backend: @njit kernels compiled once and cached on disk (cache=True).

Loops write to disjoint slices of their output, so `prange` needs no locks; the embedding
gradient sums each id's rows in one segment after a stable sort (no scatter races).
This module is the kernel table (docs/kernels.md): the embedding kernels and the recurrent
ops' entries, which check, pack the weights, allocate and call one kernel of _numba_rnn;
conv1d and pooling come from _numba_conv1d, the GEMM they all use from _numba_gemm
(docs/numba.md).
"""
from __future__ import annotations

import numpy as np

from ._checks import check_ids
from ._projection import gru_candidate_gradient

NAME = "numba"
DEVICE = "cpu"

try:
    import numba
    from numba import njit, prange
    _ERROR = ""
except ImportError as exc:  # pragma: no cover - numba is a runtime dependency
    _ERROR = f"numba is not importable: {exc}"


def available() -> bool:
    return not _ERROR


def why_unavailable() -> str:
    return _ERROR


if not _ERROR:
    @njit(parallel=True, cache=True, nogil=True)
    def _gather_rows(ids, table, out):
        for n in prange(ids.size):
            out[n, :] = table[ids[n], :]

    @njit(parallel=True, cache=True, nogil=True)
    def _segment_sum(order, values, starts, summed):
        # summed[s] = sum of the values rows whose id is the s-th distinct id; segments are
        # disjoint and never empty, so the first row is assigned and summed needs no zero-fill.
        # values may be any layout (Numba compiles an 'A' version for a broadcast view).
        for s in prange(starts.size - 1):
            row = summed[s]
            row[:] = values[order[starts[s]]]
            for k in range(starts[s] + 1, starts[s + 1]):
                row += values[order[k]]


def _unique_sorted(ids):
    """(order, rows, starts): ids[order[starts[u]:starts[u+1]]] == rows[u], rows ascending."""
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    first = np.ones(ids.size, dtype=bool)
    first[1:] = sorted_ids[1:] != sorted_ids[:-1]
    starts = np.append(np.flatnonzero(first), ids.size).astype(np.int64)
    return order, sorted_ids[starts[:-1]], starts


def embedding_forward(ids, table):
    """ids: [*S] int64, table: [V,D] -> [*S,D]."""
    check_ids(ids, table.shape[0])
    out = np.empty((ids.size, table.shape[1]), dtype=table.dtype)
    _gather_rows(ids.reshape(-1), table, out)
    return out.reshape(ids.shape + (table.shape[1],))


def embedding_backward(ids, grad, num_embeddings):
    """ids: [*S], grad: [*S,D] any strides -> dense [V,D]."""
    flat_ids = ids.reshape(-1)
    rows, values = embedding_coalesce(flat_ids, grad.reshape(flat_ids.size, grad.shape[-1]),
                                      num_embeddings)
    dense = np.zeros((num_embeddings, grad.shape[-1]), dtype=grad.dtype)
    dense[rows] = values
    return dense


def embedding_coalesce(ids, values, num_rows):
    """ids: [N] in [0, num_rows), values: [N,D] any strides -> (rows [U] sorted distinct, summed [U,D])."""
    check_ids(ids, num_rows)
    order, rows, starts = _unique_sorted(ids)
    summed = np.empty((rows.size, values.shape[1]), dtype=values.dtype)
    _segment_sum(order, values, starts, summed)
    return rows, summed


if not _ERROR:
    # The recurrent and convolution kernels live in their own modules.
    from ._numba_conv1d import (conv1d_backward, conv1d_forward,  # noqa: E402,F401
                                max_pool1d_backward, max_pool1d_forward)
    from . import _numba_gemm as gemm  # noqa: E402
    from ._numba_rnn import (_gru_backward, _gru_backward_reset_before, _gru_forward,  # noqa: E402
                             _gru_forward_reset_before, _lstm_backward, _lstm_forward,
                             _simple_rnn_backward, _simple_rnn_forward)


# The recurrent ops' table entries: check, pack the weights, allocate, call one kernel.

def _parts(B):
    """Threads to split B rows over: at most one per MR rows (a GEMM tile's height)."""
    return max(1, min(numba.get_num_threads(), B // gemm.MR))


def _floats(op, dtype, **arrays):
    """C-contiguous views of `arrays`, each required to have `dtype` (the op's float dtype)."""
    out = []
    for name, a in arrays.items():
        a = np.asarray(a)
        if a.dtype != dtype:
            raise TypeError(f"{op}: {name} must have dtype {dtype} (like x), got {a.dtype}")
        out.append(np.ascontiguousarray(a))
    return out


def _shapes(op, **named):
    """named: {name: (array, expected shape)}; ValueError naming the first mismatch."""
    for name, (a, shape) in named.items():
        if a.shape != shape:
            raise ValueError(f"{op}: {name} must have shape {shape}, got {a.shape}")


def _options(op, T, B, H, dtype, mask, dropout_mask):
    """(mask [T,B] bool, dropout mask [B,H]) with the neutral arrays standing in for None."""
    if mask is None:
        mask = np.ones((T, B), dtype=np.bool_)
    else:
        mask = np.ascontiguousarray(mask, dtype=np.bool_)
        _shapes(op, mask=(mask, (T, B)))
    if dropout_mask is None:
        dropout_mask = np.ones((B, H), dtype=dtype)
    else:
        (dropout_mask,) = _floats(op, dtype, dropout_mask=dropout_mask)
        _shapes(op, dropout_mask=(dropout_mask, (B, H)))
    return mask, dropout_mask


def _recurrent_kernel(op, U, gates):
    """H from U [H, gates*H], checked."""
    U = np.asarray(U)
    if U.ndim != 2 or U.shape[1] != gates * U.shape[0]:
        raise ValueError(f"{op}: U must have shape (H, {gates}*H), got {U.shape}")
    return U.shape[0]


def _projection(op, x, kernel, bias, U, gates):
    """(x, kernel, bias or zeros, U, (B, T, F, H), dtype) checked and C-contiguous."""
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64) or x.ndim != 3:
        raise TypeError(f"{op}: x must be a float32 or float64 [B,T,F] array, got {x.dtype} {x.shape}")
    H = _recurrent_kernel(op, U, gates)
    B, T, F = x.shape
    x, kernel, U = _floats(op, x.dtype, x=x, kernel=kernel, U=U)
    bias = np.zeros(gates * H, x.dtype) if bias is None else _floats(op, x.dtype, bias=bias)[0]
    _shapes(op, kernel=(kernel, (F, gates * H)), bias=(bias, (gates * H,)))
    return x, kernel, bias, U, (B, T, F, H), x.dtype


def _input_gradient(op, kernel, B, T, G, dtype):
    """(kernelᵀ packed, dx [B,T,F]) for the backward, or an empty pair when kernel is None."""
    if kernel is None:
        return np.empty((0, G, gemm.panel_width(dtype)), dtype), np.empty((B, T, 0), dtype)
    (kernel,) = _floats(op, dtype, kernel=kernel)
    if kernel.ndim != 2 or kernel.shape[1] != G:
        raise ValueError(f"{op}: kernel must have shape (F, {G}), got {kernel.shape}")
    return gemm.packed(kernel.T), np.empty((B, T, kernel.shape[0]), dtype)


def _total(sums, dtype):
    """The bias gradient from the parts' float64 sums [parts, ...], rounded once."""
    return sums.sum(axis=0).astype(dtype)


def lstm_forward(x, kernel, bias, U, h0, c0, mask, dropout_mask, *, go_backwards=False, save=True):
    """x: [B,T,F], kernel: [F,4H], bias: [4H] or None (gates i,f,c,o), U: [H,4H], h0/c0: [B,H],
    mask: [T,B] bool or None, dropout_mask: [B,H] or None
    -> (hs [T,B,H], cs [T,B,H], gates [T,B,4H] activated i,f,g,o);
    without `save`, cs is only its last step [1,B,H] (c_T) and gates is None."""
    x, kernel, bias, U, (B, T, F, H), dt = _projection("lstm", x, kernel, bias, U, 4)
    h0, c0 = _floats("lstm", dt, h0=h0, c0=c0)
    _shapes("lstm", h0=(h0, (B, H)), c0=(c0, (B, H)))
    mask, dm = _options("lstm", T, B, H, dt, mask, dropout_mask)
    # Without save: cs is a ring of c_{t-1}, c_t (two buffers: a step reads one, writes the
    # other, so the loop has no aliasing to stop vectorization) and gates one step of scratch.
    hs = np.empty((T, B, H), dt)
    cs, gates = np.empty((T if save else 2, B, H), dt), np.empty((T if save else 1, B, 4 * H), dt)
    _lstm_forward(x, gemm.packed(kernel), bias, gemm.packed(U), h0, c0, mask, dm, go_backwards,
                  _parts(B), hs, cs, gates)
    if save:
        return hs, cs, gates
    last = (T - 1) % 2
    return hs, cs[last:last + 1], None


def lstm_backward(dhs, dc_T, U, h0, c0, hs, cs, gates, mask, dropout_mask, *, kernel=None,
                  go_backwards=False, overwrite_saved=False):
    """dhs: [T,B,H] total grad of each h_t, dc_T: [B,H], the rest as forward gave them
    -> (dz [T,B,4H] = d xw, dx [B,T,F] or None without kernel, dbias [4H], dh0 [B,H], dc0 [B,H]).
    overwrite_saved is allowed, not used: dz is a new array (the C++ loop writes it over gates)."""
    H = _recurrent_kernel("lstm", U, 4)
    T, B, dt = *np.shape(hs)[:2], np.asarray(hs).dtype
    dhs, dc_T, U, h0, c0, hs, cs, gates = _floats(
        "lstm", dt, dhs=dhs, dc_T=dc_T, U=U, h0=h0, c0=c0, hs=hs, cs=cs, gates=gates)
    _shapes("lstm", dhs=(dhs, (T, B, H)), hs=(hs, (T, B, H)), cs=(cs, (T, B, H)),
            gates=(gates, (T, B, 4 * H)), dc_T=(dc_T, (B, H)), h0=(h0, (B, H)), c0=(c0, (B, H)))
    mask, dm = _options("lstm", T, B, H, dt, mask, dropout_mask)
    kernel_t, dx = _input_gradient("lstm", kernel, B, T, 4 * H, dt)
    dz, dh0, dc0 = np.empty((T, B, 4 * H), dt), np.empty((B, H), dt), np.empty((B, H), dt)
    parts = _parts(B)
    sums = np.empty((parts, 4 * H))
    _lstm_backward(dhs, dc_T, gemm.packed(U.T), kernel_t, c0, hs, cs, gates, mask, dm,
                   go_backwards, parts, dz, dx, dh0, dc0, sums)
    return dz, None if kernel is None else dx, _total(sums, dt), dh0, dc0


def gru_forward(x, kernel, bias, U, recurrent_bias, h0, mask, dropout_mask, reset_after=True, *,
                go_backwards=False, save=True):
    """x: [B,T,F], kernel: [F,3H], bias: [3H] or None (the input bias; gates z,r,h), U: [H,3H],
    recurrent_bias: [3H] or None (reset_after only), h0: [B,H]
    -> (hs [T,B,H], gates [T,B,3H] activated z,r,n, uh [T,B,H] = u_h, or [0]);
    gates and uh are None when not `save`."""
    x, kernel, bias, U, (B, T, F, H), dt = _projection("gru", x, kernel, bias, U, 3)
    (h0,) = _floats("gru", dt, h0=h0)
    _shapes("gru", h0=(h0, (B, H)))
    mask, dm = _options("gru", T, B, H, dt, mask, dropout_mask)
    # Without save, gates (and uh) are one step of scratch, overwritten every step.
    steps = T if save else 1
    hs, gates = np.empty((T, B, H), dt), np.empty((steps, B, 3 * H), dt)
    if not reset_after:
        if recurrent_bias is not None:
            raise ValueError("gru: recurrent_bias must be None when reset_after=False")
        _gru_forward_reset_before(x, gemm.packed(kernel), bias, gemm.packed(U[:, :2 * H]),
                                  gemm.packed(U[:, 2 * H:]), h0, mask, dm, go_backwards,
                                  _parts(B), hs, gates)
        return (hs, gates, np.empty((0,), dt)) if save else (hs, None, None)
    if recurrent_bias is None:
        rb = np.zeros(3 * H, dt)
    else:
        (rb,) = _floats("gru", dt, recurrent_bias=recurrent_bias)
        _shapes("gru", recurrent_bias=(rb, (3 * H,)))
    uh = np.empty((steps, B, H), dt)
    _gru_forward(x, gemm.packed(kernel), bias, gemm.packed(U), rb, h0, mask, dm, go_backwards,
                 _parts(B), hs, gates, uh)
    return (hs, gates, uh) if save else (hs, None, None)


def gru_backward(dhs, U, recurrent_bias, h0, hs, gates, uh, mask, dropout_mask, reset_after=True,
                 *, kernel=None, go_backwards=False, overwrite_saved=False):
    """dhs: [T,B,H], the rest as forward gave them
    -> (dxw [T,B,3H], dx [B,T,F] or None, du [T,B,H], dbias [2,3H] or [3H], dh0 [B,H]).
    overwrite_saved is allowed, not used (as lstm_backward's).

    The loop writes the whole recurrent gradient [T,B,3H]: d(hd·U + rb) with reset_after;
    without, [..., :2H] = d(hd·U_zr) and [..., 2H:] = d((r*hd)·U_h); du is its candidate
    columns (its z,r columns are dxw's). dbias: Σ dxw (and Σ of the recurrent gradient with
    reset_after) over t and b. recurrent_bias does not enter the gradients (it is in the
    signature for symmetry).
    """
    H = _recurrent_kernel("gru", U, 3)
    T, B, dt = *np.shape(hs)[:2], np.asarray(hs).dtype
    dhs, U, h0, hs, gates = _floats("gru", dt, dhs=dhs, U=U, h0=h0, hs=hs, gates=gates)
    _shapes("gru", dhs=(dhs, (T, B, H)), hs=(hs, (T, B, H)), gates=(gates, (T, B, 3 * H)),
            h0=(h0, (B, H)))
    mask, dm = _options("gru", T, B, H, dt, mask, dropout_mask)
    kernel_t, dx = _input_gradient("gru", kernel, B, T, 3 * H, dt)
    dxw, du, dh0 = np.empty((T, B, 3 * H), dt), np.empty((T, B, 3 * H), dt), np.empty((B, H), dt)
    parts = _parts(B)
    if reset_after:
        (uh,) = _floats("gru", dt, uh=uh)
        _shapes("gru", uh=(uh, (T, B, H)))
        sums = np.empty((parts, 2, 3 * H))
        _gru_backward(dhs, gemm.packed(U.T), kernel_t, h0, hs, gates, uh, mask, dm, go_backwards,
                      parts, dxw, du, dx, dh0, sums)
    else:
        sums = np.empty((parts, 3 * H))
        _gru_backward_reset_before(dhs, gemm.packed(U[:, :2 * H].T), gemm.packed(U[:, 2 * H:].T),
                                   kernel_t, h0, hs, gates, mask, dm, go_backwards, parts,
                                   dxw, du, dx, dh0, sums)
    return gru_candidate_gradient((dxw, None if kernel is None else dx, du, _total(sums, dt), dh0))


def simple_rnn_forward(x, kernel, bias, U, h0, mask, dropout_mask, *, go_backwards=False, save=True):
    """x: [B,T,F], kernel: [F,H], bias: [H] or None, U: [H,H], h0: [B,H]
    -> hs [T,B,H], h_t = tanh(x_t·kernel + bias + hd_{t-1}·U); hs, the output, is all it
    keeps, so `save` changes nothing here."""
    x, kernel, bias, U, (B, T, F, H), dt = _projection("simple_rnn", x, kernel, bias, U, 1)
    (h0,) = _floats("simple_rnn", dt, h0=h0)
    _shapes("simple_rnn", h0=(h0, (B, H)))
    mask, dm = _options("simple_rnn", T, B, H, dt, mask, dropout_mask)
    hs = np.empty((T, B, H), dt)
    _simple_rnn_forward(x, gemm.packed(kernel), bias, gemm.packed(U), h0, mask, dm, go_backwards,
                        _parts(B), hs)
    return hs


def simple_rnn_backward(dhs, U, h0, hs, mask, dropout_mask, *, kernel=None, go_backwards=False):
    """dhs: [T,B,H], hs: [T,B,H] from forward
    -> (dz [T,B,H] = d xw, dx [B,T,F] or None, dbias [H], dh0 [B,H])."""
    H = _recurrent_kernel("simple_rnn", U, 1)
    T, B, dt = *np.shape(hs)[:2], np.asarray(hs).dtype
    dhs, U, h0, hs = _floats("simple_rnn", dt, dhs=dhs, U=U, h0=h0, hs=hs)
    _shapes("simple_rnn", dhs=(dhs, (T, B, H)), hs=(hs, (T, B, H)), h0=(h0, (B, H)))
    mask, dm = _options("simple_rnn", T, B, H, dt, mask, dropout_mask)
    kernel_t, dx = _input_gradient("simple_rnn", kernel, B, T, H, dt)
    dz, dh0 = np.empty((T, B, H), dt), np.empty((B, H), dt)
    parts = _parts(B)
    sums = np.empty((parts, H))
    _simple_rnn_backward(dhs, gemm.packed(U.T), kernel_t, hs, mask, dm, go_backwards, parts,
                         dz, dx, dh0, sums)
    return dz, None if kernel is None else dx, _total(sums, dt), dh0
