// The recurrent layers' weight gradients as one GEMM over every step's rows, read where they
// lie: C[M1+M2, N] = Σ_{t,b} [a1(t,b) | a2(t,b)]ᵀ · b(t,b), where a1, a2 and b are rows of
// [T,B,·] sequences of any strides (x in its batch-major layout, the states h_{t-1} with h0
// as the first step, the pre-activation gradients dz), so neither x nor the states are copied
// time-major first and the gradients are read once for both weight matrices.
//
// The register tile is the step GEMM's (gemm_tile, cpu/gemm.hpp), as an outer product: per
// row, MR values of a broadcast against NR of b. Steps are blocked so one block's rows of b
// (a column panel, NR wide) stay in L1 while every row tile of a passes over it; the threads
// split the steps and sum their partial C at the end. Against OpenBLAS on the same rows
// gathered (and, for SimpleRNN, two GEMMs), interleaved, caches flushed, 2-vCPU AMD EPYC Zen 3
// (AVX2), (B,T,F,H) = (64,100,64,128), two runs each: G = H 4.3-4.8 -> 3.3-3.9 ms, G = 3H 11.5
// -> 10.0-10.6, G = 4H 11.6-11.8 -> 10.7-11.3 (2026-12-01). Packing b panel by panel straight from its
// rows had been a quarter of the time (a line per row per panel, and memmove calls).
#pragma once
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <type_traits>
#include <vector>

#include "cpu/choices.hpp"
#include "cpu/gemm.hpp"
#include "cpu/simd.hpp"
#include "cpu/threads.hpp"

namespace seqfuse {

// Rows of a [T,B,width] sequence: row (t, b) at data + t·step + b·row. With `first` set, the
// rows of t = 0 come from there instead (row b at first + b·first_row) and data's step s
// serves t = s + 1: the states each step multiplied, h0 then hs[0 .. T-2].
template <typename T>
struct RowSequence {
  const T* data;
  int64_t step, row;
  const T* first = nullptr;
  int64_t first_row = 0;

  const T* at(int64_t t) const { return !first ? data + t * step : t ? data + (t - 1) * step : first; }
  int64_t row_stride(int64_t t) const { return t == 0 && first ? first_row : row; }
  // The rows of steps t0, t0 + 1, ... as steps 0, 1, ...
  RowSequence from(int64_t t0) const { return t0 ? RowSequence{at(t0), step, row} : *this; }
  // Rows b0, b0 + 1, ... of every step as rows 0, 1, ...
  RowSequence rows_from(int64_t b0) const {
    return {data + b0 * row, step, row, first ? first + b0 * first_row : nullptr, first_row};
  }
};

// C tile (+)= Σ_{k < kc} ap_kᵀ · bp_k: ap the block's rows of one row tile packed kc × MR,
// bp its column panel packed kc × NR (both zero past the edge of C). Only `rows` × `cols`
// of the tile are loaded and stored (the last tile and panel may be smaller).
template <typename T, int MR, int NR>
inline void gemm_tn_micro(const T* ap, const T* bp, int64_t kc, bool add, int64_t rows,
                          int64_t cols, T* C, int64_t ldc) {
  constexpr int VB = std::min<int>(kVectorBytes, NR * sizeof(T)), L = VB / sizeof(T), NV = NR / L;
  using V = typename Vector<T, VB>::type;
  V acc[MR][NV];
  alignas(64) T edge[MR][NR];
  const bool full = rows == MR && cols == NR;
  if (!full) {
    std::fill(&edge[0][0], &edge[0][0] + MR * NR, T(0));
    if (add)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < cols; ++j) edge[r][j] = C[r * ldc + j];
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v)
      acc[r][v] = !full ? load_vector<V>(&edge[r][v * L]) : add ? load_vector<V>(C + r * ldc + v * L) : V{};
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    V bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = load_vector<V>(bp + k * NR + v * L);
    for (int r = 0; r < MR; ++r) {
      const T s = ap[k * MR + r];
      for (int v = 0; v < NV; ++v) acc[r][v] += s * bv[v];
    }
  }
  if (full) {
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) store_vector(C + r * ldc + v * L, acc[r][v]);
    return;
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) store_vector(&edge[r][v * L], acc[r][v]);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) C[r * ldc + j] = edge[r][j];
}

// The sources a GEMM of this file reads at most (x, the states, GRU's r·hd).
constexpr int kTnSources = 3;

// One product of a weight-gradient GEMM: C[row[s] + i, col + j] (+)= Σ_{t,b} a_s(t,b)[i] ·
// b(t,b)[j] for j < n and every source s with row[s] >= 0. The products of one call cover C,
// each element once: LSTM's and SimpleRNN's one product of [x | h] with dz; GRU's three, x and
// h with dxw's z,r columns, x with its candidate columns, h (or r·hd) with du.
template <typename T>
struct TnProduct {
  RowSequence<T> b;
  int64_t n, col;
  int64_t row[kTnSources];
};

// What gemm_tn_range packs per row of a block: the sources' row tiles (MR wide each) and the
// products' column panels (NR wide each), and how many whole steps of nb rows one block holds
// (at least one; the budget below).
struct TnLayout {
  int64_t tiles, panels, steps;
};

template <typename T, int MR, int NV, int NS>
TnLayout gemm_tn_layout(const int64_t (&m)[NS], const TnProduct<T>* prods, int np, int64_t nb) {
  constexpr int NR = NV * gemm_lanes<T>();
  TnLayout out{0, 0, 0};
  for (int s = 0; s < NS; ++s) out.tiles += (m[s] + MR - 1) / MR;
  out.panels = std::accumulate(prods, prods + np, int64_t{0}, [](int64_t n, const TnProduct<T>& p) {
    return n + (p.n + NR - 1) / NR;
  });
  const int64_t row_bytes = (out.tiles * MR + out.panels * NR) * static_cast<int64_t>(sizeof(T));
  const int64_t budget = std::max<int64_t>(384 << 10, l2_cache_bytes() * 3 / 8);
  out.steps = std::max<int64_t>(1, budget / std::max<int64_t>(1, nb * row_bytes));
  return out;
}

// C [Σm, N] = (with accumulate +=) the steps t0..t1 on this thread, in blocks of whole steps
// whose packed rows of a and b fill at most 384 KB or 3/8 of the L2, the larger (at least one
// step; gemm_tn_layout above): a's block is read again for every panel of b. (A 192 KB
// budget ran LSTM's G = 4H blocks one step at a time and was slower than OpenBLAS there;
// 384 KB gives them two.) With a 2 MiB L2 (Intel
// Xeon family 6 model 167, 2026-12-03, (B,T,F,H) = (64,100,64,128), two builds alternating,
// medians of 30, weight gradients in ms) 768 KB against 384: LSTM 4.84 / 4.95, SimpleRNN 1.24
// / 1.27, GRU 3.92 / 3.98 (192 KB: 5.05, 1.34, 4.33; 1 MB: 4.66, 1.28, 3.97 against 768's
// 4.65, 1.20, 3.93; 1.5 MB 4.64, 1.29, 3.93 against 4.63, 1.21, 3.82); at (128,200,128,256)
// 84.0 / 85.4, 19.6 / 19.8, 62.2 / 62.7. Per block every
// source's rows are packed into row tiles (kc × MR each) and b's rows into panels (kc × NR
// each), both read row after row: b's rows lie 512 B-2 KB apart, so one panel at a time in
// place would share a few L1 sets, and packing it panel by panel read a line per row per
// panel, a tenth of the GEMM's time. The sources' rows (x batch-major, 16-51 KB apart) were
// read tile by tile until 2026-12-02, 32 bytes of every row per pass, and perf put half the
// packing's samples on those loads; row after row, LSTM's weight gradients at (B,T,F,H) =
// (64,100,64,128) took 5.07-5.11 ms against 5.21-5.33 (alternating processes, Intel Xeon
// family 6 model 167). Then each panel meets every row tile while in L1.
// Each packed tile and panel ends in one line of padding: without it they lay kc·MR·4 bytes
// apart (8 KB for SimpleRNN's kc = 256 steps' rows, 4 KB for LSTM's kc = 128) and panels
// 16-32 KB apart, so the stores of one row into its tiles (8 for x at F = 64, 16 for the
// states at H = 128) all went to one L1 set of 12 ways, and perf put 70% of the packing's
// samples on them. Same Xeon, 2026-12-02, (B,T,F,H) = (64,100,64,128), both ways alternating
// call by call in one process, medians of 60: SimpleRNN 1.36 -> 1.18 ms, LSTM 4.77 -> 4.63,
// GRU 3.81 -> 3.79 (its G = 3H: 12 panels).
template <typename T, int MR, int NV, int NS>
void gemm_tn_range(const RowSequence<T> (&a)[NS], const int64_t (&m)[NS], const TnProduct<T>* prods,
                   int np, int64_t t0, int64_t t1, int64_t nb, T* C, int64_t ldc,
                   bool accumulate = false) {
  constexpr int NR = NV * gemm_lanes<T>();
  constexpr int VB = std::min<int>(kVectorBytes, NR * sizeof(T)), L = VB / sizeof(T);
  using V = typename Vector<T, VB>::type;
  const auto [tiles, panels, steps] = gemm_tn_layout<T, MR, NV>(m, prods, np, nb);
  const int64_t most = steps * nb;
  const int64_t pad = 64 / sizeof(T);  // a line after each packed tile and panel (above)
  Scratch<T> packed(tiles * (most * MR + pad)), bpack(panels * (most * NR + pad));
  for (int64_t s0 = t0; s0 < t1; s0 += steps) {
    const int64_t s1 = std::min(t1, s0 + steps), kc = (s1 - s0) * nb;
    const bool add = accumulate || s0 > t0;
    const int64_t as = kc * MR + pad, bs = kc * NR + pad;
    T* dst = packed.data();
    for (int s = 0; s < NS; dst += (m[s] + MR - 1) / MR * as, ++s) {
      const int64_t full = m[s] / MR;  // whole row tiles; a last narrower one is zero-filled
      for (int64_t t = s0, k = 0; t < s1; ++t) {
        const T* src = a[s].at(t);
        const int64_t ld = a[s].row_stride(t);
        for (int64_t i = 0; i < nb; ++i, ++k) {
          const T* row = src + i * ld;
          for (int64_t q = 0; q < full; ++q)  // MR elements, known at compile time: vector moves
            for (int r = 0; r < MR; ++r) dst[q * as + k * MR + r] = row[q * MR + r];
          if (full * MR < m[s])
            for (int r = 0; r < MR; ++r)
              dst[full * as + k * MR + r] = full * MR + r < m[s] ? row[full * MR + r] : T(0);
        }
      }
    }
    T* bdst = bpack.data();
    for (int pi = 0; pi < np; ++pi) {
      const RowSequence<T>& b = prods[pi].b;
      const int64_t N = prods[pi].n, whole = N / NR;  // full panels; a last narrower one zero-filled
      for (int64_t t = s0, k = 0; t < s1; ++t) {
        const T* src = b.at(t);
        const int64_t ld = b.row_stride(t);
        for (int64_t i = 0; i < nb; ++i, ++k) {
          const T* row = src + i * ld;
          for (int64_t p = 0; p < whole; ++p)
            for (int v = 0; v < NR / L; ++v)
              store_vector(bdst + p * bs + k * NR + v * L, load_vector<V>(row + p * NR + v * L));
          if (whole * NR < N) {  // the valid columns, then zeros to the panel's width
            T* edge = bdst + whole * bs + k * NR;
            const int64_t valid = N - whole * NR;
            std::copy(row + whole * NR, row + N, edge);
            std::fill(edge + valid, edge + NR, T(0));
          }
        }
      }
      bdst += (N + NR - 1) / NR * bs;
    }
    const T* bp = bpack.data();
    for (int pi = 0; pi < np; ++pi) {
      const TnProduct<T>& prod = prods[pi];
      for (int64_t j = 0; j < prod.n; j += NR, bp += bs) {
        const int64_t cols = std::min<int64_t>(NR, prod.n - j);
        const T* ap = packed.data();
        for (int s = 0; s < NS; ap += (m[s] + MR - 1) / MR * as, ++s) {
          if (prod.row[s] < 0) continue;
          T* c = C + prod.row[s] * ldc + prod.col + j;
          for (int64_t r0 = 0; r0 < m[s]; r0 += MR)
            gemm_tn_micro<T, MR, NR>(ap + r0 / MR * as, bp, kc, add, std::min<int64_t>(MR, m[s] - r0),
                                     cols, c + r0 * ldc, ldc);
        }
      }
    }
  }
}

// fn(mr, nv) with the register tile in force as std::integral_constants.
template <typename T, typename Fn>
void with_tn_tile(Fn&& fn) {
  const GemmTile tile = gemm_tile<T>();
  using std::integral_constant;
  if (tile.mr == 8 && tile.nv == 3) return fn(integral_constant<int, 8>{}, integral_constant<int, 3>{});
  if (tile.mr == 6 && tile.nv == 4) return fn(integral_constant<int, 6>{}, integral_constant<int, 4>{});
  if (tile.mr == 8 && tile.nv == 2) return fn(integral_constant<int, 8>{}, integral_constant<int, 2>{});
  if (tile.mr == 6 && tile.nv == 1) return fn(integral_constant<int, 6>{}, integral_constant<int, 1>{});
  return fn(integral_constant<int, 4>{}, integral_constant<int, 1>{});
}

// The steps split over the OpenMP threads (small products stay on the calling thread), their
// partial C [rows, ldc] summed (sum_of_parts, cpu/threads.hpp).
template <typename T, int MR, int NV, int NS>
void gemm_tn_threads(const RowSequence<T> (&a)[NS], const int64_t (&m)[NS], const TnProduct<T>* prods,
                     int np, int64_t T_, int64_t nb, T* C, int64_t rows, int64_t ldc) {
  double flops = 0;
  for (int p = 0; p < np; ++p)
    for (int s = 0; s < NS; ++s)
      if (prods[p].row[s] >= 0) flops += 2.0 * T_ * nb * m[s] * prods[p].n;
  const int parts = flops > 4e6 ? static_cast<int>(std::min<int64_t>(pool_threads(), T_)) : 1;
  sum_of_parts(parts, rows * ldc, C, [&](int p, T* out) {
    const int64_t t0 = T_ * p / parts, t1 = T_ * (p + 1) / parts;
    if (t1 > t0)
      gemm_tn_range<T, MR, NV>(a, m, prods, np, t0, t1, nb, out, ldc);
    else
      std::fill(out, out + rows * ldc, T(0));
  });
}

// Whether the weight gradients run here (the "weight_gradients" choice): forced, or by the
// rule, with AVX2 (measured on the Zen 3 VM, above) and AVX-512, not with SSE2 alone. Against
// NumPy's OpenBLAS on its SkylakeX kernels (engine/_openblas.py), Intel Xeon (family 6, model
// 167), 2026-12-03, training steps alternating call by call, OpenBLAS / tile, ms: LSTM
// (32,100,32,32) 1.35 / 1.18, (64,100,64,128) 16.98 / 15.93, (128,200,128,256) 251.4 / 247.1;
// GRU 1.70 / 0.96, 13.66 / 11.73, 206.1 / 189.8. (The rule had kept OpenBLAS with AVX-512 and
// left the tile to the first-run timing, which a busy machine can tip either way.)
inline bool weight_gradients_on_tile() {
  const int choice = choices().weight_gradients.load(std::memory_order_relaxed);
  return choice == kWeightTile || (choice == kWeightAuto && kVectorBytes >= 32);
}

// Whether SimpleRNN's and GRU's backwards are asked to sum the weight gradients in their
// loops (LoopWeights, below): the "weights_in_loop" choice, on unless forced off.
inline bool weights_in_loop() {
  return choices().weights_in_loop.load(std::memory_order_relaxed) != kInLoopOff;
}

// C [rows, ldc] = the products (TnProduct, above) summed over T steps and nb rows each, with
// the tile in force.
template <typename T, int NS>
void gemm_tn_products(const RowSequence<T> (&a)[NS], const int64_t (&m)[NS], const TnProduct<T>* prods,
                      int np, int64_t steps, int64_t nb, T* C, int64_t rows, int64_t ldc) {
  with_tn_tile<T>([&](auto mr, auto nv) {
    gemm_tn_threads<T, mr(), nv()>(a, m, prods, np, steps, nb, C, rows, ldc);
  });
}

// C [Σm, N] = Σ over T steps and nb rows each of [a_0 | a_1 ...]ᵀ · b, with the tile in force.
template <typename T, int NS>
void gemm_tn_sequences(const RowSequence<T> (&a)[NS], const int64_t (&m)[NS],
                       const RowSequence<T>& b, int64_t N, int64_t steps, int64_t nb, T* C) {
  TnProduct<T> prod{b, N, 0, {-1, -1, -1}};
  int64_t M = 0;
  for (int s = 0; s < NS; M += m[s], ++s) prod.row[s] = M;
  gemm_tn_products<T, NS>(a, m, &prod, 1, steps, nb, C, M, N);
}

// The weight gradients of a recurrent backward summed inside its time loop (SimpleRNN's and
// GRU's with reset_after, the "weights_in_loop" choice): C [F+H, N] = Σ_{t,b} [x_t |
// h_{t-1}]ᵀ·dz_t (SimpleRNN; GRU's three products, gru_loop_products in cpu/gru.hpp, read
// its dxw and du rows from two workspaces), each range of batch
// rows over its own rows of every step, in blocks of gemm_tn_range's size, into C (range 0)
// or its own partial, added after the loop (a static split: the same bits on every call).
// The gradient rows live only in the range's workspace of one block, which its step GEMMs and
// then the block's weight GEMM read from L2, never in a [T,B,N] array whose every line the
// row pass would first read from memory. Intel Xeon (family 6, model 167), 2026-12-03,
// training steps in one process alternating call by call with the choice off, medians of
// 40: SimpleRNN (64,100,64,128) 4.26-4.38 -> 4.03-4.08 ms (blocks of 8, 19 and 34 steps
// alike), (128,200,128,256) 61.5 -> 60.5. LSTM's backward writes its dz over the gates it
// has just read, so no line comes from memory for it, and the same blocks there (2-100 steps)
// ran its (64,100,64,128) step even or up to 8% slower than the pass after the loop: its
// block's packed rows and 393 KB of C crowd the packed Uᵀ and the gate rows out of the L2.
// GRU's dxw does not overwrite the gates in the loop (it did after: engine/_recurrent.py's
// overwrite_saved), and the pass after the loop read its 13 MB of dxw and du back from memory
// (perf: 7.5% of the (64,100,64,128) step in that packing). AMD EPYC Zen 4 (family 25, model
// 17; 1 MiB L2), 2026-12-03, the same A/B: GRU (64,100,64,128) 18.93 -> 18.09, 20.06 ->
// 19.24, 19.36 -> 18.48 ms (medians of 40; a fourth run in a busy minute 29.82 -> 29.58),
// blocks of 1 and 2 steps slower than the rule's 4, 8 and 16 alike; (128,200,128,256) 252.4
// -> 243.8 and 263.8 -> 257.2, one run 257.5 -> 263.5 (medians of 8-10: one step a block
// there); (32,100,32,32) 1.47 -> 1.34.
template <typename T>
struct LoopWeights {
  // One product of the gradient rows: ring `ring`'s columns from..from+n into C's columns
  // col..col+n, rows row[s] + i for each source s with row[s] >= 0 (TnProduct's).
  struct Part {
    int ring;
    int64_t from, n, col;
    int64_t row[2];
  };
  RowSequence<T> a[2];  // x's rows in processing order, the states h_{t-1} with h0 first
  int64_t m[2];         // F, H
  int64_t N;            // C's width
  T* C;                 // [F+H, N] out
  T* partials;          // [(ranges - 1)·(F+H)·N] workspace
  // Where a step's gradient rows go (one or two workspaces, `width` columns per row) and the
  // products that read them: SimpleRNN's dz [·,H] in one; GRU's dxw [·,3H] and du [·,H],
  // read as x and h with dxw's z,r columns, x with its candidate columns, h with du.
  int rings = 1;
  int64_t width[2] = {0, 0};
  int parts = 1;
  Part part[3] = {};

  // The single product of SimpleRNN: [x | h]ᵀ·dz, dz N wide.
  void one_product() {
    rings = parts = 1;
    width[0] = N;
    part[0] = {0, 0, N, 0, {0, m[0]}};
  }

  // One range's gradient rows and sums, t = T-1..0: rows(t, k) holds step t's rows b0..b1 of
  // ring k (row b at rows(t, k) + (b - b0)·width[k]) until step(t), called once they are
  // written and used, sums them into the range's C at the end of each block.
  class Range {
   public:
    Range(const LoopWeights& w, int64_t range, int64_t b0, int64_t b1, int64_t T_)
        : w_(w), nb_(b1 - b0), hi_(T_) {
      a_[0] = w.a[0].rows_from(b0);
      a_[1] = w.a[1].rows_from(b0);
      C_ = range ? w.partials + (range - 1) * (w.m[0] + w.m[1]) * w.N : w.C;
      for (int p = 0; p < w.parts; ++p)
        prods_[p] = {{}, w.part[p].n, w.part[p].col, {w.part[p].row[0], w.part[p].row[1], -1}};
      with_tn_tile<T>([&](auto mr, auto nv) {
        block_ = gemm_tn_layout<T, mr(), nv()>(w.m, prods_, w.parts, nb_).steps;
      });
      lo_ = std::max<int64_t>(0, hi_ - block_);
      for (int k = 0; k < w.rings; ++k) ring_[k] = Scratch<T>(block_ * nb_ * w.width[k]);
    }
    T* rows(int64_t t, int k = 0) { return ring_[k].data() + (t - lo_) * nb_ * w_.width[k]; }
    void step(int64_t t) {
      if (t > lo_) return;
      const RowSequence<T> a[2] = {a_[0].from(lo_), a_[1].from(lo_)};
      for (int p = 0; p < w_.parts; ++p) {
        const Part& part = w_.part[p];
        const int64_t width = w_.width[part.ring];
        prods_[p].b = {ring_[part.ring].data() + part.from, nb_ * width, width};
      }
      with_tn_tile<T>([&](auto mr, auto nv) {
        gemm_tn_range<T, mr(), nv()>(a, w_.m, prods_, w_.parts, 0, hi_ - lo_, nb_, C_, w_.N, started_);
      });
      started_ = true;
      hi_ = lo_;
      lo_ = std::max<int64_t>(0, hi_ - block_);
    }

   private:
    const LoopWeights& w_;
    RowSequence<T> a_[2];
    TnProduct<T> prods_[3]{};
    int64_t nb_, hi_, lo_, block_ = 1;
    T* C_ = nullptr;
    Scratch<T> ring_[2];
    bool started_ = false;
  };

  // C += the other ranges' partials.
  void finish(int64_t ranges) const {
    const int64_t size = (m[0] + m[1]) * N;
    for (int64_t r = 1; r < ranges; ++r)
      for (int64_t e = 0; e < size; ++e) C[e] += partials[(r - 1) * size + e];
  }
};

// GradientRows' interface (cpu/projection.hpp) over ring k of a LoopWeights range: a step's
// rows of b0..b1, `width` apart, read by the loop's GEMMs and then by the block's weight GEMM,
// never stored elsewhere. Not in place: the loop does not prefetch them (they are in L2).
template <typename T>
struct LoopRows {
  typename LoopWeights<T>::Range& range;
  int ring;
  int64_t b0, width;

  bool in_place() const { return false; }
  T* row(int64_t t, int64_t b) { return range.rows(t, ring) + (b - b0) * width; }
  void flush(int64_t) const {}
  void finish() const {}
};

}  // namespace seqfuse
