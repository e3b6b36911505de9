"""A training or evaluation step's logs: each output's loss and metrics, and their running
means over an epoch.

On the CPU the logged values are Python floats. On the GPU they stay on the device as 0-d
float64 arrays (the mask, predictions and counts too), so a step never waits for the device;
`Means.result()` reads them all back in one transfer when fit hands logs to the callbacks.
"""
from __future__ import annotations

import numpy as np

from .. import device as device_module
from .. import losses, metrics as metrics_module
from ..tensor import Tensor
from . import _data


def on_gpu(value) -> bool:
    return type(value).__module__.startswith("cupy")


def scalar(array):
    """A logged value: a Python float from a host array; a float64 0-d array on the GPU, left
    there (reading it would wait for the step to finish)."""
    return array.astype(np.float64) if on_gpu(array) else float(array)


def loss_terms(model, y, out, what):
    """(terms, logs, weights) of one batch: terms holds each output's _data.LossTerm, logs
    its loss and metric values and weights what each log entry is averaged over (samples, or
    the kept entries of a masked output). Each output's loss and metrics are masked by the
    output's mask (a sequence output of a masked model), as Keras."""
    names = model.output_names
    outs = _data.by_name(out, names, what, "the model output")
    ys = _data.by_name(y, names, what, "y")
    n = len(_data.flatten(ys)[0])
    terms, logs, weights = [], {"loss": 0.0}, {"loss": n}
    for name, (_, loss_fn), metric_fns, yo, o in zip(names, model._losses, model._metrics, ys, outs):
        mask = getattr(o, "_keras_mask", None)
        mask = mask.data if isinstance(mask, Tensor) else mask
        gpu = on_gpu(o.data)
        mask = None if mask is None else (device_module.to_device(mask, "cuda") if gpu else np.asarray(mask))
        value = loss_fn(yo, o, mask=mask) if takes_mask(loss_fn) else loss_fn(yo, o)
        prefix = f"{name}_" if len(names) > 1 else ""
        if prefix:
            logs[f"{name}_loss"], weights[f"{name}_loss"] = scalar(value.data), n
        pred = o.data if gpu else o.numpy()
        count = n if mask is None else (mask.sum() if gpu else int(mask.sum()))
        terms.append(_data.LossTerm(f"{prefix}loss", value, count, mask is not None))
        for metric_name, fn in metric_fns:
            values = fn(yo, pred, mask=mask) if takes_mask(fn) else fn(yo, pred)
            logs[prefix + metric_name], weights[prefix + metric_name] = values, count
    if any(on_gpu(term.value.data) for term in terms):
        total = terms[0].value.data
        for term in terms[1:]:
            total = total + term.value.data
        logs["loss"] = scalar(total)
    else:
        logs["loss"] = float(sum(term.value.item() for term in terms))
    return terms, logs, weights


def takes_mask(fn) -> bool:
    """Built-in losses and metrics take mask=; a user's callable may not."""
    return getattr(fn, "__module__", None) in (losses.__name__, metrics_module.__name__)


class Means:
    """Running weighted means of log entries (loss by batch size, masked metrics by kept entries)."""

    def __init__(self):
        self.totals, self.weights, self.seen = {}, {}, 0

    def add(self, logs, weights):
        self.seen += 1
        for k, v in logs.items():
            self.totals[k] = self.totals.get(k, 0.0) + v * weights[k]
            self.weights[k] = self.weights.get(k, 0) + weights[k]

    def result(self) -> dict:
        """The means as Python floats; values on the GPU are read back in one transfer."""
        gpu = [k for k in self.totals if on_gpu(self.totals[k]) or on_gpu(self.weights[k])]
        if not gpu:
            return {k: v / max(self.weights[k], 1) for k, v in self.totals.items()}
        import cupy
        means = cupy.stack([cupy.asarray(self.totals[k], np.float64) / cupy.maximum(self.weights[k], 1)
                            for k in gpu]).get().tolist()
        host = dict(zip(gpu, means))
        return {k: host[k] if k in host else v / max(self.weights[k], 1) for k, v in self.totals.items()}


def host_logs(logs: dict) -> dict:
    """logs with the GPU values read back as Python floats (one transfer)."""
    means = Means()
    means.add(logs, {k: 1 for k in logs})
    return means.result()
