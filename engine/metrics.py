"""Metrics on numpy arrays (no gradients), with Keras's names; "acc"/"accuracy" resolve by
loss as Keras does (binary, categorical or sparse categorical accuracy).

Every built-in metric takes (y_true, y_pred, mask=None): a mask (y_pred's shape without the
last axis, the mask of a sequence output) averages over the kept entries only, as Keras.
"""
from __future__ import annotations

import numpy as np


def _mean(values, mask) -> float:
    """values: [B, ...] per entry -> their mean where mask is true (mask None = everywhere)."""
    values = np.asarray(values, dtype=np.float64)
    if mask is None:
        return float(np.mean(values))
    mask = np.broadcast_to(np.asarray(mask, bool), values.shape)
    return float(values[mask].mean()) if mask.any() else 0.0


def binary_accuracy(y_true, y_pred, threshold=0.5, mask=None) -> float:
    y_true = np.asarray(y_true).reshape(np.shape(y_pred))
    hits = (np.asarray(y_pred) > threshold) == (y_true > 0.5)
    return _mean(hits.mean(axis=-1), mask)


def categorical_accuracy(y_true, y_pred, mask=None) -> float:
    return _mean(np.argmax(y_true, -1) == np.argmax(y_pred, -1), mask)


def sparse_categorical_accuracy(y_true, y_pred, mask=None) -> float:
    y_true = np.asarray(y_true).reshape(np.shape(y_pred)[:-1])
    return _mean(y_true == np.argmax(y_pred, -1), mask)


def mean_absolute_error(y_true, y_pred, mask=None) -> float:
    diff = np.asarray(y_pred) - np.asarray(y_true).reshape(np.shape(y_pred))
    return _mean(np.abs(diff).mean(axis=-1), mask)


def mean_squared_error(y_true, y_pred, mask=None) -> float:
    diff = np.asarray(y_pred) - np.asarray(y_true).reshape(np.shape(y_pred))
    return _mean((diff ** 2).mean(axis=-1), mask)


_BY_NAME = {"binary_accuracy": binary_accuracy, "categorical_accuracy": categorical_accuracy,
            "sparse_categorical_accuracy": sparse_categorical_accuracy,
            "mae": mean_absolute_error, "mean_absolute_error": mean_absolute_error,
            "mse": mean_squared_error, "mean_squared_error": mean_squared_error}
_ACCURACY_FOR_LOSS = {"binary_crossentropy": binary_accuracy,
                      "categorical_crossentropy": categorical_accuracy,
                      "sparse_categorical_crossentropy": sparse_categorical_accuracy}


def get(identifier, loss_name=None):
    """(name, fn) for a metric name or callable; "acc"/"accuracy" follow the loss."""
    if callable(identifier):
        return getattr(identifier, "__name__", "metric"), identifier
    if identifier in ("acc", "accuracy"):
        fn = _ACCURACY_FOR_LOSS.get(loss_name)
        if fn is None:
            raise ValueError(f"metric {identifier!r}: cannot infer the accuracy for loss {loss_name!r}; "
                             "name it (binary_accuracy, categorical_accuracy, sparse_categorical_accuracy)")
        return identifier, fn
    if identifier in _BY_NAME:
        return identifier, _BY_NAME[identifier]
    raise ValueError(f"metric: expected a callable, 'acc' or one of {sorted(_BY_NAME)}, got {identifier!r}")
