"""seqfuse: a small deep-learning engine for text and sequences.

Example:
    >>> import engine as en, numpy as np
    >>> x = en.Tensor(np.ones((2, 3)), requires_grad=True)
    >>> (x * x).sum().backward(); x.grad
    array([[2., 2., 2.],
           [2., 2., 2.]])
"""
from __future__ import annotations

import importlib
import sys

from . import _cpu
from . import _memory  # noqa: F401  (keeps freed memory for reuse: see _memory.py)
from . import _openblas
from .backends import get_backend, set_backend, use_backend
from .tensor import Tensor, concatenate, is_grad_enabled, no_grad, stack, where

__version__ = "0.1.0"

_openblas.select()  # NumPy/SciPy OpenBLAS kernels for this CPU (see _openblas.py)
# A portable build of the C++ extension has one build per x86-64 level: this CPU's stands as
# engine._C (SEQFUSE_ISA forces one; see _cpu.py). The default build is imported when used.
_level_build = _cpu.load_extension(__name__)
if _level_build is not None:
    sys.modules[f"{__name__}._C"] = _C = _level_build

_SUBMODULES = ("functional", "layers", "backends", "text", "data", "datasets", "testing",
               "losses", "optimizers", "metrics", "callbacks", "initializers", "models", "sparse",
               "random", "utils", "generation", "distributed", "device")
_LAZY = {"Sequential": "models", "Model": "models", "load_model": "models", "Input": "models",
         "set_random_seed": "random"}


def __getattr__(name):
    # Submodules load on first use so `import engine` stays fast (numba is not imported yet).
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES) + list(_LAZY))
