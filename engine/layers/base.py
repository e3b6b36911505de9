"""Layer: owns weights (in Keras 3's order and shapes), builds them on first call, and passes
Keras-style masks along (`tensor._keras_mask`)."""
from __future__ import annotations

import re

import numpy as np

from .. import device as device_module
from .. import initializers
from ..tensor import Tensor, no_grad
from . import symbolic


class Layer:
    """Base class. Subclasses implement `build(input_shape)` and `call(x, mask, training)`.

    Example:
        >>> layer = Dense(4); y = layer(np.ones((2, 3), "float32")); len(layer.get_weights())
        2
    """

    supports_masking = False
    _count: dict = {}
    _device = None   # set by to(); None: weights are built on device_module.default_device()

    def __init__(self, name=None, trainable=True, dtype="float32"):
        self.name = unique_name(type(self).__name__) if name is None else name
        self.trainable, self.dtype = trainable, np.dtype(dtype)
        self.built = False
        self._inbound_nodes: list = []  # calls on symbolic tensors (Functional API)
        self._weights: list[Tensor] = []
        self._weight_names: list[str] = []

    def add_weight(self, name, shape, initializer="zeros") -> Tensor:
        value = initializers.get(initializer)(tuple(shape), self.dtype)
        weight = Tensor(value, requires_grad=True)
        # Initial values are drawn on the host with the engine's generator, then moved, so a
        # seed gives the same weights on the CPU and on the GPU.
        weight._move_(self._device or device_module.default_device())
        self._weights.append(weight)
        self._weight_names.append(f"{self.name}/{name}")
        return weight

    def build(self, input_shape):
        pass

    def call(self, x, mask=None, training=False):
        raise NotImplementedError

    def compute_mask(self, x, mask):
        """The mask of this layer's output (by default: passed through if supported, else none)."""
        return mask if self.supports_masking else None

    def __call__(self, x, mask=None, training=False, **kwargs):
        if symbolic.any_symbolic((x, kwargs)):
            if mask is not None or training:
                raise TypeError(f"{self.name}: mask= and training= are decided when the model runs; "
                                "do not pass them to a symbolic call")
            return symbolic.call(self, x, kwargs)
        if mask is None:
            mask = _input_mask(x)
        if (self._device or device_module.default_device()) == "cuda":
            x = _arrays_to_gpu(x)   # NumPy inputs are copied to the layer's device, as Keras converts
        if not self.built:
            self.build([tuple(t.shape) for t in x] if isinstance(x, (list, tuple)) else tuple(x.shape))
            self.built = True
        out = self.call(x, mask=mask, training=training, **kwargs)
        out_mask = self.compute_mask(x, mask)
        # With return_state the outputs are [output, *states]; only the output carries a mask.
        first = out[0] if isinstance(out, list) else out
        if out_mask is not None and isinstance(first, Tensor):
            first._keras_mask = out_mask
        return out

    def to(self, device: str) -> "Layer":
        """Move every weight (and its .grad) to "cpu" or "cuda", in place: the same Tensor
        objects hold the moved arrays, so optimizers keep their references. Weights built
        later are created there too. Returns the layer, as torch's Module.to.

        Example:
            >>> layer = Dense(4).to("cuda")      # on a machine with a GPU
        """
        device_module.require(device, f"{self.name}.to")
        self._device = device
        for w in self._weights:
            w._move_(device)
        for value in vars(self).values():   # wrapped layers: Bidirectional, TimeDistributed
            if isinstance(value, Layer):
                value.to(device)
        return self

    @property
    def weights(self) -> list[Tensor]:
        return list(self._weights)

    @property
    def trainable_weights(self) -> list[Tensor]:
        return self.weights if self.trainable else []

    def count_params(self) -> int:
        return int(sum(w.size for w in self._weights))

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the weights, in Keras 3's order and shapes."""
        return [w.numpy().copy() for w in self._weights]

    def set_weights(self, weights) -> None:
        """Replace every weight; shapes must match exactly (Keras 3's order)."""
        weights = list(weights)
        if not self.built:
            raise ValueError(f"{self.name}: set_weights before the layer is built; call it on an input first")
        if len(weights) != len(self._weights):
            raise ValueError(f"{self.name}: set_weights expected {len(self._weights)} arrays "
                             f"({', '.join(self._weight_names)}), got {len(weights)}")
        values = [np.asarray(value) for value in weights]
        # Check every shape first so a bad list leaves the layer untouched.
        for w, name, value in zip(self._weights, self._weight_names, values):
            if value.shape != w.shape:
                raise ValueError(f"{self.name}: weight {name} must have shape {w.shape}, got {value.shape}")
        for w, value in zip(self._weights, values):
            w.data[...] = device_module.to_device(value.astype(w.dtype), w.device)

    def get_config(self) -> dict:
        return {"name": self.name, "trainable": self.trainable, "dtype": self.dtype.name}

    def output_shape(self, input_shape):
        """Shape of the output for `input_shape` (None = any batch), computed by a dry run."""
        probe = tuple(1 if d is None else d for d in input_shape)
        with no_grad():
            out = self(np.zeros(probe, self.dtype if self._takes_floats() else np.int64))
        return (None,) + tuple(out.shape[1:])

    def _takes_floats(self) -> bool:
        return True


def _input_mask(x):
    """The Keras mask carried by x; for a list of inputs (merge layers) the list of their masks,
    or None when none has one."""
    if isinstance(x, (list, tuple)):
        masks = [getattr(t, "_keras_mask", None) for t in x]
        return None if all(m is None for m in masks) else masks
    return getattr(x, "_keras_mask", None)


def _arrays_to_gpu(x):
    """x with every numeric NumPy array (also inside a list of inputs) copied to the GPU."""
    if isinstance(x, np.ndarray) and x.dtype.kind in "biuf":
        return device_module.to_device(x, "cuda")
    if isinstance(x, (list, tuple)):
        return type(x)(_arrays_to_gpu(v) for v in x)
    return x


def to_snake_case(name: str) -> str:
    """Keras's naming.to_snake_case, exactly (SimpleRNN -> simple_rnn, GlobalMaxPooling1D ->
    global_max_pooling1d): default layer names and Keras's h5 group names are made with it."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(class_name: str) -> str:
    """Keras's default layer names: snake_case of the class, then _1, _2, ... for later ones."""
    base = to_snake_case(class_name)
    n = Layer._count[base] = Layer._count.get(base, -1) + 1
    return base if n == 0 else f"{base}_{n}"
