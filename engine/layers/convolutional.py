"""Conv1D and the 1-D pooling layers (channels-last (B, L, C), as Keras)."""
from __future__ import annotations

from .. import functional as F
from .base import Layer
from .core import as_tensor, get_activation


class Conv1D(Layer):
    """x (B, L, C) -> (B, L_out, filters); kernel (kernel_size, C, filters), bias (filters,).

    padding valid|same|causal as Keras. A mask from Embedding stops here, as in Keras.

    Example:
        >>> Conv1D(8, 3, padding="causal")(np.ones((2, 10, 4), "float32")).shape
        (2, 10, 8)
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", dilation_rate=1,
                 activation=None, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        if int(filters) < 1 or int(kernel_size) < 1:
            raise ValueError(f"Conv1D: filters and kernel_size must be positive, got {filters}, {kernel_size}")
        self.filters, self.kernel_size, self.strides = int(filters), int(kernel_size), int(strides)
        self.padding, self.dilation_rate = padding, int(dilation_rate)
        self.activation, self.use_bias = activation, use_bias
        self._act = get_activation(activation)

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{self.name}: input must be (batch, steps, channels), got shape {input_shape}")
        self.kernel = self.add_weight("kernel", (self.kernel_size, input_shape[-1], self.filters),
                                      "glorot_uniform")
        self.bias = self.add_weight("bias", (self.filters,), "zeros") if self.use_bias else None

    def call(self, x, mask=None, training=False):
        y = F.conv1d(as_tensor(x, self.dtype), self.kernel, self.bias, strides=self.strides,
                     padding=self.padding, dilation_rate=self.dilation_rate)
        return self._act(y)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding,
                "dilation_rate": self.dilation_rate, "activation": self.activation,
                "use_bias": self.use_bias}


class MaxPooling1D(Layer):
    """Max over windows along the steps: x (B, L, C) -> (B, L_out, C); strides default to pool_size.

    Example:
        >>> MaxPooling1D(2)(np.arange(6.0).reshape(1, 6, 1)).shape
        (1, 3, 1)
    """

    def __init__(self, pool_size=2, strides=None, padding="valid", **kwargs):
        super().__init__(**kwargs)
        self.pool_size, self.strides, self.padding = int(pool_size), strides, padding

    def call(self, x, mask=None, training=False):
        return F.max_pool1d(as_tensor(x, self.dtype), self.pool_size, self.strides, self.padding)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding}


class GlobalMaxPooling1D(Layer):
    """Max over all steps: x (B, L, C) -> (B, C). Like Keras, it ignores (and drops) a mask."""

    def call(self, x, mask=None, training=False):
        return F.global_max_pool1d(as_tensor(x, self.dtype))


class GlobalAveragePooling1D(Layer):
    """Mean over steps; with a mask (from Embedding(mask_zero=True)), over unmasked steps only."""

    supports_masking = True

    def call(self, x, mask=None, training=False):
        return F.global_avg_pool1d(as_tensor(x, self.dtype), mask=mask)

    def compute_mask(self, x, mask):
        return None


__all__ = ["Conv1D", "MaxPooling1D", "GlobalMaxPooling1D", "GlobalAveragePooling1D"]
