"""Numba conv1d and max_pool1d kernels (docs/kernels.md), imported by numba_cpu.

Conv1D is one GEMM per block of output rows (im2col): row t of the block's A matrix is the
window x[b, t·s + k·d] for k = 0..K-1 side by side ([rows, K·C]), and
out[b, block] = A · kernel.reshape(K·C, O) + bias. With dilation 1 a window is one contiguous
span of x, so A is x itself read with a row step of s·C (no copy); with dilation > 1 the
windows are copied into a per-thread scratch first. One GEMM of depth K·C keeps the tile in
registers K times longer than K GEMMs of depth C would (C = 32 in the small benchmark).
The backward reuses the blocks: dkernel sums Aᵀ · grad over them (each thread into its own
partial sum), and dx is a gather (the transposed convolution),
dx[b, l] = Σ_k grad[b, (l - k·d)/s] · kernel[k]ᵀ over the taps where (l - k·d)/s is a whole
output index: one GEMM of the grad's windows [rows, K·O] by kernelᵀ stacked [K·O, C], so every
block writes its own rows of dx and blocks need no locks. With s = d = 1 those windows are
contiguous spans of the grad padded with K-1 zero rows at each end (taps in reverse order);
otherwise they are copied, with zeros for the taps that miss (for s > 1 the GEMM then spends
up to s times the FLOPs of the scatter form on them).
The GEMMs are _numba_gemm's (AVX-512 where the CPU has it; see there why not np.dot). The
blocks, as (batch row, block of positions), are split into one contiguous range per thread.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from . import _numba_gemm as gemm
from .reference import conv1d_output_length

_BLOCK_ROWS = 256  # output rows per GEMM: enough to amortize a tile, and work to balance


@njit(inline="always")
def _copy(src, dst):
    # An explicit loop: slice assignment checks for overlap and may copy (measured 6 GB/s).
    for i in range(dst.shape[0]):
        dst[i] = src[i]


@njit(cache=True, nogil=True)
def _windows(x, b, t0, n, strides, dilation_rate, K, unf):
    """(a, start, row_step): A[i, k·C + c] = x[b, (t0+i)·s + k·d, c] = a[start + i·row_step + k·C + c]
    for i < n; a view of x when d = 1, else the windows copied into unf [rows, K·C]."""
    L, C = x.shape[1], x.shape[2]
    if dilation_rate == 1:
        return x.reshape(-1), (b * L + t0 * strides) * C, strides * C
    x_b = x[b]
    for i in range(n):
        row = unf[i]
        first = (t0 + i) * strides
        for k in range(K):
            _copy(x_b[first + k * dilation_rate], row[k * C:(k + 1) * C])
    return unf.reshape(-1), 0, K * C


@njit(cache=True, nogil=True)
def _grad_windows(grad, b, l0, n, strides, dilation_rate, K, unf):
    """(a, start, row_step) of the dx GEMM's A for dx rows l0..l0+n of batch row b.
    s = d = 1: grad is padded [B, L_out + 2(K-1), O] and A[i, k'·O + o] = grad[b, l0+i+k', o]
    (taps reversed, k' = K-1-k). Otherwise grad is [B,L_out,O] and the windows are copied:
    unf[i, k·O:(k+1)·O] = grad[b, (l0+i - k·d)/s] where that is a whole index in [0, L_out), else 0."""
    rows, O = grad.shape[1], grad.shape[2]
    if strides == 1 and dilation_rate == 1:
        return grad.reshape(-1), (b * rows + l0) * O, O
    g_b = grad[b]
    for i in range(n):
        row = unf[i]
        for k in range(K):
            t, r = divmod(l0 + i - k * dilation_rate, strides)
            segment = row[k * O:(k + 1) * O]
            if r == 0 and 0 <= t < rows:
                _copy(g_b[t], segment)
            else:
                segment[:] = 0
    return unf.reshape(-1), 0, K * O


@njit(inline="always")
def _part(units, p, parts):
    """[lo, hi): part p's contiguous range of `units`."""
    return units * p // parts, units * (p + 1) // parts


@njit(parallel=True, cache=gemm.CACHE, nogil=True)
def _conv1d_forward(x, weights, bias, strides, dilation_rate, K, parts, out):
    """x: [B,L,C], weights: kernel [K·C,O] packed, bias: [O] -> out [B,L_out,O], on `parts` threads."""
    B, length_out, O = out.shape
    C = x.shape[2]
    blocks = -(-length_out // _BLOCK_ROWS)
    units = B * blocks
    parts = min(parts, units)
    for p in prange(parts):
        unf = np.empty((_BLOCK_ROWS if dilation_rate > 1 else 0, K * C), dtype=x.dtype)
        tile = np.empty(gemm.MR * weights.shape[2], dtype=x.dtype)
        lo, hi = _part(units, p, parts)
        for u in range(lo, hi):
            b, j = divmod(u, blocks)
            t0 = j * _BLOCK_ROWS
            n = min(_BLOCK_ROWS, length_out - t0)
            a, start, row_step = _windows(x, b, t0, n, strides, dilation_rate, K, unf)
            rows = out[b, t0:t0 + n]
            rows[:] = bias
            gemm.gemm(a, start, row_step, 1, weights, rows, True, tile)


@njit(parallel=True, cache=gemm.CACHE, nogil=True)
def _conv1d_backward(grad, grad_for_dx, x, weights_t, strides, dilation_rate, K, dx, dweights):
    """grad: [B,L_out,O]; grad_for_dx: grad padded (s = d = 1, see _grad_windows) or grad;
    x: [B,L,C]; weights_t: kernel[k]ᵀ stacked [K·O,C] packed (taps reversed when padded)
    -> dx [B,L,C], dweights [parts,K·C,O] (one partial sum per part, summed by the caller)."""
    B, length_out, O = grad.shape
    L, C = x.shape[1], x.shape[2]
    NR = weights_t.shape[2]
    blocks_x, blocks_g = -(-length_out // _BLOCK_ROWS), -(-L // _BLOCK_ROWS)
    units_x, units_g = B * blocks_x, B * blocks_g
    parts = dweights.shape[0]
    for p in prange(parts):
        unf = np.empty((_BLOCK_ROWS if dilation_rate > 1 else 0, K * C), dtype=x.dtype)
        tile = np.empty(gemm.MR * NR, dtype=x.dtype)
        # grad rows packed as the B of dkernel's GEMM, [P, rows, NR] with rows <= _BLOCK_ROWS.
        packed = np.empty(-(-O // NR) * _BLOCK_ROWS * NR, dtype=x.dtype)
        total = dweights[p]
        total[:] = 0
        lo, hi = _part(units_x, p, parts)
        for u in range(lo, hi):
            b, j = divmod(u, blocks_x)
            t0 = j * _BLOCK_ROWS
            n = min(_BLOCK_ROWS, length_out - t0)
            a, start, row_step = _windows(x, b, t0, n, strides, dilation_rate, K, unf)
            g_packed = packed[:-(-O // NR) * n * NR].reshape((-(-O // NR), n, NR))
            gemm.pack(grad[b, t0:t0 + n], g_packed)
            # dkernel += Aᵀ · grad rows: A's columns are the rows of this GEMM.
            gemm.gemm(a, start, 1, row_step, g_packed, total, True, tile)
        unf_g = np.empty((0 if strides == 1 and dilation_rate == 1 else _BLOCK_ROWS, K * O),
                         dtype=x.dtype)
        lo, hi = _part(units_g, p, parts)
        for u in range(lo, hi):
            b, j = divmod(u, blocks_g)
            l0 = j * _BLOCK_ROWS
            n = min(_BLOCK_ROWS, L - l0)
            a, start, row_step = _grad_windows(grad_for_dx, b, l0, n, strides, dilation_rate, K, unf_g)
            gemm.gemm(a, start, row_step, 1, weights_t, dx[b, l0:l0 + n], False, tile)


def _check_conv1d(x, kernel, strides, dilation_rate):
    if x.ndim != 3 or kernel.ndim != 3 or kernel.shape[1] != x.shape[2]:
        raise ValueError(f"conv1d: expected x [B,L,C] and kernel [K,C,O] with the same C, "
                         f"got x {x.shape} and kernel {kernel.shape}")
    if x.dtype not in (np.float32, np.float64) or kernel.dtype != x.dtype:
        raise TypeError(f"conv1d: x and kernel must both be float32 or float64, got {x.dtype}, {kernel.dtype}")
    return conv1d_output_length(x.shape[1], kernel.shape[0], strides, dilation_rate)


def conv1d_forward(x, kernel, bias, strides, dilation_rate):
    """x: [B,L,C], kernel: [K,C,O], bias: [O] or None -> [B,L_out,O]."""
    length_out = _check_conv1d(x, kernel, strides, dilation_rate)
    K, C, O = kernel.shape
    if bias is None:
        bias = np.zeros(O, dtype=x.dtype)
    elif bias.shape != (O,) or bias.dtype != x.dtype:
        raise ValueError(f"conv1d: bias must have shape ({O},) and dtype {x.dtype}, "
                         f"got {bias.shape} and {bias.dtype}")
    out = np.empty((x.shape[0], length_out, O), dtype=x.dtype)
    _conv1d_forward(np.ascontiguousarray(x), gemm.packed(kernel.reshape(K * C, O)), bias,
                    strides, dilation_rate, K, numba.get_num_threads(), out)
    return out


def conv1d_backward(grad, x, kernel, strides, dilation_rate):
    """grad: [B,L_out,O] -> (dx [B,L,C], dkernel [K,C,O], dbias [O])."""
    length_out = _check_conv1d(x, kernel, strides, dilation_rate)
    expected = (x.shape[0], length_out, kernel.shape[2])
    if grad.shape != expected or grad.dtype != x.dtype:
        raise ValueError(f"conv1d: grad must have shape {expected} and dtype {x.dtype}, "
                         f"got {grad.shape} and {grad.dtype}")
    K, C, O = kernel.shape
    grad = np.ascontiguousarray(grad)
    kernel_t = kernel.transpose(0, 2, 1)                      # [K,O,C]
    if strides == 1 and dilation_rate == 1:
        grad_for_dx = np.pad(grad, ((0, 0), (K - 1, K - 1), (0, 0)))
        kernel_t = kernel_t[::-1]
    else:
        grad_for_dx = grad
    dx = np.empty(x.shape, dtype=x.dtype)
    dweights = np.empty((numba.get_num_threads(), K * C, O), dtype=x.dtype)
    _conv1d_backward(grad, grad_for_dx, np.ascontiguousarray(x), gemm.packed(kernel_t.reshape(K * O, C)),
                     strides, dilation_rate, K, dx, dweights)
    dbias = grad.reshape(-1, O).sum(axis=0, dtype=np.float64).astype(x.dtype)  # as reference's
    return dx, dweights.sum(axis=0).reshape(K, C, O), dbias


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


gemm.refresh_caches(globals())
