"""BLAS on all cores without oversubscription.

NumPy's and SciPy's OpenBLAS keep their worker threads spinning for a while after every
multi-threaded call. On a 2-core machine those spinning threads then take a core from the
next fused kernel (our C++ and Numba loops run their own threads): measured on the 2-core
VM, LSTM (64,100,64,128) forward kernel 29 ms right after a threaded GEMM, 10.5 ms with
BLAS on one thread. So the big GEMMs around the fused kernels run here instead, as one
single-threaded BLAS call per core on a block of rows (or of the summed dimension):
- on the C++ kernels' own OpenMP threads, calling NumPy's bundled OpenBLAS from C++
  (engine._C.gemm / gemm_tn), so no third set of threads competes for the cores and no GIL
  passes between threads (a sleeping worker took ~1 ms to pick it up on the VM);
- otherwise (other NumPy builds, strided operands) as Python blocks on those threads
  (engine._C.parallel), or without the C++ extension on a small pool of Python threads.
GEMMs too small to split run on the calling thread, also with one BLAS thread.
The layout copies around the recurrent loops ([B,T,·] <-> [T,B,·], `contiguous`) run on
those threads too: they stream from memory, and one core alone does not reach its bandwidth.
"""
from __future__ import annotations

import contextlib
import ctypes
import glob
import importlib
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
_SPLIT_FLOPS = 4e6  # below this a GEMM runs on the calling thread: dispatch would cost more

_setters = None
_run = None
_gemm = None  # engine._C wired to NumPy's OpenBLAS, False when unavailable
vector_bytes = 0  # SIMD width of the kernels that OpenBLAS runs here, once wired (0: unknown)


def _find_setters():
    """`openblas_set_num_threads_local` of the OpenBLAS builds bundled with numpy and scipy."""
    found = []
    for package in ("numpy", "scipy"):
        try:
            module = importlib.import_module(package)
        except ImportError:
            continue
        libs = os.path.join(os.path.dirname(os.path.dirname(module.__file__)), f"{package}.libs")
        for path in glob.glob(os.path.join(libs, "libscipy_openblas*.so*")):
            try:
                fn = ctypes.CDLL(path).openblas_set_num_threads_local
            except (OSError, AttributeError):
                continue
            fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
            found.append(fn)
    return found


@contextlib.contextmanager
def single_threaded():
    """Inside the block, OpenBLAS calls use one thread (a no-op for other BLAS). The bundled
    OpenBLAS's "local" count is seen by every thread, so set it from one thread at a time."""
    global _setters
    if _setters is None:
        _setters = _find_setters()
    previous = [fn(1) for fn in _setters]
    try:
        yield
    finally:
        for fn, n in zip(_setters, previous):
            fn(n)


def _parallel(fn, n):
    """[fn(lo, hi) for each of CORES blocks of n rows], the blocks on all cores at once."""
    edges = np.linspace(0, n, CORES + 1).astype(int)
    results = [None] * CORES
    run = _runner()

    def block(i):
        results[i] = fn(edges[i], edges[i + 1])
    # OpenBLAS's "local" thread count is process-wide in NumPy's build: set once here, not
    # per block (blocks setting and restoring it at once could leave it at 1).
    with single_threaded():
        run(block, CORES)
    return results


_SPLIT_SUM = 1 << 18  # elements (1 MB of float32): below this NumPy's own sum


def total(a):
    """a.sum() of every element, for a large contiguous float array: engine._C.total, each
    OpenMP thread summing one contiguous share in double (kernels/cpu/sum.hpp). NumPy reduces
    on one thread: the 61 MB embedding output of the bench's sparse row took 3.0-3.3 ms to
    sum, torch's two-thread sum 1.2-1.5 ms (2-vCPU Zen 5 VM); the 3.2 MB output of the
    recurrent bench rows at (64,100,64,128), just written batch-major by both threads, took
    0.23-0.37 ms in the training step (Intel Xeon family 6 model 167, 2026-12-02). Smaller,
    strided or other arrays, and without the extension: NumPy's sum."""
    if (not isinstance(a, np.ndarray) or a.size < _SPLIT_SUM or not a.flags.c_contiguous
            or a.dtype not in (np.float32, np.float64)):
        return a.sum()
    try:
        from . import _C
    except ImportError:
        return a.sum()
    return a.dtype.type(_C.total(a))


def _runner():
    """run(block, n): block(0..n-1) on n threads at once."""
    global _run
    if _run is None:
        try:
            from . import _C
            _run = _C.parallel
        except ImportError:
            pool = ThreadPoolExecutor(CORES - 1, thread_name_prefix="seqfuse-blas")

            def _run(block, n):
                futures = [pool.submit(block, i) for i in range(1, n)]
                block(0)
                for f in futures:
                    f.result()
    return _run


def _small(m, k, n):
    return CORES == 1 or 2.0 * m * k * n < _SPLIT_FLOPS


def wire_extension():
    """engine._C wired to NumPy's OpenBLAS (its gemm/gemm_tn and conv1d's GEMM algorithm),
    or None (no extension, or another NumPy build)."""
    global _gemm
    if _gemm is None:
        _gemm = _load_native() or False
    return _gemm or None


def _native(*arrays):
    """engine._C (gemm/gemm_tn on NumPy's OpenBLAS) when it can take these arrays."""
    if wire_extension() and all(x.dtype == arrays[0].dtype for x in arrays) and \
            arrays[0].dtype in (np.float32, np.float64):
        return _gemm
    return None


def _load_native():
    """engine._C wired to NumPy's bundled OpenBLAS (ILP64 cblas), or None."""
    global vector_bytes
    try:
        from . import _C
    except ImportError:
        return None
    libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in glob.glob(os.path.join(libs, "libscipy_openblas64_*.so*")):
        try:
            lib = ctypes.CDLL(path)
            names = ("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_", "openblas_set_num_threads_local")
            sgemm, dgemm, setter = (ctypes.cast(getattr(lib, n), ctypes.c_void_p).value for n in names)
        except (OSError, AttributeError):
            continue
        vector_bytes = _vector_bytes(lib)
        _C.set_blas(sgemm, dgemm, setter, vector_bytes=vector_bytes)
        return _C
    return None  # another NumPy build: the Python blocks below serve


# The SIMD width of each x86-64 kernel set OpenBLAS may pick at run time (its core names):
# conv1d's "auto" choice compares it with our kernels' (kernels/cpu/conv1d.hpp).
_CORE_VECTOR_BYTES = {"skylakex": 64, "cooperlake": 64, "sapphirerapids": 64, "haswell": 32,
                      "zen": 32, "sandybridge": 32, "excavator": 32, "steamroller": 32,
                      "piledriver": 32, "bulldozer": 32}


def _vector_bytes(lib) -> int:
    """Width of the kernels this OpenBLAS runs on this CPU (engine/_openblas.py may have
    re-picked them), 0 when it does not say or names a core not in the table."""
    from . import _openblas
    return _CORE_VECTOR_BYTES.get((_openblas._corename(lib) or "").lower(), 0)


def matmul(a, b):
    """a [M,K] @ b [K,N] for numpy arrays (cupy: plain @)."""
    if not isinstance(a, np.ndarray):
        return a @ b
    m, k = a.shape
    if _small(m, k, b.shape[1]):
        with single_threaded():  # OpenBLAS's own threads would fight the kernels' workers
            return a @ b
    native = _native(a, b)
    if native is not None and a.flags.c_contiguous:
        return native.gemm(a, np.ascontiguousarray(b))
    if native is not None and a.T.flags.c_contiguous:
        return native.gemm_tn(a.T, np.ascontiguousarray(b))
    out = np.empty((m, b.shape[1]), np.result_type(a, b))
    _parallel(lambda lo, hi: np.matmul(a[lo:hi], b, out=out[lo:hi]), m)
    return out


def matmul_tn(a, b):
    """aᵀ @ b for a [K,M], b [K,N] (weight gradients): K is split and the parts summed."""
    if not isinstance(a, np.ndarray):
        return a.T @ b
    k, m = a.shape
    if _small(m, k, b.shape[1]):
        with single_threaded():
            return a.T @ b
    native = _native(a, b)
    if native is not None and a.flags.c_contiguous and b.flags.c_contiguous:
        return native.gemm_tn(a, b)
    parts = _parallel(lambda lo, hi: a[lo:hi].T @ b[lo:hi], k)
    total = parts[0]
    for p in parts[1:]:
        total += p
    return total


def matmul_tn_sequences(sources, b):
    """[a_0 | a_1]ᵀ @ b summed over the T·B rows of [T,B,·] sequences: the recurrent layers'
    weight gradients (engine/_recurrent.py). sources: 1 or 2 pairs (a [T,B,M], first [B,M] or
    None); with `first`, a source's rows are first, a[0], ..., a[T-2] (the state each step
    multiplied). Where the "weight_gradients" choice says so (engine.tuning; by default with
    AVX2 or AVX-512) engine._C.gemm_tn_sequences reads every row where it lies, any strides, and b
    once for both blocks; otherwise NumPy's OpenBLAS (matmul_tn) runs on rows gathered into one
    [T·B, ΣM] array, or for one source with `first` as first·b[0] + a[:-1]·b[1:] with no copy."""
    native = isinstance(b, np.ndarray) and all(isinstance(a, np.ndarray) for a, _ in sources)
    if native:
        try:
            from . import _C
        except ImportError:
            pass
        else:
            if _C.weight_gradients_on_tile():
                return _C.gemm_tn_sequences(list(sources), b)
    xp = importlib.import_module(type(b).__module__.split(".")[0])
    steps, n, width = b.shape
    rows = b.reshape(steps * n, width)  # a view where b's rows are evenly spaced (GRU's dxw[..., :2H])
    if len(sources) == 1 and sources[0][1] is not None and sources[0][0].flags.c_contiguous:
        a, first = sources[0]
        total = matmul_tn(first, rows[:n])
        if steps > 1:
            total += matmul_tn(a[:-1].reshape((steps - 1) * n, -1), rows[n:])
        return total
    gathered = xp.empty((steps, n, sum(a.shape[2] for a, _ in sources)), b.dtype)
    column = 0
    for a, first in sources:
        block = gathered[:, :, column:column + a.shape[2]]
        if first is None:
            copy_into(block, a)
        else:
            block[0] = first
            copy_into(block[1:], a[:-1])
        column += a.shape[2]
    return matmul_tn(gathered.reshape(steps * n, -1), rows)


def matmul_tn_blocks(sources, products):
    """engine._C.gemm_tn_blocks(sources, products) where the "weight_gradients" choice runs our
    tile and every array is a NumPy one, else None (the caller composes matmul_tn_sequences):
    several products over the same rows in one call, each source packed once per block of
    steps (GRU's weight gradients: engine/_recurrent.py)."""
    if not all(isinstance(a, np.ndarray) for a, _ in sources) or \
            not all(isinstance(b, np.ndarray) for b, _, _ in products):
        return None
    try:
        from . import _C
    except ImportError:
        return None
    return _C.gemm_tn_blocks(list(sources), list(products)) if _C.weight_gradients_on_tile() else None


def unit_rows(a):
    """`a` with a contiguous last axis: `a` itself when it has one, else (a broadcast, e.g. Sum's
    backward) one copy of each distinct row broadcast back to a's shape, so a kernel that
    reads rows where they lie (any outer strides, 0 included) reads it without a full copy."""
    if a.strides[-1] == a.itemsize or a.shape[-1] <= 1:
        return a
    index = tuple(slice(0, 1) if stride == 0 else slice(None) for stride in a.strides[:-1])
    return np.broadcast_to(np.ascontiguousarray(a[index]), a.shape)


def contiguous(view, copy=False):
    """`view` as a C-contiguous array, like ascontiguousarray: `view` itself if it already is
    one (unless `copy`), else a copy made by `copy_into`."""
    if view.flags.c_contiguous and not copy:
        return view
    if not isinstance(view, np.ndarray):
        return view.copy(order="C")
    out = np.empty(view.shape, view.dtype)
    copy_into(out, view)
    return out


def copy_into(dst, src):
    """dst[...] = src for 3-D arrays of one shape (views into a larger array), split over the
    kernels' threads (engine._C.copy_into) for float32/float64 NumPy arrays."""
    if isinstance(dst, np.ndarray) and isinstance(src, np.ndarray) and dst.ndim == 3 and \
            dst.dtype == src.dtype and dst.dtype in (np.float32, np.float64):
        try:
            from . import _C
        except ImportError:
            pass
        else:
            return _C.copy_into(dst, src)
    dst[...] = src


def any_matmul(a, b):
    """a @ b for any numpy operands (ops.MatMul): 2-D by 2-D through `matmul`, the rest with
    one OpenBLAS thread, so no BLAS threads of its own compete with the kernels' workers."""
    if not isinstance(a, np.ndarray):
        return a @ b
    if a.ndim == 2 and b.ndim == 2:
        return matmul(a, b)
    with single_threaded():
        return a @ b
