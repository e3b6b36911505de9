"""NumPy reference backend: the executable specification every other backend is tested against.

Arrays follow the kernel table's conventions: ids are int64, float arrays are float32 or
float64 and C-contiguous; results have the input's float dtype.
"""
from __future__ import annotations

import numpy as np

from ._checks import check_ids

NAME = "reference"
DEVICE = "cpu"


def available() -> bool:
    return True


def why_unavailable() -> str:
    return ""


def embedding_forward(ids, table):
    """ids: [*S] int64, table: [V,D] -> [*S,D] = table[ids]."""
    check_ids(ids, table.shape[0])
    return table[ids]


def embedding_backward(ids, grad, num_embeddings, sparse=False):
    """ids: [*S], grad: [*S,D] -> d table.

    sparse=False: dense [V,D]. sparse=True: (rows [N] sorted unique, values [N,D]) summed per row.
    """
    check_ids(ids, num_embeddings)
    flat_ids = ids.reshape(-1)
    flat_grad = grad.reshape(flat_ids.size, -1)
    if sparse:
        rows, inverse = np.unique(flat_ids, return_inverse=True)
        values = np.zeros((rows.size, flat_grad.shape[1]), dtype=grad.dtype)
        np.add.at(values, inverse.reshape(-1), flat_grad)
        return rows, values
    dense = np.zeros((num_embeddings, flat_grad.shape[1]), dtype=grad.dtype)
    np.add.at(dense, flat_ids, flat_grad)
    return dense
