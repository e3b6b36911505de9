"""Weight initializers with Keras's names and defaults, drawn from the engine's seeded generator.

Example:
    >>> get("glorot_uniform")((64, 32), "float32").shape
    (64, 32)
"""
from __future__ import annotations

import numpy as np

from .random import generator


def zeros(shape, dtype):
    return np.zeros(shape, dtype)


def ones(shape, dtype):
    return np.ones(shape, dtype)


def glorot_uniform(shape, dtype):
    """U(−l, l), l = sqrt(6 / (fan_in + fan_out)); conv kernels count receptive field."""
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return generator().uniform(-limit, limit, shape).astype(dtype)


def orthogonal(shape, dtype):
    """A (semi-)orthogonal matrix, Keras's default for recurrent kernels."""
    rows, cols = shape[0], int(np.prod(shape[1:]))
    a = generator().standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    q = q if rows >= cols else q.T
    return q[:rows, :cols].reshape(shape).astype(dtype)


def random_uniform(shape, dtype, minval=-0.05, maxval=0.05):
    """Keras's RandomUniform default, used by Embedding."""
    return generator().uniform(minval, maxval, shape).astype(dtype)


_BY_NAME = {"zeros": zeros, "ones": ones, "glorot_uniform": glorot_uniform,
            "orthogonal": orthogonal, "uniform": random_uniform, "random_uniform": random_uniform}


def get(identifier):
    """An initializer from a callable (shape, dtype) -> array or a Keras name."""
    if callable(identifier):
        return identifier
    if identifier in _BY_NAME:
        return _BY_NAME[identifier]
    raise ValueError(f"initializer: expected a callable or one of {sorted(_BY_NAME)}, got {identifier!r}")
