"""Weights between PyTorch modules and Keras 3 layouts (what our layers use), both ways.

One function per op and direction (`lstm_from_torch` / `lstm_to_torch`, ...), and the
model-level pair behind `Model.load_torch_state_dict` / `Model.torch_state_dict`.

PyTorch stores recurrent gates stacked along rows (`weight_ih_l0`: [G·H, F]) and two biases;
Keras stores `kernel` [F, G·H], `recurrent_kernel` [H, G·H] and one bias. Gate orders:
    LSTM  torch i,f,g,o  = Keras i,f,c,o              bias = b_ih + b_hh
    GRU   torch r,z,n    -> Keras z,r,h               bias = [b_ih; b_hh] (2,3H), reset_after=True
    RNN   tanh, one gate                              bias = b_ih + b_hh
PyTorch's GRU is Keras's reset_after=True GRU (the reset gate multiplies W_hn·h + b_hn); a
reset_after=False GRU has no PyTorch counterpart. Going to PyTorch, LSTM and RNN put the
whole bias in b_ih and zeros in b_hh (only the sum matters).
    Dense   kernel [in, out]      <-> nn.Linear  weight [out, in] (transposed), bias
    Embedding embeddings [V, D]   <-> nn.Embedding weight [V, D]
    Conv1D  kernel [K, C, O]      <-> nn.Conv1d  weight [O, C, K], bias

State-dict keys (model level): "<seqfuse layer name>.<torch parameter>", as the state_dict of a
torch module holding one submodule per seqfuse layer under the layer's name:
"embedding.weight", "lstm.weight_ih_l0", "dense.bias"; Bidirectional is one module with
bidirectional=True ("bidirectional.weight_ih_l0_reverse"); TimeDistributed maps its inner
layer under its own name. Recurrent modules are single-layer with batch_first=True.

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


def _suffix(layer, reverse):
    return f"_l{layer}" + ("_reverse" if reverse else "")


def _params(state_dict, layer, reverse):
    """weight_ih, weight_hh, bias_ih, bias_hh (biases zero when the module has none)."""
    suffix = _suffix(layer, reverse)
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


def _gru_rows(H):
    """Row order that swaps the first two gate blocks: torch r,z,n <-> Keras z,r,h (its own inverse)."""
    return np.concatenate([np.arange(H, 2 * H), np.arange(H), np.arange(2 * H, 3 * H)])


def _recurrent_to_torch(kernel, recurrent_kernel, b_ih, b_hh, reverse, rows=None):
    suffix = _suffix(0, reverse)
    rows = slice(None) if rows is None else rows
    out = {f"weight_ih{suffix}": np.ascontiguousarray(kernel.T[rows]),
           f"weight_hh{suffix}": np.ascontiguousarray(recurrent_kernel.T[rows])}
    if b_ih is not None:
        out[f"bias_ih{suffix}"], out[f"bias_hh{suffix}"] = b_ih[rows], b_hh[rows]
    return out


def lstm_to_torch(weights, reverse=False):
    """Keras [kernel (F,4H), recurrent_kernel (H,4H), bias (4H,)] -> torch.nn.LSTM parameters.

    The bias goes to bias_ih_l0 with zeros in bias_hh_l0; without a bias (use_bias=False) the
    dict has the two weights only (a torch module made with bias=False).
    """
    kernel, recurrent_kernel, *bias = weights
    b = bias[0] if bias else None
    return _recurrent_to_torch(kernel, recurrent_kernel, b, None if b is None else np.zeros_like(b), reverse)


def gru_to_torch(weights, reverse=False):
    """Keras reset_after=True [kernel (F,3H), recurrent_kernel (H,3H), bias (2,3H)] -> torch.nn.GRU."""
    kernel, recurrent_kernel, *bias = weights
    if bias and np.ndim(bias[0]) != 2:
        raise ValueError(f"convert: a GRU with bias {np.shape(bias[0])} is reset_after=False, which "
                         "torch.nn.GRU cannot compute (it is Keras's reset_after=True GRU)")
    rows = _gru_rows(recurrent_kernel.shape[0])
    b_ih, b_hh = (bias[0][0], bias[0][1]) if bias else (None, None)
    return _recurrent_to_torch(kernel, recurrent_kernel, b_ih, b_hh, reverse, rows)


def simple_rnn_to_torch(weights, reverse=False):
    """Keras [kernel (F,H), recurrent_kernel (H,H), bias (H,)] -> torch.nn.RNN (tanh) parameters."""
    return lstm_to_torch(weights, reverse)


def dense_from_torch(state_dict):
    """torch.nn.Linear {"weight" (out,in), "bias" (out,)} -> Keras [kernel (in,out), bias]."""
    out = [np.ascontiguousarray(_numpy(state_dict["weight"]).T)]
    return out + ([_numpy(state_dict["bias"])] if "bias" in state_dict else [])


def dense_to_torch(weights):
    """Keras [kernel (in,out), bias (out,)] -> torch.nn.Linear {"weight" (out,in), "bias"}."""
    return _with_bias({"weight": np.ascontiguousarray(weights[0].T)}, weights)


def embedding_from_torch(state_dict):
    """torch.nn.Embedding {"weight" (V,D)} -> Keras [embeddings (V,D)] (same layout)."""
    return [_numpy(state_dict["weight"])]


def embedding_to_torch(weights):
    """Keras [embeddings (V,D)] -> torch.nn.Embedding {"weight" (V,D)}."""
    return {"weight": weights[0]}


def conv1d_from_torch(state_dict):
    """torch.nn.Conv1d {"weight" (O,C,K), "bias" (O,)} -> Keras [kernel (K,C,O), bias]."""
    out = [np.ascontiguousarray(_numpy(state_dict["weight"]).transpose(2, 1, 0))]
    return out + ([_numpy(state_dict["bias"])] if "bias" in state_dict else [])


def conv1d_to_torch(weights):
    """Keras [kernel (K,C,O), bias (O,)] -> torch.nn.Conv1d {"weight" (O,C,K), "bias"}."""
    return _with_bias({"weight": np.ascontiguousarray(weights[0].transpose(2, 1, 0))}, weights)


def _with_bias(params, weights):
    if len(weights) > 1:
        params["bias"] = weights[1]
    return params


_PLAIN = {"Dense": (dense_from_torch, dense_to_torch),
          "Embedding": (embedding_from_torch, embedding_to_torch),
          "Conv1D": (conv1d_from_torch, conv1d_to_torch)}
_RECURRENT = {"LSTM": (lstm_from_torch, lstm_to_torch), "GRU": (gru_from_torch, gru_to_torch),
              "SimpleRNN": (simple_rnn_from_torch, simple_rnn_to_torch)}


def _directions(layer):
    """[(recurrent layer, reverse)] of a recurrent layer or Bidirectional, else []."""
    cls = type(layer).__name__
    if cls == "Bidirectional":
        return [(layer.forward_layer, False), (layer.backward_layer, True)]
    return [(layer, False)] if cls in _RECURRENT else []


def _torch_params(layer, weights):
    """{torch parameter name: array} for `layer` holding `weights` (its Keras-order list)."""
    cls = type(layer).__name__
    if cls == "TimeDistributed":
        return _torch_params(layer.layer, weights)
    if cls in _PLAIN:
        return _PLAIN[cls][1](weights)
    directions = _directions(layer)
    if not directions:
        raise ValueError(f"convert: layer {layer.name!r} ({cls}) has weights but no PyTorch counterpart "
                         f"(mapped: {', '.join([*_PLAIN, *_RECURRENT, 'Bidirectional', 'TimeDistributed'])})")
    params, start = {}, 0
    for sub, reverse in directions:
        if type(sub).__name__ == "GRU" and not sub.reset_after:
            raise ValueError(f"convert: layer {layer.name!r} is a reset_after=False GRU; torch.nn.GRU "
                             "computes Keras's reset_after=True GRU only")
        n = len(sub.weights)
        params.update(_RECURRENT[type(sub).__name__][1](weights[start:start + n], reverse))
        start += n
    return params


def _keras_weights(layer, params):
    """`layer`'s Keras-order weights from its torch parameters (names without the layer prefix)."""
    cls = type(layer).__name__
    if cls == "TimeDistributed":
        return _keras_weights(layer.layer, params)
    if cls in _PLAIN:
        return _PLAIN[cls][0](params)
    weights = []
    for sub, reverse in _directions(layer):
        arrays = _RECURRENT[type(sub).__name__][0](params, reverse=reverse)
        weights += arrays if sub.use_bias else arrays[:2]
    return weights


def _weighted_layers(model, prefix=""):
    """(key prefix, layer) for each layer with weights, once (a shared layer appears once), in
    model order; a nested model's layers go under "<its name>.", as torch nests submodules."""
    seen, out = set(), []
    for layer in model.layers:
        if not layer.weights or id(layer) in seen:
            continue
        seen.add(id(layer))
        if type(layer).__name__ in ("Sequential", "Functional"):
            out += _weighted_layers(layer, f"{prefix}{layer.name}.")
        else:
            out.append((f"{prefix}{layer.name}", layer))
    return out


def model_to_torch(model):
    """`model`'s weights as a PyTorch state_dict (float tensors keyed "<layer>.<parameter>")."""
    try:
        import torch
    except ImportError:
        raise ImportError('torch_state_dict needs PyTorch: pip install "seqfuse[compat]"') from None
    state = {}
    for key, layer in _weighted_layers(model):
        for name, value in _torch_params(layer, layer.get_weights()).items():
            state[f"{key}.{name}"] = torch.from_numpy(np.ascontiguousarray(value))
    return state


def model_from_torch(model, state_dict) -> None:
    """Set `model`'s weights from a PyTorch state_dict keyed as model_to_torch makes them.

    Every key must be used and every expected key present (torch's strict loading); nothing
    is set unless all of them convert to the right shapes.
    """
    layers = _weighted_layers(model)
    expected = {key: set(_torch_params(layer, layer.get_weights())) for key, layer in layers}
    wanted = {f"{key}.{p}" for key, params in expected.items() for p in params}
    missing, unexpected = sorted(wanted - set(state_dict)), sorted(set(state_dict) - wanted)
    if missing or unexpected:
        raise KeyError(f"load_torch_state_dict: missing keys {missing}, unexpected keys {unexpected} "
                       "(keys are '<seqfuse layer name>.<torch parameter>'; see engine.convert)")
    values = []
    for key, layer in layers:
        params = {p: _numpy(state_dict[f"{key}.{p}"]) for p in expected[key]}
        try:
            weights = _keras_weights(layer, params)
        except ValueError as e:
            raise ValueError(f"load_torch_state_dict: layer {key!r}: {e}") from None
        for w, value, name in zip(layer.weights, weights, layer._weight_names):
            if value.shape != w.shape:
                raise ValueError(f"load_torch_state_dict: layer {key!r}: {name} would get shape "
                                 f"{value.shape} from keys {sorted(expected[key])}, expected {w.shape}")
        values.append((layer, weights))
    for layer, weights in values:
        layer.set_weights(weights)
