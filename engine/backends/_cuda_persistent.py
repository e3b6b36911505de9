"""Version 2 of the GPU recurrent loops: the whole time loop in one persistent cooperative
launch (kernels/cuda/rnn_persistent.cu), for the hidden sizes whose recurrent kernel fits in
the shared memory of the card's SMs.

Each block owns a contiguous range of hidden units for the whole loop and keeps its slice of
U on chip: the columns of its units' gates (forward) or their rows (backward,
dh_{t-1} = dz_t·Uᵀ). The blocks meet at a grid barrier once per step (twice for gru with
reset_after=False), so nothing is launched per step and U is read from global memory once
per call instead of once per step. The loops take and return exactly what reference.py's
private loops do (time-major xw [T,B,G·H] precomputed by _projection.input_projection);
engine/backends/_cuda_rnn.py chooses between them and v1 and wraps them into the kernel
table with _projection.

`supports(op, B, H, dtype)` says whether a shape runs here on the current device;
`fits(...)` is the same decision from a properties dict, so it is testable without a GPU:

    >>> H100 = {"multiProcessorCount": 132, "sharedMemPerBlockOptin": 232448}
    >>> fits("lstm", 16, 512, np.float32, H100), fits("lstm", 16, 2048, np.float32, H100)
    (True, False)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _cuda
from ._projection import bias_gradient

STEM = "rnn_persistent"
THREADS = 256          # = seqfuse::persistent::kThreads in kernels/cuda/persistent.cuh
GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}

# Test hooks (tests/test_gpu_persistent.py): at most this many blocks / batch rows per tile,
# to run several units per block and ragged batch tiles at small shapes. None: no cap.
MAX_BLOCKS = None
MAX_BATCH_TILE = None

_cuda.declare(STEM, *(f"{op}_persistent_{d}<{{T}}>" for op in GATES for d in ("forward", "backward")),
              cooperative=True)


@dataclass(frozen=True)
class Plan:
    """One launch: `blocks` blocks of THREADS threads, `units` hidden units per block (the
    last block may have fewer, none has zero), the batch staged `batch_tile` rows at a time,
    `shared_bytes` of dynamic shared memory per block (weights slice + batch tile)."""
    blocks: int
    units: int
    batch_tile: int
    shared_bytes: int


def _gates(op):
    if op not in GATES:
        raise ValueError(f"op must be one of {sorted(GATES)}, got {op!r}")
    return GATES[op]


def plan(op, B, H, itemsize, properties, *, backward=False):
    """The launch of the forward (or backward) loop of `op` at batch B and H units for a
    device with these properties (cupy.cuda.runtime.getDeviceProperties keys
    multiProcessorCount, sharedMemPerBlockOptin and, if present, cooperativeLaunch), or None
    when the slice of U plus one batch row does not fit a block's shared memory.

    One block per SM at most (a cooperative launch needs every block resident; with the
    weights in shared memory a second block per SM would not add room for them) and as many
    as there are units: units = ceil(H / blocks). Shared memory, in elements (the layout of
    kernels/cuda/persistent.cuh): forward units·G·(H+1) weights + batch_tile·H staged states;
    backward units·(G·H+1) + batch_tile·G·H staged step gradients.
    """
    G = _gates(op)
    if not properties.get("cooperativeLaunch", 1):
        return None
    blocks = min(int(properties["multiProcessorCount"]), H, MAX_BLOCKS or H)
    units = -(-H // blocks)
    blocks = -(-H // units)
    weights = units * (G * H + 1) if backward else units * G * (H + 1)
    row = G * H if backward else H
    free = int(properties["sharedMemPerBlockOptin"]) // itemsize - weights
    if free < row:
        return None
    batch_tile = min(B, free // row, MAX_BATCH_TILE or B)
    return Plan(blocks, units, batch_tile, (weights + batch_tile * row) * itemsize)


def fits(op, B, H, dtype, properties) -> bool:
    """Whether both loops of `op` can run at (B, H, dtype) on a device with `properties`."""
    _gates(op)
    if int(B) < 1 or int(H) < 1:
        raise ValueError(f"B and H must be >= 1, got B={B}, H={H}")
    if np.dtype(dtype) not in _cuda.CTYPES:
        return False
    itemsize = np.dtype(dtype).itemsize
    return all(plan(op, int(B), int(H), itemsize, properties, backward=bw) is not None
               for bw in (False, True))


_properties: dict = {}


def device_properties(device=None) -> dict:
    """cupy.cuda.runtime.getDeviceProperties of `device` (default: the current one), cached."""
    import cupy

    dev = cupy.cuda.runtime.getDevice() if device is None else int(device)
    if dev not in _properties:
        _properties[dev] = cupy.cuda.runtime.getDeviceProperties(dev)
    return _properties[dev]


def supports(op, B, H, dtype, device=None) -> bool:
    """True when the persistent kernels can run `op` ("lstm", "gru" or "simple_rnn"; gru's
    reset_after does not change the sizes) at batch B, H units and `dtype` on `device`
    (default: the current one); False as well without CuPy or a device."""
    try:
        import cupy
        properties = device_properties(device)
    except ImportError:
        return False
    except cupy.cuda.runtime.CUDARuntimeError:
        return False
    return fits(op, B, H, dtype, properties)


# ---------------------------------------------------------------- argument checks

def _check(where, name, a, shape, dtype):
    if a is None:
        raise ValueError(f"{where}: {name} is required")
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{where}: {name} must have shape {tuple(shape)}, got {tuple(a.shape)}")
    if a.dtype != dtype:
        raise TypeError(f"{where}: {name} must have dtype {dtype} like xw, got {a.dtype}")


def _check_optional(where, name, a, shape, dtype):
    if a is not None:
        _check(where, name, a, shape, dtype)


def _sizes(where, op, lead, lead_name, U):
    """(T, B, H, dtype) from the leading [T,B,·] array and U [H, G·H], checked."""
    G = GATES[op]
    if lead.ndim != 3 or lead.shape[0] < 1 or lead.shape[1] < 1:
        raise ValueError(f"{where}: {lead_name} must have shape (T, B, ...) with T, B >= 1, "
                         f"got {tuple(lead.shape)}")
    dtype = lead.dtype
    if dtype not in _cuda.CTYPES:
        raise TypeError(f"{where}: {lead_name} must be float32 or float64, got {dtype}")
    if U.ndim != 2 or U.shape[0] < 1 or U.shape[1] != G * U.shape[0]:
        raise ValueError(f"{where}: U must have shape (H, {G}H), got {tuple(U.shape)}")
    _check(where, "U", U, U.shape, dtype)
    return lead.shape[0], lead.shape[1], U.shape[0], dtype


def _check_masks(where, T, B, H, mask, dropout_mask, dtype):
    if mask is not None:
        if tuple(mask.shape) != (T, B):
            raise ValueError(f"{where}: mask must have shape (T, B) = {(T, B)}, got {tuple(mask.shape)}")
        if mask.dtype != np.bool_:
            raise TypeError(f"{where}: mask must be bool, got {mask.dtype}")
    _check_optional(where, "dropout_mask", dropout_mask, (B, H), dtype)


def _plan_or_raise(where, op, B, H, dtype, backward):
    properties = device_properties()
    found = plan(op, B, H, np.dtype(dtype).itemsize, properties, backward=backward)
    if found is None:
        raise ValueError(f"{where}: H={H} {np.dtype(dtype).name} does not fit the persistent "
                         f"kernel on this device ({properties['sharedMemPerBlockOptin']} bytes of "
                         f"shared memory per block); check supports() and use the v1 loop")
    return found


def _device(where, **arrays):
    """The arrays as C-contiguous cupy arrays (None stays None); TypeError for host arrays."""
    import cupy

    out = []
    for name, a in arrays.items():
        if a is not None and not isinstance(a, cupy.ndarray):
            raise TypeError(f"{where}: {name} must be a cupy array on the GPU, got {type(a).__name__}")
        out.append(None if a is None else cupy.ascontiguousarray(a))
    return out


def _pointer(a):
    """A kernel argument for an optional array: the array, or a null pointer."""
    return np.uint64(0) if a is None else a


def _launch(kernel, dtype, found, T, B, H, *args):
    import cupy

    function = _cuda.function(STEM, kernel + "<{T}>", dtype)
    function.max_dynamic_shared_size_bytes = found.shared_bytes
    barrier = cupy.zeros(1, dtype=cupy.uint32)   # the grid barrier's counter
    function((found.blocks,), (THREADS,),
             (np.int32(T), np.int32(B), np.int32(H), np.int32(found.units),
              np.int32(found.batch_tile), *(_pointer(a) for a in args), barrier),
             shared_mem=found.shared_bytes)


# ---------------------------------------------------------------- loops (reference.py's signatures)

def lstm_loop_forward(xw, U, h0, c0, mask, dropout_mask, *, save=True):
    """xw: [T,B,4H], U: [H,4H], h0/c0: [B,H] -> (hs [T,B,H], cs [T,B,H], gates [T,B,4H]),
    or without `save` (hs, cs [1,B,H] = c_T, None); as reference._lstm_forward."""
    where = "lstm_loop_forward"
    T, B, H, dtype = _sizes(where, "lstm", xw, "xw", U)
    _check(where, "xw", xw, (T, B, 4 * H), dtype)
    _check(where, "h0", h0, (B, H), dtype)
    _check(where, "c0", c0, (B, H), dtype)
    _check_masks(where, T, B, H, mask, dropout_mask, dtype)
    xw, U, h0, c0, mask, dropout_mask = _device(where, xw=xw, U=U, h0=h0, c0=c0, mask=mask,
                                                dropout_mask=dropout_mask)
    import cupy

    found = _plan_or_raise(where, "lstm", B, H, dtype, backward=False)
    hs = cupy.empty((T, B, H), dtype)
    # Inference: cs is one [B,H] state updated in place, starting from c0.
    cs = cupy.empty((T, B, H), dtype) if save else c0.copy()
    gates = cupy.empty((T, B, 4 * H), dtype) if save else None
    _launch("lstm_persistent_forward", dtype, found, T, B, H, xw, U, h0, c0, mask, dropout_mask,
            hs, cs, gates, np.int32(save))
    return (hs, cs, gates) if save else (hs, cs[None], None)


def lstm_loop_backward(dhs, dc_T, U, h0, c0, hs, cs, gates, mask, dropout_mask):
    """-> (dz [T,B,4H], dbias [4H], dh0 [B,H], dc0 [B,H]); as reference._lstm_backward."""
    where = "lstm_loop_backward"
    T, B, H, dtype = _sizes(where, "lstm", dhs, "dhs", U)
    _check(where, "dhs", dhs, (T, B, H), dtype)
    for name, a in (("dc_T", dc_T), ("h0", h0), ("c0", c0)):
        _check(where, name, a, (B, H), dtype)
    _check(where, "hs", hs, (T, B, H), dtype)
    _check(where, "cs", cs, (T, B, H), dtype)
    _check(where, "gates", gates, (T, B, 4 * H), dtype)
    _check_masks(where, T, B, H, mask, dropout_mask, dtype)
    dhs, dc_T, U, c0, cs, gates, mask, dropout_mask = _device(
        where, dhs=dhs, dc_T=dc_T, U=U, c0=c0, cs=cs, gates=gates, mask=mask,
        dropout_mask=dropout_mask)
    import cupy

    found = _plan_or_raise(where, "lstm", B, H, dtype, backward=True)
    dz = cupy.empty((T, B, 4 * H), dtype)
    dh, dc = cupy.zeros((B, H), dtype), dc_T.copy()   # the carries; they end as dh0, dc0
    _launch("lstm_persistent_backward", dtype, found, T, B, H, dhs, U, c0, cs, gates, mask,
            dropout_mask, dz, dh, dc)
    return dz, bias_gradient(dz), dh, dc


def gru_loop_forward(xw, U, recurrent_bias, h0, mask, dropout_mask, reset_after=True, *, save=True):
    """xw: [T,B,3H], U: [H,3H], recurrent_bias: [3H] or None, h0: [B,H]
    -> (hs [T,B,H], gates [T,B,3H], uh [T,B,H] or [0]), gates and uh None without `save`;
    as reference._gru_forward."""
    where = "gru_loop_forward"
    T, B, H, dtype = _sizes(where, "gru", xw, "xw", U)
    _check(where, "xw", xw, (T, B, 3 * H), dtype)
    _check(where, "h0", h0, (B, H), dtype)
    _check_optional(where, "recurrent_bias", recurrent_bias, (3 * H,), dtype)
    if recurrent_bias is not None and not reset_after:
        raise ValueError(f"{where}: recurrent_bias must be None when reset_after is False "
                         "(the whole bias is in the input projection)")
    _check_masks(where, T, B, H, mask, dropout_mask, dtype)
    xw, U, rb, h0, mask, dropout_mask = _device(where, xw=xw, U=U, recurrent_bias=recurrent_bias,
                                                h0=h0, mask=mask, dropout_mask=dropout_mask)
    import cupy

    found = _plan_or_raise(where, "gru", B, H, dtype, backward=False)
    hs = cupy.empty((T, B, H), dtype)
    # Without save, gates is a one-step scratch: reset_after=False keeps z there between the
    # step's two products.
    gates = cupy.empty((T, B, 3 * H) if save else (B, 3 * H), dtype)
    uh = cupy.empty((T, B, H) if reset_after else (0,), dtype) if save else None
    rh = None if reset_after else cupy.empty((B, H), dtype)
    _launch("gru_persistent_forward", dtype, found, T, B, H, xw, U, rb, h0, mask, dropout_mask,
            hs, gates, uh if reset_after else None, rh, np.int32(save), np.int32(reset_after))
    return (hs, gates, uh) if save else (hs, None, None)


def gru_loop_backward(dhs, U, recurrent_bias, h0, hs, gates, uh, mask, dropout_mask, reset_after=True):
    """-> (dxw [T,B,3H], du [T,B,3H], dbias [2,3H] or [3H], dh0 [B,H]); as
    reference._gru_backward (recurrent_bias does not enter the gradients)."""
    where = "gru_loop_backward"
    T, B, H, dtype = _sizes(where, "gru", dhs, "dhs", U)
    _check(where, "dhs", dhs, (T, B, H), dtype)
    _check(where, "h0", h0, (B, H), dtype)
    _check(where, "hs", hs, (T, B, H), dtype)
    _check(where, "gates", gates, (T, B, 3 * H), dtype)
    if reset_after:
        _check(where, "uh", uh, (T, B, H), dtype)
    _check_optional(where, "recurrent_bias", recurrent_bias, (3 * H,), dtype)
    _check_masks(where, T, B, H, mask, dropout_mask, dtype)
    dhs, U, h0, hs, gates, uh, mask, dropout_mask = _device(
        where, dhs=dhs, U=U, h0=h0, hs=hs, gates=gates, uh=uh if reset_after else None,
        mask=mask, dropout_mask=dropout_mask)
    import cupy

    found = _plan_or_raise(where, "gru", B, H, dtype, backward=True)
    dxw, du = cupy.empty((T, B, 3 * H), dtype), cupy.empty((T, B, 3 * H), dtype)
    dh = cupy.zeros((B, H), dtype)
    _launch("gru_persistent_backward", dtype, found, T, B, H, dhs, U, h0, hs, gates, uh, mask,
            dropout_mask, dxw, du, dh, np.int32(reset_after))
    return dxw, du, bias_gradient(dxw, du if reset_after else None), dh


def simple_rnn_loop_forward(xw, U, h0, mask, dropout_mask):
    """xw: [T,B,H], U: [H,H], h0: [B,H] -> hs [T,B,H]; as reference._simple_rnn_forward."""
    where = "simple_rnn_loop_forward"
    T, B, H, dtype = _sizes(where, "simple_rnn", xw, "xw", U)
    _check(where, "xw", xw, (T, B, H), dtype)
    _check(where, "h0", h0, (B, H), dtype)
    _check_masks(where, T, B, H, mask, dropout_mask, dtype)
    xw, U, h0, mask, dropout_mask = _device(where, xw=xw, U=U, h0=h0, mask=mask,
                                            dropout_mask=dropout_mask)
    import cupy

    found = _plan_or_raise(where, "simple_rnn", B, H, dtype, backward=False)
    hs = cupy.empty((T, B, H), dtype)
    _launch("simple_rnn_persistent_forward", dtype, found, T, B, H, xw, U, h0, mask, dropout_mask, hs)
    return hs


def simple_rnn_loop_backward(dhs, U, h0, hs, mask, dropout_mask):
    """-> (dz [T,B,H], dbias [H], dh0 [B,H]); as reference._simple_rnn_backward."""
    where = "simple_rnn_loop_backward"
    T, B, H, dtype = _sizes(where, "simple_rnn", dhs, "dhs", U)
    _check(where, "dhs", dhs, (T, B, H), dtype)
    _check(where, "h0", h0, (B, H), dtype)
    _check(where, "hs", hs, (T, B, H), dtype)
    _check_masks(where, T, B, H, mask, dropout_mask, dtype)
    dhs, U, hs, mask, dropout_mask = _device(where, dhs=dhs, U=U, hs=hs, mask=mask,
                                             dropout_mask=dropout_mask)
    import cupy

    found = _plan_or_raise(where, "simple_rnn", B, H, dtype, backward=True)
    dz = cupy.empty((T, B, H), dtype)
    dh = cupy.zeros((B, H), dtype)
    _launch("simple_rnn_persistent_backward", dtype, found, T, B, H, dhs, U, hs, mask,
            dropout_mask, dz, dh)
    return dz, bias_gradient(dz), dh
