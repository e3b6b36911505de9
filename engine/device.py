"""Devices: "cpu" (NumPy arrays) and "cuda" (CuPy arrays on an NVIDIA GPU).

A Tensor lives where its array lives. `Tensor.to("cuda")`, `layer.to("cuda")` and
`model.to("cuda")` move arrays; `set_default_device("cuda")` (as torch.set_default_device)
makes the weights of layers built from then on start on the GPU, and models copy NumPy
batches there. TF32 tensor-core GEMMs are off by default, so float32 results match the
CPU's to float32 rounding; `allow_tf32(True)` trades that for cuBLAS speed.

Example:
    >>> import engine as en
    >>> en.device.is_available("cuda")
    False
    >>> en.device.why_unavailable("cuda")
    'no usable CUDA device: ...'
    >>> model.to("cuda")                       # needs a GPU: DeviceUnavailableError here
    >>> en.device.allow_tf32(True)             # faster float32 GEMMs, ~1e-3 relative error
"""
from __future__ import annotations

import contextlib

import numpy as np

DEVICES = ("cpu", "cuda")

_default = "cpu"
_tf32 = False
_tf32_applied = None   # the setting last handed to CuPy (None: not yet)


class DeviceUnavailableError(RuntimeError):
    """The device asked for is not usable here; the message says why (no CuPy, no driver...)."""


def check_name(device, what: str) -> str:
    """device as "cpu" or "cuda"; ValueError naming `what` for anything else."""
    if device not in DEVICES:
        raise ValueError(f"{what}: device must be 'cpu' or 'cuda', got {device!r}")
    return device


def why_unavailable(device: str = "cuda") -> str:
    """"" when `device` works here, else the reason (the cupy backend's why_unavailable)."""
    if check_name(device, "why_unavailable") == "cpu":
        return ""
    from . import backends
    return backends.why_unavailable().get("cupy", "")


def is_available(device: str = "cuda") -> bool:
    return not why_unavailable(device)


def require(device: str, what: str) -> str:
    """Check that `device` works here before anything moves; DeviceUnavailableError with the
    reason otherwise. On the GPU this also applies the TF32 setting (off unless allowed)."""
    check_name(device, what)
    reason = why_unavailable(device)
    if reason:
        raise DeviceUnavailableError(f"{what}: device 'cuda' is not available here: {reason}")
    if device == "cuda" and _tf32_applied != _tf32:
        _apply_tf32()
    return device


def default_device() -> str:
    """The device new layers create their weights on ("cpu" unless set_default_device)."""
    return _default


def set_default_device(device: str) -> None:
    """Build the weights of layers (and send models' NumPy batches) to `device` from now on.

    Layers already built stay where they are; move them with `model.to(device)`.
    """
    global _default
    _default = require(device, "set_default_device")


@contextlib.contextmanager
def default_device_scope(device: str):
    """set_default_device inside the block only (the `seqfuse train --device` wrapper)."""
    global _default
    previous = _default
    set_default_device(device)
    try:
        yield
    finally:
        _default = previous


def allow_tf32(flag: bool = True) -> None:
    """Let cuBLAS run float32 GEMMs on TF32 tensor cores (10-bit mantissa inputs, float32
    accumulation), as torch.backends.cuda.matmul.allow_tf32. Off by default: training on the
    GPU then reaches the CPU's losses to float32 rounding. Takes effect for GEMMs from now on
    (all devices, all threads: CuPy keeps one compute type per dtype). Elementwise kernels and
    the recurrent cell math are unaffected."""
    global _tf32
    _tf32 = bool(flag)
    if is_available("cuda"):   # else nothing to apply: require("cuda") applies it on first use
        _apply_tf32()


def tf32_allowed() -> bool:
    return _tf32


def _apply_tf32():
    """Hand the TF32 choice to CuPy: cupy._core.set_compute_type(float32, ...) selects
    CUBLAS_COMPUTE_32F_FAST_TF32 (TF32) or CUBLAS_COMPUTE_32F (default) for every float32
    matmul. Set explicitly both ways, so a CUPY_TF32=1 in the environment does not turn it on
    behind our back."""
    global _tf32_applied
    from cupy._core import _routines_linalg as linalg
    mode = linalg.COMPUTE_TYPE_TF32 if _tf32 else linalg.COMPUTE_TYPE_DEFAULT
    linalg.set_compute_type(np.float32, mode)
    _tf32_applied = _tf32


def to_device(array, device: str):
    """array (NumPy, CuPy, or anything np.asarray takes) on `device`; no copy if already there."""
    on_gpu = type(array).__module__.startswith("cupy")
    if device == "cuda":
        if on_gpu:
            return array
        import cupy
        return cupy.asarray(array)
    if on_gpu:
        return array.get()
    return array


def device_of(array) -> str:
    return "cuda" if type(array).__module__.startswith("cupy") else "cpu"
