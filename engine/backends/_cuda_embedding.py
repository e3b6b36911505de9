"""Embedding on the GPU: the cupy backend's embedding_forward / _backward / _coalesce
(docs/kernels.md), kernels/cuda/embedding.cu.

- forward: a gather kernel, one block per id.
- backward (dense [V,D]): a scatter-add with atomicAdd, so repeated ids lose no update.
- coalesce (the row-sparse gradient's sum per id): a stable sort of the ids (cupy.argsort)
  and one block per distinct id summing its rows in the order they occur, as the reference's
  np.add.at: deterministic, no atomics.

ids outside the table raise IndexError before any kernel writes memory (_checks.check_ids:
one reduction and a sync). grad and values are read with their strides: Sum's backward hands
over a broadcast view, which is not copied. Shapes and dtypes are checked on the host first
(also on NumPy arrays, tests/test_cuda_conv_host.py); this module imports without cupy.

Example (on a GPU):
    >>> rows, summed = embedding_coalesce(cupy.asarray([3, 1, 3]), cupy.ones((3, 2)), 5)
    >>> rows.tolist(), summed.tolist()
    ([1, 3], [[1.0, 1.0], [2.0, 2.0]])
"""
from __future__ import annotations

import numpy as np

from . import _cuda
from ._checks import check_ids
from ._cuda_conv import grid, require_dim, require_float, require_ndim, require_on_device, threads

_cuda.declare("embedding", "embedding_gather<{T}>", "embedding_scatter_add<{T}>",
              "embedding_sum_segments<{T}>")


def _require_integer(ids, op: str) -> None:
    """TypeError unless ids are integers; any integer dtype is taken (as the C++ bindings
    convert), the kernels read them as int64."""
    if np.dtype(ids.dtype).kind not in "iu":
        raise TypeError(f"{op}: ids must be an integer array, got dtype {ids.dtype}")


def _element_strides(rows):
    """(rows, row_stride, col_stride) of a [N,D] device array in elements; a view whose strides
    or start are not whole elements cannot be indexed that way and is copied to C order."""
    import cupy

    itemsize = rows.itemsize
    if rows.data.ptr % itemsize or any(stride % itemsize for stride in rows.strides):
        rows = cupy.ascontiguousarray(rows)
    return rows, np.int64(rows.strides[0] // itemsize), np.int64(rows.strides[1] // itemsize)


def embedding_forward(ids, table):
    """ids: [*S] integers (int64 by the table's convention), table: [V,D] -> [*S,D] = table[ids]."""
    _require_integer(ids, "embedding")
    require_ndim(table, "embedding", "table", 2)
    require_float(table, "embedding", "table")
    check_ids(ids, table.shape[0])
    require_on_device("embedding", ids=ids, table=table)
    import cupy

    flat = cupy.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
    table = cupy.ascontiguousarray(table)
    D = table.shape[1]
    out = cupy.empty((flat.size, D), table.dtype)
    if out.size:
        _cuda.function("embedding", "embedding_gather<{T}>", table.dtype)(
            grid(flat.size, "embedding"), threads(D), (flat, table, np.int32(D), out))
    return out.reshape(tuple(ids.shape) + (D,))


def embedding_backward(ids, grad, num_embeddings):
    """ids: [*S], grad: [*S,D] any strides -> the dense gradient of the table [V,D]."""
    _require_integer(ids, "embedding")
    require_ndim(grad, "embedding", "grad", ids.ndim + 1)
    for axis, size in enumerate(ids.shape):
        require_dim(grad, "embedding", "grad", axis, size)
    require_float(grad, "embedding", "grad")
    num_embeddings = int(num_embeddings)
    check_ids(ids, num_embeddings)
    require_on_device("embedding", ids=ids, grad=grad)
    import cupy

    flat = cupy.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
    D = grad.shape[-1]
    dense = cupy.zeros((num_embeddings, D), grad.dtype)
    if flat.size and D:
        rows, row_stride, col_stride = _element_strides(grad.reshape(flat.size, D))
        _cuda.function("embedding", "embedding_scatter_add<{T}>", grad.dtype)(
            grid(flat.size, "embedding"), threads(D),
            (flat, rows, row_stride, col_stride, np.int32(D), dense))
    return dense


def segments(ids):
    """ids: [N] device int64, N >= 1 -> (order [N] the stable sort of ids, starts [U+1] where
    each distinct id's run begins in ids[order], then N; rows [U] the distinct ids ascending)."""
    import cupy

    order = cupy.argsort(ids).astype(np.int64, copy=False)   # cupy's argsort is stable
    ordered = ids[order]
    changes = cupy.flatnonzero(ordered[1:] != ordered[:-1]).astype(np.int64, copy=False) + 1
    starts = cupy.concatenate([cupy.zeros(1, np.int64), changes, cupy.full(1, ids.size, np.int64)])
    return order, starts, ordered[starts[:-1]]


def embedding_coalesce(ids, values, num_rows):
    """ids: [N] int64 in [0, num_rows), values: [N,D] any strides
    -> (rows [U] sorted distinct ids, summed [U,D]: values summed over each id's positions)."""
    require_ndim(ids, "embedding_coalesce", "ids", 1)
    _require_integer(ids, "embedding_coalesce")
    require_ndim(values, "embedding_coalesce", "values", 2)
    require_dim(values, "embedding_coalesce", "values", 0, ids.shape[0])
    require_float(values, "embedding_coalesce", "values")
    num_rows = int(num_rows)
    if num_rows <= 0:
        raise ValueError(f"embedding_coalesce: num_rows must be positive, got {num_rows}")
    check_ids(ids, num_rows)
    require_on_device("embedding_coalesce", ids=ids, values=values)
    import cupy

    D = values.shape[1]
    if ids.size == 0:
        return cupy.empty(0, np.int64), cupy.empty((0, D), values.dtype)
    order, starts, rows = segments(cupy.ascontiguousarray(ids, dtype=np.int64))
    summed = cupy.empty((rows.size, D), values.dtype)
    if D:
        strided, row_stride, col_stride = _element_strides(values)
        _cuda.function("embedding", "embedding_sum_segments<{T}>", values.dtype)(
            grid(rows.size, "embedding_coalesce"), threads(D),
            (strided, row_stride, col_stride, np.int32(D), order, starts, summed))
    return rows, summed
