"""Sampling and step-by-step decoding for trained sequence models.

`Stepper` runs a model's layers on one chunk of input at a time and carries every recurrent
layer's states from one call to the next, so a generation or greedy-decoding loop feeds the
prompt once and then one token per step: the prefix is never recomputed. `sample` draws the
next token from a model's probabilities with temperature, as in Deep Learning with Python
(Chollet, 1st ed., section 8.1).

Example (a character model Embedding -> LSTM -> Dense(softmax) trained on ids):
    >>> stepper = Stepper(model)
    >>> rng = np.random.default_rng(0)
    >>> probabilities = stepper(seed_ids[None])          # seed_ids [T]: the whole prompt once
    >>> for _ in range(400):
    ...     next_id = sample(probabilities[0], temperature=0.5, rng=rng)
    ...     probabilities = stepper(np.array([[next_id]]))   # one step, states carried
"""
from __future__ import annotations

import numpy as np

from .layers import Bidirectional, Layer
from .layers.recurrent import _RNN
from .models.sequential import Sequential
from .tensor import Tensor, no_grad


def reweight(probabilities, temperature):
    """The distribution p^(1/T) / Σ p^(1/T) over the last axis, computed as the book does:
    exp(log(p) / T), renormalized (in float64, shifted by the max so it never overflows).

    temperature 1 keeps p; below 1 sharpens it towards the argmax; above 1 flattens it.
    temperature 0 puts all the mass on the argmax (the first one on ties).

    Example:
        >>> reweight([0.2, 0.8], 0.5)            # [0.04, 0.64] / 0.68
        array([0.05882353, 0.94117647])
    """
    p = _check_probabilities(probabilities)
    if isinstance(temperature, (bool, np.bool_)) or not np.isscalar(temperature) \
            or not np.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
    if temperature == 0:
        return np.eye(p.shape[-1])[np.argmax(p, axis=-1)]
    with np.errstate(divide="ignore"):                      # log(0) = -inf: such entries stay 0
        logits = np.log(p) / float(temperature)
    logits -= logits.max(axis=-1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=-1, keepdims=True)


def sample(probabilities, temperature=1.0, rng=None):
    """Draw an index from probabilities [..., V] reweighted by `temperature` (see `reweight`).

    probabilities [V] gives an int; [B, V] gives an int array [B] (one draw per row).
    temperature 0 is greedy decoding: the argmax, and no random number is drawn.
    rng: a numpy Generator (pass a seeded one for reproducible text); default a fresh one.

    Example:
        >>> sample([0.1, 0.7, 0.2], temperature=0.5, rng=np.random.default_rng(0))
        1
    """
    p = reweight(probabilities, temperature)
    if temperature == 0:
        picked = np.argmax(p, axis=-1)
    else:
        rng = np.random.default_rng() if rng is None else rng
        cumulative = np.cumsum(p, axis=-1)                  # [..., V], last entry 1 up to rounding
        u = rng.random(p.shape[:-1] + (1,)) * cumulative[..., -1:]
        # the first index whose cumulative mass exceeds u, so an index with p = 0 is never
        # chosen; capped at the last index with p > 0 in case rounding gives u = the total
        last = np.argmax(cumulative >= cumulative[..., -1:], axis=-1)
        picked = np.minimum((cumulative <= u).sum(axis=-1), last)
    return int(picked) if picked.ndim == 0 else picked


class Stepper:
    """Runs a Sequential model (or a list of layers) chunk by chunk with recurrent states carried.

    Each call feeds x [B, T, ...] (T >= 1; token ids for an Embedding first layer) as the
    continuation of everything fed so far and returns, as a numpy array, what the model
    would output for those T steps had it seen the whole sequence at once: for a model
    ending in LSTM(return_sequences=False) -> Dense, the output after the last step [B, V].
    Every recurrent layer runs its fused kernel over just the new steps, starting from the
    states the previous call left (`layer(x, initial_state=states)` with return_state), so
    feeding a prompt once and then one token per call never recomputes the prefix.

    states: one list per recurrent layer, [h, c] for LSTM and [h] for GRU/SimpleRNN, each
    [B, units] (None before the first call = zeros, as the layers start). Pass `states=` to
    start from other states, such as an encoder's (a translation decoder), or assign
    `stepper.states`; `reset()` starts over.

    The recurrent layers are copies with return_state=True that share the model's weight
    Tensors (the model's layers are left as they were); layers run in inference mode
    (no dropout). Not steppable: Bidirectional and go_backwards layers (they need the
    future). With masks (Embedding(mask_zero=True)) the states are carried exactly, but the
    output at a masked step that opens a chunk is zeros, where the whole-sequence call
    repeats the previous output (Keras's rule applies within each call).

    Example:
        >>> stepper = Stepper(model)                 # Embedding -> LSTM -> Dense(softmax)
        >>> p = stepper(np.array([[3, 1, 4, 1]]))    # [1, V]: after the 4-token prompt
        >>> p = stepper(np.array([[5]]))             # [1, V]: after one more token
        >>> np.allclose(p, model.predict(np.array([[3, 1, 4, 1, 5]]), verbose=0))
        True
    """

    def __init__(self, model, states=None):
        # A chain of layers only: a functional graph's layer list need not be one.
        layers = list(model.layers) if isinstance(model, Sequential) else model
        if not isinstance(layers, (list, tuple)) or not layers \
                or not all(isinstance(layer, Layer) for layer in layers):
            raise TypeError(f"Stepper: model must be a Sequential or a non-empty list of layers, "
                            f"got {type(model).__name__}")
        self._layers = [_stepping_copy(layer) if isinstance(layer, (_RNN, Bidirectional)) else layer
                        for layer in layers]
        self._recurrent = [layer for layer in self._layers if isinstance(layer, _RNN)]
        self.reset(states)

    def reset(self, states=None):
        """Start over from `states` (one list per recurrent layer; None = zeros)."""
        if states is None:
            self.states = [None] * len(self._recurrent)
            return
        states = list(states)
        if len(states) != len(self._recurrent):
            raise ValueError(f"Stepper: states must hold one list per recurrent layer "
                             f"({len(self._recurrent)}), got {len(states)}")
        self.states = [None if s is None else [np.asarray(getattr(a, "data", a)) for a in s]
                       for s in states]

    def __call__(self, x):
        x = x.data if isinstance(x, Tensor) else np.asarray(x)
        if x.ndim < 2 or x.shape[1] < 1:
            raise ValueError(f"Stepper: x must have shape (batch, steps, ...) with steps >= 1, "
                             f"got {x.shape}")
        states = iter(range(len(self._recurrent)))
        with no_grad():
            for layer in self._layers:
                if isinstance(layer, _RNN):
                    i = next(states)
                    x, *new = layer(x, initial_state=self.states[i])
                    self.states[i] = [s.data for s in new]
                else:
                    x = layer(x)
        return x.data if isinstance(x, Tensor) else np.asarray(x)


def _stepping_copy(layer):
    """A copy of a built recurrent layer that returns its states and shares its weight Tensors."""
    if isinstance(layer, Bidirectional) or layer.go_backwards:
        raise ValueError(f"Stepper: layer {layer.name} ({type(layer).__name__}) reads the sequence "
                         "backwards, so it cannot run one step at a time")
    if not layer.built:
        raise ValueError(f"Stepper: layer {layer.name} is not built; train the model or call it once first")
    copy = type(layer)(**{**layer.get_config(), "return_state": True})
    copy.kernel, copy.recurrent_kernel, copy.bias = layer.kernel, layer.recurrent_kernel, layer.bias
    copy._weights, copy._weight_names = layer._weights, layer._weight_names
    copy.built = True
    return copy


def _check_probabilities(probabilities):
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim < 1 or p.shape[-1] < 1:
        raise ValueError(f"probabilities must have shape (..., classes) with classes >= 1, got {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("probabilities must be finite and >= 0")
    total = p.sum(axis=-1)
    if np.any(total <= 0):
        raise ValueError("probabilities must have a positive sum over the last axis")
    return p / total[..., None]


__all__ = ["reweight", "sample", "Stepper"]
