"""The kernel table: one module per backend, same function names in each.

A backend module has `NAME`, `DEVICE` ("cpu" or "cuda"), `available()`, `why_unavailable()`
and `<op>_forward` / `<op>_backward` for every fused op, plus `embedding_coalesce` (the
row-sparse gradient's coalescing; docs/kernels.md). Modules are discovered by file
name in this package; adding a backend is adding a file.

Choosing one, from strongest to weakest:
    with engine.use_backend("cpp"): ...      # this block, this thread
    engine.set_backend("numba")               # from now on
    ENGINE_BACKEND=reference                  # environment, read at first use
    default: the fastest available CPU backend, by measurement (bench/RESULTS.md)
Arrays on the GPU always go to a "cuda" backend.

Example:
    >>> import engine as en
    >>> en.backends.available()
    ['reference', 'numba', 'cpp']
"""
from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
import threading

# Fastest first, measured with `seqfuse bench` (bench/RESULTS.md).
CPU_PREFERENCE = ("cpp", "numba", "reference")
_LISTING_ORDER = ("reference", "numba", "cpp", "cupy")

_modules: dict | None = None
_local = threading.local()
_chosen: str | None = None


def _discover() -> dict:
    global _modules
    if _modules is None:
        found = {}
        for info in pkgutil.iter_modules(__path__):
            if info.name.startswith("_"):
                continue
            module = importlib.import_module(f"{__name__}.{info.name}")
            found[module.NAME] = module
        rank = {name: i for i, name in enumerate(_LISTING_ORDER)}
        _modules = dict(sorted(found.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))
    return _modules


def names() -> list[str]:
    """Every backend this package has, working or not."""
    return list(_discover())


def available() -> list[str]:
    """The backends that work on this machine."""
    return [n for n in names() if _discover()[n].available()]


def why_unavailable() -> dict[str, str]:
    """{name: reason} for each backend that does not work here."""
    return {n: _discover()[n].why_unavailable() for n in names() if not _discover()[n].available()}


def get(name: str):
    """The backend module `name`; ValueError if unknown or unavailable, with the reason."""
    modules = _discover()
    if name not in modules:
        raise ValueError(f"backend: unknown name {name!r}; expected one of {names()}")
    module = modules[name]
    if not module.available():
        raise ValueError(f"backend: {name!r} is not available here: {module.why_unavailable()}")
    return module


def _default_cpu() -> str:
    env = os.environ.get("ENGINE_BACKEND")
    if env:
        get(env)
        return env
    return next(n for n in CPU_PREFERENCE if n in available())


def get_backend() -> str:
    """The name of the backend that CPU arrays go to now."""
    return getattr(_local, "override", None) or _chosen or _default_cpu()


def set_backend(name: str) -> None:
    """Send CPU arrays to backend `name` from now on (all threads)."""
    global _chosen
    get(name)
    _chosen = name


@contextlib.contextmanager
def use_backend(name: str):
    """Send arrays to backend `name` inside the block (this thread only)."""
    get(name)
    previous = getattr(_local, "override", None)
    _local.override = name
    try:
        yield get(name)
    finally:
        _local.override = previous


def for_array(array):
    """The backend module that computes on `array` (cupy arrays go to the cuda backend)."""
    module = get(get_backend())
    on_gpu = type(array).__module__.startswith("cupy")
    if on_gpu and module.DEVICE != "cuda":
        return get("cupy")
    if not on_gpu and module.DEVICE != "cpu":
        raise ValueError(f"backend: {module.NAME!r} computes on {module.DEVICE}, "
                         "but the input is a CPU array; move it with Tensor.to('cuda')")
    return module
