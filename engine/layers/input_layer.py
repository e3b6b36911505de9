"""InputLayer: the layer behind `en.Input` (Functional API)."""
from __future__ import annotations

from . import symbolic
from .base import Layer, unique_name
from .symbolic import KerasTensor


class InputLayer(Layer):
    """The layer behind `Input`: it has no weights and passes its value through."""

    def __init__(self, shape=None, batch_shape=None, dtype="float32", name=None, **kwargs):
        super().__init__(name=name or unique_name("InputLayer"), dtype=dtype, **kwargs)
        if batch_shape is None:
            if shape is None:
                raise ValueError("Input: shape is required, e.g. Input((None, 12)) for sequences of 12 features")
            batch_shape = (None,) + tuple(shape)
        self.batch_shape = tuple(None if d is None else int(d) for d in batch_shape)
        self.output = KerasTensor(self.batch_shape, self.dtype, (self, 0, 0), self.name)
        self._inbound_nodes.append(symbolic.Node(self, [], {}, [self.output]))
        self.built = True

    def call(self, x, mask=None, training=False):
        return x

    def get_config(self):
        return {"batch_shape": list(self.batch_shape), "dtype": self.dtype.name, "name": self.name}
