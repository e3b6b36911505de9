// The input projection of a recurrent layer, x_t·kernel + bias, done one step at a time inside
// the time loop (docs/kernels.md, "input projection").
//
// Computing it per step instead of as one [T,B,G] array before the loop means that array is
// never written to memory and read back (13 MB per call at (B,T,F,H) = (64,100,64,128)),
// the step GEMM runs on the same register-blocked kernel as the recurrent one while the rows
// are hot, and x is read in the layer's own batch-major layout, so no transposed copy of it
// is made. Backward mirrors it: dx_t = dz_t·kernelᵀ is written straight into dx [B,T,F].
//
// The bias gradients (Σ over t and b of the pre-activation gradients) are summed in the
// backward loop too, per row range from the rows each step has just written (ColumnSums),
// instead of a NumPy pass reading the whole [T,B,G] array back: that pass took 8.8 ms of a
// 263 ms GRU (128,200,128,256) training step on the 2-core VM (78 MB read twice).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/cell.hpp"
#include "cpu/choices.hpp"
#include "cpu/gemm.hpp"
#include "cpu/simd.hpp"

namespace seqfuse {

template <typename scalar_t>
struct InputProjection {
  const scalar_t* x;     // [B,T,F] batch-major, as the layer gets it
  const scalar_t* W;     // [F,G] the layer's kernel
  const scalar_t* bias;  // [G] or nullptr
  int64_t T, F, G;
  bool go_backwards;     // processing step t reads timestep T-1-t
  bool packed = false;   // W is a packed_copy (cpu/gemm.hpp), not the [F,G] kernel as given

  // The same projection reading W from Wp = packed_copy(F, G, W, G, tile) (cpu/gemm.hpp), run
  // with that tile.
  InputProjection with_packed(const Scratch<scalar_t>& Wp) const {
    InputProjection p = *this;
    p.W = Wp.data();
    p.packed = true;
    return p;
  }

  int64_t timestep(int64_t t) const { return go_backwards ? T - 1 - t : t; }

  // The step's input as a GEMM product: rows b0.. of x[:, timestep(t)] times the kernel.
  Product<scalar_t> input(int64_t t, int64_t b0) const {
    return {F, x + (b0 * T + timestep(t)) * F, T * F, W, G, packed};
  }

  // out rows b0..b1 (row b at out + b·ldo) = x[b, timestep(t)]·W + bias.
  void forward(int64_t t, int64_t b0, int64_t b1, scalar_t* out, int64_t ldo,
               GemmTile tile) const {
    const Product<scalar_t> p[1] = {input(t, b0)};
    gemm<scalar_t, 1>(b1 - b0, G, p, bias, 0, out + b0 * ldo, ldo, tile);
  }

  // The same plus the step's recurrent product, in one pass over the output tiles:
  // out = x[b, timestep(t)]·W + bias + hd[b]·U for hd: [B,K] (row b at hd + b·ldh), U: [K,G]
  // packed (packed_copy, cpu/gemm.hpp). (GRU keeps the two passes: its reset_after candidate
  // needs xw_h and u_h apart, and a split into z,r / h passes measured slower at
  // (64,100,64,128) and (128,200,128,256).)
  void forward(int64_t t, int64_t b0, int64_t b1, const scalar_t* hd, int64_t ldh,
               const scalar_t* U_packed, int64_t K, scalar_t* out, int64_t ldo,
               GemmTile tile) const {
    const Product<scalar_t> p[2] = {input(t, b0), {K, hd + b0 * ldh, ldh, U_packed, G, true}};
    gemm<scalar_t, 2>(b1 - b0, G, p, bias, 0, out + b0 * ldo, ldo, tile);
  }

  // dx[b, timestep(t)] = dz rows b0..b1 (row b0 at dz, the next ldz apart) · Wt, Wt: [G,F] =
  // Wᵀ packed (transpose_packed, cpu/gemm.hpp) for `tile`.
  void backward(int64_t t, int64_t b0, int64_t b1, const scalar_t* dz, int64_t ldz,
                const scalar_t* Wt, scalar_t* dx, GemmTile tile) const {
    const Product<scalar_t> p[1] = {{G, dz, ldz, Wt, F, true}};
    gemm<scalar_t, 1>(b1 - b0, F, p, nullptr, 0, dx + (b0 * T + timestep(t)) * F, T * F, tile);
  }
};

// A [T,B,H] sequence of rows at element strides. Where a forward loop writes h_t of batch row
// b: batch-major [B,T,H] (step = H, row = T·H), the layer's output layout, so the output needs
// no transposed copy (2.0 ms of a 50 ms LSTM (128,200,128,256) inference on the 2-vCPU Zen 5
// VM, 2026-11-30), in training as in inference. Where a backward reads hs and dhs
// (States<const T>): hs as the forward wrote it, dhs as the next layer left the output's
// gradient, batch-major or a broadcast (stride 0), both read in place.
template <typename scalar_t>
struct States {
  scalar_t* data;
  int64_t step, row;  // element strides of t and b

  scalar_t* at(int64_t t, int64_t b) const { return data + t * step + b * row; }
  // h_{t-1} rows (h0 [B,H] at t = 0) and their stride.
  const scalar_t* previous(int64_t t, const scalar_t* h0) const { return t ? at(t - 1, 0) : h0; }
  int64_t previous_ld(int64_t t, int64_t H) const { return t ? row : H; }
};

// A recurrent backward's [T,B,G] gradient output as one thread's row pass writes it, rows
// b0..b1 of each step: in place, or ("streamed") into a workspace of the range's rows that the
// step's GEMMs read while it is in L2, then copied out by flush(t) with streaming stores
// (stream_row, cpu/simd.hpp). In place, each output line is read from memory before it is
// overwritten; that is cheap while a step's rows fit in the L2 beside the packed Uᵀ, where the
// next step's lines are prefetched, and costly where they do not. The "backward_rows" choice
// (cpu/choices.hpp) forces either way; auto streams where `fits` is false (the backwards'
// rule for prefetching the next step's rows, step_rows_fit in cpu/simd.hpp). Intel Xeon (family 6, model 167), 2026-12-03,
// (128,200,128,256), in place / streamed, medians of 8 alternating call by call: the backward
// GRU 70.2 / 53.7 and 73.5 / 60.4 ms (two runs), LSTM 74.6 / 70.1 and 80.8 / 70.3; the two builds
// alternating (bench/profile_step.py --against): GRU backward 64.9 / 47.7, step 172.9 /
// 153.9, LSTM backward 63.5 / 59.7, step 194.6 / 188.1. At (64,100,64,128), where the rows
// fit, streaming made the GRU step 1-3% slower.
template <typename scalar_t>
class GradientRows {
 public:
  GradientRows(scalar_t* out, int64_t B, int64_t G, int64_t b0, int64_t b1, bool fits)
      : out_(out), B_(B), G_(G), b0_(b0), b1_(b1), streamed_(streamed(fits)),
        ws_(streamed_ ? (b1 - b0) * G : 0) {}

  bool in_place() const { return !streamed_; }
  // Row b (b0 <= b < b1) of step t; the next row G further on.
  scalar_t* row(int64_t t, int64_t b) {
    return streamed_ ? ws_.data() + (b - b0_) * G_ : out_ + (t * B_ + b) * G_;
  }
  // Step t's rows to the output (streamed), once the step's GEMMs have read them.
  void flush(int64_t t) {
    if (streamed_)
      for (int64_t b = b0_; b < b1_; ++b) stream_row(out_ + (t * B_ + b) * G_, row(t, b), G_);
  }
  // After the last step, before another thread reads the output.
  void finish() const {
    if (streamed_) stream_fence();
  }

 private:
  static bool streamed(bool fits) {
    const int choice = choices().backward_rows.load(std::memory_order_relaxed);
    return choice == kRowsStreamed || (choice == kRowsAuto && !fits);
  }
  scalar_t* out_;
  int64_t B_, G_, b0_, b1_;
  bool streamed_;
  std::vector<scalar_t> ws_;
};

// Column sums of gradient rows, accumulated per row range of parallel_rows (no two threads
// share a partial) and added up after the loop.
//   ws: [max_row_ranges(), N] workspace of doubles; N columns in all, filled from several
//   sources. A range sums T·rows values per column (12,800 at GRU (128,200,128,256)); in
//   float that lost ~1.7e-6 of the largest sum (as much as NumPy's float32 sum()), so the
//   steps are summed in double. Within a step the row passes add each row's gradients into a
//   partial of the rows' own type while they are in registers (a range's rows of one step: 32
//   at B = 64 on two threads), and add_step moves it into the doubles, rather than reading
//   the step's rows back for the sums: the (64,100,64,128) backward, the two builds loaded in
//   one process and alternating, medians of 150, three runs, Intel Xeon (family 6, model
//   167), 2026-12-03: GRU 4.31-4.36 -> 4.22-4.26 ms, LSTM 5.13-5.42 -> 5.09-5.41, SimpleRNN
//   1.53-1.56 -> 1.52-1.59 (even).
template <typename scalar_t>
struct ColumnSums {
  double* ws;
  int64_t N;

  void zero() const { std::fill(ws, ws + max_row_ranges() * N, 0.0); }

  // ws[range, :] += part [N], one step's rows of the range; part is zeroed for the next step.
  void add_step(int64_t range, scalar_t* SEQFUSE_RESTRICT part) const {
    double* SEQFUSE_RESTRICT acc = ws + range * N;
    for (int64_t j = 0; j < N; ++j) {
      acc[j] += part[j];
      part[j] = 0;
    }
  }

  // out[j] = Σ over ranges of ws[range, j].
  void total(scalar_t* out) const {
    const int64_t ranges = max_row_ranges();
    for (int64_t j = 0; j < N; ++j) {
      double sum = 0;
      for (int64_t r = 0; r < ranges; ++r) sum += ws[r * N + j];
      out[j] = static_cast<scalar_t>(sum);
    }
  }
};

}  // namespace seqfuse
