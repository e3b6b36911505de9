"""Metrics on numpy arrays (no gradients), with Keras's names; "acc"/"accuracy" resolve by
loss as Keras does (binary, categorical or sparse categorical accuracy)."""
from __future__ import annotations

import numpy as np


def binary_accuracy(y_true, y_pred, threshold=0.5) -> float:
    y_true = np.asarray(y_true).reshape(np.shape(y_pred))
    return float(np.mean((np.asarray(y_pred) > threshold) == (y_true > 0.5)))


def categorical_accuracy(y_true, y_pred) -> float:
    return float(np.mean(np.argmax(y_true, -1) == np.argmax(y_pred, -1)))


def sparse_categorical_accuracy(y_true, y_pred) -> float:
    y_true = np.asarray(y_true).reshape(np.shape(y_pred)[:-1])
    return float(np.mean(y_true == np.argmax(y_pred, -1)))


def mean_absolute_error(y_true, y_pred) -> float:
    return float(np.mean(np.abs(np.asarray(y_pred) - np.asarray(y_true).reshape(np.shape(y_pred)))))


def mean_squared_error(y_true, y_pred) -> float:
    return float(np.mean((np.asarray(y_pred) - np.asarray(y_true).reshape(np.shape(y_pred))) ** 2))


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
