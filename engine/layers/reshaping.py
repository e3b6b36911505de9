"""RepeatVector and TimeDistributed (Keras 3 names)."""
from __future__ import annotations

from ..tensor import Tensor, array_module
from .base import Layer
from .core import as_tensor


class RepeatVector(Layer):
    """x (B, D) -> (B, n, D): the same vector at every step (e.g. an encoder's summary fed to
    a decoder).

    Example:
        >>> RepeatVector(3)(np.ones((2, 4), "float32")).shape
        (2, 3, 4)
    """

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if int(n) < 1:
            raise ValueError(f"RepeatVector: n must be a positive int, got {n}")
        self.n = int(n)

    def call(self, x, mask=None, training=False):
        x = as_tensor(x, self.dtype)
        if x.ndim != 2:
            raise ValueError(f"{self.name}: input must be (batch, features), got shape {x.shape}")
        # Broadcasting against zeros repeats x; the gradient sums the n copies back.
        return x.reshape(x.shape[0], 1, x.shape[1]) + Tensor(array_module(x.data).zeros((1, self.n, 1), x.dtype))

    def get_config(self):
        return {**super().get_config(), "n": self.n}


class TimeDistributed(Layer):
    """Applies `layer` to every step: x (B, T, ...) -> (B, T, ...out), one set of weights for
    all steps (the steps are folded into the batch). The mask passes through.

    Example:
        >>> TimeDistributed(Dense(5))(np.ones((2, 7, 3), "float32")).shape
        (2, 7, 5)
    """

    supports_masking = True

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, Layer):
            raise TypeError(f"TimeDistributed: layer must be a Layer, got {type(layer).__name__}")
        self.layer = layer

    def build(self, input_shape):
        if len(input_shape) < 3:
            raise ValueError(f"{self.name}: input must be (batch, steps, ...), got shape {input_shape}")
        inner = (input_shape[0] * input_shape[1],) + tuple(input_shape[2:])
        if not self.layer.built:
            self.layer.build(inner)
            self.layer.built = True
        self._weights, self._weight_names = self.layer._weights, self.layer._weight_names

    @property
    def trainable_weights(self):
        return self.layer.trainable_weights if self.trainable else []

    def call(self, x, mask=None, training=False):
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.ndim < 3:
            raise ValueError(f"{self.name}: input must be (batch, steps, ...), got shape {x.shape}")
        B, T = x.shape[:2]
        y = self.layer(x.reshape(B * T, *x.shape[2:]), training=training)
        return y.reshape(B, T, *y.shape[1:])

    def get_config(self):
        return {**super().get_config(),
                "layer": {"class_name": type(self.layer).__name__, "config": self.layer.get_config()}}


__all__ = ["RepeatVector", "TimeDistributed"]
