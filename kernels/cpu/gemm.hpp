// A small GEMM for the recurrent step: C[M,N] = X[M,N] + A[M,K]·B[K,N], all row-major with
// leading dimensions, so a column slice of U (GRU's U_zr, U_h) is just a pointer and an ld.
// No BLAS is guaranteed at build time, and per step the matrices are small (M = batch rows
// of one thread, K = H ≤ 256, N ≤ 4H), where a BLAS call's overhead would dominate anyway.
//
// The micro-kernel keeps an MR×NR block of C in registers (fixed-size arrays that GCC
// -O3 turns into vector registers and FMAs) and streams one row of B per k. U (≤ 1 MB for
// H = 256) stays in L2 across steps; a 4-row block of A (≤ 4 KB) stays in L1.
#pragma once
#include <algorithm>
#include <cstdint>
#if defined(SEQFUSE_OPENMP)
#include <omp.h>
#endif

namespace seqfuse {

// Register tile MR×NR of C, chosen by measurement on Zen 4 (M=32,K=128,N=512 float: 8×32
// ~100 GFLOP/s, 4×32 ~30): with AVX-512's 32 vector registers 8 rows × 2 zmm of float
// leave room for the broadcast; 16-register AVX2 gets BLIS's 6×16 shape.
template <typename T>
struct gemm_tile {
#if defined(__AVX512F__)
  static constexpr int mr = sizeof(T) == 4 ? 8 : 6;
  static constexpr int nr = 32;
#else
  static constexpr int mr = 6;
  static constexpr int nr = 32 / sizeof(T) * 2;
#endif
};

// X may be nullptr (zeros), may alias C, and ldx = 0 broadcasts one row (a bias).
template <typename T, int MR, int NR>
inline void gemm_micro(int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, const T* X,
                       int64_t ldx, T* C, int64_t ldc) {
  T acc[MR][NR];
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NR; ++j) acc[r][j] = X ? X[r * ldx + j] : T(0);
  for (int64_t k = 0; k < K; ++k) {
    const T* b = B + k * ldb;
    for (int r = 0; r < MR; ++r) {
      const T a = A[r * lda + k];
      for (int j = 0; j < NR; ++j) acc[r][j] += a * b[j];
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NR; ++j) C[r * ldc + j] = acc[r][j];
}

// Column tail narrower than the vector passes: one column at a time.
template <typename T, int MR>
inline void gemm_micro_cols(int64_t K, int64_t n, const T* A, int64_t lda, const T* B, int64_t ldb,
                            const T* X, int64_t ldx, T* C, int64_t ldc) {
  for (int64_t j = 0; j < n; ++j)
    for (int r = 0; r < MR; ++r) {
      T acc = X ? X[r * ldx + j] : T(0);
      for (int64_t k = 0; k < K; ++k) acc += A[r * lda + k] * B[k * ldb + j];
      C[r * ldc + j] = acc;
    }
}

// One column panel of width NR (B: [K,NR] slice) against every row of A: the panel stays in
// L1/L2 while the row blocks stream past it, so U is read from memory once per step even
// when it outgrows L2 (H = 256: 1 MB).
template <typename T, int NR>
inline void gemm_panel(int64_t M, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
                       const T* X, int64_t ldx, T* C, int64_t ldc) {
  constexpr int MR = gemm_tile<T>::mr;
  auto x_at = [&](int64_t r) { return X ? X + r * ldx : nullptr; };
  int64_t r = 0;
  for (; r + MR <= M; r += MR)
    gemm_micro<T, MR, NR>(K, A + r * lda, lda, B, ldb, x_at(r), ldx, C + r * ldc, ldc);
  for (; r + 2 <= M; r += 2)
    gemm_micro<T, 2, NR>(K, A + r * lda, lda, B, ldb, x_at(r), ldx, C + r * ldc, ldc);
  if (r < M) gemm_micro<T, 1, NR>(K, A + r * lda, lda, B, ldb, x_at(r), ldx, C + r * ldc, ldc);
}

// C[M,N] = X + A·B. A: [M,K] (lda), B: [K,N] (ldb), X: [M,N] (ldx) or nullptr, C: [M,N] (ldc).
template <typename T>
void gemm(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
          const T* X, int64_t ldx, T* C, int64_t ldc) {
  constexpr int NR = gemm_tile<T>::nr;
  constexpr int NR_SMALL = NR / 4;  // a quarter tile: one ymm of float on AVX-512
  int64_t j = 0;
  for (; j + NR <= N; j += NR)
    gemm_panel<T, NR>(M, K, A, lda, B + j, ldb, X ? X + j : nullptr, ldx, C + j, ldc);
  for (; j + NR_SMALL <= N; j += NR_SMALL)
    gemm_panel<T, NR_SMALL>(M, K, A, lda, B + j, ldb, X ? X + j : nullptr, ldx, C + j, ldc);
  for (int64_t r = 0; j < N && r < M; ++r)
    gemm_micro_cols<T, 1>(K, N - j, A + r * lda, lda, B + j, ldb, X ? X + r * ldx + j : nullptr,
                          ldx, C + r * ldc + j, ldc);
}

// out[N,K] = inᵀ for in: [K,N] row-major; backward multiplies by Uᵀ with the same kernel.
template <typename T>
void transpose(int64_t K, int64_t N, const T* in, T* out) {
  for (int64_t k = 0; k < K; ++k)
    for (int64_t j = 0; j < N; ++j) out[j * K + k] = in[k * N + j];
}

// Runs fn(b0, b1) on disjoint ranges of batch rows, one range per thread. Recurrent rows are
// independent (row b of h_t depends only on row b of h_{t-1}), so each thread runs the whole
// time loop on its rows with no barrier per step. Ranges are whole register tiles, and small
// problems stay on one thread (flops: the work of the whole call, to skip the fork when tiny).
template <typename T, typename F>
void parallel_rows(int64_t rows, double flops, F&& fn) {
#if defined(SEQFUSE_OPENMP)
  constexpr int64_t MR = gemm_tile<T>::mr;
  const int64_t tiles = (rows + MR - 1) / MR;
  const int threads = static_cast<int>(std::min<int64_t>(omp_get_max_threads(), tiles));
  if (threads > 1 && flops > 2e6) {
#pragma omp parallel num_threads(threads)
    {
      const int64_t n = omp_get_num_threads(), id = omp_get_thread_num();
      const int64_t b0 = std::min(rows, tiles * id / n * MR);
      const int64_t b1 = std::min(rows, tiles * (id + 1) / n * MR);
      if (b0 < b1) fn(b0, b1);
    }
    return;
  }
#endif
  fn(int64_t(0), rows);
}

}  // namespace seqfuse
