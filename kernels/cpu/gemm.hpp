// A small GEMM for the recurrent step: C[M,N] = X[M,N] + A[M,K]·B[K,N], all row-major with
// leading dimensions, or B packed panel by panel (packed_copy below), as the loops read it.
// No BLAS is guaranteed at build time, and per step the matrices are small (M = batch rows
// of one thread, K = H ≤ 256, N ≤ 4H), where a BLAS call's overhead would dominate anyway.
//
// The micro-kernel keeps an MR×NR block of C in vector registers (GCC vector types, FMAs
// where the ISA has them) and streams one row of B per k. Loops run column panel by panel, so
// each NR-wide slice of U is reused by every row block while it is hot. Per-tile rates are
// listed at kGemmTiles below (AVX-512 float: ~250 GFLOP/s per core on the Zen 5 VM).
#pragma once
#include <algorithm>
#include <cstdint>
#include <system_error>
#include <thread>
#include <vector>

#include "cpu/choices.hpp"
#include "cpu/simd.hpp"
#include "cpu/threads.hpp"

namespace seqfuse {

// Register tiles MR × NV·lanes of C (lanes: elements of 64 bytes, one zmm register with
// AVX-512, two ymm with AVX2, four xmm with SSE), one per choice value of "gemm_tile"
// (cpu/choices.hpp). Which one is fastest depends on the CPU, so engine/tuning.py times them
// at first use on each CPU (SEQFUSE_GEMM_TILE forces one). One core, GFLOP/s at the step
// shapes (M,K,N) = (32,192,512) / (64,384,1024), 2-vCPU AMD EPYC Zen 5, GCC 12, 2026-12-01:
//   AVX-512 float  8x2 254/250  8x3 242/254  6x4 217/225  6x1 153/146
//           double 8x2 122/122  8x3 124/127  6x4 111/111  6x1  74/66
//   AVX2    float  6x1 121/117  4x1 115/113  (8x2, 8x3, 6x4: 45-51, more than 16 registers)
//           double 6x1  60/58   4x1  56/53   (6x4 25)
//   SSE2    float  4x1  45/44   3x1  49/45;  double 3x1 24/22
// "auto" is 8x2 (float) and 8x3 (double) with AVX-512, 6x1 with AVX2, 4x1 otherwise. On the
// Zen 5's AVX2 path 4x1 had been picked (threads then split the batch in whole tiles, and 64
// rows on 2 threads split 30 + 34 with 6x1: 15% slower than 4x1's 32 + 32 there); on a real AVX2
// CPU, a 2-vCPU AMD EPYC Zen 3 (2026-12-01, bench/profile_step.py at (64,100,64,128)), 6x1
// ran the loops 1.2-1.6x faster than 4x1 (LSTM forward 14.2-16.9 ms against 22.1-22.6,
// GRU 9.5 against 15.5, SimpleRNN 4.1 against 5.0), and its autotune picked 6x1 too.
struct GemmTile {
  int mr, nv;
};
// index = choice value
inline constexpr GemmTile kGemmTiles[] = {{0, 0}, {8, 2}, {8, 3}, {6, 4}, {6, 1}, {4, 1}};

template <typename T>
constexpr int64_t gemm_lanes() { return 64 / sizeof(T); }

template <typename T>
constexpr GemmTile gemm_auto_tile() {
#if defined(__AVX512F__)
  return sizeof(T) == 4 ? GemmTile{8, 2} : GemmTile{8, 3};
#elif defined(__AVX2__)
  return GemmTile{6, 1};
#else
  return GemmTile{4, 1};
#endif
}

// The tile in force for T (run time: the "gemm_tile" choice), before step_tile (below) widens
// auto's for rows that outgrow L1.
template <typename T>
inline GemmTile gemm_tile() {
  const int choice = choices().gemm_tile.load(std::memory_order_relaxed);
  return choice > 0 ? kGemmTiles[choice] : gemm_auto_tile<T>();
}

// One product A[M,K]·B[K,N] of a GEMM (row-major, leading dimensions lda, ldb). A packed B
// (packed_copy below) is laid out panel by panel instead, and ldb is unused.
template <typename T>
struct Product {
  int64_t K;
  const T* A;
  int64_t lda;
  const T* B;
  int64_t ldb;
  bool packed = false;
};

// The products as the micro-kernel reads them for the column panel starting at j, w columns
// wide. A packed B keeps that panel K×w contiguous at B + K·j (packed_copy), so it is read as
// rows w apart from B + (K-1)·j: the kernel adds the column j itself.
template <typename T, int NP>
struct PanelProducts {
  Product<T> p[NP];
};
template <typename T, int NP>
inline PanelProducts<T, NP> panel_products(const Product<T> (&p)[NP], int64_t j, int64_t w) {
  PanelProducts<T, NP> out;
  for (int q = 0; q < NP; ++q) {
    out.p[q] = p[q];
    if (p[q].packed) {
      out.p[q].B = p[q].B + (p[q].K - 1) * j;
      out.p[q].ldb = w;
    }
  }
  return out;
}

// C tile = X + Σ_p A_p·B_p for the NP products, rows r0.., columns j0.. of each. X may be
// nullptr (zeros), may alias C, and ldx = 0 broadcasts one row (a bias). Summing two products
// in one tile (a step's x_t·kernel and h_{t-1}·U) stores and reloads the tile once, not twice.
// The tile is held as explicit vectors (MR × NR/L registers of L lanes), not left to the
// auto-vectorizer: GCC 12 vectorized a plain MR×NR array well at some sizes and used 16-byte
// registers and the stack at others (6 rows × 16 floats with AVX2: 5 GFLOP/s, 20x slower).
template <typename T, int MR, int NR, int NP>
inline void gemm_micro(const Product<T> (&p)[NP], int64_t r0, int64_t j0, const T* X, int64_t ldx,
                       T* C, int64_t ldc) {
  constexpr int VB = std::min<int>(kVectorBytes, NR * sizeof(T)), L = VB / sizeof(T), NV = NR / L;
  using V = typename Vector<T, VB>::type;
  static_assert(NR % L == 0, "a tile is whole vectors wide");
  V acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) {
      acc[r][v] = X ? load_vector<V>(X + r * ldx + v * L) : V{};
    }
  for (int q = 0; q < NP; ++q) {
    const T* A = p[q].A + r0 * p[q].lda;
    const int64_t lda = p[q].lda, ldb = p[q].ldb;
    // Unrolled 4x, as BLAS micro-kernels unroll k (GCC does not unroll loops at -O3 on its
    // own). Alternating processes on the Zen 3 VM, medians of 6 (3 at the large size): LSTM
    // (64,100,64,128) forward 12.6 -> 11.8 ms, backward 12.5 -> 11.5, training step 43.7 ->
    // 36.7 (unroll 2: 38.6, 8: 38.8); (128,200,128,256) forward 182 -> 171, backward 177 ->
    // 158; SimpleRNN (64,100,64,128) forward 3.09 -> 2.63, backward 3.35 -> 2.83; GRU even.
#pragma GCC unroll 4
    for (int64_t k = 0; k < p[q].K; ++k) {
      V b[NV];
      for (int v = 0; v < NV; ++v) b[v] = load_vector<V>(p[q].B + k * ldb + j0 + v * L);
      for (int r = 0; r < MR; ++r) {
        const T a = A[r * lda + k];
        for (int v = 0; v < NV; ++v) acc[r][v] += a * b[v];
      }
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) store_vector(C + r * ldc + v * L, acc[r][v]);
}

// Column tail narrower than the vector passes (N not a multiple of NR/4): row r against n
// columns from j0, one dot product each.
template <typename T, int NP>
inline void gemm_tail_cols(const Product<T> (&p)[NP], int64_t r, int64_t j0, int64_t n, const T* X,
                           T* C) {
  for (int64_t j = 0; j < n; ++j) {
    T acc = X ? X[j] : T(0);
    for (int q = 0; q < NP; ++q)
      for (int64_t k = 0; k < p[q].K; ++k)
        acc += p[q].A[r * p[q].lda + k] * p[q].B[k * p[q].ldb + j0 + j];
    C[j] = acc;
  }
}

// The micro-kernel for a tile of `rows` rows (1..MR), chosen at run time. (The same dispatch
// as conv1d_direct.hpp's vector_rows. One shared helper taking a lambda was tried: GCC then
// stopped inlining the tiles into gemm_tiled (716 -> 301 instructions), and the LSTM
// (64,100,64,128) loops were slower in two of three alternating-process runs (10 rounds:
// forward 10.8 -> 11.7 ms, backward 10.8 -> 11.9), so each kernel keeps its own five lines.)
template <typename T, int MR, int NR, int NP>
inline void gemm_rows(int64_t rows, const Product<T> (&p)[NP], int64_t r0, int64_t j0, const T* X,
                      int64_t ldx, T* C, int64_t ldc) {
  if constexpr (MR > 1)
    if (rows < MR) return gemm_rows<T, MR - 1, NR>(rows, p, r0, j0, X, ldx, C, ldc);
  gemm_micro<T, MR, NR>(p, r0, j0, X, ldx, C, ldc);
}

// One column panel of width NR (columns j0..j0+NR of each B) against every row: the panel
// stays in L1/L2 while the row blocks stream past it, so U is read from memory once per step
// even when it outgrows L2 (H = 256: 1 MB). Full MR-row tiles, then the remaining rows as
// one tile (they were run two rows at a time: with this and with the unit-stride loads of
// gemm_micro (cpu/simd.hpp), LSTM (64,100,64,128) forward 17.2 -> 13.1 ms and backward 14.5 ->
// 12.1 ms, SimpleRNN 3.8 -> 3.0 and 3.8 -> 3.1 ms; medians over 6-8 processes alternating
// with the old build, 2-vCPU AMD EPYC Zen 3, 2026-12-01). A remainder of up to MR - 3 rows
// is not left as a short tile: the last MR + rem rows run as two tiles of about half that
// (6 + 2 -> 4 + 4), since a tile of one or two rows has too few accumulators to hide the FMA
// latency and runs at about half the rate per row. One core, (M,K,N) = (32,192,128), old and
// new interleaved in one process, medians of 40: 79.0 -> 82.5 and 73.1 -> 74.6 GFLOP/s
// (M = 31: 77.1 -> 80.3, 70.6 -> 73.2; M = 64 and 16, no remainder: even; Zen 3, 2026-12-02).
template <typename T, int MR, int NR, int NP>
inline void gemm_panel(int64_t M, const Product<T> (&p)[NP], int64_t j0, const T* X, int64_t ldx,
                       T* C, int64_t ldc) {
  auto x_at = [&](int64_t r) { return X ? X + r * ldx : nullptr; };
  const int64_t rem = M % MR;
  const bool split = rem && rem + 3 <= MR && M > MR;
  const int64_t whole = split ? M - rem - MR : M - rem;
  int64_t r = 0;
  for (; r < whole; r += MR) gemm_micro<T, MR, NR>(p, r, j0, x_at(r), ldx, C + r * ldc, ldc);
  if constexpr (MR > 1) {
    if (split) {
      const int64_t first = (MR + rem + 1) / 2;
      gemm_rows<T, MR - 1, NR>(first, p, r, j0, x_at(r), ldx, C + r * ldc, ldc);
      r += first;
    }
    if (r < M) gemm_rows<T, MR - 1, NR>(M - r, p, r, j0, x_at(r), ldx, C + r * ldc, ldc);
  }
}

// C[M,N] = X + Σ_p A_p·B_p with an MR × NV·lanes tile: full panels, then one-vector and
// half-vector panels, then single columns.
template <typename T, int MR, int NV, int NP>
void gemm_tiled(int64_t M, int64_t N, const Product<T> (&p)[NP], const T* X, int64_t ldx, T* C,
                int64_t ldc) {
  constexpr int NR = NV * gemm_lanes<T>(), ONE = gemm_lanes<T>(), HALF = ONE / 2;
  auto x_at = [&](int64_t j) { return X ? X + j : nullptr; };
  int64_t j = 0;
  for (; j + NR <= N; j += NR)
    gemm_panel<T, MR, NR>(M, panel_products(p, j, NR).p, j, x_at(j), ldx, C + j, ldc);
  if (NR > ONE)
    for (; j + ONE <= N; j += ONE)
      gemm_panel<T, MR, ONE>(M, panel_products(p, j, ONE).p, j, x_at(j), ldx, C + j, ldc);
  for (; j + HALF <= N; j += HALF)
    gemm_panel<T, MR, HALF>(M, panel_products(p, j, HALF).p, j, x_at(j), ldx, C + j, ldc);
  const PanelProducts<T, NP> tail = panel_products(p, j, N - j);
  for (int64_t r = 0; j < N && r < M; ++r)
    gemm_tail_cols<T>(tail.p, r, j, N - j, X ? X + r * ldx + j : nullptr, C + r * ldc + j);
}

// C[M,N] = X + Σ_p A_p·B_p. Each A_p: [M,K_p], B_p: [K_p,N]; X: [M,N] (ldx) or nullptr;
// C: [M,N] (ldc). Runs `tile` (step_tile below); a packed B must have been packed for it.
template <typename T, int NP>
void gemm(int64_t M, int64_t N, const Product<T> (&p)[NP], const T* X, int64_t ldx, T* C,
          int64_t ldc, GemmTile tile) {
  if (tile.mr == 8 && tile.nv == 3) return gemm_tiled<T, 8, 3>(M, N, p, X, ldx, C, ldc);
  if (tile.mr == 6 && tile.nv == 4) return gemm_tiled<T, 6, 4>(M, N, p, X, ldx, C, ldc);
  if (tile.mr == 8 && tile.nv == 2) return gemm_tiled<T, 8, 2>(M, N, p, X, ldx, C, ldc);
  if (tile.mr == 6 && tile.nv == 1) return gemm_tiled<T, 6, 1>(M, N, p, X, ldx, C, ldc);
  return gemm_tiled<T, 4, 1>(M, N, p, X, ldx, C, ldc);  // 4x1 (auto without AVX2)
}

// Calls f(j, w) for the column panels gemm_tiled walks over N columns with `tile`: tile-wide,
// then one-vector, half-vector, and the remaining columns.
template <typename T, typename F>
void for_each_panel(int64_t N, F&& f, GemmTile tile) {
  const int64_t NR = tile.nv * gemm_lanes<T>(), ONE = gemm_lanes<T>(), HALF = ONE / 2;
  int64_t j = 0;
  for (; j + NR <= N; j += NR) f(j, NR);
  if (NR > ONE)
    for (; j + ONE <= N; j += ONE) f(j, ONE);
  for (; j + HALF <= N; j += HALF) f(j, HALF);
  if (j < N) f(j, N - j);
}

// B [K,N] (ldb) packed for gemm() with `tile` (step_tile): the panels of for_each_panel,
// each K×w contiguous, one after another. The micro-kernel then streams each panel from
// consecutive lines instead of rows ldb apart. Rows 4 KB apart (4H = 1024 floats) put every
// row of a panel in one L1 set, so the panel was re-read from L2 for each row tile; rows an
// odd number of lines apart (the copies used before) fixed that, and packing beats them: one
// core, float, Zen 5, (M,K,N) = (64,384,1024): AVX-512 8x2 220 -> 246 GFLOP/s, AVX2 4x1 106 ->
// 118. A packed copy serves whole-width products only: a column slice that is its own
// product (GRU's U_zr, U_h) gets its own packed copy (B = the slice's start, ldb = G).
template <typename T>
Scratch<T> packed_copy(int64_t K, int64_t N, const T* B, int64_t ldb, GemmTile tile) {
  Scratch<T> out(K * N);
  T* dst = out.data();
  for_each_panel<T>(N, [&](int64_t j, int64_t w) {
    for (int64_t k = 0; k < K; ++k, dst += w) std::copy(B + k * ldb + j, B + k * ldb + j + w, dst);
  }, tile);
  return out;
}

// out = inᵀ ([N,K]) packed as packed_copy packs a B operand for `tile`, for in: [K,N]
// row-major (rows ldi apart, N by default: ldi > N takes a column slice): the backward loops
// multiply by Uᵀ and kernelᵀ, with the tile of their step GEMMs (step_tile). out holds N·K
// elements.
template <typename T>
void transpose_packed(int64_t K, int64_t N, const T* in, T* out, int64_t ldi, GemmTile tile) {
  if (!ldi) ldi = N;
  for_each_panel<T>(K, [&](int64_t j, int64_t w) {
    for (int64_t n = 0; n < N; ++n, out += w)
      for (int64_t c = 0; c < w; ++c) out[c] = in[(j + c) * ldi + n];
  }, tile);
}

// The most row ranges parallel_rows makes: the size of per-range workspaces (ColumnSums).
inline int64_t max_row_ranges() {
#if defined(SEQFUSE_OPENMP)
  return pool_threads();
#else
  return std::max(1u, std::thread::hardware_concurrency());
#endif
}

// How many row ranges parallel_rows (below) makes of `rows` for work of `flops`.
template <typename T>
int64_t row_ranges(int64_t rows, double flops) {
  const int64_t MR = gemm_tile<T>().mr;
  const int64_t tiles = (rows + MR - 1) / MR;
  return flops > 4e6 ? std::min(max_row_ranges(), tiles) : 1;
}

// The register tile of a recurrent loop's step GEMMs, whose left operands are a thread's
// rows, `cols` wide (forward: x_t and h_{t-1}, F + H; backward: the step's gradient, G), for
// `rows` batch rows split by parallel_rows for work of `flops`: the "gemm_tile" choice where
// forced or tuned; on auto, with AVX-512 float, 6x4 where one thread's rows outgrow the L1
// data cache and 8x2 where they fit, else the build's auto tile (gemm_auto_tile). gemm_tiled
// passes over the rows once per column panel, from L2 once they outgrow L1, and 6x4's panels
// are twice as wide as 8x2's. Intel Xeon (family 6, model 167, 48 KiB L1d), 2026-12-02, the
// loops alone, 8x2 -> 6x4 alternating call by call in one process (a thread's rows):
// backward LSTM (128,200,128,256) 67.0 -> 61.1 ms (256 KiB), GRU 62.5 -> 57.1 (192 KiB),
// SimpleRNN 16.0 -> 14.1 (64 KiB), LSTM (64,100,64,128) 4.28 -> 4.10 (64 KiB); forward at
// (128,200,128,256) (96 KiB) GRU 50.2 -> 49.3 and 48.1 -> 45.9, LSTM 59.4 -> 58.3 and 58.0
// -> 56.9, SimpleRNN 13.0 -> 12.8. Where the rows fit L1, 6x4 ran even or lost: backward
// GRU (64,100,64,128) 3.39 -> 3.34 (48 KiB), SimpleRNN 1.11 -> 1.26 (16 KiB), LSTM
// (32,100,32,32) 0.33 -> 0.42 (8 KiB); forward SimpleRNN (64,100,64,128) 0.81 -> 0.82 (24 KiB).
template <typename T>
GemmTile step_tile(int64_t rows, double flops, int64_t cols) {
  const int choice = choices().gemm_tile.load(std::memory_order_relaxed);
  if (choice > 0) return kGemmTiles[choice];
  const int64_t n = row_ranges<T>(rows, flops), per = (rows + n - 1) / n;
  if (sizeof(T) == 4 && kVectorBytes == 64 &&
      per * cols * static_cast<int64_t>(sizeof(T)) > l1_cache_bytes())
    return GemmTile{6, 4};
  return gemm_auto_tile<T>();
}

// Runs fn(range, b0, b1) on disjoint ranges of batch rows, one range per thread, range in
// [0, max_row_ranges()). Recurrent rows are independent (row b of h_t depends only on row b
// of h_{t-1}), so each thread runs the whole time loop on its rows with no barrier per step.
// Ranges are equal in rows (±1; gemm_panel runs a short last tile); small problems (flops:
// the work of the whole call) stay on the calling thread.
// The threads are OpenMP's, the same pool as conv1d's and the one engine/_blas.py runs the
// GEMMs around these loops on (engine._C.gemm), so only one worker per core exists. Its
// workers spin briefly after a region, so the next kernel of a training step starts without
// waking a sleeping core (LSTM (32,100,32,32) train 3.0 -> 2.5 ms, (64,100,64,128) 28 -> 26 ms
// against threads started per call, medians over processes on the 2-core VM). Before the
// GEMMs moved onto this pool, its spinning workers took the GEMM threads' core (weight
// gradients 8 -> 15 ms), which is why the loops used to start plain threads per call.
template <typename T, typename F>
void parallel_rows(int64_t rows, double flops, F&& fn) {
  const int64_t n = row_ranges<T>(rows, flops);
  auto range = [&](int64_t id) {
    const int64_t b0 = rows * id / n, b1 = rows * (id + 1) / n;
    if (b0 < b1) fn(id, b0, b1);
  };
#if defined(SEQFUSE_OPENMP)
  // A worksharing loop, so every range runs even if OpenMP grants fewer threads than n.
#pragma omp parallel for num_threads(n) schedule(static, 1)
  for (int64_t id = 0; id < n; ++id) range(id);
#else
  std::vector<std::thread> workers;
  workers.reserve(n - 1);
  for (int64_t id = 1; id < n; ++id) {
    try {
      workers.emplace_back(range, id);
    } catch (const std::system_error&) {
      range(id);  // no thread to be had: do that range here rather than fail
    }
  }
  range(0);
  for (auto& w : workers) w.join();
#endif
}

}  // namespace seqfuse
