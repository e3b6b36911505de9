"""Sequential: layers applied in order."""
from __future__ import annotations

import numpy as np

from .. import layers as layers_module
from ..layers.symbolic import KerasTensor
from .model import Model
from .saving import layer_config


class Sequential(Model):
    """Layers applied in order; masks (Embedding(mask_zero=True)) flow from layer to layer.

    As in Keras, the list may start with `en.Input(shape)`: the weights are then built at once.

    Example:
        >>> model = en.Sequential([en.Input((None,)), en.layers.Embedding(100, 8), en.layers.GRU(4)])
    """

    def __init__(self, layers=None, name="sequential"):
        super().__init__(name)
        self._layers = []
        for layer in layers or []:
            self.add(layer)

    def add(self, layer):
        if isinstance(layer, KerasTensor) and isinstance(layer._history[0], layers_module.InputLayer):
            layer = layer._history[0]
        if isinstance(layer, layers_module.InputLayer):
            if self._layers:
                raise ValueError(f"Sequential.add: an Input can only come first, got it after "
                                 f"{len(self._layers)} layers")
            self._input_shape = layer.batch_shape
            return
        if not isinstance(layer, layers_module.Layer):
            raise TypeError(f"Sequential.add: expected a Layer, got {type(layer).__name__}")
        self._layers.append(layer)
        if getattr(self, "_input_shape", None) is not None:
            self.build(self._input_shape)

    @property
    def layers(self):
        return list(self._layers)

    def build(self, input_shape):
        """Create every weight for inputs of `input_shape` (None = any batch size)."""
        self._input_shape = tuple(input_shape)
        shape = self._input_shape
        for layer in self._layers:
            shape = layer.output_shape(shape)

    def call(self, x, training=False):
        if getattr(self, "_input_shape", None) is None:
            self._input_shape = (None,) + tuple(np.shape(x)[1:])
        for layer in self._layers:
            x = layer(x, training=training)
        return x

    def get_config(self):
        return {"class_name": "Sequential", "name": self.name,
                "input_shape": list(getattr(self, "_input_shape", None) or []),
                "layers": [layer_config(layer) for layer in self._layers]}
