"""Merge layers (Keras 3 names): Add, Subtract, Multiply, Average, Concatenate, Dot.

Each takes a list of tensors. The output mask is the AND of the inputs' masks (None when
no input has one), as Keras's merge layers compute it.

Example:
    >>> a, b = en.Input((8,)), en.Input((8,))
    >>> en.layers.Dot(axes=1, normalize=True)([a, b]).shape     # cosine similarity
    (None, 1)
"""
from __future__ import annotations

import functools

import numpy as np

from ..tensor import array_module, as_array, concatenate
from .base import Layer
from .core import as_tensor


class _Merge(Layer):
    supports_masking = True
    _min_inputs = 2

    def call(self, x, mask=None, training=False):
        if not isinstance(x, (list, tuple)) or len(x) < self._min_inputs:
            raise ValueError(f"{self.name}: expected a list of at least {self._min_inputs} tensors, "
                             f"got {type(x).__name__}{'' if not isinstance(x, (list, tuple)) else f' of {len(x)}'}")
        tensors = [as_tensor(t, self.dtype) for t in x]
        return self._merge(tensors)

    def compute_mask(self, x, mask):
        if mask is None:
            return None
        masks = [as_array(m) for m in mask if m is not None]
        return functools.reduce(array_module(masks[0]).logical_and, masks) if masks else None


class _Elementwise(_Merge):
    def _merge(self, tensors):
        shapes = {t.shape for t in tensors}
        if len(shapes) != 1:
            raise ValueError(f"{self.name}: inputs must have the same shape, got {[t.shape for t in tensors]}")
        return self._combine(tensors)


class Add(_Elementwise):
    """Sum of the inputs."""
    def _combine(self, tensors):
        return functools.reduce(lambda a, b: a + b, tensors)


class Subtract(_Elementwise):
    """inputs[0] - inputs[1] (exactly two inputs)."""
    def _combine(self, tensors):
        if len(tensors) != 2:
            raise ValueError(f"{self.name}: expected exactly 2 inputs, got {len(tensors)}")
        return tensors[0] - tensors[1]


class Multiply(_Elementwise):
    """Elementwise product of the inputs."""
    def _combine(self, tensors):
        return functools.reduce(lambda a, b: a * b, tensors)


class Average(_Elementwise):
    """Elementwise mean of the inputs."""
    def _combine(self, tensors):
        return functools.reduce(lambda a, b: a + b, tensors) * (1.0 / len(tensors))


class Concatenate(_Merge):
    """Inputs joined along `axis` (default the last); other dimensions must agree."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def _merge(self, tensors):
        ndim = tensors[0].ndim
        axis = self.axis % ndim
        for t in tensors:
            if t.ndim != ndim or t.shape[:axis] + t.shape[axis + 1:] != tensors[0].shape[:axis] + tensors[0].shape[axis + 1:]:
                raise ValueError(f"{self.name}: inputs must match except on axis {self.axis}, "
                                 f"got {[t.shape for t in tensors]}")
        return concatenate(tensors, axis=axis)

    def compute_mask(self, x, mask):
        if mask is not None and self.axis % x[0].ndim != x[0].ndim - 1:
            raise ValueError(f"{self.name}: masked inputs can be concatenated only on the feature axis, "
                             f"got axis={self.axis}")
        return super().compute_mask(x, mask)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class Dot(_Merge):
    """Batch dot product of two inputs over `axes` (an int for both, or a pair), as Keras:
    (B, D)·(B, D) with axes=1 -> (B, 1); (B, T, D)·(B, S, D) with axes=2 -> (B, T, S).
    normalize=True L2-normalizes both along the axes first, so the result is the cosine."""

    _min_inputs = 2

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        pair = (axes, axes) if isinstance(axes, (int, np.integer)) else tuple(axes)
        if len(pair) != 2:
            raise ValueError(f"Dot: axes must be an int or a pair of ints, got {axes!r}")
        self.axes, self.normalize = [int(a) for a in pair], bool(normalize)

    def _merge(self, tensors):
        if len(tensors) != 2:
            raise ValueError(f"{self.name}: expected exactly 2 inputs, got {len(tensors)}")
        a, b = tensors
        if a.ndim not in (2, 3) or b.ndim not in (2, 3):
            raise ValueError(f"{self.name}: inputs must be 2-D or 3-D (batch first), got {a.shape} and {b.shape}")
        ax, bx = (axis % t.ndim for axis, t in zip(self.axes, tensors))
        if ax == 0 or bx == 0:
            raise ValueError(f"{self.name}: axes cannot include the batch axis, got {self.axes}")
        if a.shape[ax] != b.shape[bx]:
            raise ValueError(f"{self.name}: dimension {ax} of {a.shape} and {bx} of {b.shape} must be equal")
        if self.normalize:
            a, b = _l2_normalize(a, ax), _l2_normalize(b, bx)
        # a: [B, M, K] with K the contracted axis, b: [B, K, N]; 2-D inputs get a unit axis.
        a3 = a.reshape(a.shape[0], 1, a.shape[1]) if a.ndim == 2 else (a if ax == 2 else a.transpose(0, 2, 1))
        b3 = b.reshape(b.shape[0], b.shape[1], 1) if b.ndim == 2 else (b if bx == 1 else b.transpose(0, 2, 1))
        out = a3 @ b3
        if a.ndim == 2 and b.ndim == 2:
            return out.reshape(out.shape[0], 1)
        if a.ndim == 2:
            return out.reshape(out.shape[0], out.shape[2])
        if b.ndim == 2:
            return out.reshape(out.shape[0], out.shape[1])
        return out

    def compute_mask(self, x, mask):
        return None

    def get_config(self):
        return {**super().get_config(), "axes": self.axes, "normalize": self.normalize}


def _l2_normalize(x, axis):
    """x / max(|x|, 1e-12) along axis, as Keras's Dot(normalize=True) (the clip on the squares
    keeps the gradient finite for an all-zero vector)."""
    squares = (x * x).sum(axis=axis, keepdims=True)
    return x / squares.clip(1e-24, np.inf).sqrt()


__all__ = ["Add", "Subtract", "Multiply", "Average", "Concatenate", "Dot"]
