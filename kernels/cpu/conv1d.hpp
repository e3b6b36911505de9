// Conv1D (cross-correlation) on raw pointers, channels-last; x is already padded.
//   x: [B,L,C], kernel: [K,C,O], out/grad: [B,Lo,O], Lo = (L - d·(K-1) - 1) / s + 1
//   out[b,t] = Σ_k x[b, t·s + k·d] · kernel[k]
// No im2col: every pass is the same register-blocked strided GEMM (`strided_gemm`), with
// the taps as an extra reduction axis, so forward accumulates all K taps in registers.
//   forward: rows t, depth c, taps k              (OpenMP over batch × row chunks)
//   dx:      rows t·s + k·d, depth o, one tap     (OpenMP over batch; dx[b] is private)
//   dkernel: rows c, depth t, per k               (thread-private partials, summed after)
// The bias rides along: forward starts the accumulators from it, and the dkernel pass sums
// the grad rows it reads into dbias. As separate NumPy passes over out and grad they cost
// 2.9 + 1.9 ms of a 167 ms training step at (B,L,C,O,K) = (64,1000,128,128,5) (2-core VM).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu/threads.hpp"

namespace seqfuse {
namespace conv1d_detail {

// One 64-byte SIMD value (a zmm register with AVX-512; the compiler splits it into narrower
// registers on older targets). Vector extensions keep the accumulators in registers, which
// plain arrays do not reliably get from GCC's auto-vectorizer.
typedef float f32x16 __attribute__((vector_size(64)));
typedef double f64x8 __attribute__((vector_size(64)));
template <typename T> struct simd;
template <> struct simd<float> { using type = f32x16; };
template <> struct simd<double> { using type = f64x8; };

// Y[i, n] (+)= Σ_{j<taps} Σ_{p<depth} A[j·a_tap + i·a_row + p·a_col] · W[j·w_tap + p·w_row + n]
// Y row i starts at y + i·y_row; W rows are contiguous in n. Strides are in elements.
// Without accumulate, Y starts from `bias` (one row, broadcast) or from zero when it is null.
template <typename T>
struct Strided {
  const T* a;
  int64_t a_tap, a_row, a_col;
  const T* w;
  int64_t w_tap, w_row;
  T* y;
  int64_t y_row;
  int64_t taps, depth;
  const T* bias = nullptr;
};

constexpr int kRows = 8;     // MR: rows of Y per register tile
constexpr int kVectors = 2;  // NV: SIMD vectors of Y columns per register tile (16 accumulators)

// A full MR × (NV·lanes) tile: accumulators stay in registers across every tap and depth step.
template <typename T>
inline void full_tile(const Strided<T>& g, int64_t i0, int64_t n0, bool accumulate) {
  using V = typename simd<T>::type;
  constexpr int lanes = sizeof(V) / sizeof(T);
  V acc[kRows][kVectors];
  for (int i = 0; i < kRows; ++i)
    for (int v = 0; v < kVectors; ++v) {
      if (accumulate)
        std::memcpy(&acc[i][v], g.y + (i0 + i) * g.y_row + n0 + v * lanes, sizeof(V));
      else if (g.bias)
        std::memcpy(&acc[i][v], g.bias + n0 + v * lanes, sizeof(V));
      else
        acc[i][v] = V{};
    }
  for (int64_t j = 0; j < g.taps; ++j) {
    const T* a = g.a + j * g.a_tap + i0 * g.a_row;
    const T* w = g.w + j * g.w_tap + n0;
    for (int64_t p = 0; p < g.depth; ++p, a += g.a_col, w += g.w_row) {
      V wv[kVectors];
      for (int v = 0; v < kVectors; ++v) std::memcpy(&wv[v], w + v * lanes, sizeof(V));
      for (int i = 0; i < kRows; ++i) {
        const V av = V{} + a[i * g.a_row];  // broadcast
        for (int v = 0; v < kVectors; ++v) acc[i][v] += av * wv[v];
      }
    }
  }
  for (int i = 0; i < kRows; ++i)
    for (int v = 0; v < kVectors; ++v)
      std::memcpy(g.y + (i0 + i) * g.y_row + n0 + v * lanes, &acc[i][v], sizeof(V));
}

// A partial tile (mr <= MR rows, nr <= NR columns) at the bottom/right edge: scalar loops
// with runtime bounds, so nothing past the arrays is read.
template <typename T>
inline void edge_tile(const Strided<T>& g, int64_t i0, int64_t n0, int mr, int nr, bool accumulate) {
  constexpr int cols = kVectors * sizeof(typename simd<T>::type) / sizeof(T);
  T acc[kRows][cols];
  for (int i = 0; i < mr; ++i)
    for (int n = 0; n < nr; ++n)
      acc[i][n] = accumulate ? g.y[(i0 + i) * g.y_row + n0 + n] : g.bias ? g.bias[n0 + n] : T(0);
  for (int64_t j = 0; j < g.taps; ++j)
    for (int64_t p = 0; p < g.depth; ++p) {
      const T* w = g.w + j * g.w_tap + p * g.w_row + n0;
      const T* a = g.a + j * g.a_tap + i0 * g.a_row + p * g.a_col;
      for (int i = 0; i < mr; ++i) {
        const T av = a[i * g.a_row];
        for (int n = 0; n < nr; ++n) acc[i][n] += av * w[n];
      }
    }
  for (int i = 0; i < mr; ++i)
    for (int n = 0; n < nr; ++n) g.y[(i0 + i) * g.y_row + n0 + n] = acc[i][n];
}

// Y[0:rows, 0:cols] (+)= the Strided sum. Column tiles outermost, so one tile's slab of W
// (taps × depth × NR) is reused by every row tile while it is cache-resident.
template <typename T>
inline void strided_gemm(const Strided<T>& g, int64_t rows, int64_t cols, bool accumulate) {
  constexpr int64_t nr = kVectors * sizeof(typename simd<T>::type) / sizeof(T);
  for (int64_t n0 = 0; n0 < cols; n0 += nr) {
    const int nc = static_cast<int>(std::min(nr, cols - n0));
    for (int64_t i0 = 0; i0 < rows; i0 += kRows) {
      const int mc = static_cast<int>(std::min<int64_t>(kRows, rows - i0));
      if (mc == kRows && nc == nr)
        full_tile(g, i0, n0, accumulate);
      else
        edge_tile(g, i0, n0, mc, nc, accumulate);
    }
  }
}

constexpr int64_t kChunk = 128;  // output rows per task: x, grad and out chunks stay in L2

}  // namespace conv1d_detail

inline int64_t conv1d_output_length(int64_t length, int64_t size, int64_t strides, int64_t dilation) {
  return (length - dilation * (size - 1) - 1) / strides + 1;
}

// x: [B,L,C], kernel: [K,C,O], bias: [O] or nullptr -> out: [B,Lo,O] (fully written).
template <typename T>
void conv1d_forward(const T* x, int64_t B, int64_t L, int64_t C, const T* kernel, const T* bias,
                    int64_t K, int64_t O, int64_t s, int64_t d, T* out) {
  using namespace conv1d_detail;
  const int64_t Lo = conv1d_output_length(L, K, s, d);
  const int64_t chunks = (Lo + kChunk - 1) / kChunk;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c0 = 0; c0 < chunks; ++c0) {
      const int64_t t0 = c0 * kChunk;
      const Strided<T> g{x + (b * L + t0 * s) * C, d * C, s * C, 1, kernel, C * O, O,
                         out + (b * Lo + t0) * O, O, K, C, bias};
      strided_gemm(g, std::min(kChunk, Lo - t0), O, false);
    }
}

// grad: [B,Lo,O], x: [B,L,C], kernel: [K,C,O]
//   -> dx: [B,L,C], dkernel: [K,C,O], dbias: [O] = Σ_{b,t} grad[b,t] (all written).
template <typename T>
void conv1d_backward(const T* grad, const T* x, int64_t B, int64_t L, int64_t C, const T* kernel,
                     int64_t K, int64_t O, int64_t s, int64_t d, T* dx, T* dkernel, T* dbias) {
  using namespace conv1d_detail;
  const int64_t Lo = conv1d_output_length(L, K, s, d);
  const int64_t chunks = (Lo + kChunk - 1) / kChunk;
  const int64_t kco = K * C * O;
  // kernel_t: [K,O,C], so dx rows read W contiguously along c.
  std::vector<T> kernel_t(kco);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t o = 0; o < O; ++o) kernel_t[(k * O + o) * C + c] = kernel[(k * C + c) * O + o];
  std::vector<T> partial(static_cast<size_t>(pool_threads()) * kco, T(0));
  // dbias sums B·Lo rows per column: in double, as the recurrent ops' bias sums
  // (cpu/projection.hpp, ColumnSums), so only the final rounding is left.
  std::vector<double> partial_bias(static_cast<size_t>(pool_threads()) * O, 0.0);

#pragma omp parallel
  {
    // dx[b, t·s + k·d] += grad[b, t] · kernel[k]ᵀ: rows of different taps overlap, so each
    // batch row belongs to one thread and the taps run in order.
#pragma omp for schedule(static)
    for (int64_t b = 0; b < B; ++b) {
      std::fill(dx + b * L * C, dx + (b + 1) * L * C, T(0));
      for (int64_t c0 = 0; c0 < chunks; ++c0) {
        const int64_t t0 = c0 * kChunk, rows = std::min(kChunk, Lo - t0);
        for (int64_t k = 0; k < K; ++k) {
          const Strided<T> g{grad + (b * Lo + t0) * O, 0, O, 1, kernel_t.data() + k * O * C, 0, C,
                             dx + (b * L + t0 * s + k * d) * C, s * C, 1, O};
          strided_gemm(g, rows, C, true);
        }
      }
    }
    // dkernel[k][c, o] = Σ_{b,t} x[b, t·s + k·d, c] · grad[b, t, o], summed per thread.
    T* mine = partial.data() + pool_thread_id() * kco;
    double* mine_bias = partial_bias.data() + pool_thread_id() * O;
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c0 = 0; c0 < chunks; ++c0) {
        const int64_t t0 = c0 * kChunk, rows = std::min(kChunk, Lo - t0);
        for (int64_t k = 0; k < K; ++k) {
          const Strided<T> g{x + (b * L + t0 * s + k * d) * C, 0, 1, s * C, grad + (b * Lo + t0) * O,
                             0, O, mine + k * C * O, O, 1, rows};
          strided_gemm(g, C, O, true);
        }
        for (const T* row = grad + (b * Lo + t0) * O; row < grad + (b * Lo + t0 + rows) * O; row += O)
          for (int64_t o = 0; o < O; ++o) mine_bias[o] += row[o];
      }
  }
  const int threads = pool_threads();
#pragma omp parallel for schedule(static) if (kco > 65536)
  for (int64_t e = 0; e < kco; ++e) {
    T sum = 0;
    for (int t = 0; t < threads; ++t) sum += partial[t * kco + e];
    dkernel[e] = sum;
  }
  for (int64_t o = 0; o < O; ++o) {
    double sum = 0;
    for (int t = 0; t < threads; ++t) sum += partial_bias[t * O + o];
    dbias[o] = static_cast<T>(sum);
  }
}

}  // namespace seqfuse
