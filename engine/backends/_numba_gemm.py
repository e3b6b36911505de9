"""A register-tiled GEMM for the Numba kernels, written with explicit SIMD vectors.

Why not np.dot (Numba sends it to SciPy's OpenBLAS):
- speed at the shapes the kernels multiply (a few dozen rows per thread and step). One core,
  float32, GFLOP/s, this tile vs np.dot on one thread of NumPy's OpenBLAS 0.3.31 with its
  SkylakeX (AVX-512) kernels (`python tools/numba_gemm_peak.py`, AMD EPYC Zen 5 VM, shared,
  2026-12-01): (16,32)·(32,128) 206 vs 145, (32,128)·(128,512) 260 vs 161,
  (64,384)·(384,1024) 253 vs 148, (256,640)·(640,128) 260 vs 231, 2048³ 235 vs 234.
  OpenBLAS picks its kernels by CPU model and took this Zen 5 (family 26) for a Haswell (AVX2:
  110-124) until engine/_openblas.py re-picked them; this tile is as wide as the CPU running
  the code (LLVM compiles for the host), whatever the BLAS build knows about it;
- no second thread pool: OpenBLAS's thread count is process-wide (its "local" setter too),
  and its threads beside Numba's fought for the two cores (conv1d (32,500,32,32,7) forward:
  60 ms against 3 with one BLAS thread);
- A read in place through strides (im2col windows, xᵀ, x_t inside x [B,T,F]) and C
  accumulated, where np.dot wants contiguous operands and a fresh product.

The building blocks are a vector type (`_Vec`: `<lanes x float>` in LLVM IR) and a few
intrinsics on it (load, store, splat of one element, zero, add, fused multiply-add), so the
micro-kernel below reads as plain Numba code with each vector a variable.

GEMM layout (the GotoBLAS one, minus the A packing): B [K,N] is packed once into column
panels bp [P,K,NR] (NR = two vectors, zero-padded past N), the micro-kernel keeps an MR x NR
tile of C in 16 vector registers while it walks k, broadcasting one A element per row and
loading the panel's row k. A is read in place through strides, so both A and Aᵀ (the weight
gradients' Xᵀ·G) need no copy. A whole tile goes from the registers to C (stored, or added
with accumulate); a tile that sticks out of C lands in a scratch tile and only its valid
rows and columns are copied, so M and N need not be multiples of the tile.
"""
from __future__ import annotations

import hashlib
import os

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.dispatcher import Dispatcher
from numba.extending import intrinsic, models, register_model


VECTOR_ENV = "SEQFUSE_NUMBA_VECTOR_BYTES"


def _host_vector_bytes():
    features = llvm.get_host_cpu_features()
    if features.get("avx512f"):
        return 64
    return 32 if features.get("avx2") or features.get("avx") else 16


def vector_bytes(environ=os.environ):
    """The SIMD width the kernels compile for: SEQFUSE_NUMBA_VECTOR_BYTES (16, 32 or 64) when
    set, to force one (the tests run every width on any CPU), else the host CPU's widest."""
    forced = environ.get(VECTOR_ENV, "").strip()
    if not forced:
        return _host_vector_bytes()
    if forced not in ("16", "32", "64"):
        raise ValueError(f"{VECTOR_ENV} must be one of 16, 32, 64, got {forced!r}")
    return int(forced)


VECTOR_BYTES = vector_bytes()
# Numba keys its on-disk cache by CPU, not by this width: kernels built on a forced width
# are compiled afresh in each process (cache=CACHE) so they never replace the host's.
CACHE = VECTOR_BYTES == _host_vector_bytes()
# Rows per tile, sized to the register file: 8 rows x 2 vectors = 16 accumulators of AVX-512's
# 32 registers; 6 x 2 = 12 of the 16 that AVX2 and SSE have (with two B vectors and a splat:
# 15). 8 rows spilled there: 27-32 GFLOP/s against np.dot's 26-72 on one Zen 3 core.
MR = 8 if VECTOR_BYTES == 64 else 6


# What the kernels that call this module compile from it: its source, and the width it was
# read with (MR and the tile follow from VECTOR_BYTES).
with open(__file__, "rb") as _source:
    _DIGEST = hashlib.sha256(_source.read() + str(VECTOR_BYTES).encode()).hexdigest()


def refresh_caches(namespace):
    """Drop the on-disk caches of the kernels in `namespace` (a calling module's globals())
    when they were compiled from another version of this file.

    Numba checks a cached kernel only against the file that defines it (numba issue #1833):
    a kernel of _numba_rnn or _numba_conv1d has this module's GEMM compiled in, and after this
    file changed it went on loading the old GEMM from the cache. So it happened on the Zen 3
    VM: conv1d kernels cached around the 8 -> 6 row tile change ran (64,1000,128,128,5)
    forward in 134-154 ms, 70-72 ms once recompiled (2026-12-01, docs/numba.md). Each
    dependent module calls this after defining its kernels; the digest of this file is kept
    beside their cache (one stamp per module), and when it differs their cache indexes are
    emptied, so the kernels compile afresh on first use and save the new code. Without a
    writable cache (or with caching off) there is nothing to do."""
    caches = [obj._cache for obj in namespace.values()
              if isinstance(obj, Dispatcher) and getattr(obj._cache, "cache_path", None)]
    if not caches:
        return
    module = namespace["__name__"].rsplit(".", 1)[-1]
    stamp = os.path.join(caches[0].cache_path, f"{module}.gemm-digest")
    try:
        with open(stamp) as f:
            if f.read() == _DIGEST:
                return
    except OSError:
        pass
    try:
        for cache in caches:
            cache.flush()
        partial = f"{stamp}.{os.getpid()}"
        with open(partial, "w") as f:
            f.write(_DIGEST)
        os.replace(partial, stamp)
    except OSError:
        pass  # a read-only cache: Numba cannot save there either


def panel_width(dtype):
    """NR, the columns of one packed panel of B for `dtype` (two vectors)."""
    return 2 * VECTOR_BYTES // np.dtype(dtype).itemsize


class _Vec(types.Type):
    """A SIMD vector of VECTOR_BYTES bytes of `dtype` (float32 or float64)."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.lanes = VECTOR_BYTES // (dtype.bitwidth // 8)
        super().__init__(name=f"Vec({dtype}x{self.lanes})")


@register_model(_Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.lanes))


def _address(context, builder, array_type, array, index):
    """&array.data[index], no wraparound or bounds check (callers index inside the array)."""
    return builder.gep(context.make_array(array_type)(context, builder, array).data, [index])


@intrinsic
def _vload(typingctx, array, index):
    """The vector at array[index:index+lanes] (1-D array, any alignment)."""
    vec = _Vec(array.dtype)

    def codegen(context, builder, sig, args):
        pointer = _address(context, builder, sig.args[0], *args)
        vector_type = context.get_value_type(vec)
        return builder.load(builder.bitcast(pointer, vector_type.as_pointer()),
                            align=array.dtype.bitwidth // 8)
    return vec(array, index), codegen


@intrinsic
def _vstore(typingctx, array, index, value):
    """array[index:index+lanes] = value."""
    def codegen(context, builder, sig, args):
        pointer = _address(context, builder, sig.args[0], args[0], args[1])
        builder.store(args[2], builder.bitcast(pointer, args[2].type.as_pointer()),
                      align=array.dtype.bitwidth // 8)
        return context.get_dummy_value()
    return types.none(array, index, value), codegen


@intrinsic
def _vsplat(typingctx, array, index):
    """A vector with every lane array[index]."""
    vec = _Vec(array.dtype)

    def codegen(context, builder, sig, args):
        scalar = builder.load(_address(context, builder, sig.args[0], *args))
        vector_type = context.get_value_type(vec)
        one = builder.insert_element(ir.Constant(vector_type, ir.Undefined), scalar,
                                     ir.Constant(ir.IntType(32), 0))
        lanes = ir.Constant(ir.VectorType(ir.IntType(32), vec.lanes), [0] * vec.lanes)
        return builder.shuffle_vector(one, one, lanes)
    return vec(array, index), codegen


@intrinsic
def _lanes(typingctx, array):
    """The lanes of a vector of array's dtype (a compile-time constant)."""
    lanes = _Vec(array.dtype).lanes

    def codegen(context, builder, sig, args):
        return context.get_constant(types.intp, lanes)
    return types.intp(array), codegen


@intrinsic
def _vzero(typingctx, array):
    """A zero vector of array's dtype."""
    vec = _Vec(array.dtype)

    def codegen(context, builder, sig, args):
        return ir.Constant(context.get_value_type(vec), None)
    return vec(array), codegen


@intrinsic
def _vfma(typingctx, a, b, c):
    """a·b + c lane by lane, one rounding (llvm.fma)."""
    def codegen(context, builder, sig, args):
        vector_type = args[0].type
        bits = 32 if isinstance(vector_type.element, ir.FloatType) else 64
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vector_type, [vector_type] * 3),
            f"llvm.fma.v{vector_type.count}f{bits}")
        return builder.call(fn, args)
    return c(a, b, c), codegen


@intrinsic
def _vadd(typingctx, a, b):
    """a + b lane by lane."""
    def codegen(context, builder, sig, args):
        return builder.fadd(*args)
    return a(a, b), codegen


@njit(inline="always")
def _put(out, index, value, accumulate):
    """out[index:index+lanes] = value, or += value with accumulate."""
    if accumulate:
        value = _vadd(_vload(out, index), value)
    _vstore(out, index, value)


@njit(cache=CACHE, nogil=True)
def pack(b, bp):
    """b: [K,N] (any strides) -> bp [P,K,NR] column panels, zero past column N."""
    P, K, NR = bp.shape
    N = b.shape[1]
    for p in range(P):
        for k in range(K):
            row, src = bp[p, k], b[k]
            for j in range(NR):
                row[j] = src[p * NR + j] if p * NR + j < N else 0


def packed(b):
    """b: [K,N] -> newly packed panels [ceil(N/NR), K, NR] of b's dtype."""
    NR = panel_width(b.dtype)
    bp = np.empty((-(-b.shape[1] // NR), b.shape[0], NR), b.dtype)
    pack(b, bp)
    return bp


@njit(cache=CACHE, nogil=True)
def _tile(a, o0, o1, o2, o3, o4, o5, o6, o7, step, panel, K, out, base, ld, accumulate):
    """A_rows · panel, MR x NR, into out[base + r·ld + j] (or added to it with accumulate):
    row r of A is a[o_r + k·step] for k < K; panel: flat [K,NR]; out: any array, the offsets
    counted in elements from its first one. With MR = 6, rows 6 and 7 are compiled out (MR is
    a constant to Numba) and o6, o7 are unused."""
    W = _lanes(panel)
    NR = 2 * W
    c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = _vzero(panel)
    c40 = c41 = c50 = c51 = c60 = c61 = c70 = c71 = _vzero(panel)
    for k in range(K):
        b0 = _vload(panel, k * NR)
        b1 = _vload(panel, k * NR + W)
        s = k * step
        x = _vsplat(a, o0 + s)
        c00 = _vfma(x, b0, c00)
        c01 = _vfma(x, b1, c01)
        x = _vsplat(a, o1 + s)
        c10 = _vfma(x, b0, c10)
        c11 = _vfma(x, b1, c11)
        x = _vsplat(a, o2 + s)
        c20 = _vfma(x, b0, c20)
        c21 = _vfma(x, b1, c21)
        x = _vsplat(a, o3 + s)
        c30 = _vfma(x, b0, c30)
        c31 = _vfma(x, b1, c31)
        x = _vsplat(a, o4 + s)
        c40 = _vfma(x, b0, c40)
        c41 = _vfma(x, b1, c41)
        x = _vsplat(a, o5 + s)
        c50 = _vfma(x, b0, c50)
        c51 = _vfma(x, b1, c51)
        if MR == 8:
            x = _vsplat(a, o6 + s)
            c60 = _vfma(x, b0, c60)
            c61 = _vfma(x, b1, c61)
            x = _vsplat(a, o7 + s)
            c70 = _vfma(x, b0, c70)
            c71 = _vfma(x, b1, c71)
    _put(out, base, c00, accumulate)
    _put(out, base + W, c01, accumulate)
    _put(out, base + ld, c10, accumulate)
    _put(out, base + ld + W, c11, accumulate)
    _put(out, base + 2 * ld, c20, accumulate)
    _put(out, base + 2 * ld + W, c21, accumulate)
    _put(out, base + 3 * ld, c30, accumulate)
    _put(out, base + 3 * ld + W, c31, accumulate)
    _put(out, base + 4 * ld, c40, accumulate)
    _put(out, base + 4 * ld + W, c41, accumulate)
    _put(out, base + 5 * ld, c50, accumulate)
    _put(out, base + 5 * ld + W, c51, accumulate)
    if MR == 8:
        _put(out, base + 6 * ld, c60, accumulate)
        _put(out, base + 6 * ld + W, c61, accumulate)
        _put(out, base + 7 * ld, c70, accumulate)
        _put(out, base + 7 * ld + W, c71, accumulate)


@njit(cache=CACHE, nogil=True)
def gemm(a, start, row_step, k_step, bp, c, accumulate, tile):
    """c [M,N] = (or += with accumulate) A · B, with A[i,k] = a[start + i·row_step + k·k_step]
    (a: flat 1-D; A = x: row_step = ld, k_step = 1; A = xᵀ: row_step = 1, k_step = ld) and
    B packed by `pack` into bp [P,K,NR]. c: any 2-D view with c.shape[1] <= P·NR.
    tile: scratch [MR·NR] of c's dtype, one per thread, for the tiles that stick out of c."""
    M, N = c.shape
    P, K, NR = bp.shape
    panels = bp.reshape(-1)
    # Whole tiles go straight from the registers to c when its rows are contiguous.
    ld = c.strides[0] // c.itemsize if c.strides[1] == c.itemsize else -1
    for p in range(P):
        j0 = p * NR
        width = min(NR, N - j0)
        panel = panels[p * K * NR:(p + 1) * K * NR]
        for i0 in range(0, M, MR):
            # Rows past M repeat row M-1 (read, computed, never written).
            last = M - 1
            o0 = start + min(i0, last) * row_step
            o1 = start + min(i0 + 1, last) * row_step
            o2 = start + min(i0 + 2, last) * row_step
            o3 = start + min(i0 + 3, last) * row_step
            o4 = start + min(i0 + 4, last) * row_step
            o5 = start + min(i0 + 5, last) * row_step
            o6 = start + min(i0 + 6, last) * row_step
            o7 = start + min(i0 + 7, last) * row_step
            rows = min(MR, M - i0)
            if rows == MR and width == NR and ld >= 0:
                _tile(a, o0, o1, o2, o3, o4, o5, o6, o7, k_step, panel, K, c, i0 * ld + j0, ld,
                      accumulate)
                continue
            _tile(a, o0, o1, o2, o3, o4, o5, o6, o7, k_step, panel, K, tile, 0, NR, False)
            for r in range(rows):
                dst, src = c[i0 + r, j0:j0 + width], tile[r * NR:r * NR + width]
                if accumulate:
                    for j in range(width):
                        dst[j] += src[j]
                else:
                    for j in range(width):
                        dst[j] = src[j]


def tile_scratch(dtype):
    """The `tile` scratch gemm needs, for `dtype`."""
    return np.empty(MR * panel_width(dtype), dtype)
