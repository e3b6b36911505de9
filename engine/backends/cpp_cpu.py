"""C++ backend: a thin wrapper over the compiled extension engine._C (bindings/, kernels/cpu/).

The bindings validate shapes, dtypes and ids, allocate the outputs and release the GIL;
this file only adapts the calling convention of the kernel table.
"""
from __future__ import annotations

import numpy as np

NAME = "cpp"
DEVICE = "cpu"

try:
    from .. import _C
    _ERROR = ""
except ImportError as exc:
    _ERROR = f"the compiled extension engine._C is missing (build with pip install .): {exc}"


def available() -> bool:
    return not _ERROR


def why_unavailable() -> str:
    return _ERROR


def embedding_forward(ids, table):
    """ids: [*S] int64, table: [V,D] -> [*S,D]."""
    out = _C.embedding_forward(ids.reshape(-1), table)
    return out.reshape(ids.shape + (table.shape[1],))


def embedding_backward(ids, grad, num_embeddings, sparse=False):
    """ids: [*S], grad: [*S,D] -> dense [V,D], or (rows [N], values [N,D]) when sparse."""
    flat_ids = ids.reshape(-1)
    rows, values = _C.embedding_backward(flat_ids, grad.reshape(flat_ids.size, -1), num_embeddings)
    if sparse:
        return rows, values
    dense = np.zeros((num_embeddings, values.shape[1]), dtype=values.dtype)
    dense[rows] = values
    return dense
