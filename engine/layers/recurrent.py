"""SimpleRNN, LSTM, GRU and Bidirectional: Keras 3 layers over the fused F.simple_rnn/lstm/gru.

Weights in Keras 3's order and shapes: [kernel (F,G·H), recurrent_kernel (H,G·H), bias],
so `layer.set_weights(keras_layer.get_weights())` works.
"""
from __future__ import annotations

from .. import functional as F
from ..random import generator
from ..tensor import array_module, concatenate
from .base import Layer
from .core import as_tensor


class _RNN(Layer):
    """x (B, T, F) -> (B, H), or (B, T, H) with return_sequences; return_state=True gives
    [output, h_T] ([output, h_T, c_T] for LSTM). A mask (B, T) carries state and output through
    masked steps, and flows on to the next layer only with return_sequences, as Keras.

    Example:
        >>> LSTM(8, return_sequences=True)(np.ones((2, 5, 3), "float32")).shape
        (2, 5, 8)
    """

    _op, _gates = None, 1
    supports_masking = True

    def __init__(self, units, dropout=0.0, recurrent_dropout=0.0, return_sequences=False,
                 return_state=False, go_backwards=False, use_bias=True, zero_output_for_mask=False,
                 **kwargs):
        super().__init__(**kwargs)
        if int(units) < 1:
            raise ValueError(f"{type(self).__name__}: units must be a positive int, got {units}")
        for name, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0 <= rate < 1:
                raise ValueError(f"{type(self).__name__}: {name} must be in [0, 1), got {rate}")
        self.units, self.dropout, self.recurrent_dropout = int(units), dropout, recurrent_dropout
        self.return_sequences, self.return_state = return_sequences, return_state
        self.go_backwards, self.use_bias = go_backwards, use_bias
        self.zero_output_for_mask = zero_output_for_mask

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{self.name}: input must be (batch, timesteps, features), got shape {input_shape}")
        G, H = self._gates, self.units
        self.kernel = self.add_weight("kernel", (input_shape[-1], G * H), "glorot_uniform")
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (H, G * H), "orthogonal")
        self.bias = self.add_weight("bias", self._bias_shape(), "zeros") if self.use_bias else None

    def _bias_shape(self):
        return (self._gates * self.units,)

    def _op_kwargs(self):
        return {}

    def call(self, x, mask=None, training=False, initial_state=None):
        x = as_tensor(x, self.dtype)
        B = x.shape[0]
        if training and self.dropout:
            x = F.dropout(x, self.dropout, True, noise_shape=(None, 1, None))  # one mask for all steps
        recurrent_mask = None
        if training and self.recurrent_dropout:
            keep = generator().random((B, self.units)) >= self.recurrent_dropout
            scaled = keep.astype(self.dtype) / self.dtype.type(1 - self.recurrent_dropout)
            recurrent_mask = array_module(x.data).asarray(scaled)
        result = getattr(F, self._op)(
            x, self.kernel, self.recurrent_kernel, self.bias, initial_state=initial_state,
            mask=mask, go_backwards=self.go_backwards, return_sequences=self.return_sequences,
            recurrent_dropout_mask=recurrent_mask, zero_output_for_mask=self.zero_output_for_mask,
            **self._op_kwargs())
        return list(result) if self.return_state else result[0]

    def compute_mask(self, x, mask):
        return mask if self.return_sequences else None

    def get_config(self):
        return {**super().get_config(), "units": self.units, "dropout": self.dropout,
                "recurrent_dropout": self.recurrent_dropout, "return_sequences": self.return_sequences,
                "return_state": self.return_state, "go_backwards": self.go_backwards,
                "use_bias": self.use_bias, "zero_output_for_mask": self.zero_output_for_mask}


class SimpleRNN(_RNN):
    """Fully-connected tanh RNN; initial_state=[h0]."""
    _op, _gates = "simple_rnn", 1


class LSTM(_RNN):
    """LSTM with Keras's gate order i,f,c,o; unit_forget_bias starts the forget bias at 1."""
    _op, _gates = "lstm", 4

    def __init__(self, units, unit_forget_bias=True, **kwargs):
        super().__init__(units, **kwargs)
        self.unit_forget_bias = unit_forget_bias

    def build(self, input_shape):
        super().build(input_shape)
        if self.use_bias and self.unit_forget_bias:
            self.bias.data[self.units:2 * self.units] = 1

    def get_config(self):
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}


class GRU(_RNN):
    """GRU with Keras's gate order z,r,h; reset_after=True (default) has bias (2, 3H)."""
    _op, _gates = "gru", 3

    def __init__(self, units, reset_after=True, **kwargs):
        super().__init__(units, **kwargs)
        self.reset_after = reset_after

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _op_kwargs(self):
        return {"reset_after": self.reset_after}

    def get_config(self):
        return {**super().get_config(), "reset_after": self.reset_after}


class Bidirectional(Layer):
    """Runs `layer` forwards and a copy backwards; merge_mode concat|sum|mul|ave.

    Weights: the forward layer's, then the backward layer's (Keras 3's order). With
    return_sequences the backward outputs are reversed back into time order and masked
    steps give zeros (Keras turns on zero_output_for_mask here).
    """

    supports_masking = True

    def __init__(self, layer, merge_mode="concat", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, _RNN):
            raise TypeError(f"Bidirectional: layer must be SimpleRNN, LSTM or GRU, got {type(layer).__name__}")
        if merge_mode not in _MERGE:
            raise ValueError(f"Bidirectional: merge_mode must be concat|sum|mul|ave, got {merge_mode!r}")
        self.merge_mode = merge_mode
        # Both directions are fresh layers made from `layer`'s config, as Keras: the backward
        # one gets its own initial weights, and the caller's layer object is left untouched.
        config = self._layer_config = layer.get_config()
        self.forward_layer = type(layer)(**{**config, "name": f"forward_{layer.name}",
                                            "zero_output_for_mask": layer.return_sequences})
        self.backward_layer = type(layer)(**{**config, "name": f"backward_{layer.name}",
                                             "go_backwards": not layer.go_backwards,
                                             "zero_output_for_mask": layer.return_sequences})

    def build(self, input_shape):
        for sub in (self.forward_layer, self.backward_layer):
            sub.build(input_shape)
            sub.built = True
        self._weights = self.forward_layer._weights + self.backward_layer._weights
        self._weight_names = self.forward_layer._weight_names + self.backward_layer._weight_names

    def call(self, x, mask=None, training=False):
        fwd = self.forward_layer.call(x, mask=mask, training=training)
        bwd = self.backward_layer.call(x, mask=mask, training=training)
        fwd_out = fwd[0] if isinstance(fwd, list) else fwd
        bwd_out = bwd[0] if isinstance(bwd, list) else bwd
        if self.forward_layer.return_sequences:
            bwd_out = bwd_out[:, ::-1]
        merged = _MERGE[self.merge_mode](fwd_out, bwd_out)
        if self.forward_layer.return_state:
            return [merged] + fwd[1:] + bwd[1:]
        return merged

    def compute_mask(self, x, mask):
        return mask if self.forward_layer.return_sequences else None

    def get_config(self):
        return {**super().get_config(), "merge_mode": self.merge_mode,
                "layer": {"class_name": type(self.forward_layer).__name__,
                          "config": self._layer_config}}


_MERGE = {"concat": lambda a, b: concatenate([a, b], axis=-1), "sum": lambda a, b: a + b,
          "mul": lambda a, b: a * b, "ave": lambda a, b: (a + b) * 0.5}


__all__ = ["SimpleRNN", "LSTM", "GRU", "Bidirectional"]
