"""Conv1D and max pooling on the GPU: the cupy backend's conv1d and max_pool1d (docs/kernels.md).

conv1d is im2col + cuBLAS: kernels/cuda/conv1d.cu copies the K taps of each output row into
cols [B·L_out, K·C], and out = cols · kernel.reshape(K·C, O) is one GEMM. Backward is two
GEMMs on the same cols (dkernel = colsᵀ·grad, dcols = grad·kernelᵀ) and a col2im written as
a gather (each dx element sums the taps that read it: deterministic, no atomics); dbias is
grad's column sums in float64, rounded once, as the reference. max_pool1d
(kernels/cuda/max_pool1d.cu) is the C++ kernel's loop forward; backward, the windows that
picked one row form a run, and one thread per run sums it (no atomics). The backward checks
its argmax on the host (a read back, so a wait on the device) unless it is the very array this
module's forward returned, as autograd hands it back: a training step does not wait.

Every function checks shapes, dtypes and ranges on the host first, with the C++ bindings'
messages, before it allocates or launches anything; the checks also run on NumPy arrays
(tests/test_cuda_conv_host.py runs them on the CPU), and a NumPy array that passes them is
refused with a TypeError naming the device. This module imports without cupy or a device.

Example (on a GPU):
    >>> x = cupy.ones((2, 10, 3), "float32"); w = cupy.ones((3, 3, 4), "float32")
    >>> conv1d_forward(x, w, None, 1, 1).shape
    (2, 8, 4)
"""
from __future__ import annotations

import weakref

import numpy as np

from . import _cuda
from .reference import conv1d_output_length

_cuda.declare("conv1d", "conv1d_im2col<{T}>", "conv1d_col2im<{T}>")
_cuda.declare("max_pool1d", "max_pool1d_forward<{T}>", "max_pool1d_backward_runs<{T}>",
              "max_pool1d_backward_columns<{T}>")

# cols holds K·C values per output row, K times the size of x. Past this many bytes the
# B·L_out rows are processed in chunks, so the extra memory stays bounded whatever K, C and
# L are; a chunk still has 2^28 / (K·C·itemsize) rows (105k at K·C = 640 in float32, the
# (B,L,C,K) = (64,1000,128,5) bench layer fits in one), a GEMM large enough to fill the card.
COLS_BYTES = 1 << 28
_MAX_BLOCKS = 2**31 - 1   # CUDA's limit on gridDim.x


# Host checks, shared with _cuda_embedding.py.

def shape_str(a) -> str:
    return str(tuple(int(n) for n in a.shape))


def require_ndim(a, op: str, name: str, ndim: int) -> None:
    if a.ndim != ndim:
        raise ValueError(f"{op}: {name} must have {ndim} dimensions, got shape {shape_str(a)}")


def require_dim(a, op: str, name: str, axis: int, size: int) -> None:
    if a.shape[axis] != size:
        raise ValueError(f"{op}: {name} must have size {size} on axis {axis}, got shape {shape_str(a)}")


def require_float(a, op: str, name: str, like=None) -> None:
    """TypeError unless `a` is float32/float64 (and, given `like`, the same dtype as it)."""
    if np.dtype(a.dtype) not in _cuda.CTYPES:
        raise TypeError(f"{op}: {name} must be float32 or float64, got {a.dtype}")
    if like is not None and a.dtype != like.dtype:
        raise TypeError(f"{op}: {name} dtype {a.dtype} must match x dtype {like.dtype}")


def require_int64(a, op: str, name: str) -> None:
    if a.dtype != np.int64:
        raise TypeError(f"{op}: {name} must be int64, got {a.dtype}")


def require_on_device(op: str, **arrays) -> None:
    """TypeError naming the first argument that is not a cupy array (None is skipped); run
    last, so that NumPy arrays get the shape and dtype errors a device array would."""
    for name, a in arrays.items():
        if a is not None and not type(a).__module__.startswith("cupy"):
            raise TypeError(f"{op}: the cupy backend computes on the GPU, but {name} is a "
                            f"{type(a).__module__}.{type(a).__name__}; move it with Tensor.to('cuda')")


def threads(width: int) -> tuple:
    """Threads per block for a kernel whose threads walk `width` channels: whole warps, <= 256."""
    return (min(256, max(32, -(-int(width) // 32) * 32)),)


def grid(blocks: int, op: str) -> tuple:
    """(blocks,) as a launch grid; ValueError past CUDA's limit instead of a launch failure."""
    if blocks > _MAX_BLOCKS:
        raise ValueError(f"{op}: {blocks} rows exceed the {_MAX_BLOCKS} blocks one launch can have")
    return (int(blocks),)


# conv1d

def _check_conv1d(x, kernel, strides, dilation_rate) -> int:
    """Checks x [B,L,C] and kernel [K,C,O] (same float dtype) and the steps; returns L_out >= 1."""
    require_ndim(x, "conv1d", "x", 3)
    require_ndim(kernel, "conv1d", "kernel", 3)
    require_dim(kernel, "conv1d", "kernel", 1, x.shape[2])
    require_float(x, "conv1d", "x")
    require_float(kernel, "conv1d", "kernel", like=x)
    return conv1d_output_length(x.shape[1], kernel.shape[0], int(strides), int(dilation_rate))


def chunks(total_rows: int, row_bytes: int) -> list[tuple[int, int]]:
    """[(row0, rows), ...] covering [0, total_rows), each at most COLS_BYTES of cols (and at
    least one row)."""
    step = max(1, COLS_BYTES // max(1, row_bytes))
    return [(row0, min(step, total_rows - row0)) for row0 in range(0, total_rows, step)]


def chunk_batches(row0: int, rows: int, length_out: int) -> tuple[int, int]:
    """(b0, nb): the batch rows whose output rows meet [row0, row0 + rows)."""
    b0 = row0 // length_out
    return b0, (row0 + rows - 1) // length_out - b0 + 1


def _pointwise(kernel, strides) -> bool:
    """A 1-tap unit-stride conv reads x's rows as they are: cols would be a copy of x."""
    return kernel.shape[0] == 1 and int(strides) == 1


def _im2col(x, taps, length_out, s, d, row0, cols):
    """cols [rows, K·C] = the taps of output rows row0 .. row0 + rows - 1."""
    _, L, C = x.shape
    _cuda.function("conv1d", "conv1d_im2col<{T}>", x.dtype)(
        grid(cols.shape[0], "conv1d"), threads(C),
        (x, np.int64(L), np.int32(C), np.int32(taps), np.int64(length_out), np.int64(s),
         np.int64(d), np.int64(row0), cols))


def conv1d_forward(x, kernel, bias, strides, dilation_rate):
    """x: [B,L,C] padded, kernel: [K,C,O], bias: [O] or None -> out [B,L_out,O]."""
    length_out = _check_conv1d(x, kernel, strides, dilation_rate)
    if bias is not None:
        require_ndim(bias, "conv1d", "bias", 1)
        require_dim(bias, "conv1d", "bias", 0, kernel.shape[2])
        require_float(bias, "conv1d", "bias", like=x)
    require_on_device("conv1d", x=x, kernel=kernel, bias=bias)
    import cupy

    B, L, C = x.shape
    K, _, O = kernel.shape
    s, d = int(strides), int(dilation_rate)
    x, kernel = cupy.ascontiguousarray(x), cupy.ascontiguousarray(kernel)
    if min(B, C, O) == 0:
        out = cupy.zeros((B, length_out, O), x.dtype)
    else:
        out = cupy.empty((B, length_out, O), x.dtype)
        rows_out = out.reshape(B * length_out, O)   # a view: the GEMMs write out in place
        weights = kernel.reshape(K * C, O)
        if _pointwise(kernel, s):
            cupy.matmul(x.reshape(B * L, C), weights, out=rows_out)
        else:
            parts = chunks(B * length_out, K * C * x.itemsize)
            cols = cupy.empty((parts[0][1], K * C), x.dtype)
            for row0, rows in parts:
                _im2col(x, K, length_out, s, d, row0, cols[:rows])
                cupy.matmul(cols[:rows], weights, out=rows_out[row0:row0 + rows])
    if bias is not None:
        out += bias
    return out


def conv1d_backward(grad, x, kernel, strides, dilation_rate):
    """grad: [B,L_out,O] -> (dx [B,L,C], dkernel [K,C,O], dbias [O] = grad summed over B and L_out)."""
    length_out = _check_conv1d(x, kernel, strides, dilation_rate)
    require_ndim(grad, "conv1d", "grad", 3)
    for axis, size in enumerate((x.shape[0], length_out, kernel.shape[2])):
        require_dim(grad, "conv1d", "grad", axis, size)
    require_float(grad, "conv1d", "grad", like=x)
    require_on_device("conv1d", grad=grad, x=x, kernel=kernel)
    import cupy

    B, L, C = x.shape
    K, _, O = kernel.shape
    s, d = int(strides), int(dilation_rate)
    x, kernel = cupy.ascontiguousarray(x), cupy.ascontiguousarray(kernel)
    rows_grad = cupy.ascontiguousarray(grad).reshape(B * length_out, O)
    # dbias sums B·L_out rows per column: in float64, rounded once, as every backend.
    dbias = rows_grad.sum(axis=0, dtype=np.float64).astype(x.dtype)
    if min(B, C, O) == 0:
        return cupy.zeros(x.shape, x.dtype), cupy.zeros(kernel.shape, x.dtype), dbias
    weights = kernel.reshape(K * C, O)
    dkernel = cupy.empty((K * C, O), x.dtype)
    if _pointwise(kernel, s):
        rows_x = x.reshape(B * L, C)
        cupy.matmul(rows_x.T, rows_grad, out=dkernel)
        dx = cupy.matmul(rows_grad, weights.T).reshape(x.shape)
        return dx, dkernel.reshape(kernel.shape), dbias
    parts = chunks(B * length_out, K * C * x.itemsize)
    # One chunk writes every dx element; several add into a zeroed dx, chunk after chunk.
    dx = cupy.empty(x.shape, x.dtype) if len(parts) == 1 else cupy.zeros(x.shape, x.dtype)
    cols = cupy.empty((parts[0][1], K * C), x.dtype)
    col2im = _cuda.function("conv1d", "conv1d_col2im<{T}>", x.dtype)
    for i, (row0, rows) in enumerate(parts):
        part, part_grad = cols[:rows], rows_grad[row0:row0 + rows]
        _im2col(x, K, length_out, s, d, row0, part)
        if i == 0:
            cupy.matmul(part.T, part_grad, out=dkernel)
        else:
            dkernel += part.T @ part_grad
        cupy.matmul(part_grad, weights.T, out=part)   # dcols [rows, K·C] overwrites cols
        b0, nb = chunk_batches(row0, rows, length_out)
        col2im(grid(nb * L, "conv1d"), threads(C),
               (part, np.int64(L), np.int32(C), np.int32(K), np.int64(length_out), np.int64(s),
                np.int64(d), np.int64(row0), np.int64(rows), np.int64(b0),
                np.int32(len(parts) > 1), dx))
    return dx, dkernel.reshape(kernel.shape), dbias


# max_pool1d

# id(argmax) -> (weak reference, L) for each argmax max_pool1d_forward returned and that is
# still alive (the entry goes with the array). Its positions lie in [0, L) and never
# decrease along L_out (kernels/cuda/max_pool1d.cu), so max_pool1d_backward skips the host
# check, the one read back of a training step on the GPU, for that same array object handed
# back with a length >= L; a copy or an array made by hand is checked. Writing into a
# forward's argmax in place before its backward is not supported.
_forward_argmax: dict[int, tuple[weakref.ref, int]] = {}


def _remember_forward_argmax(argmax, length: int) -> None:
    key = id(argmax)
    _forward_argmax[key] = (weakref.ref(argmax, lambda _, key=key: _forward_argmax.pop(key, None)),
                            length)


def _from_forward(argmax, length: int) -> bool:
    ref, forward_length = _forward_argmax.get(id(argmax), (None, 0))
    return ref is not None and ref() is argmax and length >= forward_length


def max_pool1d_forward(x, pool_size, strides):
    """x: [B,L,C] padded -> (out [B,L_out,C], argmax [B,L_out,C] int64 position along L)."""
    require_ndim(x, "max_pool1d", "x", 3)
    require_float(x, "max_pool1d", "x")
    pool_size, strides = int(pool_size), int(strides)
    length_out = conv1d_output_length(x.shape[1], pool_size, strides, 1, op="max_pool1d")
    require_on_device("max_pool1d", x=x)
    import cupy

    B, L, C = x.shape
    x = cupy.ascontiguousarray(x)
    out = cupy.empty((B, length_out, C), x.dtype)
    argmax = cupy.empty((B, length_out, C), np.int64)
    if out.size:
        _cuda.function("max_pool1d", "max_pool1d_forward<{T}>", x.dtype)(
            grid(B * length_out, "max_pool1d"), threads(C),
            (x, np.int64(L), np.int32(C), np.int64(pool_size), np.int64(strides),
             np.int64(length_out), out, argmax))
    _remember_forward_argmax(argmax, L)
    return out, argmax


def _check_positions(argmax, length: int) -> bool:
    """IndexError naming the first argmax outside [0, length) (the kernels write dx there);
    returns whether argmax never decreases along L_out, as a forward's never does. One
    reduction and one sync for both, as the ids check of embedding."""
    if argmax.size == 0:
        return True
    xp = np if isinstance(argmax, np.ndarray) else __import__("cupy")
    bad = (argmax < 0) | (argmax >= length)
    outside, rising = xp.stack([bad.any(), (argmax[:, 1:] >= argmax[:, :-1]).all()]).tolist()
    if outside:
        where = int(xp.argmax(bad.reshape(-1)))
        raise IndexError(f"max_pool1d: argmax must lie in [0, {length}), got "
                         f"{int(argmax.reshape(-1)[where])} at flat position {where}")
    return bool(rising)


def max_pool1d_backward(grad, argmax, length):
    """grad: [B,L_out,C], argmax: [B,L_out,C] int64 -> dx [B,length,C]; overlapping windows add."""
    require_ndim(grad, "max_pool1d", "grad", 3)
    require_ndim(argmax, "max_pool1d", "argmax", 3)
    for axis in range(3):
        require_dim(argmax, "max_pool1d", "argmax", axis, grad.shape[axis])
    require_float(grad, "max_pool1d", "grad")
    require_int64(argmax, "max_pool1d", "argmax")
    length = int(length)
    runs = _from_forward(argmax, length) or _check_positions(argmax, length)
    require_on_device("max_pool1d", grad=grad, argmax=argmax)
    import cupy

    B, length_out, C = grad.shape
    dx = cupy.zeros((B, length, C), grad.dtype)
    if grad.size:
        # A forward's argmax: every window in parallel; any other: one thread per column.
        kernel, blocks = ("max_pool1d_backward_runs<{T}>", B * length_out) if runs else \
            ("max_pool1d_backward_columns<{T}>", B)
        _cuda.function("max_pool1d", kernel, grad.dtype)(
            grid(blocks, "max_pool1d"), threads(C),
            (cupy.ascontiguousarray(grad), cupy.ascontiguousarray(argmax), np.int64(length_out),
             np.int32(C), np.int64(length), dx))
    return dx
