"""The kernels of the OpenBLAS builds NumPy and SciPy bundle, re-picked when they guessed low.

Those builds carry kernels for several x86-64 generations and pick one at load time from
the CPU's identity (OpenBLAS's DYNAMIC_ARCH). A CPU newer than the OpenBLAS release is not
recognized and gets an older generation's kernels: on the 2-vCPU AMD EPYC Zen 5 VM (family
26), scipy-openblas 0.3.31 picks "Haswell" (AVX2), and NumPy's float32 matmul reaches 229
GFLOP/s on both cores at n = 2048; with its "SkylakeX" (AVX-512) kernels, which that CPU
runs, 436 GFLOP/s, and a weight-gradient GEMM (6400×64)ᵀ·(6400×512) 200 -> 328 GFLOP/s
(2026-11-30). Every GEMM of a training step goes through these libraries: the weight
gradients (engine/_blas.py), Dense layers, and Numba's np.dot.

So at `import engine`, when a bundled OpenBLAS runs an AVX2-or-older core type on a CPU
that has every AVX-512 extension the SkylakeX kernels use, it is re-initialized with
SkylakeX: OpenBLAS's own gotoblas_dynamic_quit, then gotoblas_dynamic_init with
OPENBLAS_CORETYPE set, the variable OpenBLAS reads to force a core type at load time.
SEQFUSE_BLAS_CORE chooses: "auto" (default, as above), "keep" (leave OpenBLAS's pick), or a
core type name to force ("Haswell", "SkylakeX", ...; OpenBLAS falls back to its own pick for
a name it does not know or cannot run).
"""
from __future__ import annotations

import ctypes
import glob
import importlib.util
import os

from . import _cpu

# Core types whose kernels are older than AVX-512 (OpenBLAS's names); SkylakeX needs these.
OLDER_CORES = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Sandybridge", "Haswell",
               "Zen", "Excavator", "Piledriver", "Steamroller", "Bulldozer", "Barcelona"}
SKYLAKEX_FLAGS = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}
_CORENAME = ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename")

picked = {}  # library file name -> core type in use after select(), for reports
_own = {}    # library path -> the core type OpenBLAS picked itself at load, before any re-pick


def bundled_libraries() -> list:
    """Paths of the OpenBLAS shared libraries NumPy and SciPy ship (numpy.libs, scipy.libs)."""
    paths = []
    for package in ("numpy", "scipy"):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.origin:
            continue
        libs = os.path.join(os.path.dirname(os.path.dirname(spec.origin)), f"{package}.libs")
        paths += sorted(glob.glob(os.path.join(libs, "libscipy_openblas*.so*")))
    return paths


def _corename(lib) -> str | None:
    for name in _CORENAME:
        fn = getattr(lib, name, None)
        if fn is not None:
            fn.restype = ctypes.c_char_p
            return fn().decode()
    return None


def _reinit(lib, core: str) -> None:
    """OpenBLAS's own re-initialization, with OPENBLAS_CORETYPE = core for its duration."""
    before = os.environ.get("OPENBLAS_CORETYPE")
    os.environ["OPENBLAS_CORETYPE"] = core
    try:
        lib.gotoblas_dynamic_quit()
        lib.gotoblas_dynamic_init()
    finally:
        if before is None:
            del os.environ["OPENBLAS_CORETYPE"]
        else:
            os.environ["OPENBLAS_CORETYPE"] = before


def target_core(current: str, choice: str, flags: set) -> str | None:
    """The core type to switch to, or None to keep `current`."""
    if choice == "keep":
        return None
    if choice != "auto":
        return None if choice.lower() == current.lower() else choice
    if current in OLDER_CORES and SKYLAKEX_FLAGS <= flags:
        return "SkylakeX"
    return None


def select(environ=os.environ) -> dict:
    """Apply SEQFUSE_BLAS_CORE to every bundled OpenBLAS; returns {library: core type in use}.
    The choice is applied to the core type OpenBLAS picked itself at load, whatever an earlier
    select() switched to, so "auto" and "keep" give the same kernels every time they are
    selected (a test switches back and forth in one process)."""
    choice = environ.get("SEQFUSE_BLAS_CORE", "auto").strip() or "auto"
    flags = _cpu.flags()
    for path in bundled_libraries():
        try:
            lib = ctypes.CDLL(path)
            current = _corename(lib)
            if current is None or not hasattr(lib, "gotoblas_dynamic_init"):
                continue  # not a DYNAMIC_ARCH OpenBLAS: nothing to re-pick
            own = _own.setdefault(path, current)
            core = target_core(own, choice, flags) or own
            if core.lower() != current.lower():
                _reinit(lib, core)
                current = _corename(lib)
        except OSError:
            continue
        picked[os.path.basename(path)] = current
    return dict(picked)
