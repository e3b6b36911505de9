"""Symbolic tensors for the Functional API (Keras's KerasTensor and Node).

Calling a layer on a KerasTensor records a Node (the layer, its arguments, its outputs) instead
of computing anything; `en.Model(inputs, outputs)` later walks those nodes. Output shapes come
from two dry runs of the layer on zeros, with every unknown dimension (None) set to two
different sizes: a dimension that changes between the runs stays None.
"""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor, no_grad

# Stand-ins for unknown dimensions in the two dry runs: the batch axis, then every other axis.
_PROBE_SIZES = ((1, 64), (2, 80))


class KerasTensor:
    """A placeholder with a shape ((None = unknown) and a dtype; `_history` = (layer,
    node_index, tensor_index) names the call that made it.

    Example:
        >>> x = en.Input((None, 12)); x.shape
        (None, None, 12)
    """

    def __init__(self, shape, dtype, history=None, name=None):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self._history, self.name = history, name

    ndim = property(lambda self: len(self.shape))

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype.name}, name={self.name}>"

    def __len__(self):
        raise TypeError("a symbolic tensor has no length; it stands for a batch of any size")


class Node:
    """One call of `layer` in a graph: args (x, possibly a list of KerasTensors) and kwargs
    (e.g. initial_state=[h, c]) as given, outputs as the flat list of KerasTensors it made."""

    def __init__(self, layer, args, kwargs, outputs):
        self.layer, self.args, self.kwargs, self.outputs = layer, args, kwargs, outputs

    @property
    def inputs(self) -> list[KerasTensor]:
        return [t for t in flatten((self.args, self.kwargs)) if isinstance(t, KerasTensor)]


def flatten(x) -> list:
    """Every leaf of nested lists, tuples and dicts, in order."""
    if isinstance(x, dict):
        return [a for v in x.values() for a in flatten(v)]
    if isinstance(x, (list, tuple)):
        return [a for v in x for a in flatten(v)]
    return [x]


def map_tensors(fn, x):
    """x with fn applied to every KerasTensor in it (lists, tuples and dicts are walked)."""
    if isinstance(x, KerasTensor):
        return fn(x)
    if isinstance(x, dict):
        return {k: map_tensors(fn, v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(map_tensors(fn, v) for v in x)
    return x


def any_symbolic(x) -> bool:
    return any(isinstance(t, KerasTensor) for t in flatten(x))


def call(layer, x, kwargs):
    """Record layer(x, **kwargs) on symbolic inputs; returns KerasTensor(s) shaped like the
    layer's real outputs (a list when the layer returns a list)."""
    if "mask" in kwargs or "training" in kwargs:
        raise TypeError(f"{layer.name}: mask= and training= are decided when the model runs; "
                        "do not pass them to a symbolic call")
    runs = [_dry_run(layer, x, kwargs, sizes) for sizes in _PROBE_SIZES]
    first, second = runs
    structure = "list" if isinstance(first, list) else "single"
    first, second = flatten(first), flatten(second)
    node_index = len(layer._inbound_nodes)
    outputs = []
    for i, (a, b) in enumerate(zip(first, second)):
        shape = tuple(None if da != db or axis == 0 else da
                      for axis, (da, db) in enumerate(zip(a.shape, b.shape)))
        name = layer.name if len(first) == 1 else f"{layer.name}_{i}"
        outputs.append(KerasTensor(shape, a.dtype, (layer, node_index, i), name))
    layer._inbound_nodes.append(Node(layer, x, kwargs, outputs))
    return outputs[0] if structure == "single" else outputs


def _dry_run(layer, x, kwargs, sizes):
    batch, other = sizes

    def zeros(t):
        shape = [(batch if axis == 0 else other) if d is None else d for axis, d in enumerate(t.shape)]
        return Tensor(np.zeros(shape, t.dtype))
    with no_grad():
        out = layer(map_tensors(zeros, x), training=False, **map_tensors(zeros, kwargs))
    return out
