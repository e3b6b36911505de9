// SimpleRNN (tanh) time loop, forward and backward, on raw pointers (docs/kernels.md,
// "simple_rnn"). All arrays C-contiguous, time-major except x, dx, hs and dhs:
//   in:   the input projection x_t·kernel + bias, computed per step (cpu/projection.hpp)
//   U:    [H,H]    recurrent kernel;  Ut: [H,H] its transpose (backward workspace)
//   h0:   [B,H];  mask: [T,B] (1 = run the step) or nullptr;  dm: [B,H] dropout mask or nullptr
//   hs:   [T,B,H]  states after each step, at any strides (States, cpu/projection.hpp; the
//         binding's are batch-major, the layer's output layout)
// Per step: one GEMM pass writing x_t·kernel + bias + hd·U into hs[t], then tanh in place.
#pragma once
#include <cstdint>
#include <type_traits>
#include <vector>

#include "common/cell.hpp"
#include "cpu/gemm.hpp"
#include "cpu/gemm_tn.hpp"
#include "cpu/projection.hpp"
#include "cpu/simd.hpp"

namespace seqfuse {

// One row: h [H] holds the pre-activation, becomes h_t (or h_{t-1}, hp, on a masked row).
// Keep is a template argument because GCC 12 does not vectorize a select on a loop-invariant
// bool.
template <bool Keep, typename scalar_t>
inline void simple_rnn_row_forward(int64_t H, const scalar_t* SEQFUSE_RESTRICT hp,
                                   scalar_t* SEQFUSE_RESTRICT h) {
  int64_t j = 0;
  if constexpr (std::is_same_v<scalar_t, float>) {  // full-width vectors: lstm_row_forward
    using V = FloatVector;
    constexpr int64_t L = kFloatLanes;
    for (; j + L <= H; j += L) store_vector(h + j, Keep ? tanh_act(load_vector<V>(h + j)) : load_vector<V>(hp + j));
  }
  for (; j < H; ++j) h[j] = Keep ? tanh_act(h[j]) : hp[j];
}

// One row of the backward pass; dh_carry and sum in/out as in lstm.hpp. Carry: whether the
// loop has a mask; without one dh_carry stays zero, neither read nor written: one load and one
// store less per element, the backward alone at (64,100,64,128) 1.56-1.59 -> 1.46-1.50 ms
// (three processes each, Intel Xeon family 6 model 167, 2026-12-03).
template <bool Keep, bool Carry, typename scalar_t>
inline void simple_rnn_row_backward(int64_t H, const scalar_t* SEQFUSE_RESTRICT h,
                                    const scalar_t* SEQFUSE_RESTRICT dhs_t,
                                    const scalar_t* SEQFUSE_RESTRICT dhd,
                                    scalar_t* SEQFUSE_RESTRICT dz,
                                    scalar_t* SEQFUSE_RESTRICT dh_carry,
                                    scalar_t* SEQFUSE_RESTRICT sum) {
  for (int64_t j = 0; j < H; ++j) {
    const scalar_t dh = Carry ? dhs_t[j] + dh_carry[j] + dhd[j] : dhs_t[j] + dhd[j];
    const scalar_t d = Keep ? simple_rnn_cell_backward(h[j], dh) : scalar_t(0);
    dz[j] = d;
    sum[j] += d;
    if (Carry) dh_carry[j] = Keep ? scalar_t(0) : dh;
  }
}

// hd_ws: [B,H] workspace holding h_{t-1}·dm (unused when dm is nullptr).
template <typename scalar_t>
void simple_rnn_forward(int64_t T, int64_t B, int64_t H, const InputProjection<scalar_t>& in,
                        const scalar_t* U, const scalar_t* h0, const bool* mask, const scalar_t* dm,
                        const States<scalar_t>& hs, scalar_t* hd_ws) {
  // U and the kernel are read from packed copies (packed_copy, cpu/gemm.hpp).
  const double flops = 2.0 * T * B * (H + in.F) * H;
  const GemmTile tile = step_tile<scalar_t>(B, flops, in.F + H);
  const Scratch<scalar_t> Up = packed_copy(H, H, U, H, tile),
                          Wp = packed_copy(in.F, H, in.W, H, tile);
  const InputProjection<scalar_t> pin = in.with_packed(Wp);
  parallel_rows<scalar_t>(B, flops, [&](int64_t, int64_t b0, int64_t b1) {
    if (dm)
      for (int64_t k = b0 * H; k < b1 * H; ++k) hd_ws[k] = h0[k] * dm[k];
    for (int64_t t = 0; t < T; ++t) {
      const scalar_t* h_prev = hs.previous(t, h0);
      const int64_t ldh = hs.previous_ld(t, H);  // rows of h_prev
      scalar_t* h_t = hs.at(t, 0);
      pin.forward(t, b0, b1, dm ? hd_ws : h_prev, dm ? H : ldh, Up.data(), H, h_t, hs.row, tile);
      for (int64_t b = b0; b < b1; ++b) {
        scalar_t* h = h_t + b * hs.row;
        if (!mask || mask[t * B + b])
          simple_rnn_row_forward<true>(H, h_prev + b * ldh, h);
        else
          simple_rnn_row_forward<false>(H, h_prev + b * ldh, h);
        if (dm)
          for (int64_t j = 0; j < H; ++j) hd_ws[b * H + j] = h[j] * dm[b * H + j];
      }
    }
  });
}

// Backward through the whole loop, t = T-1..0.
//   dhs: [T,B,H] total gradient reaching each hs[t], rows at any strides (States)
//   dz:  [T,B,H] out, gradient of the pre-activation (= d xw), zero at masked steps
//   dx:  [B,T,F] out, dz·kernelᵀ in x's layout (in.backward), or nullptr: not wanted
//   dbias: [H] out, Σ_{t,b} dz (sums: its per-range workspace, N = H)
//   dh0: [B,H] out
//   Workspaces: Ut [H,H] filled here, Wt [H,F] kernelᵀ (when dx), both packed
//   (transpose_packed, cpu/gemm.hpp); dh_ws, dhd_ws [B,H]. dh_ws carries dh through masked
//   steps; dhd_ws holds the GEMM's (dz_t·Uᵀ)·dm, exactly zero on a masked row (dz_t = 0).
template <typename scalar_t>
void simple_rnn_backward(int64_t T, int64_t B, int64_t H, const States<const scalar_t>& dhs,
                         const scalar_t* U,
                         const States<const scalar_t>& hs, const bool* mask, const scalar_t* dm,
                         const InputProjection<scalar_t>& in, scalar_t* dz, scalar_t* dx,
                         scalar_t* dbias, scalar_t* dh0, const ColumnSums<scalar_t>& sums,
                         scalar_t* Ut, scalar_t* Wt, scalar_t* dh_ws, scalar_t* dhd_ws,
                         const LoopWeights<scalar_t>* weights = nullptr) {
  const int64_t BH = B * H;
  const double flops = 2.0 * T * B * (H + (dx ? in.F : 0)) * H;
  const GemmTile tile = step_tile<scalar_t>(B, flops, H);
  transpose_packed(H, H, U, Ut, 0, tile);
  if (dx) transpose_packed(in.F, H, in.W, Wt, 0, tile);
  sums.zero();
  // One range's loop; dz_rows(t): where step t's gradient rows b0..b1 go (row b at
  // dz_rows(t) + (b - b0)·H), done(t) once the step is through.
  const auto loop = [&](int64_t range, int64_t b0, int64_t b1, const auto& dz_rows, const auto& done) {
    for (int64_t k = b0 * H; k < b1 * H; ++k) dh_ws[k] = dhd_ws[k] = 0;
    std::vector<scalar_t> part(sums.N);  // this range's column sums of one step
    // The next step's rows of hs and dhs (batch-major where they are the layer's output and its
    // gradient: rows T·H apart, which the hardware prefetcher does not follow) are asked for
    // while this step computes, where they fit in half the L2 beside the packed Uᵀ (as in
    // lstm.hpp). AMD EPYC Zen 4 (family 25, model 17), 2026-12-03, bench/profile_step.py
    // --against the build without it, medians of 60, (64,100,64,128): the backward with the
    // weights in its loop 4.36 -> 4.01, 4.73 -> 4.58, 4.42 -> 4.18 ms, without them 2.31 ->
    // 2.07; with a batch-major dhs (a layer's output gradient) 4.33 -> 3.96, 4.52 -> 4.12; the
    // training step 6.84 -> 6.61, 6.75 -> 6.52, 6.27 -> 6.21; (128,200,128,256) backward 61.8
    // -> 60.5, step even.
    const bool ahead = step_rows_fit<scalar_t>(b1 - b0, 2 * H, H * H);
    for (int64_t t = T - 1; t >= 0; --t) {
      scalar_t* dz_t = dz_rows(t);
      for (int64_t b = b0; b < b1; ++b) {
        if (ahead && t > 0) {
          prefetch_row<false, 2>(hs.at(t - 1, b), H);
          prefetch_row<false, 2>(dhs.at(t - 1, b), H);
        }
        const scalar_t *h = hs.at(t, b), *dh = dhs.at(t, b);
        scalar_t* dz_row = dz_t + (b - b0) * H;
        // Keep: the row runs this step; Carry: some row may not (std::bool_constant each).
        const auto row = [&](auto keep, auto carry) {
          simple_rnn_row_backward<keep(), carry()>(H, h, dh, dhd_ws + b * H, dz_row, dh_ws + b * H,
                                                   part.data());
        };
        if (!mask)
          row(std::true_type{}, std::false_type{});
        else if (mask[t * B + b])
          row(std::true_type{}, std::true_type{});
        else
          row(std::false_type{}, std::true_type{});
      }
      sums.add_step(range, part.data());
      const Product<scalar_t> back[1] = {{H, dz_t, H, Ut, H, true}};
      gemm<scalar_t, 1>(b1 - b0, H, back, nullptr, 0, dhd_ws + b0 * H, H, tile);
      if (dx) in.backward(t, b0, b1, dz_t, H, Wt, dx, tile);
      if (dm)
        for (int64_t k = b0 * H; k < b1 * H; ++k) dhd_ws[k] *= dm[k];
      done(t);
    }
    for (int64_t k = b0 * H; k < b1 * H; ++k) dh0[k] = dh_ws[k] + dhd_ws[k];
  };
  parallel_rows<scalar_t>(B, flops, [&](int64_t range, int64_t b0, int64_t b1) {
    if (weights) {
      typename LoopWeights<scalar_t>::Range in_loop(*weights, range, b0, b1, T);
      const auto rows = [&](int64_t t) { return in_loop.rows(t); };
      const auto done = [&](int64_t t) { in_loop.step(t); };
      loop(range, b0, b1, rows, done);
    } else {
      const auto rows = [&](int64_t t) { return dz + t * BH + b0 * H; };
      loop(range, b0, b1, rows, [](int64_t) {});
    }
  });
  sums.total(dbias);
  if (weights) weights->finish(row_ranges<scalar_t>(B, flops));
}

}  // namespace seqfuse
