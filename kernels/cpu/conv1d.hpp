// Conv1D on raw pointers, channels-last, x already padded: two algorithms and the choice.
//   x: [B,L,C], kernel: [K,C,O], out/grad: [B,Lo,O], Lo = (L - d·(K-1) - 1) / s + 1
//   out[b,t] = bias + Σ_k x[b, t·s + k·d] · kernel[k]
// - direct (cpu/conv1d_direct.hpp): our register-blocked strided GEMM, taps as a reduction axis;
// - gemm (cpu/conv1d_gemm.hpp): K shifted GEMMs per pass on NumPy's OpenBLAS.
// choices().conv1d forces one (engine._C.set_choice, SEQFUSE_CONV1D); "auto" asks
// `conv1d_use_gemm`. Without the BLAS (engine/_blas.py found none) every call runs direct.
// Threads: both algorithms cut a pass into blocks of rows (batch row × a range of positions).
// Forward and dx write disjoint rows per block, so their blocks are handed out dynamically: on
// a shared VM one vCPU is often slowed for a while, and a static split left the other core
// waiting for it (Zen 3 VM, medians over 8-10 processes alternating with the static build:
// (64,1000,128,128,5) forward 82.3 -> 76.4 ms, (32,500,32,32,7) 1.81 -> 1.53 ms; as fast
// when the VM was quiet). dkernel keeps a static split: each thread sums its blocks into a
// partial, and a fixed assignment keeps those sums, so the gradient, the same on every call.
#pragma once
#include <algorithm>
#include <cstdint>

#include "cpu/blas.hpp"
#include "cpu/choices.hpp"
#include "cpu/conv1d_direct.hpp"
#include "cpu/conv1d_gemm.hpp"
#include "cpu/simd.hpp"

namespace seqfuse {

// The three GEMM-shaped passes, which the choice treats one by one.
enum class Conv1dPass { kForward, kDx, kDkernel };

// The pass's columns: O for forward and dkernel, C for dx.
inline int64_t conv1d_columns(Conv1dPass pass, int64_t C, int64_t O) {
  return pass == Conv1dPass::kDx ? C : O;
}

// True where the pass's columns are not a multiple of the direct kernel's register tile, so the
// direct kernel would finish them with its scalar edge tile.
inline bool conv1d_ragged(Conv1dPass pass, int64_t C, int64_t O, bool float64) {
  const int64_t tile = float64 ? conv1d_detail::kColumns<double> : conv1d_detail::kColumns<float>;
  return conv1d_columns(pass, C, O) % tile != 0;
}

// True where C and O are both at least 128 (float64: 256): the shapes where OpenBLAS's AVX-512
// kernels ran gemm faster than our direct tile on the AMD EPYC Zen 5 (below) and the pick
// kConvWideGemm adds to kConvRaggedGemm's.
inline bool conv1d_wide(int64_t C, int64_t O, bool float64) {
  return std::min(C, O) >= (float64 ? 256 : 128);
}

// The "auto" rule: true where the GEMM algorithm is the faster one for this pass. Measured
// 2026-12-01 on the 2-vCPU AMD EPYC Zen 5 VM (AVX-512; shared, so interleaved minima of 5-10
// rounds of forward + backward) over C, O in {8..256}, K 1-7, strides and dilation 1-2,
// B·L_out 400-64,000, both dtypes (docs/kernels.md, "conv1d: direct or GEMM", has tables):
// - Columns of the pass (O for forward and dkernel, C for dx) that are not a multiple of the
//   direct register tile (kColumns: 32 float32, 16 float64 with AVX-512) leave a scalar edge
//   tile costing about 4.5 full ones (float32; 3 in float64): gemm, 1.07-9x faster.
// - OpenBLAS on kernels narrower than ours (its AVX2 "Haswell" ones, SEQFUSE_BLAS_CORE=keep on
//   this VM): direct wherever its tiles are full, there 1.3-1.9x faster; forward and dkernel
//   with at least 5 (float64: 3) full tiles hide the edge and stay direct too (O = 168, 200,
//   232: direct 1.04-1.2x faster in forward, even in dkernel).
// - OpenBLAS on AVX-512 kernels (SkylakeX, what engine/_openblas.py loads there) or of unknown
//   width: direct on every full tile. The Zen 5 ran gemm 1.0-1.16x faster where C and O are
//   both >= 128 (float64: 256; conv1d_wide), but before the direct kernel read its W operand
//   from column panels; since then the 2-vCPU Intel Xeon (family 6, model 167, 2026-12-02)
//   ran direct 1.05-1.26x faster there (forward; backward 1.05-1.25x) and the 2-vCPU AMD EPYC
//   Zen 4 (family 25, model 17, 2026-12-03 and -04) 1.07-1.17x (forward and backward of
//   (B,L,C,O,K) = (16..64, 262..1000, 128, 128, 3..5)). engine/tuning.py times this rule
//   against kConvWideGemm (gemm there) at first use on each CPU and keeps the faster
//   (docs/kernels.md, "Choices per CPU"). Below 128 channels direct was 1.02-1.16x (float64:
//   1.03-1.5x) faster on the Zen 5 too.
// - An AVX2 build (its tile 16 float32 / 8 float64 columns; measured on a 2-vCPU AMD EPYC
//   Zen 3, OpenBLAS on its Haswell kernels): gemm on ragged columns; otherwise the forward
//   runs direct (since it reads the kernel from column panels: direct/gemm time 0.55-0.96 in
//   float32, 0.63-0.98 in float64 over C, O in {8..256} at K = 3, B·L_out = 8,288), and dx and
//   dkernel run gemm where min(C, O) >= 64 and max(C, O) >= 128 (their summed time: direct
//   0.82-1.12x of gemm's there in float32, 0.95-1.17x in float64; 0.81-1.11x below it in
//   float32). An SSE2 build always runs gemm.
// B, L_out, K, strides and dilation moved no pick (Zen 5; on Zen 3 only K = 3 was swept).
inline bool conv1d_auto_gemm(Conv1dPass pass, int64_t C, int64_t O, bool float64) {
  if (kVectorBytes < 32) return true;  // SSE2: the direct kernel was not measured there
  const int64_t tile = float64 ? conv1d_detail::kColumns<double> : conv1d_detail::kColumns<float>;
  const int64_t columns = conv1d_columns(pass, C, O);
  const bool ragged = conv1d_ragged(pass, C, O, float64);
  if (kVectorBytes == 32)  // AVX2 build
    return ragged || (pass != Conv1dPass::kForward && std::min(C, O) >= 64 && std::max(C, O) >= 128);
  const int blas_bytes = blas().vector_bytes;
  if (blas_bytes != 0 && blas_bytes < kVectorBytes)
    return ragged && (pass == Conv1dPass::kDx || columns / tile < (float64 ? 3 : 5));
  return ragged;
}

// Which algorithm runs this pass on x [B,·,C] and kernel [·,C,O]: the forced choice, or the
// rule under "auto".
inline bool conv1d_use_gemm(Conv1dPass pass, int64_t B, int64_t C, int64_t O, bool float64) {
  if (!have_blas() || B == 0 || C == 0 || O == 0) return false;  // BLAS rejects empty operands
  switch (choices().conv1d.load()) {
    case kConvDirect:
      return false;
    case kConvGemm:
      return true;
    case kConvRaggedGemm:
      return conv1d_ragged(pass, C, O, float64);
    case kConvWideGemm:
      return conv1d_ragged(pass, C, O, float64) || conv1d_wide(C, O, float64);
    default:
      return conv1d_auto_gemm(pass, C, O, float64);
  }
}

// x: [B,L,C], kernel: [K,C,O], bias: [O] or nullptr -> out: [B,Lo,O] (fully written).
template <typename T>
void conv1d_forward(const T* x, int64_t B, int64_t L, int64_t C, const T* kernel, const T* bias,
                    int64_t K, int64_t O, int64_t s, int64_t d, T* out) {
  if (conv1d_use_gemm(Conv1dPass::kForward, B, C, O, sizeof(T) == 8))
    conv1d_forward_gemm(x, B, L, C, kernel, bias, K, O, s, d, out);
  else
    conv1d_forward_direct(x, B, L, C, kernel, bias, K, O, s, d, out);
}

// grad: [B,Lo,O], x: [B,L,C], kernel: [K,C,O]
//   -> dx: [B,L,C], dkernel: [K,C,O], dbias: [O] = Σ_{b,t} grad[b,t] (all written).
template <typename T>
void conv1d_backward(const T* grad, const T* x, int64_t B, int64_t L, int64_t C, const T* kernel,
                     int64_t K, int64_t O, int64_t s, int64_t d, T* dx, T* dkernel, T* dbias) {
  const bool f64 = sizeof(T) == 8;
  if (conv1d_use_gemm(Conv1dPass::kDx, B, C, O, f64))
    conv1d_dx_gemm(grad, B, L, C, kernel, K, O, s, d, dx);
  else
    conv1d_dx_direct(grad, B, L, C, kernel, K, O, s, d, dx);
  if (conv1d_use_gemm(Conv1dPass::kDkernel, B, C, O, f64))
    conv1d_dkernel_gemm(grad, x, B, L, C, K, O, s, d, dkernel, dbias);
  else
    conv1d_dkernel_direct(grad, x, B, L, C, K, O, s, d, dkernel, dbias);
}

}  // namespace seqfuse
