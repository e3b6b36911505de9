"""Row-sparse gradients: only the rows of an embedding table that a batch touched.

A `RowSparse` stands for a dense `(V, D)` array that is zero except at `indices`.
`F.embedding(ids, table, sparse=True)` leaves one in `table.grad`; the optimizers update
just those rows, so a 100k-word vocabulary costs only the rows in the batch.

Example:
    >>> g = RowSparse(np.array([3, 1, 3]), np.ones((3, 2)), (5, 2)).coalesce()
    >>> g.indices, g.values[:, 0]
    (array([1, 3]), array([1., 2.]))
"""
from __future__ import annotations


class RowSparse:
    """indices: [N] int64 row ids (may repeat until coalesced); values: [N, *row_shape]."""

    def __init__(self, indices, values, shape):
        self.indices, self.values, self.shape = indices, values, tuple(shape)

    @property
    def dtype(self):
        return self.values.dtype

    def coalesce(self) -> "RowSparse":
        """Sum rows with the same index; indices come back sorted and unique."""
        xp = _xp(self.values)
        uniq, inverse = xp.unique(self.indices, return_inverse=True)
        if len(uniq) == len(self.indices):
            order = xp.argsort(self.indices)
            return RowSparse(self.indices[order], self.values[order], self.shape)
        summed = xp.zeros((len(uniq),) + self.values.shape[1:], dtype=self.values.dtype)
        xp.add.at(summed, inverse.reshape(-1), self.values)
        return RowSparse(uniq, summed, self.shape)

    def to_dense(self):
        xp = _xp(self.values)
        dense = xp.zeros(self.shape, dtype=self.values.dtype)
        xp.add.at(dense, self.indices, self.values)
        return dense

    def __add__(self, other):
        if isinstance(other, RowSparse):
            return RowSparse(_xp(self.values).concatenate([self.indices, other.indices]),
                             _xp(self.values).concatenate([self.values, other.values]),
                             self.shape)
        return self.to_dense() + other

    __radd__ = __add__

    def __repr__(self):
        return f"RowSparse(rows={len(self.indices)}, shape={self.shape}, dtype={self.dtype})"


def _xp(array):
    from .tensor import array_module
    return array_module(array)
