"""Numba conv1d and max_pool1d kernels (docs/kernels.md), imported by numba_cpu.

Conv1D is K GEMMs (one per tap) over all B·L_out rows at once, through BLAS np.dot. To make
every tap one matrix, x is regrouped as xs [B·Ls, s·C] (Ls = ceil(L/s), x zero-padded to
Ls·s rows): row m = b·Ls + t of tap k is xs[m + q, r·C:(r+1)·C] with (q, r) = divmod(k·d, s).
Rows with t >= L_out (Ls - L_out per batch) are computed and dropped: a few wasted rows buy
GEMMs as tall as the whole batch. With s = 1 a tap is a contiguous row slice (no copy).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .reference import conv1d_output_length


@njit(parallel=True, cache=True, nogil=True)
def _tap_copy(xs, q, c0, channels, rows):
    """[rows, channels] contiguous copy of xs[q:q+rows, c0:c0+channels] (for strides > 1)."""
    out = np.empty((rows, channels), dtype=xs.dtype)
    for m in prange(rows):
        out[m] = xs[q + m, c0:c0 + channels]
    return out


@njit(parallel=True, cache=True, nogil=True)
def _add_rows(dst, q, c0, src):
    """dst[q+m, c0:c0+n] += src[m] for every row m of src: [rows, n]."""
    n = src.shape[1]
    for m in prange(src.shape[0]):
        dst[q + m, c0:c0 + n] += src[m]


@njit(cache=True, nogil=True)
def _tap(xs, k, strides, dilation_rate, channels, rows):
    q, r = divmod(k * dilation_rate, strides)
    if strides == 1:
        return xs[q:q + rows]
    return _tap_copy(xs, q, r * channels, channels, rows)


@njit(cache=True, nogil=True)
def _conv1d_forward_rows(xs, kernel, bias, strides, dilation_rate, rows):
    """xs: [B·Ls, s·C], kernel: [K,C,O], bias: [O]
    -> acc [rows, O], acc[m] = bias + Σ_k tap_k[m] · kernel[k]."""
    K, C, O = kernel.shape
    acc = np.empty((rows, O), dtype=xs.dtype)
    acc[:] = bias
    product = np.empty((rows, O), dtype=xs.dtype)
    for k in range(K):
        np.dot(_tap(xs, k, strides, dilation_rate, C, rows), kernel[k], product)
        _add_rows(acc, 0, 0, product)
    return acc


@njit(cache=True, nogil=True)
def _conv1d_backward_rows(grad_rows, xs, kernel, strides, dilation_rate, dxs, dkernel):
    """grad_rows: [rows, O] (zero on dropped rows) -> dxs [B·Ls, s·C] (+=), dkernel [K,C,O]."""
    K, C, O = kernel.shape
    rows = grad_rows.shape[0]
    dtap = np.empty((rows, C), dtype=xs.dtype)
    for k in range(K):
        np.dot(_tap(xs, k, strides, dilation_rate, C, rows).T, grad_rows, dkernel[k])
        np.dot(grad_rows, kernel[k].T, dtap)
        q, r = divmod(k * dilation_rate, strides)
        _add_rows(dxs, q, r * C, dtap)


@njit(parallel=True, cache=True, nogil=True)
def _ungroup(acc, group, out):
    """out[b, t] = acc[b·group + t] for t < L_out: drop the rows past each batch's output."""
    for b in prange(out.shape[0]):
        out[b] = acc[b * group:b * group + out.shape[1]]


@njit(parallel=True, cache=True, nogil=True)
def _group(grad, group, rows):
    """grad: [B,L_out,O] -> [rows, O] with row b·group + t = grad[b, t], zero elsewhere."""
    out = np.zeros((rows, grad.shape[2]), dtype=grad.dtype)
    for b in prange(grad.shape[0]):
        out[b * group:b * group + grad.shape[1]] = grad[b]
    return out


def _check_conv1d(x, kernel, strides, dilation_rate):
    if x.ndim != 3 or kernel.ndim != 3 or kernel.shape[1] != x.shape[2]:
        raise ValueError(f"conv1d: expected x [B,L,C] and kernel [K,C,O] with the same C, "
                         f"got x {x.shape} and kernel {kernel.shape}")
    if x.dtype not in (np.float32, np.float64) or kernel.dtype != x.dtype:
        raise TypeError(f"conv1d: x and kernel must both be float32 or float64, got {x.dtype}, {kernel.dtype}")
    return conv1d_output_length(x.shape[1], kernel.shape[0], strides, dilation_rate)


def _grouped(x, strides):
    """x: [B,L,C] -> xs [B·Ls, s·C] (a view unless L needs zero rows to reach Ls·s)."""
    B, L, C = x.shape
    group = -(-L // strides)
    if group * strides != L:
        x = np.pad(x, ((0, 0), (0, group * strides - L), (0, 0)))
    return np.ascontiguousarray(x).reshape(B * group, strides * C), group


def conv1d_forward(x, kernel, bias, strides, dilation_rate):
    """x: [B,L,C], kernel: [K,C,O], bias: [O] or None -> [B,L_out,O]."""
    length_out = _check_conv1d(x, kernel, strides, dilation_rate)
    O = kernel.shape[2]
    if bias is None:
        bias = np.zeros(O, dtype=x.dtype)
    elif bias.shape != (O,) or bias.dtype != x.dtype:
        raise ValueError(f"conv1d: bias must have shape ({O},) and dtype {x.dtype}, "
                         f"got {bias.shape} and {bias.dtype}")
    xs, group = _grouped(x, strides)
    rows = (x.shape[0] - 1) * group + length_out
    acc = _conv1d_forward_rows(xs, np.ascontiguousarray(kernel), bias, strides, dilation_rate, rows)
    out = np.empty((x.shape[0], length_out, kernel.shape[2]), dtype=x.dtype)
    _ungroup(acc, group, out)
    return out


def conv1d_backward(grad, x, kernel, strides, dilation_rate):
    """grad: [B,L_out,O] -> (dx [B,L,C], dkernel [K,C,O], dbias [O])."""
    length_out = _check_conv1d(x, kernel, strides, dilation_rate)
    expected = (x.shape[0], length_out, kernel.shape[2])
    if grad.shape != expected or grad.dtype != x.dtype:
        raise ValueError(f"conv1d: grad must have shape {expected} and dtype {x.dtype}, "
                         f"got {grad.shape} and {grad.dtype}")
    B, L, C = x.shape
    xs, group = _grouped(x, strides)
    grad_rows = _group(np.ascontiguousarray(grad), group, (B - 1) * group + length_out)
    dxs = np.zeros(xs.shape, dtype=x.dtype)
    dkernel = np.empty(kernel.shape, dtype=x.dtype)
    _conv1d_backward_rows(grad_rows, xs, np.ascontiguousarray(kernel), strides, dilation_rate, dxs, dkernel)
    dbias = grad_rows.sum(axis=0, dtype=np.float64).astype(x.dtype)  # as reference's
    return dxs.reshape(B, group * strides, C)[:, :L], dkernel, dbias


@njit(parallel=True, cache=True, nogil=True)
def _max_pool1d_forward(x, pool_size, strides, out, argmax):
    for b in prange(x.shape[0]):
        for t in range(out.shape[1]):
            start = t * strides
            out[b, t] = x[b, start]
            argmax[b, t] = start
            for row in range(start + 1, start + pool_size):
                for c in range(x.shape[2]):
                    v, best = x[b, row, c], out[b, t, c]
                    # NaN wins and the first maximum is kept, as np.argmax in the reference.
                    if v > best or (v != v and best == best):
                        out[b, t, c] = v
                        argmax[b, t, c] = row


@njit(parallel=True, cache=True, nogil=True)
def _max_pool1d_backward(grad, argmax, dx):
    # Each batch row owns its slice of dx, so overlapping windows accumulate without races.
    for b in prange(grad.shape[0]):
        for t in range(grad.shape[1]):
            for c in range(grad.shape[2]):
                dx[b, argmax[b, t, c], c] += grad[b, t, c]


def max_pool1d_forward(x, pool_size, strides):
    """x: [B,L,C] -> (out [B,L_out,C], argmax [B,L_out,C] int64 position along L)."""
    if x.ndim != 3 or x.dtype not in (np.float32, np.float64):
        raise ValueError(f"max_pool1d: x must be a float32/float64 [B,L,C] array, got {x.dtype} {x.shape}")
    length_out = conv1d_output_length(x.shape[1], pool_size, strides, 1, op="max_pool1d")
    out = np.empty((x.shape[0], length_out, x.shape[2]), dtype=x.dtype)
    argmax = np.empty(out.shape, dtype=np.int64)
    _max_pool1d_forward(np.ascontiguousarray(x), pool_size, strides, out, argmax)
    return out, argmax


def max_pool1d_backward(grad, argmax, length):
    """grad: [B,L_out,C], argmax: [B,L_out,C] int64 -> dx [B,L,C]."""
    if grad.ndim != 3 or argmax.shape != grad.shape:
        raise ValueError(f"max_pool1d: grad and argmax must have the same [B,L_out,C] shape, "
                         f"got {grad.shape} and {argmax.shape}")
    if argmax.size and (argmax.min() < 0 or argmax.max() >= length):
        raise IndexError(f"max_pool1d: argmax must lie in [0, {length}), "
                         f"got values in [{argmax.min()}, {argmax.max()}]")
    dx = np.zeros((grad.shape[0], length, grad.shape[2]), dtype=grad.dtype)
    _max_pool1d_backward(np.ascontiguousarray(grad), np.ascontiguousarray(argmax, dtype=np.int64), dx)
    return dx
