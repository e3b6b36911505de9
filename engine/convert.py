"""Weight conversion from PyTorch recurrent layers to Keras 3 layouts (what our layers use).

PyTorch stores gates stacked along rows (`weight_ih_l0`: [G·H, F]) and two biases; Keras
stores `kernel` [F, G·H], `recurrent_kernel` [H, G·H] and one bias. Gate orders:
    LSTM  torch i,f,g,o  = Keras i,f,c,o              bias = b_ih + b_hh
    GRU   torch r,z,n    -> Keras z,r,h               bias = [b_ih; b_hh] (2,3H), reset_after=True
    RNN   tanh, one gate                              bias = b_ih + b_hh
PyTorch's GRU is Keras's reset_after=True GRU (the reset gate multiplies W_hn·h + b_hn).

Example:
    >>> import torch, engine.convert as cv
    >>> kernel, recurrent_kernel, bias = cv.lstm_from_torch(torch.nn.LSTM(3, 4).state_dict())
    >>> kernel.shape, recurrent_kernel.shape, bias.shape
    ((3, 16), (4, 16), (16,))
"""
from __future__ import annotations

import numpy as np


def _numpy(value):
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _params(state_dict, layer, reverse):
    """weight_ih, weight_hh, bias_ih, bias_hh (biases zero when the module has none)."""
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    found = {}
    for key, value in state_dict.items():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            if key == name + suffix or key.endswith("." + name + suffix):
                found[name] = _numpy(value)
    for name in ("weight_ih", "weight_hh"):
        if name not in found:
            raise KeyError(f"convert: state_dict has no '{name}{suffix}'; keys are {sorted(state_dict)}")
    rows = found["weight_ih"].shape[0]
    zeros = np.zeros(rows, dtype=found["weight_ih"].dtype)
    return (found["weight_ih"], found["weight_hh"],
            found.get("bias_ih", zeros), found.get("bias_hh", zeros))


def _check_rows(op, weight_ih, weight_hh, gates):
    H = weight_hh.shape[1]
    if weight_ih.shape[0] != gates * H or weight_hh.shape != (gates * H, H):
        raise ValueError(f"convert: {op} expects weight_ih ({gates}*H, F) and weight_hh ({gates}*H, H), "
                         f"got {weight_ih.shape} and {weight_hh.shape}")
    return H


def lstm_from_torch(state_dict, layer=0, reverse=False):
    """torch.nn.LSTM state_dict -> Keras [kernel (F,4H), recurrent_kernel (H,4H), bias (4H,)]."""
    w_ih, w_hh, b_ih, b_hh = _params(state_dict, layer, reverse)
    _check_rows("lstm", w_ih, w_hh, 4)
    return [np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T), b_ih + b_hh]


def gru_from_torch(state_dict, layer=0, reverse=False):
    """torch.nn.GRU state_dict -> Keras reset_after=True [kernel (F,3H), recurrent_kernel (H,3H), bias (2,3H)]."""
    w_ih, w_hh, b_ih, b_hh = _params(state_dict, layer, reverse)
    H = _check_rows("gru", w_ih, w_hh, 3)
    order = np.concatenate([np.arange(H, 2 * H), np.arange(H), np.arange(2 * H, 3 * H)])  # r,z,n -> z,r,n
    return [np.ascontiguousarray(w_ih[order].T), np.ascontiguousarray(w_hh[order].T),
            np.stack([b_ih[order], b_hh[order]])]


def simple_rnn_from_torch(state_dict, layer=0, reverse=False):
    """torch.nn.RNN (tanh) state_dict -> Keras [kernel (F,H), recurrent_kernel (H,H), bias (H,)]."""
    w_ih, w_hh, b_ih, b_hh = _params(state_dict, layer, reverse)
    _check_rows("simple_rnn", w_ih, w_hh, 1)
    return [np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T), b_ih + b_hh]
