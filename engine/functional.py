"""Differentiable ops on Tensors. Fused ops are one graph node each and call the backend table.

Layouts follow Keras: batch-major `(B, T, F)` sequences, channels-last, Keras weight shapes.
Inputs may be Tensors or arrays; integer inputs (token ids, masks) never get gradients.

Example:
    >>> import engine as en, engine.functional as F, numpy as np
    >>> table = en.Tensor(np.random.rand(10, 4).astype("float32"), requires_grad=True)
    >>> F.embedding(np.array([[1, 2, 2]]), table).sum().backward()
    >>> table.grad[2]          # id 2 was used twice
    array([2., 2., 2., 2.], dtype=float32)
"""
from __future__ import annotations

import numpy as np

from . import backends
from .function import Function
from .sparse import RowSparse
from .tensor import Tensor, array_module


def _data(x):
    return x.data if isinstance(x, Tensor) else x


def _float_tensor(x, op: str, name: str, ndim: int | None = None) -> Tensor:
    x = x if isinstance(x, Tensor) else Tensor(x)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: {name} must be float32 or float64, got {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{op}: {name} must have {ndim} dimensions, got shape {x.shape}")
    return x


def _int_array(x, op: str, name: str):
    x = _data(x)
    xp = array_module(x)
    x = xp.asarray(x)
    if x.dtype.kind not in "iu":
        raise TypeError(f"{op}: {name} must be an integer array, got dtype {x.dtype}")
    return xp.ascontiguousarray(x, dtype=np.int64)


class _Embedding(Function):
    @staticmethod
    def forward(ctx, ids, table, sparse):
        backend = backends.for_array(table)
        ctx.backend, ctx.ids, ctx.sparse, ctx.shape = backend, ids, sparse, table.shape
        return backend.embedding_forward(ids, array_module(table).ascontiguousarray(table))

    @staticmethod
    def backward(ctx, grad):
        result = ctx.backend.embedding_backward(ctx.ids, array_module(grad).ascontiguousarray(grad),
                                                ctx.shape[0], sparse=ctx.sparse)
        if ctx.sparse:
            return None, RowSparse(*result, ctx.shape)
        return None, result


def embedding(ids, table, sparse: bool = False) -> Tensor:
    """Rows of `table` at `ids`: ids int [*S], table [V,D] -> [*S,D].

    sparse=True leaves a RowSparse gradient in table.grad (only the rows the batch used),
    which the optimizers apply without building the dense [V,D] array.
    Ids outside [0, V) raise IndexError before any kernel runs.
    """
    table = _float_tensor(table, "embedding", "table", ndim=2)
    ids = _int_array(ids, "embedding", "ids")
    return _Embedding.apply(ids, table, sparse=bool(sparse))
