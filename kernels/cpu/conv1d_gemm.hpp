// Conv1D's GEMM algorithm (cpu/conv1d.hpp chooses between it and cpu/conv1d_direct.hpp):
// every pass is K shifted GEMMs on the BLAS of cpu/blas.hpp, one single-threaded call per
// block of rows on each OpenMP thread (the calling thread holds OpenBLAS at one thread around
// each parallel region: OneBlasThread). Channels-last makes each tap's input rows a plain
// strided matrix, so nothing is copied (no im2col):
//   X_k[b] = rows x[b, t·s + k·d] for t < Lo: [Lo,C] with row stride s·C
//   forward: out[b] (+)= X_k[b] · kernel[k]               [Lo,C]·[C,O], bias first
//   dx:      dx rows t·s + k·d (+)= grad[b] · kernel[k]ᵀ  [Lo,O]·[O,C]
//   dkernel: dkernel[k] (+)= X_k[b]ᵀ · grad[b]            [C,Lo]·[Lo,O], per-thread partials
// x: [B,L,C] already padded, kernel: [K,C,O], out/grad: [B,Lo,O], as in cpu/conv1d_direct.hpp.
#pragma once
#include <algorithm>
#include <cstdint>

#include "cpu/blas.hpp"
#include "cpu/conv1d_direct.hpp"
#include "cpu/threads.hpp"

namespace seqfuse {
namespace conv1d_gemm_detail {

// n rows in `parts` blocks of (nearly) equal size: at most `most` rows each, and at least as
// many blocks over the batch as threads, so a small batch still uses every core.
struct Blocks {
  int64_t n, parts;
  Blocks(int64_t n_, int64_t most, int64_t batch)
      : n(n_), parts(std::min(n_, std::max((n_ + most - 1) / most,
                                           (pool_threads() + batch - 1) / batch))) {}
  int64_t begin(int64_t p) const { return n * p / parts; }
  int64_t end(int64_t p) const { return n * (p + 1) / parts; }
};

// Rows per BLAS call: large enough that packing the kernel tap (C·O) is a small part of each
// call, small enough that a block of out stays in L2 across the K taps.
constexpr int64_t kRows = 512;

}  // namespace conv1d_gemm_detail

// x: [B,L,C], kernel: [K,C,O], bias: [O] or nullptr -> out: [B,Lo,O] (fully written).
template <typename T>
void conv1d_forward_gemm(const T* x, int64_t B, int64_t L, int64_t C, const T* kernel, const T* bias,
                         int64_t K, int64_t O, int64_t s, int64_t d, T* out) {
  using namespace conv1d_gemm_detail;
  const int64_t Lo = conv1d_output_length(L, K, s, d);
  const Blocks blocks(Lo, kRows, B);
  const OneBlasThread one_thread;
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t p = 0; p < blocks.parts; ++p) {
      const int64_t t0 = blocks.begin(p), rows = blocks.end(p) - t0;
      T* y = out + (b * Lo + t0) * O;
      if (bias)
        for (int64_t r = 0; r < rows; ++r) std::copy(bias, bias + O, y + r * O);
      for (int64_t k = 0; k < K; ++k)
        gemm_block<T>(false, false, rows, O, C, x + (b * L + t0 * s + k * d) * C, s * C, kernel + k * C * O,
                      O, bias || k ? T(1) : T(0), y, O);
    }
}

// grad: [B,Lo,O], kernel: [K,C,O] -> dx: [B,L,C] (fully written).
template <typename T>
void conv1d_dx_gemm(const T* grad, int64_t B, int64_t L, int64_t C, const T* kernel, int64_t K,
                    int64_t O, int64_t s, int64_t d, T* dx) {
  using namespace conv1d_gemm_detail;
  const int64_t Lo = conv1d_output_length(L, K, s, d);
  const Blocks blocks(L, kRows * s, B);
  const OneBlasThread one_thread;
  // dx[b, j] = Σ_k grad[b, t] · kernel[k]ᵀ over the t with t·s + k·d = j. The taps' rows
  // overlap, so the blocks split the rows j of dx, and each tap adds the t that land there.
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t p = 0; p < blocks.parts; ++p) {
      const int64_t j0 = blocks.begin(p), j1 = blocks.end(p);
      std::fill(dx + (b * L + j0) * C, dx + (b * L + j1) * C, T(0));
      for (int64_t k = 0; k < K; ++k) {
        // first and one-past-last t with j0 <= t·s + k·d < j1
        const int64_t t0 = std::max<int64_t>(0, j0 - k * d + s - 1) / s;
        const int64_t t1 = std::min(Lo, std::max<int64_t>(0, j1 - k * d + s - 1) / s);
        if (t1 > t0)
          gemm_block<T>(false, true, t1 - t0, C, O, grad + (b * Lo + t0) * O, O, kernel + k * C * O, O,
                        T(1), dx + (b * L + t0 * s + k * d) * C, s * C);
      }
    }
}

// grad: [B,Lo,O], x: [B,L,C] -> dkernel: [K,C,O], dbias: [O] = Σ_{b,t} grad[b,t] (written).
template <typename T>
void conv1d_dkernel_gemm(const T* grad, const T* x, int64_t B, int64_t L, int64_t C, int64_t K,
                         int64_t O, int64_t s, int64_t d, T* dkernel, T* dbias) {
  using namespace conv1d_gemm_detail;
  const int64_t Lo = conv1d_output_length(L, K, s, d);
  const Blocks blocks(Lo, kRows, B);
  conv1d_detail::Partials<T> partials(K * C * O, O);
  const OneBlasThread one_thread;
  // dkernel[k] = Σ_{b,t} x[b, t·s + k·d]ᵀ · grad[b, t], summed per thread.
#pragma omp parallel
  {
    T* mine = partials.kernel_of(pool_thread_id());
    double* mine_bias = partials.bias_of(pool_thread_id());
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t p = 0; p < blocks.parts; ++p) {
        const int64_t t0 = blocks.begin(p), rows = blocks.end(p) - t0;
        for (int64_t k = 0; k < K; ++k)
          gemm_block<T>(true, false, C, O, rows, x + (b * L + t0 * s + k * d) * C, s * C,
                        grad + (b * Lo + t0) * O, O, T(1), mine + k * C * O, O);
        conv1d_detail::add_rows(grad + (b * Lo + t0) * O, rows, O, mine_bias);
      }
  }
  partials.sum(dkernel, dbias);
}

}  // namespace seqfuse
