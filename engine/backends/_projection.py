"""The input projection of the recurrent ops for backends whose time loop takes it precomputed.

The kernel table's recurrent ops receive the layer input x [B,T,F] with its kernel and input
bias (docs/kernels.md, "input projection"): the C++ and Numba loops compute x_t·kernel + bias
step by step inside the loop. The reference and CUDA loops take the projection for all steps
as one time-major array xw [T,B,G] instead; `projected_forward` / `projected_backward` turn such a
loop into the table's signature with one GEMM before it (xw) and one after it (dx).
"""
from __future__ import annotations

import functools

import numpy as np

from .. import _blas
from ..tensor import array_module


def processing_order(x, go_backwards):
    """x [B,T,F] as a [T,B,F] view in processing order (reversed in time for go_backwards)."""
    xt = x.transpose(1, 0, 2)
    return xt[::-1] if go_backwards else xt


def time_major(x, go_backwards):
    """x [B,T,F] -> contiguous [T,B,F] in processing order."""
    return _blas.contiguous(processing_order(x, go_backwards))


def input_projection(x, kernel, bias, go_backwards):
    """xw [T,B,G] = x·kernel + bias, time-major in processing order."""
    B, T, F = x.shape
    xw = _blas.matmul(time_major(x, go_backwards).reshape(T * B, F), kernel).reshape(T, B, -1)
    if bias is not None:
        xw += bias
    return xw


def input_gradient(dxw, kernel, go_backwards):
    """dx [B,T,F] = dxw·kernelᵀ back in x's layout, from dxw [T,B,G] in processing order."""
    T, B, G = dxw.shape
    dx = _blas.matmul(dxw.reshape(T * B, G), kernel.T).reshape(T, B, -1)
    return _blas.contiguous((dx[::-1] if go_backwards else dx).transpose(1, 0, 2))


def bias_gradient(dxw, du=None):
    """The bias gradients a recurrent backward returns: Σ_{t,b} dxw [G], or for gru with
    reset_after (du given) the layer's [2,G] = (Σ dxw, Σ du). Summed in float64 and rounded
    once: NumPy's sum over axis 0 adds row after row, which in float32 lost ~2e-6 of the
    largest entry over T·B = 6,400 rows. The C++ loops sum them as they go, also in double."""
    def column_sums(a):
        return a.reshape(-1, a.shape[-1]).sum(axis=0, dtype=np.float64).astype(a.dtype)
    if du is None:
        return column_sums(dxw)
    return array_module(dxw).stack([column_sums(dxw), column_sums(du)])


def gru_candidate_gradient(result):
    """GRU's table backward from a loop's (dxw, dx, du [T,B,3H], dbias, dh0): of the recurrent
    gradient it returns only the candidate's columns, du [T,B,H] (a view), since its z,r
    columns equal dxw's (docs/kernels.md, "gru"); the C++ loop writes no more than that."""
    dxw, dx, du, dbias, dh0 = result
    return dxw, dx, du[..., 2 * (du.shape[-1] // 3):], dbias, dh0


def projected_forward(loop):
    """Table forward `(x, kernel, bias, *rest, go_backwards=False, **kw)` around `loop(xw, *rest, **kw)`."""
    @functools.wraps(loop)
    def forward(x, kernel, bias, *args, go_backwards=False, **kwargs):
        return loop(input_projection(x, kernel, bias, go_backwards), *args, **kwargs)
    return forward


def projected_backward(loop):
    """Table backward `(*args, kernel=None, go_backwards=False, overwrite_saved=False)` around
    a loop returning (dxw, *rest): returns (dxw, dx, *rest), dx None when no kernel is given.
    overwrite_saved, the caller's leave to write the gradients over the forward's saved arrays,
    is not used here."""
    @functools.wraps(loop)
    def backward(*args, kernel=None, go_backwards=False, overwrite_saved=False, **kwargs):
        dxw, *rest = loop(*args, **kwargs)
        dx = None if kernel is None else input_gradient(dxw, kernel, go_backwards)
        return (dxw, dx, *rest)
    return backward
