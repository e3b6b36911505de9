"""Differentiable ops on Tensors. Fused ops are one graph node each and call the backend table.

Layouts follow Keras: batch-major `(B, T, F)` sequences, channels-last, Keras weight shapes.
Inputs may be Tensors or arrays; integer inputs (token ids, masks) never get gradients.

Example:
    >>> import engine as en, engine.functional as F, numpy as np
    >>> table = en.Tensor(np.random.rand(10, 4).astype("float32"), requires_grad=True)
    >>> F.embedding(np.array([[1, 2, 2]]), table).sum().backward()
    >>> table.grad[2]          # id 2 was used twice
    array([2., 2., 2., 2.], dtype=float32)
"""
from __future__ import annotations

import numpy as np

from . import _recurrent, backends
from .function import Function
from .sparse import RowSparse
from .backends.reference import conv1d_output_length
from .tensor import Tensor, array_module, where


def _data(x):
    return x.data if isinstance(x, Tensor) else x


def _float_tensor(x, op: str, name: str, ndim: int | None = None, like: Tensor | None = None) -> Tensor:
    """x as a float Tensor; a plain array goes to `like`'s device (NumPy weights next to a GPU x)."""
    if not isinstance(x, Tensor):
        x = Tensor(x if like is None else array_module(like.data).asarray(x))
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: {name} must be float32 or float64, got {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{op}: {name} must have {ndim} dimensions, got shape {x.shape}")
    return x


def _int_array(x, op: str, name: str):
    x = _data(x)
    xp = array_module(x)
    x = xp.asarray(x)
    if x.dtype.kind not in "iu":
        raise TypeError(f"{op}: {name} must be an integer array, got dtype {x.dtype}")
    return xp.ascontiguousarray(x, dtype=np.int64)


class _Embedding(Function):
    @staticmethod
    def forward(ctx, ids, table, sparse):
        backend = backends.for_array(table)
        ctx.backend, ctx.ids, ctx.sparse, ctx.shape = backend, ids, sparse, table.shape
        return backend.embedding_forward(ids, array_module(table).ascontiguousarray(table))

    @staticmethod
    def backward(ctx, grad):
        # grad is passed with its strides (often Sum's read-only broadcast view): backends
        # read it in place rather than materialise a [*S,D] copy.
        if not ctx.sparse:
            return None, ctx.backend.embedding_backward(ctx.ids, grad, ctx.shape[0])
        # Uncoalesced, as torch's sparse gradient: one row per id, a view of grad whenever
        # NumPy can reshape without copying, so backward does no per-row work; coalesce()
        # sums repeated ids when an update needs it. The ids are copied (N int64s): the
        # caller may refill its batch buffer while the gradient is still held.
        values = grad.reshape(ctx.ids.size, ctx.shape[1])
        return None, RowSparse(ctx.ids.reshape(-1).copy(), values, ctx.shape)


def embedding(ids, table, sparse: bool = False) -> Tensor:
    """Rows of `table` at `ids`: ids int [*S], table [V,D] -> [*S,D].

    sparse=True leaves a RowSparse gradient in table.grad: one row per id, uncoalesced, as
    PyTorch's; the optimizers sum repeated ids and update only those rows, without building
    the dense [V,D] array.
    Ids outside [0, V) raise IndexError before any kernel runs.
    """
    table = _float_tensor(table, "embedding", "table", ndim=2)
    ids = _int_array(ids, "embedding", "ids")
    # Data-parallel fit asks for a dense table's gradient as rows for its step (far fewer
    # bytes to exchange); it hands the optimizer their dense sum (models/_data_parallel.py).
    sparse = bool(sparse) or getattr(table, "_rows_gradient", False)
    return _Embedding.apply(ids, table, sparse=sparse)


def lstm(x, kernel, recurrent_kernel, bias, initial_state=None, mask=None, go_backwards=False,
         return_sequences=True, recurrent_dropout_mask=None, zero_output_for_mask=False):
    """A whole LSTM layer call as one graph node (Keras 3 semantics) -> (outputs, h_T, c_T).

    x: (B,T,F); kernel (F,4H), recurrent_kernel (H,4H), bias (4H,) or None; gates i,f,c,o.
    initial_state: [h0, c0], each (B,H); zeros when None.
    mask: (B,T) bool; a masked step carries state and output (zeros before a row's first
    unmasked step; zeros at every masked step with zero_output_for_mask).
    go_backwards: process t = T-1..0; outputs stay in processing order, as in Keras.
    recurrent_dropout_mask: (B,H), already scaled by 1/(1-rate); multiplies h_{t-1} before
    the recurrent matmul at every step.
    outputs: (B,T,H) if return_sequences else Keras's last output (B,H).

    Example:
        >>> x = np.random.rand(2, 5, 3)
        >>> k, u, b = np.random.rand(3, 8), np.random.rand(2, 8), np.zeros(8)
        >>> out, h, c = F.lstm(x, k, u, b)
        >>> out.shape, h.shape
        ((2, 5, 2), (2, 2))
    """
    return _recurrent.run("lstm", x, kernel, recurrent_kernel, bias, initial_state, mask,
                          go_backwards, return_sequences, recurrent_dropout_mask, zero_output_for_mask)


def gru(x, kernel, recurrent_kernel, bias, reset_after=True, initial_state=None, mask=None,
        go_backwards=False, return_sequences=True, recurrent_dropout_mask=None,
        zero_output_for_mask=False):
    """A whole GRU layer call as one graph node (Keras 3 semantics) -> (outputs, h_T).

    kernel (F,3H), recurrent_kernel (H,3H); gates z,r,h. bias: (2,3H) [input; recurrent]
    with reset_after=True (Keras's default, cuDNN/PyTorch style), (3H,) with reset_after=False,
    or None. Other arguments as in `lstm`, with initial_state = [h0].

    Example:
        >>> out, h = F.gru(np.random.rand(2, 5, 3), np.random.rand(3, 6), np.random.rand(2, 6),
        ...                np.zeros((2, 6)), return_sequences=False)
        >>> out.shape
        (2, 2)
    """
    return _recurrent.run("gru", x, kernel, recurrent_kernel, bias, initial_state, mask,
                          go_backwards, return_sequences, recurrent_dropout_mask, zero_output_for_mask,
                          reset_after=reset_after)


def simple_rnn(x, kernel, recurrent_kernel, bias, initial_state=None, mask=None, go_backwards=False,
               return_sequences=True, recurrent_dropout_mask=None, zero_output_for_mask=False):
    """A whole SimpleRNN (tanh) layer call as one graph node -> (outputs, h_T).

    kernel (F,H), recurrent_kernel (H,H), bias (H,) or None: h_t = tanh(x_t·kernel + b +
    h_{t-1}·recurrent_kernel). Other arguments as in `lstm`, with initial_state = [h0].

    Example:
        >>> out, h = F.simple_rnn(np.random.rand(2, 5, 3), np.random.rand(3, 4),
        ...                       np.random.rand(4, 4), np.zeros(4))
        >>> out.shape
        (2, 5, 4)
    """
    return _recurrent.run("simple_rnn", x, kernel, recurrent_kernel, bias, initial_state, mask,
                          go_backwards, return_sequences, recurrent_dropout_mask, zero_output_for_mask)


def dropout(x, rate: float, training: bool = True, noise_shape=None, seed=None) -> Tensor:
    """Inverted dropout: zero each element with probability `rate`, scale the rest by 1/(1−rate).

    noise_shape broadcasts one mask over axes of size 1 (Keras's noise_shape; None entries
    take x's size). Identity when training is False or rate is 0.
    """
    x = _float_tensor(x, "dropout", "x")
    if not 0 <= rate < 1:
        raise ValueError(f"dropout: rate must be in [0, 1), got {rate}")
    if not training or rate == 0:
        return x
    shape = x.shape if noise_shape is None else tuple(
        s if n is None else n for n, s in zip(noise_shape, x.shape))
    from .random import generator
    rng = generator() if seed is None else np.random.default_rng(seed)
    keep = (rng.random(shape) >= rate).astype(x.dtype) / x.dtype.type(1 - rate)
    xp = array_module(x.data)
    return x * Tensor(xp.asarray(keep))


# Conv1D and pooling: channels-last (B, L, C). functional pads, the backend computes on the
# padded x (docs/kernels.md); each call is one graph node.

def _positive_int(value, op: str, name: str) -> int:
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]  # Keras accepts a 1-tuple for 1-D ops
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{op}: {name} must be a positive int, got {value!r}")
    return int(value)


def _window_padding(length: int, span: int, strides: int, padding, op: str) -> tuple:
    """(left, right) padding along L for a window covering `span` rows, as Keras 3.

    same: output length ceil(L/s); the total padding is split with the extra row on the right.
    causal: all span-1 rows on the left, so out[t] never sees x[t+1:].
    """
    mode = padding.lower() if isinstance(padding, str) else padding
    allowed = ("valid", "same", "causal") if op == "conv1d" else ("valid", "same")
    if mode not in allowed:
        raise ValueError(f"{op}: padding must be one of {allowed}, got {padding!r}")
    if mode == "valid":
        return 0, 0
    if mode == "causal":
        return span - 1, 0
    total = max(0, (-(-length // strides) - 1) * strides + span - length)
    return total // 2, total - total // 2


def _pad_length(x, left: int, right: int, value=0.0):
    """x: [B,L,C] -> [B,left+L+right,C], C-contiguous (a fresh copy only when padding)."""
    xp = array_module(x)
    if left == 0 and right == 0:
        return xp.ascontiguousarray(x)
    return xp.pad(x, ((0, 0), (left, right), (0, 0)), constant_values=value)


class _Conv1D(Function):
    @staticmethod
    def forward(ctx, x, kernel, bias, strides, dilation_rate, pad):
        backend = backends.for_array(x)
        xp = array_module(x)
        padded = _pad_length(x, *pad)
        kernel = xp.ascontiguousarray(kernel)
        out = backend.conv1d_forward(padded, kernel, bias, strides, dilation_rate)
        ctx.backend, ctx.options, ctx.pad, ctx.length = backend, (strides, dilation_rate), pad, x.shape[1]
        ctx.has_bias = bias is not None
        ctx.save_for_backward(padded, kernel)
        return out

    @staticmethod
    def backward(ctx, grad):
        padded, kernel = ctx.saved
        grad = array_module(grad).ascontiguousarray(grad)
        dx, dkernel, dbias = ctx.backend.conv1d_backward(grad, padded, kernel, *ctx.options)
        if ctx.pad != (0, 0):  # without padding dx stays a whole array: a leaf keeps it uncopied
            dx = dx[:, ctx.pad[0]:ctx.pad[0] + ctx.length]
        return dx, dkernel, dbias if ctx.has_bias else None


def conv1d(x, kernel, bias=None, strides=1, padding="valid", dilation_rate=1) -> Tensor:
    """1-D convolution (cross-correlation), channels-last as keras.layers.Conv1D.

    x: [B,L,C], kernel: [K,C,O], bias: [O] or None -> [B,L_out,O] with
    out[b,t] = Σ_k x_padded[b, t·s + k·d] · kernel[k] + bias.
    padding: "valid" (none), "same" (L_out = ceil(L/s), split as Keras, extra on the right)
    or "causal" (d·(K-1) zeros on the left). Unlike the Keras layer, strides > 1 may be
    combined with dilation_rate > 1 (as keras.ops.conv and PyTorch allow).

    Example:
        >>> x = np.ones((1, 5, 2), "float32"); w = np.ones((3, 2, 4), "float32")
        >>> conv1d(x, w, padding="same").shape
        (1, 5, 4)
    """
    x = _float_tensor(x, "conv1d", "x", ndim=3)
    kernel = _float_tensor(kernel, "conv1d", "kernel", ndim=3, like=x)
    if kernel.dtype != x.dtype:
        raise TypeError(f"conv1d: kernel dtype {kernel.dtype} must match x dtype {x.dtype}")
    if kernel.shape[1] != x.shape[2]:
        raise ValueError(f"conv1d: kernel must have shape (K, {x.shape[2]}, O) for x with "
                         f"{x.shape[2]} channels, got kernel shape {kernel.shape}")
    if bias is not None:
        bias = _float_tensor(bias, "conv1d", "bias", ndim=1, like=x)
        if bias.shape != (kernel.shape[2],) or bias.dtype != x.dtype:
            raise ValueError(f"conv1d: bias must have shape ({kernel.shape[2]},) and dtype "
                             f"{x.dtype}, got shape {bias.shape} and dtype {bias.dtype}")
    strides = _positive_int(strides, "conv1d", "strides")
    dilation_rate = _positive_int(dilation_rate, "conv1d", "dilation_rate")
    span = dilation_rate * (kernel.shape[0] - 1) + 1
    pad = _window_padding(x.shape[1], span, strides, padding, "conv1d")
    conv1d_output_length(x.shape[1] + sum(pad), kernel.shape[0], strides, dilation_rate)
    return _Conv1D.apply(x, kernel, bias, strides=strides, dilation_rate=dilation_rate, pad=pad)


class _MaxPool1D(Function):
    @staticmethod
    def forward(ctx, x, pool_size, strides, pad):
        backend = backends.for_array(x)
        # -inf padding never wins a window, so "same" windows see only real rows.
        out, argmax = backend.max_pool1d_forward(_pad_length(x, *pad, value=-np.inf), pool_size, strides)
        ctx.backend, ctx.argmax, ctx.pad, ctx.length = backend, argmax, pad, x.shape[1]
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = array_module(grad).ascontiguousarray(grad)
        dx = ctx.backend.max_pool1d_backward(grad, ctx.argmax, ctx.length + sum(ctx.pad))
        return (dx[:, ctx.pad[0]:ctx.pad[0] + ctx.length],)


def max_pool1d(x, pool_size=2, strides=None, padding="valid") -> Tensor:
    """Max over windows of `pool_size` rows every `strides` rows (default pool_size), as
    keras.layers.MaxPooling1D: x [B,L,C] -> [B,L_out,C]. padding "valid" or "same"
    (L_out = ceil(L/s)). The gradient goes to the first maximum of each window.

    Example:
        >>> max_pool1d(np.arange(6.0).reshape(1, 6, 1), 2).numpy().ravel()
        array([1., 3., 5.])
    """
    x = _float_tensor(x, "max_pool1d", "x", ndim=3)
    pool_size = _positive_int(pool_size, "max_pool1d", "pool_size")
    strides = pool_size if strides is None else _positive_int(strides, "max_pool1d", "strides")
    pad = _window_padding(x.shape[1], pool_size, strides, padding, "max_pool1d")
    conv1d_output_length(x.shape[1] + sum(pad), pool_size, strides, 1, op="max_pool1d")
    return _MaxPool1D.apply(x, pool_size=pool_size, strides=strides, pad=pad)


def global_max_pool1d(x) -> Tensor:
    """x: [B,L,C] -> [B,C], the max over L (tied maxima share the gradient, as Keras on torch).

    Example:
        >>> global_max_pool1d(np.arange(6.0).reshape(1, 3, 2)).numpy()
        array([[4., 5.]])
    """
    x = _float_tensor(x, "global_max_pool1d", "x", ndim=3)
    if x.shape[1] == 0:
        raise ValueError(f"global_max_pool1d: x must have at least one step, got shape {x.shape}")
    return x.max(axis=1)


def global_avg_pool1d(x, mask=None) -> Tensor:
    """x: [B,L,C], mask: [B,L] bool or None -> [B,C], the mean over the unmasked steps.

    As keras.layers.GlobalAveragePooling1D: masked steps count neither in the sum nor in the
    divisor, so a fully masked row gives NaN (Keras's 0/0) and a zero gradient to its x.

    Example:
        >>> x = np.array([[[1.0], [3.0], [9.0]]])
        >>> global_avg_pool1d(x, mask=np.array([[True, True, False]])).numpy()
        array([[2.]])
    """
    x = _float_tensor(x, "global_avg_pool1d", "x", ndim=3)
    if mask is None:
        if x.shape[1] == 0:
            raise ValueError(f"global_avg_pool1d: x must have at least one step, got shape {x.shape}")
        return x.mean(axis=1)
    xp = array_module(x.data)
    mask = xp.asarray(_data(mask)).astype(bool)
    if mask.shape != x.shape[:2]:
        raise ValueError(f"global_avg_pool1d: mask must have shape {x.shape[:2]}, got {mask.shape}")
    count = mask.sum(axis=1, keepdims=True).astype(x.dtype)
    # 1/count without a 0/0 warning; NaN where a row has no unmasked step, as Keras gives.
    inverse = xp.where(count > 0, 1 / xp.maximum(count, 1), xp.asarray(np.nan, dtype=x.dtype))
    return where(mask[:, :, None], x, 0.0).sum(axis=1) * Tensor(inverse)
