"""Dense, Dropout, Flatten, Activation, Masking and Embedding."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..tensor import Tensor, array_module, as_array, where
from .base import Layer

ACTIVATIONS = {
    None: lambda x: x, "linear": lambda x: x, "relu": lambda x: x.relu(),
    "sigmoid": lambda x: x.sigmoid(), "tanh": lambda x: x.tanh(),
    "softmax": lambda x: x.softmax(axis=-1),
}


def get_activation(name):
    """The elementwise function for a Keras activation name (None = identity)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation: expected one of {[k for k in ACTIVATIONS if k]}, got {name!r}")
    return ACTIVATIONS[name]


def as_tensor(x, dtype) -> Tensor:
    """x as a Tensor; arrays are converted to the layer's dtype."""
    return x if isinstance(x, Tensor) else Tensor(x, dtype=dtype)


class Dense(Layer):
    """y = activation(x·kernel + bias): x (..., in) -> (..., units); kernel (in, units), bias (units,).

    Example:
        >>> Dense(4, activation="relu")(np.ones((2, 3), "float32")).shape
        (2, 4)
    """

    supports_masking = True

    def __init__(self, units, activation=None, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        if int(units) < 1:
            raise ValueError(f"Dense: units must be a positive int, got {units}")
        self.units, self.activation, self.use_bias = int(units), activation, use_bias
        self._act = get_activation(activation)

    def build(self, input_shape):
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units), "glorot_uniform")
        self.bias = self.add_weight("bias", (self.units,), "zeros") if self.use_bias else None

    def call(self, x, mask=None, training=False):
        x = as_tensor(x, self.dtype)
        if x.shape[-1] != self.kernel.shape[0]:
            raise ValueError(f"{self.name}: input must have {self.kernel.shape[0]} features on the last "
                             f"axis, got shape {x.shape}")
        y = x @ self.kernel
        return self._act(y + self.bias if self.use_bias else y)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "use_bias": self.use_bias}


class Activation(Layer):
    """Applies a named activation elementwise; the mask passes through."""

    supports_masking = True

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activation
        self._act = get_activation(activation)

    def call(self, x, mask=None, training=False):
        return self._act(as_tensor(x, self.dtype))

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


class Dropout(Layer):
    """Inverted dropout while training; identity at inference."""

    supports_masking = True

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate}")
        self.rate, self.noise_shape, self.seed = rate, noise_shape, seed
        # A seeded layer draws from its own stream: reproducible, yet a new mask every call.
        self._rng = None if seed is None else np.random.default_rng(seed)

    def call(self, x, mask=None, training=False):
        seed = None if self._rng is None or not training else int(self._rng.integers(2**63))
        return F.dropout(as_tensor(x, self.dtype), self.rate, training, self.noise_shape, seed=seed)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "noise_shape": self.noise_shape,
                "seed": self.seed}


class Flatten(Layer):
    """x (B, d1, d2, ...) -> (B, d1·d2·...)."""

    def call(self, x, mask=None, training=False):
        x = as_tensor(x, self.dtype)
        return x.reshape(x.shape[0], -1)


class Masking(Layer):
    """Skips the steps of x (B, T, F) whose features all equal `mask_value`, as Keras 3: those
    steps become zeros and the output carries mask = any(x != mask_value, axis=-1) (B, T), which
    the recurrent layers after it honour (they carry their state over masked steps).

    Example:
        >>> x = np.ones((1, 3, 2), "float32"); x[0, 2] = 0
        >>> Masking(mask_value=0.0)(x)._keras_mask
        array([[ True,  True, False]])
    """

    supports_masking = True

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = float(mask_value)

    def call(self, x, mask=None, training=False):
        x = as_tensor(x, self.dtype)
        keep = self._keep(x)
        return where(keep[..., None], x, np.zeros((), x.dtype))

    def compute_mask(self, x, mask):
        return self._keep(x)

    def _keep(self, x):
        """[B, T] bool: the steps with at least one feature different from mask_value."""
        data = as_array(x)
        if data.ndim < 3:
            raise ValueError(f"{self.name}: input must be (batch, timesteps, features), got shape {data.shape}")
        return (data != self.mask_value).any(axis=-1)

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}


class Embedding(Layer):
    """Token ids (B, T) -> vectors (B, T, output_dim); embeddings (input_dim, output_dim).

    mask_zero=True makes id 0 padding: the output carries mask = ids != 0 to the next layer.
    weights=[M] starts from a given matrix (pretrained vectors); trainable=False freezes it.
    sparse=True gives the table a row-sparse gradient (large vocabularies).
    """

    def __init__(self, input_dim, output_dim, mask_zero=False, trainable=True, weights=None,
                 sparse=False, embeddings_initializer="uniform", **kwargs):
        super().__init__(trainable=trainable, **kwargs)
        if int(input_dim) < 1 or int(output_dim) < 1:
            raise ValueError(f"Embedding: input_dim and output_dim must be positive, got {input_dim}, {output_dim}")
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.mask_zero, self.sparse, self.initializer = mask_zero, sparse, embeddings_initializer
        self._initial = weights

    def build(self, input_shape):
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim), self.initializer)
        if self._initial is not None:
            self.built = True
            self.set_weights(self._initial)
            self._initial = None

    def call(self, x, mask=None, training=False):
        return F.embedding(self._ids(x), self.embeddings, sparse=self.sparse)

    def compute_mask(self, x, mask):
        return self._ids(x) != 0 if self.mask_zero else None

    def _ids(self, x):
        """Token ids [B,T] as an integer array; whole-number floats are accepted, as Keras casts them."""
        ids = as_array(x)
        if ids.dtype.kind == "f":
            if not bool((ids == array_module(ids).around(ids)).all()):
                raise TypeError(f"{self.name}: token ids must be integers, got non-integral {ids.dtype} values")
            ids = ids.astype(np.int64)
        return ids

    def _takes_floats(self):
        return False

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "mask_zero": self.mask_zero, "sparse": self.sparse}
