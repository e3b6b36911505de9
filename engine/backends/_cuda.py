"""The CUDA C sources of the cupy backend: kernels/cuda/<stem>.cu compiled with NVRTC through
CuPy (`cupy.RawModule`), once per device and source, and cached.

Each kernel is a `__global__` template over the float type. A backend module declares the
kernels it launches with `declare(stem, *templates)`, each template a name expression with
`{T}` for the float type ("lstm_step<{T}>"); the loader asks NVRTC for the float and double
instantiation of each, and `tests/test_cuda_sources.py` / `tools/check_cuda.py` compile exactly
those on a machine without a GPU. The per-element cell math is kernels/common/cell.hpp, the
same `__host__ __device__` functions the C++ CPU kernels run.

Example:
    >>> from engine.backends import _cuda
    >>> _cuda.declare("embedding", "embedding_gather<{T}>")
    >>> _cuda.name_expressions("embedding")
    ['embedding_gather<float>', 'embedding_gather<double>']
    >>> gather = _cuda.function("embedding", "embedding_gather<{T}>", np.float32)  # needs a GPU
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

_PACKAGE = Path(__file__).resolve().parents[1]          # engine/
# An installed wheel ships the sources as engine/kernels (CMakeLists.txt); a checkout has
# them at the repository root.
KERNEL_DIR = _PACKAGE / "kernels" if (_PACKAGE / "kernels").is_dir() else _PACKAGE.parent / "kernels"
CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
# fp32 parity: no fast-math, no FMA contraction beyond what the C++ kernels allow.
OPTIONS = ("--std=c++17", f"-I{KERNEL_DIR}")

# stem -> (name-expression templates, cooperative launch?)
SOURCES: dict[str, tuple[tuple[str, ...], bool]] = {}
_modules: dict = {}


def declare(stem: str, *templates: str, cooperative: bool = False) -> None:
    """Register the kernels of kernels/cuda/<stem>.cu the backend launches."""
    known, _ = SOURCES.get(stem, ((), cooperative))
    SOURCES[stem] = (known + tuple(t for t in templates if t not in known), cooperative)


def name_expressions(stem: str) -> list[str]:
    """Every instantiation NVRTC compiles for `stem`: each template for float and double."""
    templates, _ = SOURCES[stem]
    return [t.format(T=c) for t in templates for c in CTYPES.values()]


def source_path(stem: str) -> Path:
    return KERNEL_DIR / "cuda" / f"{stem}.cu"


def source(stem: str) -> str:
    """The source NVRTC sees: the file, with a #line so errors name kernels/cuda/<stem>.cu."""
    path = source_path(stem)
    return f'#line 1 "{path}"\n' + path.read_text()


def ctype(dtype) -> str:
    """The CUDA C type of a float dtype; TypeError for anything else."""
    try:
        return CTYPES[np.dtype(dtype)]
    except KeyError:
        raise TypeError(f"cuda kernels take float32 or float64, got {np.dtype(dtype)}") from None


class CompileError(RuntimeError):
    """NVRTC rejected a source; the message holds each error with its file and line."""


def compile_errors(log: str) -> str:
    """The error lines of an NVRTC log as `file:line: message`, or the whole log if none parse."""
    found = re.findall(r"^(.*?)\((\d+)\): (?:catastrophic )?error: (.*)$", log, re.MULTILINE)
    return "\n".join(f"{f}:{line}: {msg}" for f, line, msg in found) or log.strip()


def nvrtc_unavailable() -> str:
    """Why NVRTC cannot compile here ("" when it can): cupy and an NVRTC library are needed
    (the nvrtc extra on a machine without a GPU; CuPy's own on a GPU machine)."""
    try:
        from cupy_backends.cuda.libs import nvrtc
        nvrtc.getVersion()
    except ImportError:
        return "cupy is not installed (pip install 'seqfuse[nvrtc]')"
    except Exception as exc:  # noqa: BLE001  (CuPy raises several kinds for a missing library)
        return f"no NVRTC library: {exc}"
    return ""


def nvrtc_compile(stem: str, arch: str) -> tuple[str, list[str]]:
    """Compile `stem` for compute_<arch> with NVRTC alone, as cupy.RawModule does on a device
    but without one: (PTX, the lowered name of every instantiation). CompileError naming the
    file and line on failure. Used by tools/check_cuda.py and tests/test_cuda_sources.py."""
    from cupy_backends.cuda.libs import nvrtc

    names = name_expressions(stem)
    program = nvrtc.createProgram(source(stem), f"{stem}.cu", [], [])
    try:
        for name in names:
            nvrtc.addNameExpression(program, name)
        try:
            nvrtc.compileProgram(program, [*OPTIONS, f"-arch=compute_{arch}"])
        except nvrtc.NVRTCError:
            raise CompileError(f"kernels/cuda/{stem}.cu does not compile:\n"
                               f"{compile_errors(nvrtc.getProgramLog(program))}") from None
        ptx = nvrtc.getPTX(program)
        ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
        return ptx.rstrip("\0"), [nvrtc.getLoweredName(program, name) for name in names]
    finally:
        nvrtc.destroyProgram(program)


def module(stem: str):
    """The compiled cupy.RawModule of kernels/cuda/<stem>.cu for the current device (cached)."""
    import cupy

    key = (cupy.cuda.runtime.getDevice(), stem)
    if key not in _modules:
        templates, cooperative = SOURCES[stem]
        raw = cupy.RawModule(code=source(stem), options=OPTIONS,
                             name_expressions=name_expressions(stem),
                             enable_cooperative_groups=cooperative)
        try:
            raw.compile()
        except cupy.cuda.compiler.CompileException as exc:
            raise CompileError(f"kernels/cuda/{stem}.cu does not compile:\n"
                               f"{compile_errors(str(exc))}") from None
        _modules[key] = raw
    return _modules[key]


def function(stem: str, template: str, dtype):
    """The RawKernel `template` (with {T}) instantiated for `dtype`, from kernels/cuda/<stem>.cu."""
    return module(stem).get_function(template.format(T=ctype(dtype)))


def blocks(n: int, threads: int = 256) -> tuple:
    """A 1-D grid covering n elements with `threads` per block (at least one block)."""
    return (max(1, -(-int(n) // threads)),)
