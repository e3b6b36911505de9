"""The primitive differentiable ops behind Tensor's operators, one Function each.

Each backward returns the gradient for every positional input, in the input's layout;
Tensor.backward() sums away broadcast axes. Everything here works on numpy and cupy arrays
alike (the array module is taken from the data).
"""
from __future__ import annotations

import numpy as np

from . import _blas
from .function import Function
from .tensor import array_module


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, g):
        return g, g


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a - b

    @staticmethod
    def backward(ctx, g):
        return g, -g


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        return g * b, g * a


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        ga = g / b
        return ga, -ga * a / b


class Pow(Function):
    @staticmethod
    def forward(ctx, a, b):
        out = a ** b
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, g):
        a, b, out = ctx.saved
        xp = array_module(a)
        ga = g * b * a ** (b - 1) if ctx.needs_input_grad[0] else None
        gb = None
        if ctx.needs_input_grad[1]:
            gb = g * out * xp.log(xp.where(a > 0, a, 1))  # d(a^b)/db, defined for a > 0
        return ga, gb


class Neg(Function):
    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, g):
        return (-g,)


class Cast(Function):
    @staticmethod
    def forward(ctx, a, dtype):
        ctx.dtype = a.dtype
        return a.astype(dtype)

    @staticmethod
    def backward(ctx, g):
        return (g.astype(ctx.dtype),)


class MatMul(Function):
    """a: [..., M, K] @ b: [..., K, N]; 1-d operands follow numpy's promotion rules.

    a [..., K] @ b [K, N] (Dense on sequences) runs as one [rows, K] @ [K, N] GEMM both ways:
    numpy's broadcast matmul would loop over the leading axes on one thread and, backward,
    build a [..., K, N] gradient per leading index before summing it away.
    """

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        if a.ndim > 2 and b.ndim == 2:
            return _blas.matmul(a.reshape(-1, a.shape[-1]), b).reshape(*a.shape[:-1], b.shape[1])
        return _blas.any_matmul(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        xp = array_module(a)
        if a.ndim > 2 and b.ndim == 2:
            rows_a, rows_g = a.reshape(-1, a.shape[-1]), g.reshape(-1, g.shape[-1])
            return _blas.matmul(rows_g, b.T).reshape(a.shape), _blas.matmul_tn(rows_a, rows_g)
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if b.ndim == 1:
            g2 = xp.expand_dims(g2, -1)
        if a.ndim == 1:
            g2 = xp.expand_dims(g2, -2)
        ga = _blas.any_matmul(g2, xp.swapaxes(b2, -1, -2))
        gb = _blas.any_matmul(xp.swapaxes(a2, -1, -2), g2)
        if a.ndim == 1:  # extra leading axes are summed away by Tensor.backward
            ga = ga[..., 0, :]
        if b.ndim == 1:
            gb = gb[..., 0]
        return ga, gb


class Sum(Function):
    @staticmethod
    def forward(ctx, a, axis, keepdims):
        ctx.shape, ctx.axis, ctx.keepdims = a.shape, axis, keepdims
        if axis is None and not keepdims:
            return _blas.total(a)
        return a.sum(axis=axis, keepdims=keepdims)

    @staticmethod
    def backward(ctx, g):
        xp = array_module(g)
        if not ctx.keepdims and ctx.axis is not None:
            g = xp.expand_dims(g, _axes(ctx.axis, len(ctx.shape)))
        # A read-only view rather than a full-size array of one repeated value: most consumers
        # only read it; Tensor._accumulate copies it before it becomes a leaf's dense .grad
        # (a sparse embedding gradient keeps it: its values stay read-only until coalesced).
        return (xp.broadcast_to(g, ctx.shape),)


class Max(Function):
    """Gradient splits evenly among tied maxima (as PyTorch's amax)."""

    @staticmethod
    def forward(ctx, a, axis, keepdims):
        out = a.max(axis=axis, keepdims=True)
        ctx.save_for_backward(a, out)
        ctx.axis, ctx.keepdims = axis, keepdims
        return out if keepdims else out.reshape(a.max(axis=axis).shape)

    @staticmethod
    def backward(ctx, g):
        a, out = ctx.saved
        hit = (a == out).astype(a.dtype)
        hit /= hit.sum(axis=ctx.axis, keepdims=True)
        return (hit * g.reshape(out.shape),)


class LogSumExp(Function):
    @staticmethod
    def forward(ctx, a, axis, keepdims):
        xp = array_module(a)
        m = a.max(axis=axis, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)
        out = xp.log(xp.exp(a - m).sum(axis=axis, keepdims=True)) + m
        ctx.save_for_backward(a, out)
        return out if keepdims else out.reshape(a.sum(axis=axis).shape)

    @staticmethod
    def backward(ctx, g):
        a, out = ctx.saved
        xp = array_module(a)
        return (xp.exp(a - out) * g.reshape(out.shape),)


class Reshape(Function):
    @staticmethod
    def forward(ctx, a, shape):
        ctx.shape = a.shape
        return a.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        return (g.reshape(ctx.shape),)


class Transpose(Function):
    @staticmethod
    def forward(ctx, a, axes):
        ctx.axes = axes
        return a.transpose(axes)

    @staticmethod
    def backward(ctx, g):
        if ctx.axes is None:
            return (g.transpose(),)
        return (g.transpose(np.argsort(ctx.axes)),)


class GetItem(Function):
    @staticmethod
    def forward(ctx, a, index):
        ctx.shape, ctx.dtype, ctx.index = a.shape, a.dtype, index
        return a[index]

    @staticmethod
    def backward(ctx, g):
        xp = array_module(g)
        out = xp.zeros(ctx.shape, dtype=g.dtype)
        xp.add.at(out, ctx.index, g)  # add.at: repeated fancy indices accumulate
        return (out,)


class Concatenate(Function):
    @staticmethod
    def forward(ctx, *arrays, axis):
        xp = array_module(arrays[0])
        ctx.axis = axis
        ctx.splits = np.cumsum([a.shape[axis] for a in arrays])[:-1]
        return xp.concatenate(arrays, axis=axis)

    @staticmethod
    def backward(ctx, g):
        return tuple(array_module(g).split(g, ctx.splits, axis=ctx.axis))


class Where(Function):
    @staticmethod
    def forward(ctx, condition, a, b):
        xp = array_module(a)
        ctx.condition = condition
        return xp.where(condition, a, b)

    @staticmethod
    def backward(ctx, g):
        xp = array_module(g)
        zero = xp.zeros((), dtype=g.dtype)
        return None, xp.where(ctx.condition, g, zero), xp.where(ctx.condition, zero, g)


class Exp(Function):
    @staticmethod
    def forward(ctx, a):
        out = array_module(a).exp(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        return (g * ctx.saved[0],)


class Log(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return array_module(a).log(a)

    @staticmethod
    def backward(ctx, g):
        return (g / ctx.saved[0],)


class Tanh(Function):
    @staticmethod
    def forward(ctx, a):
        out = array_module(a).tanh(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved
        return (g * (1 - out * out),)


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, a):
        # 0.5*tanh(a/2)+0.5 is sigmoid without overflow for large |a|
        out = 0.5 * array_module(a).tanh(0.5 * a) + 0.5
        ctx.save_for_backward(out)
        return out.astype(a.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved
        return (g * out * (1 - out),)


class Relu(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return array_module(a).maximum(a, 0)

    @staticmethod
    def backward(ctx, g):
        return (g * (ctx.saved[0] > 0),)


class Abs(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return abs(a)

    @staticmethod
    def backward(ctx, g):
        return (g * array_module(g).sign(ctx.saved[0]),)


class Clip(Function):
    """Gradient passes where low <= a <= high (as torch.clamp)."""

    @staticmethod
    def forward(ctx, a, low, high):
        ctx.save_for_backward(a)
        ctx.low, ctx.high = low, high
        return array_module(a).clip(a, low, high)

    @staticmethod
    def backward(ctx, g):
        (a,) = ctx.saved
        return (g * ((a >= ctx.low) & (a <= ctx.high)),)


def _axes(axis, ndim):
    return tuple(a % ndim for a in np.atleast_1d(axis))
