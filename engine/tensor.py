"""Tensor: an n-d array (numpy, or cupy on the GPU) that records how it was made.

`backward()` sorts the graph topologically and walks it in reverse, asking each node's
Function for the gradients of its inputs; gradients accumulate across uses and are summed
back to each input's shape when the op broadcast. Only leaf tensors keep `.grad`; the
graph is freed as it is walked, as in PyTorch.

Example:
    >>> x = Tensor(np.ones((2, 3)), requires_grad=True)
    >>> y = (x * 2).tanh().sum()
    >>> y.backward()
    >>> x.grad.shape
    (2, 3)
"""
from __future__ import annotations

import threading

import numpy as np

from .sparse import RowSparse

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "grad_enabled", True)


class no_grad:
    """Run without recording the graph (inference, optimizer updates): `with no_grad(): ...`.

    A plain class rather than a contextlib generator: entered around every inference call, and
    right after a kernel has left the interpreter's data out of cache its enter cost 25 us
    against a kernel of 0.6 ms (the bench's embedding gather, Intel Xeon family 6 model 167)."""

    __slots__ = ("_previous",)

    def __enter__(self):
        self._previous = is_grad_enabled()
        _state.grad_enabled = False
        return self

    def __exit__(self, *exc_info):
        _state.grad_enabled = self._previous


def array_module(array):
    """numpy for host arrays, cupy for device arrays."""
    if type(array).__module__.startswith("cupy"):
        import cupy
        return cupy
    return np


def as_array(x):
    """x's array where it lives: a Tensor's data, a CuPy array as it is, anything else through
    np.asarray (never a copy to the host: np.asarray of a CuPy array raises)."""
    return x.data if isinstance(x, Tensor) else array_module(x).asarray(x)


def _as_array(data, dtype=None):
    if type(data) is np.ndarray and dtype is None:
        array = data  # every op's output: nothing to convert
    else:
        if isinstance(data, Tensor):
            data = data.data
        if array_module(data) is not np:
            return data if dtype is None else data.astype(dtype, copy=False)
        array = np.asarray(data, dtype=dtype)
    if array.dtype.kind not in "biuf":  # object arrays too (kind "O")
        raise TypeError(f"Tensor: data must be numeric (bool, int or float), got dtype {array.dtype}")
    return array


class Tensor:
    """An array with a gradient. `data` is a numpy or cupy array; `grad` has data's shape."""

    __array_priority__ = 1000  # numpy scalars defer to Tensor's reflected operators
    _post_accumulate_hooks: list | tuple = ()  # a list of its own once a hook is registered

    def __init__(self, data, requires_grad=False, dtype=None):
        self.data = _as_array(data, dtype)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"Tensor: requires_grad needs a float dtype, got {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self._node = None
        self._index = 0

    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    device = property(lambda self: "cuda" if type(self.data).__module__.startswith("cupy") else "cpu")

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({self.data!r}{grad})"

    def numpy(self) -> np.ndarray:
        data = self.data
        return data.get() if array_module(data) is not np else data

    def item(self):
        return self.numpy().item()

    def detach(self) -> "Tensor":
        return Tensor(self.data)

    def to(self, device: str) -> "Tensor":
        """This tensor on "cpu" or "cuda": itself if it is there already, else a copy that is a
        new leaf with the same dtype, requires_grad and `.grad` (moved too), as PyTorch's .to
        returns self when nothing moves. DeviceUnavailableError, with the reason, when CuPy or
        a CUDA device is missing.

        Example:
            >>> x = Tensor(np.ones(3, "float32"), requires_grad=True)
            >>> x.to("cpu") is x
            True
            >>> x.to("cuda").device          # on a machine with a GPU
            'cuda'
        """
        from . import device as device_module
        device_module.require(device, "Tensor.to")
        if device == self.device:
            return self
        moved = Tensor(device_module.to_device(self.data, device), requires_grad=self.requires_grad)
        if self.grad is not None:
            moved.grad = _move_grad(self.grad, device)
        return moved

    def _move_(self, device: str) -> None:
        """Move this tensor's data and .grad to `device` in place: the same Tensor object, so
        optimizers and layers holding it keep working (Layer.to / Model.to)."""
        from .device import to_device
        self.data = to_device(self.data, device)
        if self.grad is not None:
            self.grad = _move_grad(self.grad, device)

    def astype(self, dtype) -> "Tensor":
        return _ops.Cast.apply(self, dtype=np.dtype(dtype))

    def zero_grad(self):
        self.grad = None

    def register_post_accumulate_grad_hook(self, hook) -> "_HookHandle":
        """Run hook(self) once per backward(), when this leaf's gradient of that pass is complete.

        torch's name and contract: a weight used twice in the graph fires once, after its
        second contribution is summed into `.grad`. Data-parallel training uses it to start
        all-reducing a bucket of gradients while the rest of the backward pass runs.
        Returns a handle; `handle.remove()` unregisters the hook.

        Example:
            >>> w = Tensor(np.ones(3), requires_grad=True)
            >>> handle = w.register_post_accumulate_grad_hook(lambda t: print(t.grad))
            >>> (w * w).sum().backward()
            [2. 2. 2.]
        """
        if self._node is not None or not self.requires_grad:
            raise RuntimeError("register_post_accumulate_grad_hook: only a leaf tensor with "
                               "requires_grad=True accumulates a gradient")
        if not self._post_accumulate_hooks:
            self._post_accumulate_hooks = []
        self._post_accumulate_hooks.append(hook)
        return _HookHandle(self._post_accumulate_hooks, hook)

    def _run_post_accumulate_hooks(self):
        for hook in list(self._post_accumulate_hooks):
            hook(self)

    def backward(self, grad=None):
        """Accumulate d(self)/d(leaf) into every leaf's `.grad` and free the graph."""
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad (no input did)")
        xp = array_module(self.data)
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward: grad can be implicit only for a scalar, got shape {self.shape}")
            grad = xp.ones(self.data.shape, self.data.dtype)
            handed = set()  # ids of memory no leaf may keep: the implicit seed is nobody's yet
        else:
            grad = _as_array(grad, self.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"backward: grad shape {grad.shape} does not match tensor shape {self.shape}")
            handed = {id(grad), id(_memory_owner(grad))}  # the caller's seed and what it views
        if self._node is None:
            self._accumulate(grad, handed)
            self._run_post_accumulate_hooks()
            return
        pending = {self._node: [None] * len(self._node.outputs_meta)}
        pending[self._node][self._index] = grad
        order = _topological_order(self._node)
        hooked = _hooked_leaves(order)
        for node in order:
            grads_out = pending.pop(node, None)
            if grads_out is None:
                continue
            if node.ctx is None:
                raise RuntimeError("backward: the graph was already freed by an earlier backward()")
            if node.fn.zero_output_grads:
                grads_out = [g if g is not None else xp.zeros(shape, dtype)
                             for g, (shape, dtype) in zip(grads_out, node.outputs_meta)]
            grads_in = node.fn.backward(node.ctx, *grads_out)
            if not isinstance(grads_in, tuple):
                grads_in = (grads_in,)
            for tensor, g in zip(node.inputs, grads_in):
                if tensor is None or g is None or not tensor.requires_grad:
                    continue
                if not isinstance(g, RowSparse):
                    data = tensor.data
                    if g.shape != data.shape:
                        g = _unbroadcast(g, data.shape)
                    if g.dtype != data.dtype:
                        g = g.astype(data.dtype)
                if tensor._node is None:
                    tensor._accumulate(g, handed)
                    if id(tensor) in hooked:
                        hooked[id(tensor)].delivered()
                else:
                    slots = pending.setdefault(tensor._node, [None] * len(tensor._node.outputs_meta))
                    i = tensor._index
                    slots[i] = g if slots[i] is None else slots[i] + g
            node.ctx, node.inputs = None, ()
        for leaf in hooked.values():
            leaf.finish()

    def _accumulate(self, g, handed):
        if self.grad is not None:
            self.grad = self.grad + g
            return
        # A leaf's .grad must be memory of its own, since users and optimizers may update it
        # in place: not a view (Sum's backward hands out a read-only broadcast view, Reshape a
        # view of another gradient), not the caller's seed, not an array another leaf holds
        # (Add's backward gives the same array to both inputs). `handed` collects the ids of
        # what the caller and the leaves hold. A C++ kernel's output is memory of its own too
        # (_views_other_memory).
        if isinstance(g, RowSparse):
            # Embedding's sparse gradient is a view of the gradient that reached it, and keeps
            # it (no [N,D] copy) unless the caller or another leaf holds that memory. Its
            # values may be read-only (Sum's broadcast view); every update coalesces first.
            if id(_memory_owner(g.values)) in handed:
                g = RowSparse(g.indices, g.values.copy(), g.shape)
            handed.add(id(_memory_owner(g.values)))
        else:
            if _views_other_memory(g) or id(g) in handed:
                g = g.copy()
            handed.add(id(g))
        self.grad = g

    # Arithmetic. Python scalars adopt the tensor's dtype so float32 stays float32.
    def __add__(self, other): return _ops.Add.apply(self, _lift(other, self))
    def __radd__(self, other): return _ops.Add.apply(_lift(other, self), self)
    def __sub__(self, other): return _ops.Sub.apply(self, _lift(other, self))
    def __rsub__(self, other): return _ops.Sub.apply(_lift(other, self), self)
    def __mul__(self, other): return _ops.Mul.apply(self, _lift(other, self))
    def __rmul__(self, other): return _ops.Mul.apply(_lift(other, self), self)
    def __truediv__(self, other): return _ops.Div.apply(self, _lift(other, self))
    def __rtruediv__(self, other): return _ops.Div.apply(_lift(other, self), self)
    def __matmul__(self, other): return _ops.MatMul.apply(self, _lift(other, self))
    def __rmatmul__(self, other): return _ops.MatMul.apply(_lift(other, self), self)
    def __pow__(self, other): return _ops.Pow.apply(self, _lift(other, self))
    def __rpow__(self, other): return _ops.Pow.apply(_lift(other, self), self)
    def __neg__(self): return _ops.Neg.apply(self)
    def __getitem__(self, index): return _ops.GetItem.apply(self, index=_unwrap_index(index, self))

    # Comparisons give bool tensors and no gradient.
    def __lt__(self, other): return Tensor(self.data < _operand(other, self))
    def __le__(self, other): return Tensor(self.data <= _operand(other, self))
    def __gt__(self, other): return Tensor(self.data > _operand(other, self))
    def __ge__(self, other): return Tensor(self.data >= _operand(other, self))
    def __eq__(self, other): return Tensor(self.data == _operand(other, self))
    def __ne__(self, other): return Tensor(self.data != _operand(other, self))
    __hash__ = object.__hash__

    def sum(self, axis=None, keepdims=False): return _ops.Sum.apply(self, axis=axis, keepdims=keepdims)
    def max(self, axis=None, keepdims=False): return _ops.Max.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        axes = range(self.ndim) if axis is None else np.atleast_1d(axis)
        count = int(np.prod([self.shape[a] for a in axes]))
        return self.sum(axis=axis, keepdims=keepdims) * (1.0 / max(count, 1))

    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return _ops.Reshape.apply(self, shape=tuple(shape))

    def transpose(self, *axes):
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        return _ops.Transpose.apply(self, axes=tuple(axes) or None)

    T = property(lambda self: self.transpose())

    def exp(self): return _ops.Exp.apply(self)
    def log(self): return _ops.Log.apply(self)
    def tanh(self): return _ops.Tanh.apply(self)
    def sigmoid(self): return _ops.Sigmoid.apply(self)
    def relu(self): return _ops.Relu.apply(self)
    def abs(self): return _ops.Abs.apply(self)
    def sqrt(self): return self ** 0.5
    def clip(self, low, high): return _ops.Clip.apply(self, low=low, high=high)
    def softmax(self, axis=-1): return (self - self.logsumexp(axis, keepdims=True)).exp()
    def log_softmax(self, axis=-1): return self - self.logsumexp(axis, keepdims=True)

    def logsumexp(self, axis=-1, keepdims=False):
        """log(sum(exp(x))) computed stably: the max is shifted out first."""
        return _ops.LogSumExp.apply(self, axis=axis, keepdims=keepdims)


def _move_grad(grad, device):
    from .device import to_device
    if isinstance(grad, RowSparse):
        return RowSparse(to_device(grad.indices, device), to_device(grad.values, device), grad.shape)
    return to_device(grad, device)


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def _lift(other, like: Tensor) -> Tensor:
    if isinstance(other, Tensor):
        return other
    xp = array_module(like.data)
    dtype = like.dtype if like.dtype.kind == "f" and np.ndim(other) == 0 else None
    return Tensor(xp.asarray(other, dtype=dtype))


def _operand(x, like: Tensor):
    """x's array, a NumPy one copied to the GPU when `like` is there (NumPy masks, ids)."""
    x = _raw(x)
    if isinstance(x, np.ndarray) and like.device == "cuda":
        return array_module(like.data).asarray(x)
    return x


def _unwrap_index(index, like: Tensor):
    if isinstance(index, tuple):
        return tuple(_operand(i, like) for i in index)
    return _operand(index, like)


def _views_other_memory(array):
    """Whether `array` lives in memory another object holds: a view of another array, or a
    buffer someone else owns. An engine._C kernel's output has a capsule as its base, memory
    allocated for that array alone (bindings/common.hpp output()), so it is its own."""
    base = getattr(array, "base", None)
    return base is not None and type(base).__name__ != "PyCapsule"


def _memory_owner(array):
    """The array whose memory `array` uses: NumPy and CuPy point a view's base straight at it."""
    base = getattr(array, "base", None)
    return array if base is None else base


def _unbroadcast(grad, shape):
    """Sum grad over the axes an op broadcast, so it has the input's shape again."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, (g, s) in enumerate(zip(grad.shape, shape)) if s == 1 and g != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


class _HookHandle:
    def __init__(self, hooks, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self):
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


class _HookedLeaf:
    """A leaf with post-accumulate hooks during one backward(): fires them when the last of
    its incoming edges has delivered, or at the end for a leaf some edge left without a
    gradient (None from a backward, or a node no gradient reached)."""

    def __init__(self, tensor):
        self.tensor, self.edges, self.received = tensor, 0, False

    def delivered(self):
        self.edges -= 1
        self.received = True
        if self.edges == 0:
            self.tensor._run_post_accumulate_hooks()

    def finish(self):
        if self.received and self.edges > 0:
            self.tensor._run_post_accumulate_hooks()


def _hooked_leaves(order) -> dict:
    """{id(leaf): _HookedLeaf} for the leaves with hooks that the nodes in `order` feed."""
    hooked = {}
    for node in order:
        for t in node.inputs:
            if t is not None and t._post_accumulate_hooks and t._node is None and t.requires_grad:
                hooked.setdefault(id(t), _HookedLeaf(t)).edges += 1
    return hooked


def _topological_order(root):
    """Nodes from root to leaves, each after every node that consumes it (iterative DFS)."""
    order, visited, stack = [], set(), [(root, False)]
    while stack:
        node, finished = stack.pop()
        if finished:
            order.append(node)
            continue
        if node in visited:
            continue
        visited.add(node)
        stack.append((node, True))
        for t in node.inputs:
            child = t._node if t is not None else None
            if child is not None and child not in visited:
                stack.append((child, False))
    return order[::-1]


def concatenate(tensors, axis=0) -> Tensor:
    """Differentiable np.concatenate."""
    return _ops.Concatenate.apply(*tensors, axis=axis)


def stack(tensors, axis=0) -> Tensor:
    """Differentiable np.stack."""
    return concatenate([t.reshape(t.shape[:axis % (t.ndim + 1)] + (1,) + t.shape[axis % (t.ndim + 1):])
                        for t in tensors], axis=axis)


def where(condition, x, y) -> Tensor:
    """Elementwise choice; gradient flows to x where condition holds and to y elsewhere."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    return _ops.Where.apply(_raw(condition), x, _lift(y, x))


from . import ops as _ops  # noqa: E402  (ops needs Tensor defined first)
