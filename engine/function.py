"""Function: one node of the autograd graph.

A Function subclass defines two static methods on raw arrays (numpy or cupy):

    forward(ctx, *arrays, **options) -> array or tuple of arrays
    backward(ctx, *grads_of_outputs) -> one gradient (or None) per positional input

An output no gradient reached gets zeros in backward's arguments, or None where the subclass
sets `zero_output_grads = False` (the recurrent node: its final states are rarely used, and
zeros it would have to test cost a cold NumPy reduction each step).

`Function.apply(*inputs, **options)` unwraps Tensors, runs forward, and, when any input
requires a gradient, links the outputs to one graph node. A fused op (a whole LSTM over
all timesteps) is one Function, hence one node.

Devices: the Tensor inputs of one call must all live on one device (ValueError naming the op
and both devices otherwise, as PyTorch); plain NumPy arrays handed next to Tensors on the GPU
(masks, token ids) are copied there first, as Keras converts its inputs.

Example:
    >>> class Square(Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x * x
    ...     @staticmethod
    ...     def backward(ctx, g):
    ...         (x,) = ctx.saved
    ...         return (2 * x * g,)
"""
from __future__ import annotations

import numpy as np


class Context:
    """Scratch space a Function's forward leaves for its backward."""

    __slots__ = ("saved", "needs_input_grad", "__dict__")

    def __init__(self, needs_input_grad):
        self.saved = ()
        self.needs_input_grad = needs_input_grad

    def save_for_backward(self, *arrays):
        self.saved = arrays


class Node:
    """A recorded Function call: what backward() walks.

    inputs: the positional inputs (Tensor or None for non-tensor arguments).
    outputs_meta: (shape, dtype) of each output, to make zero gradients for unused outputs.
    """

    __slots__ = ("fn", "ctx", "inputs", "outputs_meta")

    def __init__(self, fn, ctx, inputs, outputs_meta):
        self.fn, self.ctx, self.inputs, self.outputs_meta = fn, ctx, inputs, outputs_meta


class Function:
    zero_output_grads = True  # False: backward gets None for an output no gradient reached

    @staticmethod
    def forward(ctx, *arrays, **options):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **options):
        Tensor, is_grad_enabled = _tensor_names()
        # One pass over the inputs (this runs for every op of every step): their arrays, which
        # need a gradient, and whether one lives off the CPU. Only a Tensor holding something
        # other than a NumPy array (a CuPy one) needs the device check: all-NumPy calls,
        # nearly every call on the CPU, skip it.
        arrays, needs, elsewhere = [], [], False
        for x in inputs:
            if isinstance(x, Tensor):
                data = x.data
                elsewhere = elsewhere or type(data) is not np.ndarray
                arrays.append(data)
                needs.append(x.requires_grad)
            else:
                arrays.append(x)
                needs.append(False)
        if elsewhere and common_device(cls.__name__, inputs, Tensor) == "cuda":
            import cupy
            arrays = [cupy.asarray(a) if isinstance(a, np.ndarray) else a for a in arrays]
        needs = tuple(needs)
        track = True in needs and is_grad_enabled()
        ctx = Context(needs)
        out = cls.forward(ctx, *arrays, **options)
        multiple = isinstance(out, tuple)
        outs = out if multiple else (out,)
        results = tuple([Tensor(o, requires_grad=track) for o in outs])
        if track:
            node = Node(cls, ctx, tuple([x if isinstance(x, Tensor) else None for x in inputs]),
                        tuple([(o.shape, o.dtype) for o in outs]))
            for i, r in enumerate(results):
                r._node, r._index = node, i
        return results if multiple else results[0]


_TENSOR_NAMES = None


def _tensor_names():
    """(Tensor, is_grad_enabled), imported once: tensor.py imports this module's users."""
    global _TENSOR_NAMES
    if _TENSOR_NAMES is None:
        from .tensor import Tensor, is_grad_enabled
        _TENSOR_NAMES = Tensor, is_grad_enabled
    return _TENSOR_NAMES


def common_device(op: str, inputs, tensor_type) -> str | None:
    """The device of the Tensor inputs ("cpu", "cuda"; None without Tensors); ValueError
    naming the op and both devices when they differ. A device is read from the array's module
    name (cupy...), so this never imports CuPy and costs a string test per input."""
    first = None
    for i, x in enumerate(inputs):
        if not isinstance(x, tensor_type):
            continue
        device = "cuda" if type(x.data).__module__.startswith("cupy") else "cpu"
        if first is None:
            first = (i, device)
        elif device != first[1]:
            raise ValueError(f"{op.lstrip('_')}: expected all tensors on one device, got input "
                             f"{first[0]} on {first[1]} and input {i} on {device}; move them "
                             f"with Tensor.to({first[1]!r}) or model.to({first[1]!r})")
    return None if first is None else first[1]
