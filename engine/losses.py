"""Losses with Keras 3's names, formulas and reduction (mean over the last axis, then over
the batch: "sum_over_batch_size").

Every loss takes (y_true, y_pred, mask=None) and returns a scalar Tensor. Probabilities are
clipped to [1e-7, 1 − 1e-7] as Keras does; `from_logits=True` uses the stable
log-sigmoid/log-softmax forms instead. A mask (y_pred's shape without the last axis, e.g. the
[B,T] mask of a sequence output) drops the masked entries: the loss is the sum over the kept
entries divided by their count, as Keras 3 applies an output's mask.

Example:
    >>> loss = binary_crossentropy(np.array([[1.0]]), model_output)
    >>> loss.backward()
"""
from __future__ import annotations

import numpy as np

from .tensor import Tensor, array_module

EPSILON = 1e-7  # keras.config.epsilon()


def _prediction(y_pred, name) -> Tensor:
    y_pred = y_pred if isinstance(y_pred, Tensor) else Tensor(y_pred)
    if y_pred.dtype.kind != "f":
        raise TypeError(f"{name}: y_pred must be a float array, got {y_pred.dtype}")
    return y_pred


def _pair(y_true, y_pred, name):
    """(y_true as an array where y_pred lives, y_pred as a float Tensor)."""
    y_pred = _prediction(y_pred, name)
    y_true = y_true.data if isinstance(y_true, Tensor) else array_module(y_pred.data).asarray(y_true)
    return y_true, y_pred


def _same_shape(y_true, y_pred, name):
    if y_true.ndim == y_pred.ndim - 1:
        y_true = y_true[..., None]
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{name}: y_true shape {y_true.shape} does not match y_pred shape {y_pred.shape}")
    return Tensor(y_true.astype(y_pred.dtype, copy=False))


def binary_crossentropy(y_true, y_pred, from_logits=False, mask=None) -> Tensor:
    """−mean(y·log p + (1−y)·log(1−p)) over the last axis, then over the batch."""
    y_true, y_pred = _pair(y_true, y_pred, "binary_crossentropy")
    y = _same_shape(y_true, y_pred, "binary_crossentropy")
    if from_logits:
        # max(x,0) − x·y + log(1 + exp(−|x|)): never overflows
        x = y_pred
        per = x.relu() - x * y + ((-x.abs()).exp() + 1).log()
    else:
        p = y_pred.clip(EPSILON, 1 - EPSILON)
        per = -(y * p.log() + (1 - y) * (1 - p).log())
    return _reduce(per.mean(axis=-1), mask)


def _reduce(per_sample, mask) -> Tensor:
    """per_sample: [B, ...] losses -> their mean, over the entries where mask is true."""
    if mask is None:
        return per_sample.mean()
    xp = array_module(per_sample.data)
    mask = xp.asarray(mask.data if isinstance(mask, Tensor) else mask)
    if mask.shape != per_sample.shape:
        raise ValueError(f"loss: mask shape {mask.shape} does not match the per-sample loss shape "
                         f"{per_sample.shape}")
    kept = mask.astype(per_sample.dtype)
    # On the GPU the count stays there (float() would wait for the device every step).
    count = max(float(kept.sum()), 1.0) if xp is np else Tensor(xp.maximum(kept.sum(), 1))
    return (per_sample * Tensor(kept)).sum() / count


def categorical_crossentropy(y_true, y_pred, from_logits=False, mask=None) -> Tensor:
    """−sum(y·log p) over classes (p renormalised, clipped as Keras), mean over the batch."""
    y_true, y_pred = _pair(y_true, y_pred, "categorical_crossentropy")
    y = _same_shape(y_true, y_pred, "categorical_crossentropy")
    return _reduce(-(y * _log_probs(y_pred, from_logits)).sum(axis=-1), mask)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, mask=None) -> Tensor:
    """−log p[label] with integer labels y_true [...] and y_pred [..., classes]."""
    y_pred = _prediction(y_pred, "sparse_categorical_crossentropy")
    # The labels are checked where they are: NumPy labels (fit's batches) on the host before
    # they are copied to the device, so training on the GPU never waits for this check.
    y_true = y_true.data if isinstance(y_true, Tensor) else y_true
    y_true = y_true if type(y_true).__module__.startswith("cupy") else np.asarray(y_true)
    labels = y_true.reshape(y_pred.shape[:-1]) if y_true.size == int(np.prod(y_pred.shape[:-1])) else None
    if labels is None:
        raise ValueError(f"sparse_categorical_crossentropy: y_true shape {y_true.shape} does not match "
                         f"y_pred shape {y_pred.shape} without its last axis")
    labels = labels.astype(np.int64)
    classes = y_pred.shape[-1]
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise IndexError(f"sparse_categorical_crossentropy: labels must be in [0, {classes}), "
                         f"got {int(labels.min())}..{int(labels.max())}")
    xp = array_module(y_pred.data)
    labels = xp.asarray(labels)
    log_p = _log_probs(y_pred, from_logits).reshape(-1, classes)
    picked = log_p[xp.arange(labels.size), labels.reshape(-1)]
    return _reduce(-picked.reshape(labels.shape), mask)


def _log_probs(y_pred, from_logits):
    if from_logits:
        return y_pred.log_softmax(axis=-1)
    p = y_pred / y_pred.sum(axis=-1, keepdims=True)
    return p.clip(EPSILON, 1 - EPSILON).log()


def mean_squared_error(y_true, y_pred, mask=None) -> Tensor:
    y_true, y_pred = _pair(y_true, y_pred, "mean_squared_error")
    diff = y_pred - _same_shape(y_true, y_pred, "mean_squared_error")
    return _reduce((diff * diff).mean(axis=-1), mask)


def mean_absolute_error(y_true, y_pred, mask=None) -> Tensor:
    y_true, y_pred = _pair(y_true, y_pred, "mean_absolute_error")
    return _reduce((y_pred - _same_shape(y_true, y_pred, "mean_absolute_error")).abs().mean(axis=-1), mask)


mse, mae = mean_squared_error, mean_absolute_error

_BY_NAME = {
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "mean_squared_error": mean_squared_error, "mse": mean_squared_error,
    "mean_absolute_error": mean_absolute_error, "mae": mean_absolute_error,
}


def get(identifier):
    """A loss function from a callable or a Keras name ("binary_crossentropy", "mse", ...)."""
    if callable(identifier):
        return identifier
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]
    raise ValueError(f"loss: expected a callable or one of {sorted(_BY_NAME)}, got {identifier!r}")
