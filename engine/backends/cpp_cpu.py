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
    from .. import _blas, tuning
    _blas.wire_extension()  # conv1d's GEMM algorithm calls NumPy's OpenBLAS from C++
    tuning.configure()      # after the wiring: the conv1d timing runs both algorithms
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


def embedding_backward(ids, grad, num_embeddings):
    """ids: [*S], grad: [*S,D] any strides -> dense [V,D]."""
    flat_ids = ids.reshape(-1)
    rows, values = _C.embedding_coalesce(flat_ids, grad.reshape(flat_ids.size, grad.shape[-1]),
                                         num_embeddings)
    dense = np.zeros((num_embeddings, values.shape[1]), dtype=values.dtype)
    dense[rows] = values
    return dense


def embedding_coalesce(ids, values, num_rows):
    """ids: [N] int64 in [0, num_rows), values: [N,D] any strides
    -> (rows [U] sorted distinct ids, summed [U,D])."""
    return _C.embedding_coalesce(ids, values, num_rows)


# Recurrent ops (docs/kernels.md): the whole loop in one GIL-free call, with the input
# projection x_t·kernel + bias computed step by step inside it (kernels/cpu/projection.hpp).

def lstm_forward(x, kernel, bias, U, h0, c0, mask, dropout_mask, *, go_backwards=False, save=True):
    """x: [B,T,F], kernel: [F,4H], bias: [4H] or None, U: [H,4H], h0/c0: [B,H]
    -> (hs [T,B,H], cs [T,B,H], gates [T,B,4H]); without `save`, cs is only its last step
    [1,B,H] (c_T) and gates is None."""
    return _C.lstm_forward(x, kernel, bias, U, h0, c0, mask, dropout_mask,
                           go_backwards=go_backwards, save=save)


def weights_in_loop():
    """Whether simple_rnn_backward and gru_backward sum the layer's weight gradients inside
    their time loops when given the layer's input x (the "weights_in_loop" choice;
    engine/_recurrent.py passes x then, where there is no recurrent dropout mask and, for GRU,
    with reset_after)."""
    return _C.weights_in_loop()


def lstm_backward(dhs, dc_T, U, h0, c0, hs, cs, gates, mask, dropout_mask, *, kernel=None,
                  go_backwards=False, overwrite_saved=False):
    """dhs: [T,B,H], dc_T: [B,H]
    -> (dz [T,B,4H], dx [B,T,F] or None, dbias [4H], dh0 [B,H], dc0 [B,H]). With
    overwrite_saved (the caller discards gates) dz is written over gates, which it returns."""
    return _C.lstm_backward(dhs, dc_T, U, h0, c0, hs, cs, gates, mask, dropout_mask,
                            kernel=kernel, go_backwards=go_backwards, overwrite_saved=overwrite_saved)


def gru_forward(x, kernel, bias, U, recurrent_bias, h0, mask, dropout_mask, reset_after=True, *,
                go_backwards=False, save=True):
    """x: [B,T,F], kernel: [F,3H], bias: [3H] (input bias) or None, U: [H,3H],
    recurrent_bias: [3H] or None, h0: [B,H] -> (hs [T,B,H], gates [T,B,3H], uh [T,B,H] or [0]
    when not reset_after); gates and uh are None when not `save`."""
    return _C.gru_forward(x, kernel, bias, U, recurrent_bias, h0, mask, dropout_mask, reset_after,
                          go_backwards=go_backwards, save=save)


def gru_backward(dhs, U, recurrent_bias, h0, hs, gates, uh, mask, dropout_mask, reset_after=True,
                 *, kernel=None, go_backwards=False, overwrite_saved=False, x=None):
    """dhs: [T,B,H] -> (dxw [T,B,3H], dx [B,T,F] or None, du [T,B,H] the candidate's columns of
    the recurrent gradient (its z,r columns are dxw's), dbias [2,3H] (reset_after) or [3H],
    dh0 [B,H]). With overwrite_saved (the caller discards gates and uh) dxw is written over
    gates and, with reset_after, du over uh, which it returns. Given x [B,T,F] (the layer's
    input; reset_after, no dropout_mask) the weight gradients are summed inside the loop
    (weights_in_loop): then dxw and du are None and the result ends with [dkernel; dU]
    [F+H,3H]."""
    result = _C.gru_backward(dhs, U, recurrent_bias, h0, hs, gates, uh, mask, dropout_mask,
                             reset_after, kernel=kernel, go_backwards=go_backwards,
                             overwrite_saved=overwrite_saved, x=x)
    return result if x is not None else result[:5]


def simple_rnn_forward(x, kernel, bias, U, h0, mask, dropout_mask, *, go_backwards=False, save=True):
    """x: [B,T,F], kernel: [F,H], bias: [H] or None, U: [H,H], h0: [B,H] -> hs [T,B,H]
    (a view of batch-major memory, as every forward's hs here: the layer's output needs no
    copy, and the backwards read hs and dhs at any strides)."""
    return _C.simple_rnn_forward(x, kernel, bias, U, h0, mask, dropout_mask,
                                 go_backwards=go_backwards, save=save)


def simple_rnn_backward(dhs, U, h0, hs, mask, dropout_mask, *, kernel=None, go_backwards=False,
                        x=None):
    """dhs: [T,B,H] -> (dz [T,B,H], dx [B,T,F] or None, dbias [H], dh0 [B,H]). Given x [B,T,F]
    (the layer's input; no dropout_mask) the weight gradients are summed inside the loop
    (weights_in_loop): then dz is None and the result ends with [dkernel; dU] [F+H,H]."""
    result = _C.simple_rnn_backward(dhs, U, h0, hs, mask, dropout_mask, kernel=kernel,
                                    go_backwards=go_backwards, x=x)
    return result if x is not None else result[:4]


def conv1d_forward(x, kernel, bias, strides, dilation_rate):
    """x: [B,L,C] padded, kernel: [K,C,O], bias: [O] or None -> [B,L_out,O]."""
    return _C.conv1d_forward(x, kernel, bias, int(strides), int(dilation_rate))


def conv1d_backward(grad, x, kernel, strides, dilation_rate):
    """grad: [B,L_out,O] -> (dx [B,L,C], dkernel [K,C,O], dbias [O])."""
    return _C.conv1d_backward(grad, x, kernel, int(strides), int(dilation_rate))


def max_pool1d_forward(x, pool_size, strides):
    """x: [B,L,C] padded -> (out [B,L_out,C], argmax [B,L_out,C] int64 position along L)."""
    return _C.max_pool1d_forward(x, int(pool_size), int(strides))


def max_pool1d_backward(grad, argmax, length):
    """grad: [B,L_out,C], argmax: [B,L_out,C] -> dx [B,length,C]."""
    return _C.max_pool1d_backward(grad, argmax, int(length))
