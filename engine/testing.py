"""Checks for ops and backends, used by the test suite and by `seqfuse parity`.

Example:
    >>> import engine as en, numpy as np
    >>> x = en.Tensor(np.random.rand(3, 4), requires_grad=True)
    >>> en.testing.gradcheck(lambda x: (x * x).tanh(), [x])
    True
"""
from __future__ import annotations

import numpy as np

from . import backends
from .sparse import RowSparse
from .tensor import Tensor, array_module, no_grad


def _as_outputs(result):
    return list(result) if isinstance(result, (tuple, list)) else [result]


def _dense(grad):
    return grad.to_dense() if isinstance(grad, RowSparse) else grad


def _host(array):
    """A numpy copy of a numpy or cupy array (a gradient may be either)."""
    return array.get() if hasattr(array, "get") else array


def _projection(outputs, seed):
    """Fixed random cotangents: checking <w, f(x)> checks every output at once."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(o.shape) for o in outputs]


def gradcheck(fn, inputs, eps=1e-6, rtol=1e-6, atol=1e-8, seed=0) -> bool:
    """Compare autograd gradients of fn(*inputs) with float64 central differences.

    fn: Tensors -> Tensor or tuple of Tensors. inputs: float64 Tensors; those with
    requires_grad are checked. Raises AssertionError naming the input and the worst error.
    """
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.requires_grad and x.dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} must be float64 for finite differences, got {x.dtype}")
    outputs = _as_outputs(fn(*inputs))
    weights = _projection(outputs, seed)
    total = sum((o * Tensor(w)).sum() for o, w in zip(outputs, weights))
    for x in inputs:
        if isinstance(x, Tensor):
            x.grad = None
    total.backward()

    def objective():
        with no_grad():
            outs = _as_outputs(fn(*inputs))
        return sum(float((o.numpy() * w).sum()) for o, w in zip(outs, weights))

    for i, x in enumerate(inputs):
        if not (isinstance(x, Tensor) and x.requires_grad):
            continue
        analytic = np.zeros(x.shape) if x.grad is None else np.asarray(_dense(x.grad), dtype=np.float64)
        numeric = numerical_gradient(objective, x.data, eps)
        if not np.allclose(analytic, numeric, rtol=rtol, atol=atol):
            worst = np.unravel_index(np.argmax(np.abs(analytic - numeric)), x.shape)
            raise AssertionError(f"gradcheck: input {i} at {worst}: autograd {analytic[worst]!r}, "
                                 f"finite differences {numeric[worst]!r}")
    return True


def numerical_gradient(loss, array, eps=1e-6):
    """d loss() / d array by central differences, perturbing `array` in place (restored after).

    loss: () -> float, reading `array`; array: float64 numpy array.
    """
    grad = np.zeros(array.shape)
    for i in np.ndindex(array.shape):
        saved = array[i]
        array[i] = saved + eps
        up = loss()
        array[i] = saved - eps
        down = loss()
        array[i] = saved
        grad[i] = (up - down) / (2 * eps)
    return grad


def relative_error(actual, expected) -> float:
    """max|actual - expected| / max(max|expected|, 1e-30): one number per array."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if actual.shape != expected.shape:
        raise AssertionError(f"shape {actual.shape} != expected shape {expected.shape}")
    if expected.size == 0:
        return 0.0
    return float(np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-30))


def run_op(fn, arrays, requires_grad, seed=0, device="cpu"):
    """fn(*Tensors) forward and backward with fixed cotangents on the current backend.

    `device="cuda"` copies the input arrays to the GPU first (arrays fn closes over, such as
    masks, stay where they are). Returns {"forward[j]": output j, "grad[i]": gradient of
    input i} as numpy arrays.
    """
    if device == "cuda":
        import cupy
        arrays = [cupy.asarray(a) for a in arrays]
    inputs = [Tensor(a.copy(), requires_grad=r) if r else Tensor(a) if a.dtype.kind == "f" else a
              for a, r in zip(arrays, requires_grad)]
    outputs = _as_outputs(fn(*inputs))
    results = {f"forward[{j}]": o.numpy() for j, o in enumerate(outputs)}
    weights = _projection(outputs, seed)
    total = sum((o * Tensor(array_module(o.data).asarray(w.astype(o.dtype)))).sum()
                for o, w in zip(outputs, weights)
                if o.requires_grad)
    if isinstance(total, Tensor):
        total.backward()
    for i, (x, r) in enumerate(zip(inputs, requires_grad)):
        if r:
            results[f"grad[{i}]"] = np.zeros(x.shape) if x.grad is None else _host(_dense(x.grad))
    return results


def backend_errors(fn, arrays, requires_grad, names=None, seed=0) -> dict:
    """Relative error of every backend against the reference, per output and gradient.

    Returns {backend: {"forward[0]": err, "grad[1]": err, ...}} for the backends in `names`
    (default: every available CPU backend but the reference). The arrays are numpy; a
    backend on the GPU gets copies on the device, and its results are compared on the host.
    """
    names = names or [n for n in backends.available()
                      if n != "reference" and backends.get(n).DEVICE == "cpu"]
    with backends.use_backend("reference"):
        expected = run_op(fn, arrays, requires_grad, seed)
    errors = {}
    for name in names:
        with backends.use_backend(name):
            actual = run_op(fn, arrays, requires_grad, seed, device=backends.get(name).DEVICE)
        errors[name] = {key: relative_error(actual[key], expected[key]) for key in expected}
    return errors


def assert_backends_match(fn, arrays, requires_grad, rtol, names=None, seed=0) -> dict:
    """backend_errors(...) and AssertionError if any exceeds rtol; returns the errors."""
    errors = backend_errors(fn, arrays, requires_grad, names, seed)
    bad = {(b, k): e for b, errs in errors.items() for k, e in errs.items() if not e <= rtol}
    if bad:
        raise AssertionError(f"backends differ from the reference beyond rtol={rtol}: {bad}")
    return errors
