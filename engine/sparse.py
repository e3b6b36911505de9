"""Row-sparse gradients: only the rows of an embedding table that a batch touched.

A `RowSparse` stands for a dense `(V, D)` array that is zero except at `indices`.
`F.embedding(ids, table, sparse=True)` leaves one in `table.grad`, uncoalesced as PyTorch's
sparse embedding gradient: one row per id, repeated ids included, its values a view of the
incoming gradient where NumPy can reshape without a copy (then possibly read-only: Sum's
backward hands over a broadcast view). The optimizers `coalesce()` it, which sums repeated
ids with the backend's `embedding_coalesce` kernel into fresh arrays, and update just those
rows, so a 100k-word vocabulary costs only the rows in the batch.

Example:
    >>> g = RowSparse(np.array([3, 1, 3]), np.ones((3, 2)), (5, 2)).coalesce()
    >>> g.indices, g.values[:, 0]
    (array([1, 3]), array([1., 2.]))
"""
from __future__ import annotations

import math

import numpy as np

from . import backends


class RowSparse:
    """indices: [N] int row ids in [0, shape[0]) (may repeat until coalesced); values: [N, *row_shape].

    values may be a read-only view (see the module docstring): `coalesce()` or `to_dense()`
    give arrays of your own to modify.
    """

    # NumPy must not treat a RowSparse as a scalar to broadcast (dense + sparse would build an
    # object array): its operators return NotImplemented, so our __radd__ runs.
    __array_ufunc__ = None

    def __init__(self, indices, values, shape):
        self.indices, self.values, self.shape = indices, values, tuple(shape)

    @property
    def dtype(self):
        return self.values.dtype

    def coalesce(self) -> "RowSparse":
        """Sum rows with the same index; indices come back sorted and unique, values a new array.

        Runs the `embedding_coalesce` kernel of the backend that computes on `values` (a
        counting sort on cpp and numba).
        """
        xp = _xp(self.values)
        n, row_shape = len(self.indices), self.values.shape[1:]
        ids = xp.ascontiguousarray(self.indices, dtype=np.int64)
        rows, summed = backends.for_array(self.values).embedding_coalesce(
            ids, self.values.reshape(n, math.prod(row_shape)), self.shape[0])
        return RowSparse(rows, summed.reshape((len(rows),) + row_shape), self.shape)

    def to_dense(self):
        merged = self.coalesce()
        dense = _xp(self.values).zeros(self.shape, dtype=self.dtype)
        dense[merged.indices] = merged.values
        return dense

    def __add__(self, other):
        if isinstance(other, RowSparse):
            xp = _xp(self.values)
            return RowSparse(xp.concatenate([self.indices, other.indices]),
                             xp.concatenate([self.values, other.values]), self.shape)
        return self.to_dense() + other

    __radd__ = __add__

    def __repr__(self):
        return f"RowSparse(rows={len(self.indices)}, shape={self.shape}, dtype={self.dtype})"


def _xp(array):
    from .tensor import array_module
    return array_module(array)
