"""The optimizers' updates on the GPU: one fused elementwise kernel per parameter and step.

On the CPU each optimizer's `_update` is a few NumPy expressions, each a pass over memory.
On the GPU the same formulas run as one `cupy.ElementwiseKernel` that reads the gradient,
updates the slots (momenta) and the parameter in place, and decays the weights first (as
`Optimizer._decay`). The arithmetic is written to round as the NumPy code does: float32
throughout, except Adam's last term, which NumPy computes in float64 because its step size
`alpha` is a NumPy float64 scalar; FMA contraction is off (`--fmad=false`).

`ok` is a 0-d bool array on the device: where it is false the kernel writes nothing, which is
how `fit` skips the step of a non-finite loss without reading the loss back to the host.

Example (on a GPU):
    >>> update = kernel("adam", amsgrad=False)
    >>> update(grad, lr, decay, 1 - b1, 1 - b2, alpha, eps, ok, param, m, v)   # in place
"""
from __future__ import annotations

import functools

import numpy as np

_DECAY = "T pd = decay != (T)0 ? p - p * decay : p;"

# name -> (extra input params, output params (slots, then p), body after _DECAY)
_BODIES = {
    "sgd": ("T lr", "T p", "p = pd - lr * g;"),
    "sgd_momentum": ("T lr, T momentum", "T m, T p",
                     "m = momentum * m - lr * g; p = pd + m;"),
    "sgd_nesterov": ("T lr, T momentum", "T m, T p",
                     "m = momentum * m - lr * g; p = pd + (momentum * m - lr * g);"),
    # increment = lr*g / sqrt(denominator), as RMSprop._update; ((1-rho)*g)*g as NumPy does
    "rmsprop": ("T lr, T rho, T one_minus_rho, T eps", "T v, T p",
                "v = rho * v + one_minus_rho * g * g;"
                "p = pd - lr * g / sqrt(v + eps);"),
    "rmsprop_momentum": ("T lr, T rho, T one_minus_rho, T eps, T momentum", "T v, T m, T p",
                         "v = rho * v + one_minus_rho * g * g;"
                         "m = momentum * m + lr * g / sqrt(v + eps); p = pd - m;"),
    "rmsprop_centered": ("T lr, T rho, T one_minus_rho, T eps", "T v, T a, T p",
                         "v = rho * v + one_minus_rho * g * g; a = rho * a + one_minus_rho * g;"
                         "p = pd - lr * g / sqrt(v - a * a + eps);"),
    "rmsprop_centered_momentum": ("T lr, T rho, T one_minus_rho, T eps, T momentum", "T v, T a, T m, T p",
                                  "v = rho * v + one_minus_rho * g * g; a = rho * a + one_minus_rho * g;"
                                  "m = momentum * m + lr * g / sqrt(v - a * a + eps); p = pd - m;"),
    # m += (g - m)(1-β1); v += (g² - v)(1-β2); p -= (m·alpha) / (sqrt(v) + ε), the last in double
    "adam": ("T one_minus_b1, T one_minus_b2, float64 alpha, T eps", "T m, T v, T p",
             "m = m + (g - m) * one_minus_b1; v = v + (g * g - v) * one_minus_b2;"
             "p = (T)((double)pd - ((double)m * alpha) / (double)(sqrt(v) + eps));"),
    "adam_amsgrad": ("T one_minus_b1, T one_minus_b2, float64 alpha, T eps", "T m, T v, T v_hat, T p",
                     "m = m + (g - m) * one_minus_b1; v = v + (g * g - v) * one_minus_b2;"
                     "v_hat = v > v_hat ? v : v_hat;"   # np.maximum(v_hat, v) for finite values
                     "p = (T)((double)pd - ((double)m * alpha) / (double)(sqrt(v_hat) + eps));"),
}


def source(name: str) -> tuple[str, str, str]:
    """(in_params, out_params, operation) of update `name`, as cupy.ElementwiseKernel takes them."""
    extra, outputs, body = _BODIES[name]
    # Every output is read before it is written: ElementwiseKernel outputs are references into
    # the arrays, so p, m, v... are updated in place. Nothing is written where ok is false.
    return f"T g, T decay, bool ok, {extra}", outputs, f"if (ok) {{ {_DECAY} {body} }}"


def names() -> list[str]:
    return list(_BODIES)


def standalone_source(name: str, host: bool = False) -> str:
    """Update `name` as a plain C++ template binding its parameters as CuPy's ElementwiseKernel
    does (inputs by value, outputs as references into the arrays): a `__global__` kernel that
    NVRTC compile-checks without a GPU, or (host=True) a host loop with `extern "C"` float and
    double entry points `<name>_float` / `<name>_double`, which tests/test_device.py builds
    with the C++ compiler to check the kernel's arithmetic against the NumPy update."""
    in_params, out_params, operation = source(name)
    args, binds = [], []
    for param in in_params.split(", "):
        ctype, var = param.split()
        ctype = {"float64": "double"}.get(ctype, ctype)
        if var in ("g", "ok"):   # arrays: the gradient per element, the flag broadcast (0-d)
            args.append(f"const {ctype}* {var}_")
            binds.append(f"const {ctype} {var} = {var}_[{'i' if var == 'g' else '0'}];")
        else:
            args.append(f"const {ctype} {var}")
    for param in out_params.split(", "):
        _, var = param.split()
        args.append(f"T* {var}_")
        binds.append(f"T& {var} = {var}_[i];")
    args.append("long long n")
    loop = ("for (long long i = 0; i < n; ++i)" if host else
            "for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;"
            " i += (long long)blockDim.x * gridDim.x)")
    code = (f"template <typename T> {'' if host else '__global__ '}void seqfuse_{name}_update("
            f"{', '.join(args)}) {{\n  {loop} {{ {' '.join(binds)} {operation} }}\n}}\n")
    if not host:
        return code
    names = [a.split()[-1] for a in args]
    wrappers = "".join(
        f'extern "C" void {name}_{t}({", ".join(args).replace("T*", f"{t}*").replace("const T ", f"const {t} ")}) '
        f"{{ seqfuse_{name}_update<{t}>({', '.join(names)}); }}\n" for t in ("float", "double"))
    return "#include <cmath>\nusing std::sqrt;\n" + code + wrappers


@functools.lru_cache(maxsize=None)
def kernel(name: str):
    """The cupy.ElementwiseKernel of update `name` (compiled per dtype and device on first use)."""
    import cupy
    in_params, out_params, operation = source(name)
    return cupy.ElementwiseKernel(in_params, out_params, operation, name=f"seqfuse_{name}_update",
                                  options=("--fmad=false",), no_return=True)


@functools.lru_cache(maxsize=None)
def _always():
    import cupy
    return cupy.ones((), dtype=bool)


def arguments(name: str, param, grad, decay: float, ok, scalars: tuple, slots: tuple) -> tuple:
    """The kernel's arguments in order: grad, decay, ok, the scalars, the slots, param.

    param, slots: arrays of one shape and dtype; grad: the same shape; decay: the weight-decay
    factor weight_decay·lr (0 for none); ok: 0-d bool array; scalars: the kernel's extra
    inputs as Python floats, cast to the param's dtype as NumPy casts Python scalars, except
    Adam's alpha (float64, as on the CPU)."""
    t = param.dtype.type
    extra = _BODIES[name][0].split(", ")
    values = tuple(np.float64(s) if p.startswith("float64") else t(s) for p, s in zip(extra, scalars))
    return (grad, t(decay), ok, *values, *slots, param)


def run(name: str, param, grad, decay: float, ok, scalars: tuple, slots: tuple) -> None:
    """Update param and its slots (in the kernel's output order) in place on the GPU; ok None
    means always (apply_gradients outside fit)."""
    kernel(name)(*arguments(name, param, grad, decay, _always() if ok is None else ok, scalars, slots))
