"""Numba backend: @njit kernels compiled once and cached on disk (cache=True).

Loops write to disjoint slices of their output, so `prange` needs no locks; the embedding
gradient sums each id's rows in one segment after a stable sort (no scatter races).
"""
from __future__ import annotations

import numpy as np

from ._checks import check_ids

NAME = "numba"
DEVICE = "cpu"

try:
    from numba import njit, prange
    _ERROR = ""
except ImportError as exc:  # pragma: no cover - numba is a runtime dependency
    _ERROR = f"numba is not importable: {exc}"


def available() -> bool:
    return not _ERROR


def why_unavailable() -> str:
    return _ERROR


if not _ERROR:
    @njit(parallel=True, cache=True, nogil=True)
    def _gather_rows(ids, table, out):
        for n in prange(ids.size):
            out[n, :] = table[ids[n], :]

    @njit(parallel=True, cache=True, nogil=True)
    def _segment_sum(order, grad, starts, values):
        # values[s] = sum of grad rows whose id is the s-th distinct id; segments are disjoint
        # and never empty, so the first row is assigned and values needs no zero-fill.
        # grad may be any layout (Numba compiles an 'A' version for a broadcast view).
        for s in prange(starts.size - 1):
            row = values[s]
            row[:] = grad[order[starts[s]]]
            for k in range(starts[s] + 1, starts[s + 1]):
                row += grad[order[k]]


def _unique_sorted(ids):
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    boundary = np.flatnonzero(np.diff(sorted_ids)) + 1
    starts = np.concatenate(([0], boundary, [ids.size])).astype(np.int64)
    return order, sorted_ids[starts[:-1]], starts


def embedding_forward(ids, table):
    """ids: [*S] int64, table: [V,D] -> [*S,D]."""
    check_ids(ids, table.shape[0])
    out = np.empty((ids.size, table.shape[1]), dtype=table.dtype)
    _gather_rows(ids.reshape(-1), table, out)
    return out.reshape(ids.shape + (table.shape[1],))


def embedding_backward(ids, grad, num_embeddings, sparse=False):
    """ids: [*S], grad: [*S,D] any strides -> dense [V,D], or (rows [N], values [N,D]) when sparse."""
    check_ids(ids, num_embeddings)
    flat_ids = ids.reshape(-1)
    flat_grad = grad.reshape(flat_ids.size, -1)
    order, rows, starts = _unique_sorted(flat_ids)
    values = np.empty((rows.size, flat_grad.shape[1]), dtype=grad.dtype)
    _segment_sum(order, flat_grad, starts, values)
    if sparse:
        return rows, values
    dense = np.zeros((num_embeddings, flat_grad.shape[1]), dtype=grad.dtype)
    dense[rows] = values
    return dense


if not _ERROR:
    # The recurrent and convolution kernels live in their own modules (docs/kernels.md).
    from ._numba_conv1d import (conv1d_backward, conv1d_forward,  # noqa: E402,F401
                                max_pool1d_backward, max_pool1d_forward)
    from ._numba_rnn import (gru_backward, gru_forward, lstm_backward, lstm_forward,  # noqa: E402,F401
                             simple_rnn_backward, simple_rnn_forward)
