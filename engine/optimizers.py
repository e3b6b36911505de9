"""Optimizers with Keras 3's names, defaults and update formulas.

Each optimizer writes one update rule, `_update(param, grad, slots, lr, step)`, on arrays.
Dense gradients update whole parameters; a RowSparse gradient (from
`F.embedding(..., sparse=True)`) updates only its rows, with the slots (momenta) of those
rows alone — the "lazy" rule of TensorFlow's LazyAdam and torch's SparseAdam: rows absent
from a batch keep their moments unchanged instead of decaying.
On the GPU the same rule runs as one fused elementwise kernel per parameter (`_gpu_kernel`,
engine/_gpu_updates.py), and clipping computes its norms on the device: a step reads nothing
back to the host.

Example:
    >>> opt = Adam(learning_rate=1e-3, clipnorm=1.0)
    >>> loss.backward(); opt.step(model_params); # or opt.apply_gradients(zip(grads, params))
    >>> opt.learning_rate = 1e-4            # settable, as in Keras (ReduceLROnPlateau uses it)
    >>> state = {}; opt.save_own_variables(state); opt.load_own_variables(state)
"""
from __future__ import annotations

import numpy as np

from .sparse import RowSparse
from .tensor import Tensor, array_module


class Optimizer:
    """Base class: clipping, weight decay, slots per parameter, dense and row-sparse updates.

    learning_rate: float or callable step -> float. Only one of clipnorm (per gradient),
    global_clipnorm (all gradients together) and clipvalue may be set, as in Keras.
    """

    # Slot names, grouped as Keras's build creates them (its variables' order): the names of a
    # group are created together for each parameter, groups one after the other.
    _slot_groups: tuple = ()

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None):
        if sum(c is not None for c in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError("optimizer: only one of clipnorm, clipvalue and global_clipnorm can be set, "
                             f"got clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}")
        self._learning_rate = None
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.iterations = 0
        self._slots: dict[int, dict] = {}
        self._var_list: list[Tensor] = []   # parameters with slots, in the order they were built

    @property
    def learning_rate(self) -> float:
        """The learning rate of the next step (a schedule evaluated at `iterations`)."""
        return self.current_learning_rate()

    @learning_rate.setter
    def learning_rate(self, value):
        # As Keras: a float replaces a float; a schedule given at construction stays in charge.
        if not callable(value):
            if callable(self._learning_rate):
                raise TypeError("optimizer: this optimizer was created with a learning-rate schedule, "
                                f"so its learning rate cannot be set to {value!r}")
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)) \
                    or not np.isfinite(value) or not value > 0:
                raise ValueError(f"optimizer: learning_rate must be positive, got {value!r}")
            value = float(value)
        self._learning_rate = value

    def current_learning_rate(self) -> float:
        lr = self._learning_rate
        return float(lr(self.iterations) if callable(lr) else lr)

    def build(self, var_list) -> None:
        """Create the slots (momenta) of every parameter in var_list, in that order, as Keras's
        build; step() builds lazily, so this is only needed before load_own_variables."""
        for p in var_list:
            self._slots_of(p)

    def _slots_of(self, p) -> dict:
        slots = self._slots.get(id(p))
        if slots is None:
            xp = array_module(p.data)
            slots = self._slots[id(p)] = {n: xp.zeros_like(p.data) for group in self._slot_groups
                                          for n in group}
            self._var_list.append(p)
        return slots

    def _move_slots(self, device: str) -> None:
        """Put every slot on `device` (Model.to moves its optimizer's state with its weights)."""
        from .device import to_device
        for slots in self._slots.values():
            for name in slots:
                slots[name] = to_device(slots[name], device)

    @property
    def variables(self) -> list:
        """Copies of the optimizer's state in Keras 3's order: iterations, learning_rate (absent
        with a schedule), then the slots, grouped as each Keras optimizer's build groups them
        (Adam: m and v per parameter, then v_hat; RMSprop: every velocity, then momenta...).
        Kept in float64 (Keras: float32) so a restored run takes exactly the same steps."""
        out = [np.asarray(self.iterations, np.int64)]
        if not callable(self._learning_rate):
            out.append(np.asarray(self._learning_rate, np.float64))
        return out + [_to_numpy(s).copy() for s in self._slot_arrays()]

    def _slot_arrays(self) -> list:
        return [self._slots[id(p)][n] for group in self._slot_groups for p in self._var_list for n in group]

    def save_own_variables(self, store) -> None:
        """store["0"], store["1"], ... = variables (Keras 3's optimizer saving protocol)."""
        for i, value in enumerate(self.variables):
            store[str(i)] = value

    def load_own_variables(self, store) -> None:
        """Restore what save_own_variables wrote; call build(params) first in a fresh optimizer.

        Every entry is checked before any is assigned, so a bad store leaves the optimizer as it was.
        """
        current = self.variables
        if sorted(store, key=str) != sorted((str(i) for i in range(len(current))), key=str):
            raise ValueError(f"{type(self).__name__}.load_own_variables: expected variables '0'..'{len(current) - 1}' "
                             f"({len(self._var_list)} built parameters), got keys {sorted(store)}")
        values = [np.asarray(store[str(i)]) for i in range(len(current))]
        for i, (value, now) in enumerate(zip(values, current)):
            if value.shape != now.shape:
                raise ValueError(f"{type(self).__name__}.load_own_variables: variable {i} must have "
                                 f"shape {now.shape}, got {value.shape}")
        self.iterations = int(values[0])
        head = 1 if callable(self._learning_rate) else 2
        if head == 2:
            self.learning_rate = float(values[1])
        for slot, value in zip(self._slot_arrays(), values[head:]):
            slot[...] = array_module(slot).asarray(value)

    def step(self, params) -> None:
        """Apply each parameter's `.grad` (torch style); parameters without a grad are skipped."""
        self.apply_gradients([(p.grad, p) for p in params if p.grad is not None])

    def apply_gradients(self, grads_and_vars) -> None:
        """Keras style: an iterable of (gradient, parameter Tensor) pairs."""
        self._apply(grads_and_vars)

    def _apply(self, grads_and_vars, ok=None) -> None:
        """apply_gradients; on the GPU, `ok` (a 0-d device bool) false makes the step write
        nothing (fit's skip of a non-finite loss, decided without a host round trip)."""
        pairs = [(g.coalesce() if isinstance(g, RowSparse) else g, p) for g, p in grads_and_vars
                 if g is not None]
        for g, p in pairs:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer: parameters must be Tensors, got {type(p).__name__}")
            if g.shape != p.shape:
                raise ValueError(f"optimizer: gradient shape {g.shape} does not match parameter shape {p.shape}")
        pairs = self._clip(pairs)
        lr = self.current_learning_rate()
        for g, p in pairs:
            slots = self._slots_of(p)
            on_gpu = array_module(p.data) is not np
            if isinstance(g, RowSparse):
                rows = g.indices
                row_slots = {n: s[rows] for n, s in slots.items()}
                values = p.data[rows]
                grad = g.values.astype(p.dtype, copy=False)
                if on_gpu:
                    self._gpu_step(values, grad, row_slots, lr, ok)
                else:
                    values = self._update(self._decay(values, lr), grad, row_slots, lr, self.iterations + 1)
                p.data[rows] = values
                for n, s in slots.items():
                    s[rows] = row_slots[n]
            elif on_gpu:
                self._gpu_step(p.data, g.astype(p.dtype, copy=False), slots, lr, ok)
            else:
                p.data[...] = self._update(self._decay(p.data, lr), g.astype(p.dtype, copy=False),
                                           slots, lr, self.iterations + 1)
        self.iterations += 1

    def _gpu_step(self, param, grad, slots, lr, ok):
        """One fused kernel updating param and its slots in place (engine/_gpu_updates.py)."""
        from . import _gpu_updates
        name, scalars, slot_names = self._gpu_kernel(lr, self.iterations + 1)
        decay = self.weight_decay * lr if self.weight_decay else 0.0
        _gpu_updates.run(name, param, grad, decay, ok, scalars, tuple(slots[n] for n in slot_names))

    def _gpu_kernel(self, lr, step) -> tuple:
        """(kernel name in engine/_gpu_updates.py, its scalar inputs, its slot outputs in order)."""
        raise NotImplementedError(f"{type(self).__name__} has no fused GPU update")

    def _decay(self, values, lr):
        # Decoupled weight decay applied before the step, as Keras's _apply_weight_decay.
        if self.weight_decay:
            return values - values * (self.weight_decay * lr)
        return values

    def _clip(self, pairs):
        if pairs and array_module(_values(pairs[0][0])) is not np:
            return self._clip_on_device(pairs)
        if self.clipvalue is not None:
            return [(_map_values(g, lambda v: array_module(v).clip(v, -self.clipvalue, self.clipvalue)), p)
                    for g, p in pairs]
        if self.clipnorm is not None:
            return [(_map_values(g, lambda v: v * (self.clipnorm / max(_norm(v), self.clipnorm))), p)
                    for g, p in pairs]
        if self.global_clipnorm is not None:
            total = float(np.sqrt(sum(_norm(_values(g)) ** 2 for g, _ in pairs)))
            scale = self.global_clipnorm / max(total, self.global_clipnorm)
            return [(_map_values(g, lambda v: v * scale), p) for g, p in pairs]
        return pairs

    def _clip_on_device(self, pairs):
        """_clip with the norms and scales kept on the GPU (float64 norms, the scale rounded to
        the gradient's dtype before it multiplies, as NumPy rounds the CPU's Python float)."""
        xp = array_module(_values(pairs[0][0]))
        if self.clipvalue is not None:
            return [(_map_values(g, lambda v: xp.clip(v, -self.clipvalue, self.clipvalue)), p)
                    for g, p in pairs]
        if self.clipnorm is not None:
            def clip(v):
                return v * (self.clipnorm / xp.maximum(_device_norm(v), self.clipnorm)).astype(v.dtype)
            return [(_map_values(g, clip), p) for g, p in pairs]
        if self.global_clipnorm is not None:
            total = xp.sqrt(sum(_device_norm(_values(g)) ** 2 for g, _ in pairs))
            scale = self.global_clipnorm / xp.maximum(total, self.global_clipnorm)
            return [(_map_values(g, lambda v: v * scale.astype(v.dtype)), p) for g, p in pairs]
        return pairs

    def _update(self, param, grad, slots, lr, step):
        raise NotImplementedError


def _to_numpy(a):
    return a.get() if hasattr(a, "get") else a   # cupy arrays copy to the host


def _values(g):
    return g.values if isinstance(g, RowSparse) else g


def _map_values(g, fn):
    return RowSparse(g.indices, fn(g.values), g.shape) if isinstance(g, RowSparse) else fn(g)


def _norm(v) -> float:
    return float(_device_norm(v))


def _device_norm(v):
    """‖v‖ in float64 as a 0-d array where v lives (no host round trip on the GPU)."""
    return array_module(v).sqrt((v.astype(np.float64) ** 2).sum())


class SGD(Optimizer):
    """m = momentum·m − lr·g; p += m (nesterov: p += momentum·m − lr·g)."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        if not 0 <= momentum <= 1:
            raise ValueError(f"SGD: momentum must be in [0, 1], got {momentum}")
        self.momentum, self.nesterov = momentum, nesterov
        self._slot_groups = (("momentum",),) if momentum else ()

    def _update(self, param, grad, slots, lr, step):
        if not self.momentum:
            return param - lr * grad
        m = slots["momentum"]
        m[...] = self.momentum * m - lr * grad
        return param + (self.momentum * m - lr * grad if self.nesterov else m)

    def _gpu_kernel(self, lr, step):
        if not self.momentum:
            return "sgd", (lr,), ()
        return ("sgd_nesterov" if self.nesterov else "sgd_momentum"), (lr, self.momentum), ("momentum",)


class RMSprop(Optimizer):
    """v = ρv + (1−ρ)g²; p −= lr·g / sqrt(v + ε) (centered: v − mean(g)² + ε; optional momentum)."""

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho, self.momentum, self.epsilon, self.centered = rho, momentum, epsilon, centered
        self._slot_groups = (("velocity",),) + ((("momentum",),) if momentum else ()) + \
            ((("average_gradient",),) if centered else ())

    def _update(self, param, grad, slots, lr, step):
        xp = array_module(param)
        v = slots["velocity"]
        v[...] = self.rho * v + (1 - self.rho) * grad * grad
        if self.centered:
            a = slots["average_gradient"]
            a[...] = self.rho * a + (1 - self.rho) * grad
            denominator = v - a * a + self.epsilon
        else:
            denominator = v + self.epsilon
        increment = lr * grad / xp.sqrt(denominator)
        if self.momentum:
            m = slots["momentum"]
            m[...] = self.momentum * m + increment
            increment = m
        return param - increment

    def _gpu_kernel(self, lr, step):
        name = "rmsprop" + ("_centered" if self.centered else "") + ("_momentum" if self.momentum else "")
        scalars = (lr, self.rho, 1 - self.rho, self.epsilon) + ((self.momentum,) if self.momentum else ())
        slots = ("velocity",) + (("average_gradient",) if self.centered else ()) + \
            (("momentum",) if self.momentum else ())
        return name, scalars, slots


class Adam(Optimizer):
    """Keras's Adam: α = lr·sqrt(1−β2^t)/(1−β1^t); p −= α·m / (sqrt(v) + ε)."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = beta_1, beta_2, epsilon, amsgrad
        self._slot_groups = (("m", "v"),) + ((("v_hat",),) if amsgrad else ())

    def _update(self, param, grad, slots, lr, step):
        xp = array_module(param)
        alpha = lr * np.sqrt(1 - self.beta_2 ** step) / (1 - self.beta_1 ** step)
        m, v = slots["m"], slots["v"]
        m += (grad - m) * (1 - self.beta_1)
        v += (grad * grad - v) * (1 - self.beta_2)
        if self.amsgrad:
            v_hat = slots["v_hat"]
            xp.maximum(v_hat, v, out=v_hat)
            v = v_hat
        return param - (m * alpha) / (xp.sqrt(v) + self.epsilon)

    def _gpu_kernel(self, lr, step):
        alpha = lr * np.sqrt(1 - self.beta_2 ** step) / (1 - self.beta_1 ** step)
        scalars = (1 - self.beta_1, 1 - self.beta_2, alpha, self.epsilon)
        if self.amsgrad:
            return "adam_amsgrad", scalars, ("m", "v", "v_hat")
        return "adam", scalars, ("m", "v")


class AdamW(Adam):
    """Adam with decoupled weight decay (Keras default weight_decay=0.004)."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)


_BY_NAME = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}


def get(identifier) -> Optimizer:
    """An Optimizer from an instance or a Keras name ("rmsprop", "adam", "adamw", "sgd")."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"optimizer: expected an Optimizer or one of {sorted(_BY_NAME)}, got {identifier!r}")
