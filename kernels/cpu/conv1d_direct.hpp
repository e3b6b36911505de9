// Conv1D's direct algorithm (cpu/conv1d.hpp chooses between it and cpu/conv1d_gemm.hpp).
// Cross-correlation on raw pointers, channels-last; x is already padded.
//   x: [B,L,C], kernel: [K,C,O], out/grad: [B,Lo,O], Lo = (L - d·(K-1) - 1) / s + 1
//   out[b,t] = Σ_k x[b, t·s + k·d] · kernel[k]
// No im2col: every pass is the same register-blocked strided GEMM (`strided_gemm`), with
// the taps as an extra reduction axis, so forward accumulates all K taps in registers.
//   forward: rows t, depth c, taps k              (OpenMP over batch × row chunks)
//   dx:      stride 1: rows j, depth o, taps k    (the forward over grad, taps reversed)
//            else rows t·s + k·d, depth o, one tap (OpenMP over batch; dx[b] is private)
//   dkernel: rows c, depth t, per k               (thread-private partials, summed after)
// The bias rides along: forward starts the accumulators from it, and the dkernel pass sums
// the grad rows it reads into dbias. As separate NumPy passes over out and grad they cost
// 2.9 + 1.9 ms of a 167 ms training step at (B,L,C,O,K) = (64,1000,128,128,5) (2-core VM).
#pragma once
#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "cpu/simd.hpp"
#include "cpu/threads.hpp"

namespace seqfuse {
namespace conv1d_detail {

// One SIMD value of the build's widest registers (cpu/simd.hpp: a zmm with AVX-512, a ymm
// with AVX2, an xmm otherwise). Vector extensions keep the accumulators in registers, which
// plain arrays do not reliably get from GCC's auto-vectorizer.
template <typename T>
struct simd {
  using type = typename Vector<T, kVectorBytes>::type;
};

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

// The register tile, MR rows × NV vectors of Y columns, sized to the register file: with
// AVX-512's 32 zmm registers 8 × 2 (16 accumulators, 32 float32 columns); with the 16 ymm or
// xmm registers of AVX2 and SSE2 6 × 2 (12 accumulators, two W vectors and a broadcast: 15).
// 8 × 2 ymm vectors spilled (the 64-byte tile split in two: 32 accumulators in 16 registers).
constexpr int kRows = kVectorBytes == 64 ? 8 : 6;  // MR
constexpr int kVectors = 2;                        // NV

// Columns of Y per register tile.
template <typename T>
inline constexpr int64_t kColumns = kVectors * kVectorBytes / sizeof(T);

// A Rows × NV-vector tile (Rows <= MR: the full tile, or the last rows of a block):
// accumulators stay in registers across every tap and depth step.
template <int Rows, typename T>
inline void vector_tile(const Strided<T>& g, int64_t i0, int64_t n0, bool accumulate) {
  using V = typename simd<T>::type;
  constexpr int lanes = sizeof(V) / sizeof(T);
  V acc[Rows][kVectors];
  for (int i = 0; i < Rows; ++i)
    for (int v = 0; v < kVectors; ++v) {
      if (accumulate)
        acc[i][v] = load_vector<V>(g.y + (i0 + i) * g.y_row + n0 + v * lanes);
      else if (g.bias)
        acc[i][v] = load_vector<V>(g.bias + n0 + v * lanes);
      else
        acc[i][v] = V{};
    }
  for (int64_t j = 0; j < g.taps; ++j) {
    const T* a = g.a + j * g.a_tap + i0 * g.a_row;
    const T* w = g.w + j * g.w_tap + n0;
    // Unrolled 4x like the recurrent tile (cpu/gemm.hpp); together with the kernel read from
    // column panels (column_panels) the forward at (64,1000,128,128,5) went 81 -> 66 ms.
#pragma GCC unroll 4
    for (int64_t p = 0; p < g.depth; ++p, a += g.a_col, w += g.w_row) {
      V wv[kVectors];
      for (int v = 0; v < kVectors; ++v) wv[v] = load_vector<V>(w + v * lanes);
      for (int i = 0; i < Rows; ++i) {
        const T av = a[i * g.a_row];  // scalar × vector: a broadcast load (V{} + av adds 0)
        for (int v = 0; v < kVectors; ++v) acc[i][v] += av * wv[v];
      }
    }
  }
  for (int i = 0; i < Rows; ++i)
    for (int v = 0; v < kVectors; ++v)
      store_vector(g.y + (i0 + i) * g.y_row + n0 + v * lanes, acc[i][v]);
}

// vector_tile with `rows` (1..Rows) rows, the count known at compile time in each branch.
template <int Rows, typename T>
inline void vector_rows(const Strided<T>& g, int64_t i0, int64_t n0, int rows, bool accumulate) {
  if constexpr (Rows > 1)
    if (rows < Rows) return vector_rows<Rows - 1>(g, i0, n0, rows, accumulate);
  vector_tile<Rows>(g, i0, n0, accumulate);
}

// A tile of mr <= MR rows and nr < NR columns at the right edge: scalar loops with runtime
// bounds, so nothing past the arrays is read.
template <typename T>
inline void edge_tile(const Strided<T>& g, int64_t i0, int64_t n0, int mr, int nr, bool accumulate) {
  T acc[kRows][kColumns<T>];
  for (int i = 0; i < mr; ++i) {  // the source picked per row: a select per element needs masked loads
    const T* from = accumulate ? g.y + (i0 + i) * g.y_row + n0 : g.bias ? g.bias + n0 : nullptr;
    for (int n = 0; n < nr; ++n) acc[i][n] = from ? from[n] : T(0);
  }
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
// (taps × depth × NR) is reused by every row tile while it is cache-resident. The last rows
// of a block run a shorter vector tile; only columns short of a whole tile run scalar.
template <typename T>
inline void strided_gemm(const Strided<T>& g, int64_t rows, int64_t cols, bool accumulate) {
  constexpr int64_t nr = kColumns<T>;
  for (int64_t n0 = 0; n0 < cols; n0 += nr) {
    const int nc = static_cast<int>(std::min(nr, cols - n0));
    for (int64_t i0 = 0; i0 < rows; i0 += kRows) {
      const int mc = static_cast<int>(std::min<int64_t>(kRows, rows - i0));
      if (nc == nr)
        vector_rows<kRows>(g, i0, n0, mc, accumulate);
      else
        edge_tile(g, i0, n0, mc, nc, accumulate);
    }
  }
}

constexpr int64_t kChunk = 128;  // output rows per task: x, grad and out chunks stay in L2

// Elements of w [rows, cols] as column panels (column_panels).
template <typename T>
inline int64_t column_panels_size(int64_t rows, int64_t cols) {
  return (cols + kColumns<T> - 1) / kColumns<T> * rows * kColumns<T>;
}

// out = w [rows, cols] (row-major) as column panels of one register tile's width,
// [panels][rows][NR] with zeros past the last column: a tile then streams its slab of W from
// consecutive lines. Read in place, the slab's rows lie cols apart, and at cols = 128 float32
// (512 bytes) its 640 lines at (C,K) = (128,5) fall into an eighth of the L1 sets, so every
// row tile read the slab from L2 again. out holds column_panels_size(rows, cols) elements.
template <typename T>
void column_panels(const T* w, int64_t rows, int64_t cols, T* out) {
  constexpr int64_t NR = kColumns<T>;
  for (int64_t p = 0; p * NR < cols; ++p) {
    const int64_t width = std::min(NR, cols - p * NR);
    for (int64_t r = 0; r < rows; ++r, out += NR) {
      std::copy(w + r * cols + p * NR, w + r * cols + p * NR + width, out);
      std::fill(out + width, out + NR, T(0));
    }
  }
}

// dbias partial (one thread's, double) += the rows grad[0:rows, 0:O].
template <typename T>
inline void add_rows(const T* grad, int64_t rows, int64_t O, double* sums) {
  for (const T* row = grad; row < grad + rows * O; row += O)
    for (int64_t o = 0; o < O; ++o) sums[o] += row[o];
}

// Per-thread partial sums of the backward pass: dkernel [K,C,O] in T and dbias [O] in double
// (as the recurrent ops' bias sums, cpu/projection.hpp ColumnSums, so only the final rounding
// is left). `sum` writes their totals.
template <typename T>
struct Partials {
  int64_t kco, O;
  std::vector<T> kernel;
  std::vector<double> bias;
  Partials(int64_t kco_, int64_t O_)
      : kco(kco_), O(O_), kernel(static_cast<size_t>(pool_threads()) * kco_, T(0)),
        bias(static_cast<size_t>(pool_threads()) * O_, 0.0) {}
  T* kernel_of(int thread) { return kernel.data() + thread * kco; }
  double* bias_of(int thread) { return bias.data() + thread * O; }
  void sum(T* dkernel, T* dbias) const {
    const int threads = pool_threads();
#pragma omp parallel for schedule(static) if (kco > 65536)
    for (int64_t e = 0; e < kco; ++e) {
      T total = 0;
      for (int t = 0; t < threads; ++t) total += kernel[t * kco + e];
      dkernel[e] = total;
    }
    for (int64_t o = 0; o < O; ++o) {
      double total = 0;
      for (int t = 0; t < threads; ++t) total += bias[t * O + o];
      dbias[o] = static_cast<T>(total);
    }
  }
};

}  // namespace conv1d_detail

inline int64_t conv1d_output_length(int64_t length, int64_t size, int64_t strides, int64_t dilation) {
  return (length - dilation * (size - 1) - 1) / strides + 1;
}

// x: [B,L,C], kernel: [K,C,O], bias: [O] or nullptr -> out: [B,Lo,O] (fully written).
template <typename T>
void conv1d_forward_direct(const T* x, int64_t B, int64_t L, int64_t C, const T* kernel,
                           const T* bias, int64_t K, int64_t O, int64_t s, int64_t d, T* out) {
  using namespace conv1d_detail;
  constexpr int64_t NR = kColumns<T>;
  const int64_t Lo = conv1d_output_length(L, K, s, d);
  const int64_t chunks = (Lo + kChunk - 1) / kChunk, panels = (O + NR - 1) / NR;
  std::vector<T> w(column_panels_size<T>(K * C, O));
  column_panels(kernel, K * C, O, w.data());
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c0 = 0; c0 < chunks; ++c0) {
      const int64_t t0 = c0 * kChunk;
      for (int64_t p = 0; p < panels; ++p) {
        const Strided<T> g{x + (b * L + t0 * s) * C, d * C, s * C, 1, w.data() + p * K * C * NR, C * NR,
                           NR, out + (b * Lo + t0) * O + p * NR, O, K, C, bias ? bias + p * NR : nullptr};
        strided_gemm(g, std::min(kChunk, Lo - t0), std::min(NR, O - p * NR), false);
      }
    }
}

// conv1d_dx_direct at stride 1, kernel_t: [K,O,C]. dx[b, j] = Σ_k grad[b, j - k·d] · kernel[k]ᵀ
// is a forward pass over grad with the taps reversed: rows j in [(K-1)·d, Lo) see every tap
// and accumulate all of them in registers, as the forward does (1.1x faster than tap by tap,
// measured at (64,1000,128,128,5)); the (K-1)·d rows at each end add the taps that reach them.
template <typename T>
void conv1d_dx_direct_stride1(const T* grad, int64_t B, int64_t L, int64_t C, const T* kernel_t,
                              int64_t K, int64_t O, int64_t d, T* dx) {
  using namespace conv1d_detail;
  constexpr int64_t NR = kColumns<T>;
  const int64_t Lo = L - (K - 1) * d, first = (K - 1) * d;
  const int64_t chunks = (std::max<int64_t>(0, Lo - first) + kChunk - 1) / kChunk;
  const int64_t panels = (C + NR - 1) / NR;
  // The taps in reverse order ([K,O,C], tap K-1 first), as column panels.
  std::vector<T> reversed(static_cast<size_t>(K * O * C));
  for (int64_t k = 0; k < K; ++k)
    std::copy(kernel_t + (K - 1 - k) * O * C, kernel_t + (K - k) * O * C, reversed.begin() + k * O * C);
  std::vector<T> w(column_panels_size<T>(K * O, C));
  column_panels(reversed.data(), K * O, C, w.data());
#pragma omp parallel
  {
#pragma omp for collapse(2) schedule(dynamic) nowait
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c0 = 0; c0 < chunks; ++c0) {
        const int64_t j0 = first + c0 * kChunk;
        for (int64_t p = 0; p < panels; ++p) {
          const Strided<T> g{grad + (b * Lo + j0 - first) * O, d * O, O, 1, w.data() + p * K * O * NR,
                             O * NR, NR, dx + (b * L + j0) * C + p * NR, C, K, O};
          strided_gemm(g, std::min(kChunk, Lo - j0), std::min(NR, C - p * NR), false);
        }
      }
#pragma omp for schedule(static)
    for (int64_t b = 0; b < B; ++b)
      for (const auto& [j0, j1] : {std::pair{int64_t(0), first}, std::pair{std::max(first, Lo), L}}) {
        std::fill(dx + (b * L + j0) * C, dx + (b * L + j1) * C, T(0));
        for (int64_t k = 0; k < K; ++k) {
          const int64_t t0 = std::max<int64_t>(0, j0 - k * d), t1 = std::min(Lo, j1 - k * d);
          if (t1 <= t0) continue;
          const Strided<T> g{grad + (b * Lo + t0) * O, 0, O, 1, kernel_t + k * O * C, 0, C,
                             dx + (b * L + t0 + k * d) * C, C, 1, O};
          strided_gemm(g, t1 - t0, C, true);
        }
      }
  }
}

// grad: [B,Lo,O], kernel: [K,C,O] -> dx: [B,L,C] (fully written).
template <typename T>
void conv1d_dx_direct(const T* grad, int64_t B, int64_t L, int64_t C, const T* kernel, int64_t K,
                      int64_t O, int64_t s, int64_t d, T* dx) {
  using namespace conv1d_detail;
  const int64_t Lo = conv1d_output_length(L, K, s, d);
  const int64_t chunks = (Lo + kChunk - 1) / kChunk;
  // kernel_t: [K,O,C], so dx rows read W contiguously along c.
  std::vector<T> kernel_t(K * C * O);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t o = 0; o < O; ++o) kernel_t[(k * O + o) * C + c] = kernel[(k * C + c) * O + o];
  if (s == 1) {
    conv1d_dx_direct_stride1(grad, B, L, C, kernel_t.data(), K, O, d, dx);
    return;
  }
  // dx[b, t·s + k·d] += grad[b, t] · kernel[k]ᵀ: rows of different taps overlap, so each
  // batch row belongs to one thread and the taps run in order.
#pragma omp parallel for schedule(static)
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
}

// grad: [B,Lo,O], x: [B,L,C] -> dkernel: [K,C,O], dbias: [O] = Σ_{b,t} grad[b,t] (written).
template <typename T>
void conv1d_dkernel_direct(const T* grad, const T* x, int64_t B, int64_t L, int64_t C, int64_t K,
                           int64_t O, int64_t s, int64_t d, T* dkernel, T* dbias) {
  using namespace conv1d_detail;
  const int64_t Lo = conv1d_output_length(L, K, s, d);
  const int64_t chunks = (Lo + kChunk - 1) / kChunk;
  constexpr int64_t NR = kColumns<T>;
  const int64_t panels = (O + NR - 1) / NR;
  Partials<T> partials(K * C * O, O);
  // dkernel[k][c, o] = Σ_{b,t} x[b, t·s + k·d, c] · grad[b, t, o], summed per thread; each
  // block of grad rows is read from column panels (column_panels) by all K taps.
#pragma omp parallel
  {
    T* mine = partials.kernel_of(pool_thread_id());
    double* mine_bias = partials.bias_of(pool_thread_id());
    std::vector<T> w(column_panels_size<T>(kChunk, O));  // this thread's block of grad rows
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c0 = 0; c0 < chunks; ++c0) {
        const int64_t t0 = c0 * kChunk, rows = std::min(kChunk, Lo - t0);
        column_panels(grad + (b * Lo + t0) * O, rows, O, w.data());
        for (int64_t k = 0; k < K; ++k)
          for (int64_t p = 0; p < panels; ++p) {
            const Strided<T> g{x + (b * L + t0 * s + k * d) * C, 0, 1, s * C, w.data() + p * rows * NR,
                               0, NR, mine + k * C * O + p * NR, O, 1, rows};
            strided_gemm(g, C, std::min(NR, O - p * NR), true);
          }
        add_rows(grad + (b * Lo + t0) * O, rows, O, mine_bias);
      }
  }
  partials.sum(dkernel, dbias);
}

}  // namespace seqfuse
