"""CuPy backend: arrays on the GPU. Fused recurrent kernels will be CUDA C from kernels/cuda/
loaded with cupy.RawModule; embedding is gather/scatter-add through CuPy's own kernels."""
from __future__ import annotations

from ._checks import check_ids

NAME = "cupy"
DEVICE = "cuda"

try:
    import cupy
    import cupyx
    _ERROR = "" if cupy.cuda.runtime.getDeviceCount() > 0 else "no CUDA device"
except ImportError:
    _ERROR = "cupy is not installed (pip install seqfuse[gpu])"
except Exception as exc:  # CUDA driver/runtime missing or broken
    _ERROR = f"no usable CUDA device: {exc}"


def available() -> bool:
    return not _ERROR


def why_unavailable() -> str:
    return _ERROR


def embedding_forward(ids, table):
    """ids: [*S] int64, table: [V,D] -> [*S,D]."""
    check_ids(ids, table.shape[0])
    return table[ids]


def embedding_backward(ids, grad, num_embeddings):
    """ids: [*S], grad: [*S,D] -> dense [V,D]."""
    check_ids(ids, num_embeddings)
    flat_ids = ids.reshape(-1)
    dense = cupy.zeros((num_embeddings, grad.shape[-1]), dtype=grad.dtype)
    cupyx.scatter_add(dense, flat_ids, grad.reshape(flat_ids.size, grad.shape[-1]))
    return dense


def embedding_coalesce(ids, values, num_rows):
    """ids: [N] in [0, num_rows), values: [N,D] -> (rows [U] sorted distinct ids, summed [U,D])."""
    check_ids(ids, num_rows)
    rows, inverse = cupy.unique(ids, return_inverse=True)
    summed = cupy.zeros((rows.size, values.shape[1]), dtype=values.dtype)
    cupyx.scatter_add(summed, inverse.reshape(-1), values)
    return rows, summed
from ._cuda_rnn import (gru_backward, gru_forward, lstm_backward, lstm_forward,  # noqa: F401,E402
                        simple_rnn_backward, simple_rnn_forward)
