"""CuPy backend: the kernel table on the GPU. CUDA C from kernels/cuda/ loaded with
cupy.RawModule (engine/backends/_cuda.py), GEMMs through cuBLAS; each op family lives in a
private module re-exported here (_cuda_rnn, _cuda_persistent, _cuda_conv, _cuda_embedding)."""
from __future__ import annotations

NAME = "cupy"
DEVICE = "cuda"

try:
    import cupy
    _ERROR = "" if cupy.cuda.runtime.getDeviceCount() > 0 else "no CUDA device"
except ImportError:
    _ERROR = "cupy is not installed (pip install seqfuse[gpu])"
except Exception as exc:  # CUDA driver/runtime missing or broken
    _ERROR = f"no usable CUDA device: {exc}"


def available() -> bool:
    return not _ERROR


def why_unavailable() -> str:
    return _ERROR


from ._cuda_rnn import (gru_backward, gru_forward, lstm_backward, lstm_forward,  # noqa: F401,E402
                        simple_rnn_backward, simple_rnn_forward)
from ._cuda_embedding import embedding_backward, embedding_coalesce, embedding_forward  # noqa: E402,F401
from ._cuda_conv import conv1d_backward, conv1d_forward, max_pool1d_backward, max_pool1d_forward  # noqa: E402,F401
