"""Type stub for engine._C, the private C++ extension (bindings/*.cpp over kernels/cpu/).

Float arrays are float32 or float64, all of one dtype per call (TypeError otherwise, never a
silent cast); shapes are checked before any kernel runs (ValueError naming the argument).
Recurrent ops take x batch-major [B,T,F] and return time-major sequences [T,B,...];
see docs/kernels.md for the math. The last four functions serve engine/_blas.py.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from numpy.typing import NDArray

_Float = NDArray[np.floating]
_Mask = NDArray[np.bool_] | None

def embedding_forward(ids: NDArray[np.int64], table: _Float) -> _Float:
    """ids: [N] int64, table: [V,D] -> [N,D]."""

def embedding_coalesce(ids: NDArray[np.int64], values: _Float,
                       num_rows: int) -> tuple[NDArray[np.int64], _Float]:
    """ids: [N] in [0, num_rows), values: [N,D] any strides
    -> (rows [U] sorted distinct ids, summed [U,D] values summed per id)."""

def lstm_forward(x: _Float, kernel: _Float, bias: _Float | None, U: _Float, h0: _Float,
                 c0: _Float, mask: _Mask, dropout_mask: _Float | None, *,
                 go_backwards: bool = False,
                 save: bool = True) -> tuple[_Float, _Float, _Float | None]:
    """x: [B,T,F], kernel: [F,4H], bias: [4H], U: [H,4H], h0, c0: [B,H], mask: [T,B],
    dropout_mask: [B,H] -> (hs [T,B,H], cs [T,B,H], gates [T,B,4H] activated i,f,g,o);
    save=False (inference): cs is only its last step [1,B,H] and gates is None."""

def lstm_backward(dhs: _Float, dc_T: _Float, U: _Float, h0: _Float, c0: _Float, hs: _Float,
                  cs: _Float, gates: _Float, mask: _Mask, dropout_mask: _Float | None, *,
                  kernel: _Float | None = None, go_backwards: bool = False,
                  overwrite_saved: bool = False
                  ) -> tuple[_Float, _Float | None, _Float, _Float, _Float]:
    """dhs: [T,B,H], dc_T: [B,H]
    -> (dz [T,B,4H], dx [B,T,F] or None, dbias [4H], dh0 [B,H], dc0 [B,H]); overwrite_saved:
    dz is written over gates (returned as dz) where gates is a writeable C-contiguous array
    of dhs's dtype."""

def gru_forward(x: _Float, kernel: _Float, bias: _Float | None, U: _Float,
                recurrent_bias: _Float | None, h0: _Float, mask: _Mask,
                dropout_mask: _Float | None, reset_after: bool = True, *,
                go_backwards: bool = False,
                save: bool = True) -> tuple[_Float, _Float | None, _Float | None]:
    """x: [B,T,F], kernel: [F,3H], bias: [3H] input bias, U: [H,3H], recurrent_bias: [3H]
    (reset_after only), h0: [B,H] -> (hs [T,B,H], gates [T,B,3H] activated z,r,n, uh [T,B,H],
    or [0] if not reset_after); save=False (inference): gates and uh are None."""

def gru_backward(dhs: _Float, U: _Float, recurrent_bias: _Float | None, h0: _Float, hs: _Float,
                 gates: _Float, uh: _Float, mask: _Mask, dropout_mask: _Float | None,
                 reset_after: bool = True, *, kernel: _Float | None = None,
                 go_backwards: bool = False, overwrite_saved: bool = False,
                 x: _Float | None = None
                 ) -> tuple[_Float | None, _Float | None, _Float | None, _Float, _Float, _Float | None]:
    """dhs: [T,B,H] -> (dxw [T,B,3H], dx [B,T,F] or None, du [T,B,H] the candidate's columns
    of the recurrent gradient (its z,r columns are dxw's), dbias [2,3H] (reset_after) or [3H],
    dh0 [B,H], None); overwrite_saved: dxw is written over gates and, with reset_after, du over
    uh, as lstm_backward's dz; given x [B,T,F] (the layer's input; reset_after, no
    dropout_mask) the weight gradients are summed in the loop: (None, dx, None, dbias, dh0,
    [dkernel; dU] [F+H,3H])."""

def simple_rnn_forward(x: _Float, kernel: _Float, bias: _Float | None, U: _Float, h0: _Float,
                       mask: _Mask, dropout_mask: _Float | None, *,
                       go_backwards: bool = False, save: bool = True) -> _Float:
    """x: [B,T,F], kernel: [F,H], bias: [H], U: [H,H], h0: [B,H] -> hs [T,B,H] (without save,
    a view of batch-major memory)."""

def simple_rnn_backward(dhs: _Float, U: _Float, h0: _Float, hs: _Float, mask: _Mask,
                        dropout_mask: _Float | None, *, kernel: _Float | None = None,
                        go_backwards: bool = False, x: _Float | None = None
                        ) -> tuple[_Float | None, _Float | None, _Float, _Float, _Float | None]:
    """dhs: [T,B,H] -> (dz [T,B,H], dx [B,T,F] or None, dbias [H], dh0 [B,H], None); given x
    [B,T,F] (the layer's input; no dropout_mask) the weight gradients are summed in the loop:
    (None, dx, dbias, dh0, [dkernel; dU] [F+H,H])."""

def conv1d_forward(x: _Float, kernel: _Float, bias: _Float | None, strides: int,
                   dilation_rate: int) -> _Float:
    """x: [B,L,C] padded, kernel: [K,C,O], bias: [O] or None -> [B,L_out,O]."""

def conv1d_backward(grad: _Float, x: _Float, kernel: _Float, strides: int,
                    dilation_rate: int) -> tuple[_Float, _Float, _Float]:
    """grad: [B,L_out,O] -> (dx [B,L,C], dkernel [K,C,O], dbias [O])."""

def conv1d_algorithm(x: _Float, kernel: _Float, strides: int,
                     dilation_rate: int) -> dict[str, str]:
    """{"forward", "dx", "dkernel"} -> "direct" or "gemm": the algorithm each pass of
    conv1d_forward/backward runs on arrays of these shapes and dtype under the choice in force."""

def parallel(fn: Callable[[int], object], n: int) -> None:
    """fn(i) for i in range(n), each on an OpenMP thread of the kernels' pool (holding the GIL
    while in Python); the first error is raised after all return."""

def copy_into(dst: _Float, src: _Float) -> None:
    """dst[...] = src for 3-D arrays of one shape and dtype and any strides (views into a larger
    array, transposed or reversed views), the outer rows split over the OpenMP threads."""

def set_blas(sgemm: int, dgemm: int, set_threads_local: int, vector_bytes: int = 0) -> None:
    """Addresses of an ILP64 cblas_sgemm / cblas_dgemm (NumPy's OpenBLAS) and of that
    library's openblas_set_num_threads_local (or 0), used by gemm, gemm_tn and conv1d's GEMM
    algorithm; vector_bytes: the width of the SIMD kernels it runs here (0 if unknown)."""

def gemm(a: _Float, b: _Float) -> _Float:
    """a [M,K] @ b [K,N]; rows split over the OpenMP threads, one BLAS call each."""

def gemm_tn(a: _Float, b: _Float) -> _Float:
    """a [K,M]ᵀ @ b [K,N]; K split over the OpenMP threads and the parts summed."""

def gemm_tn_sequences(sources: list[tuple[_Float, _Float | None]], b: _Float) -> _Float:
    """The recurrent weight gradients (kernels/cpu/gemm_tn.hpp): sources, 1 or 2 pairs
    (a [T,B,M_s] any strides, first [B,M_s] or None), b [T,B,N] -> [ΣM_s, N] = Σ over the T·B
    rows of [a_0 | a_1]ᵀ·b; with `first` a source's rows are first, a[0], ..., a[T-2]. Steps
    split over the OpenMP threads, on the gemm_tile register tile."""

def weights_in_loop() -> bool:
    """Whether engine/_recurrent.py asks simple_rnn_backward and gru_backward for the weight
    gradients summed in their loops (the weights_in_loop choice)."""

def gemm_tn_blocks(sources: list[tuple[_Float, _Float | None]],
                   products: list[tuple[_Float, int, list[tuple[int, int]]]]) -> _Float:
    """sources: 1 to 3 pairs (a [T,B,M_s] any strides, first [B,M_s] or None) as
    gemm_tn_sequences's; products: 1 or more triples (b [T,B,n] any strides, column, [(source,
    row), ...]) -> C with C[row + i, column + j] = Σ over the T·B rows of a_source[i]·b[j]
    for each pair; the products must cover C, each element once (GRU's weight gradients in one
    call, each source packed once per block of steps)."""

def weight_gradients_on_tile() -> bool:
    """Whether the weight_gradients choice runs them on gemm_tn_sequences (forced, or "auto"
    with AVX2 or AVX-512) rather than OpenBLAS (engine/_blas.py matmul_tn_sequences)."""

def build_info() -> dict:
    """What the extension was compiled for: {"isa": the target's flags among sse4_2, avx, avx2,
    fma, avx512f, avx512bw, avx512vl (as /proc/cpuinfo names them), "compiler": str,
    "openmp": bool}."""

def set_choice(name: str, value: str) -> None:
    """Select a kernel variant for this process (kernels/cpu/choices.hpp; engine/tuning.py
    sets them): set_choice("gemm_tile", "8x2"), set_choice("conv1d", "gemm"). ValueError for
    an unknown choice or value, naming the ones that exist."""

def choices() -> dict[str, str]:
    """The variant selected for each choice, {name: value}."""

def choice_options() -> dict[str, list[str]]:
    """Every choice and its variants, {name: [values]}; the first is "auto"."""
