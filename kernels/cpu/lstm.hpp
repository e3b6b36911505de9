// LSTM time loop, forward and backward, on raw pointers (docs/kernels.md, "lstm").
// Keras gate order i,f,c,o; G = 4H. All arrays C-contiguous, time-major except x and dx:
//   in:     the input projection x_t·kernel + bias, computed per step (cpu/projection.hpp)
//   U:      [H,G]    recurrent kernel;  Ut: [G,H] its transpose (backward workspace)
//   h0, c0: [B,H]    initial state
//   mask:   [T,B]    1 = run step t on row b, 0 = carry the state; nullptr = all run
//   dm:     [B,H]    recurrent dropout mask multiplying h_{t-1} before ·U; nullptr = none
//   hs, cs: [T,B,H]  states after each step (hs at any strides, States, cpu/projection.hpp:
//                    the binding writes it batch-major, the layer's output layout, since
//                    backward reads cs and the gates, not hs);  gates: [T,B,G] activated i,f,g,o
//   save:   false for inference: nothing is kept for backward, so cs is a ring [2,B,H] of
//           c_{t-1}, c_t (two slots: the row pass takes them as restrict pointers), gates is
//           nullptr, and c_T ends in slot (T-1) % 2
// Per step: one GEMM pass writing x_t·kernel + bias + hd·U into z_ws, a [B,G] scratch (both
// products summed in each register tile: 6–7% faster than two passes at (64,100,64,128) and
// (128,200,128,256)), and one fused pass over the units that activates the gates in place and
// applies mask and dropout; with save, each row's gates then go to gates[t] on streaming
// stores (stream_row, cpu/simd.hpp). Written in place into gates[t], as until 2026-12-02, every
// line of that array was read into the cache before being overwritten and pushed U and the
// kernel out of L2: the (64,100,64,128) training forward took 9-14% longer (medians of 60
// calls alternating the two ways in one process, 2-vCPU Zen 3: 10.83 -> 9.84, 11.97 -> 10.84,
// 12.55 -> 11.00 ms; the training step, medians of 40 the same way, 35.85 -> 35.05 ms,
// (128,200,128,256) 425 -> 419 ms, (32,100,32,32) even). GRU's forward, whose packed U and kernel (288 KB at H = 128, against
// LSTM's 384 KB) leave more of the 512 KB L2 free, measured even the same way and writes its
// gates in place.
// Rows of the batch are independent, so threads split them for the whole loop.
#pragma once
#include <cstdint>
#include <type_traits>
#include <vector>

#include "common/cell.hpp"
#include "cpu/gemm.hpp"
#include "cpu/projection.hpp"
#include "cpu/simd.hpp"

namespace seqfuse {

// One row of the gate pass. z: [G] pre-activations in, activated gates out; hp, cp: [H]
// previous state; h, c: [H] new state. A masked row (Keep = false) still stores its gates,
// as the reference does, and carries the state. Keep is a template argument because GCC 12
// does not vectorize a select on a loop-invariant bool.
template <bool Keep, typename scalar_t>
inline void lstm_row_forward(int64_t H, scalar_t* SEQFUSE_RESTRICT z,
                             const scalar_t* SEQFUSE_RESTRICT hp,
                             const scalar_t* SEQFUSE_RESTRICT cp, scalar_t* SEQFUSE_RESTRICT h,
                             scalar_t* SEQFUSE_RESTRICT c) {
  int64_t j = 0;
  if constexpr (std::is_same_v<scalar_t, float>) {
    // Explicit vectors of the build's width (kVectorBytes, cpu/simd.hpp), the float tail
    // below: GCC's tuning for Intel cores vectorizes the loop 32 bytes wide even where AVX-512
    // is there. Intel Xeon (family 6, model 167), 2026-12-02, LSTM (64,100,64,128) training
    // forward, both ways alternating call by call in one process, medians of 40: 5.77-5.81
    // -> 5.45-5.46 ms (step 18.27-18.71 -> 17.98-18.50). Asking GCC for the width instead
    // (omp simd simdlen, or a prefer-vector-width attribute) gained as much in this build but
    // left the loop scalar in others (tools/check_vectorized.py).
    using V = FloatVector;
    constexpr int64_t L = kFloatLanes;
    for (; j + L <= H; j += L) {
      const V c_prev = load_vector<V>(cp + j);
      V i, f, g, o, c_new, h_new;
      lstm_cell_forward(load_vector<V>(z + j), load_vector<V>(z + H + j), load_vector<V>(z + 2 * H + j),
                        load_vector<V>(z + 3 * H + j), c_prev, i, f, g, o, c_new, h_new);
      store_vector(z + j, i);
      store_vector(z + H + j, f);
      store_vector(z + 2 * H + j, g);
      store_vector(z + 3 * H + j, o);
      store_vector(c + j, Keep ? c_new : c_prev);
      store_vector(h + j, Keep ? h_new : load_vector<V>(hp + j));
    }
  }
  for (; j < H; ++j) {
    scalar_t i, f, g, o, c_new, h_new;
    lstm_cell_forward(z[j], z[H + j], z[2 * H + j], z[3 * H + j], cp[j], i, f, g, o, c_new, h_new);
    z[j] = i;
    z[H + j] = f;
    z[2 * H + j] = g;
    z[3 * H + j] = o;
    c[j] = Keep ? c_new : cp[j];
    h[j] = Keep ? h_new : hp[j];
  }
}

// z_ws: [B,G] workspace, the step's gates; hd_ws: [B,H] workspace holding h_{t-1}·dm (unused
// when dm is nullptr).
template <typename scalar_t>
void lstm_forward(int64_t T, int64_t B, int64_t H, const InputProjection<scalar_t>& in,
                  const scalar_t* U,
                  const scalar_t* h0, const scalar_t* c0, const bool* mask, const scalar_t* dm,
                  bool save, const States<scalar_t>& hs, scalar_t* cs, scalar_t* gates,
                  scalar_t* z_ws, scalar_t* hd_ws) {
  // U and the kernel are read from packed copies (packed_copy, cpu/gemm.hpp).
  const int64_t G = 4 * H, BH = B * H, BG = B * G;
  const double flops = 2.0 * T * B * (H + in.F) * G;
  const GemmTile tile = step_tile<scalar_t>(B, flops, in.F + H);
  const Scratch<scalar_t> Up = packed_copy(H, G, U, G, tile),
                          Wp = packed_copy(in.F, G, in.W, G, tile);
  const InputProjection<scalar_t> pin = in.with_packed(Wp);
  parallel_rows<scalar_t>(B, flops, [&](int64_t, int64_t b0, int64_t b1) {
    if (dm)
      for (int64_t k = b0 * H; k < b1 * H; ++k) hd_ws[k] = h0[k] * dm[k];
    for (int64_t t = 0; t < T; ++t) {
      const scalar_t* h_prev = hs.previous(t, h0);
      const int64_t ldh = hs.previous_ld(t, H);
      const scalar_t* c_prev = t ? cs + (save ? t - 1 : (t - 1) & 1) * BH : c0;
      scalar_t* c_t = cs + (save ? t : t & 1) * BH;
      pin.forward(t, b0, b1, dm ? hd_ws : h_prev, dm ? H : ldh, Up.data(), H, z_ws, G, tile);
      for (int64_t b = b0; b < b1; ++b) {
        scalar_t* h = hs.at(t, b);
        if (!mask || mask[t * B + b])
          lstm_row_forward<true>(H, z_ws + b * G, h_prev + b * ldh, c_prev + b * H, h, c_t + b * H);
        else
          lstm_row_forward<false>(H, z_ws + b * G, h_prev + b * ldh, c_prev + b * H, h, c_t + b * H);
        if (dm)
          for (int64_t j = 0; j < H; ++j) hd_ws[b * H + j] = h[j] * dm[b * H + j];
        if (save) stream_row(gates + t * BG + b * G, z_ws + b * G, G);
      }
    }
    if (save) stream_fence();
  });
}

// One row of the backward gate pass. g: [G] activated gates; c, cp: [H] c_t, c_{t-1};
// dhs_t: [H]; dhd: [H] gradient from step t+1's GEMM; dz: [G] out, which may be g itself
// (lstm_backward's dz may be its gates: every element of g is read before the dz element
// at its place is written, so g and dz are not restrict); dh_carry: [H] in/out,
// the non-GEMM part of dh (in: from step t+1, out: for step t-1); dc: [H] in/out; sum: [G]
// in/out, the step's column sums of dz (ColumnSums::add_step, cpu/projection.hpp). Carry:
// whether the loop has a mask; without one dh_carry stays zero, neither read nor written
// (simple_rnn.hpp has the measurement).
template <bool Keep, bool Carry, typename scalar_t>
inline void lstm_row_backward(int64_t H, const scalar_t* g,
                              const scalar_t* SEQFUSE_RESTRICT c,
                              const scalar_t* SEQFUSE_RESTRICT cp,
                              const scalar_t* SEQFUSE_RESTRICT dhs_t,
                              const scalar_t* SEQFUSE_RESTRICT dhd, scalar_t* dz,
                              scalar_t* SEQFUSE_RESTRICT dh_carry, scalar_t* SEQFUSE_RESTRICT dc,
                              scalar_t* SEQFUSE_RESTRICT sum) {
  int64_t j = 0;
  if constexpr (std::is_same_v<scalar_t, float>) {
    // Full-width vectors, as lstm_row_forward: the backward (64,100,64,128), both ways
    // alternating in one process, medians of 40, Intel Xeon (family 6, model 167), 2026-12-02:
    // 6.09-6.10 -> 5.94-6.01 ms with a getenv per row on the vector side; alternating builds,
    // medians of 30: 6.11-6.38 -> 5.76-6.11 ms.
    using V = FloatVector;
    constexpr int64_t L = kFloatLanes;
    for (; j + L <= H; j += L) {
      const V d = Carry ? load_vector<V>(dhs_t + j) + load_vector<V>(dh_carry + j) + load_vector<V>(dhd + j)
                        : load_vector<V>(dhs_t + j) + load_vector<V>(dhd + j);
      if constexpr (Keep) {
        V dzi, dzf, dzg, dzo, dc_prev;
        lstm_cell_backward(load_vector<V>(g + j), load_vector<V>(g + H + j), load_vector<V>(g + 2 * H + j),
                           load_vector<V>(g + 3 * H + j), load_vector<V>(c + j), load_vector<V>(cp + j), d,
                           load_vector<V>(dc + j), dzi, dzf, dzg, dzo, dc_prev);
        store_vector(dz + j, dzi);
        store_vector(dz + H + j, dzf);
        store_vector(dz + 2 * H + j, dzg);
        store_vector(dz + 3 * H + j, dzo);
        add_vector(sum + j, dzi);
        add_vector(sum + H + j, dzf);
        add_vector(sum + 2 * H + j, dzg);
        add_vector(sum + 3 * H + j, dzo);
        store_vector(dc + j, dc_prev);
        if constexpr (Carry) store_vector(dh_carry + j, V{});
      } else {
        store_vector(dz + j, V{});
        store_vector(dz + H + j, V{});
        store_vector(dz + 2 * H + j, V{});
        store_vector(dz + 3 * H + j, V{});
        store_vector(dh_carry + j, d);
      }
    }
  }
  // Once inlined, GCC 12 loses the restrict promise here and would need more than its 10
  // run-time alias checks; ivdep says the iterations are independent.
#pragma GCC ivdep
  for (; j < H; ++j) {
    const scalar_t dh = Carry ? dhs_t[j] + dh_carry[j] + dhd[j] : dhs_t[j] + dhd[j];
    if (Keep) {
      scalar_t dc_prev;
      lstm_cell_backward(g[j], g[H + j], g[2 * H + j], g[3 * H + j], c[j], cp[j], dh, dc[j], dz[j],
                         dz[H + j], dz[2 * H + j], dz[3 * H + j], dc_prev);
      for (int k = 0; k < 4; ++k) sum[k * H + j] += dz[k * H + j];
      dc[j] = dc_prev;
      if (Carry) dh_carry[j] = 0;
    } else {
      // A masked step copied h and c forward, so their gradients pass straight back.
      dz[j] = dz[H + j] = dz[2 * H + j] = dz[3 * H + j] = 0;
      dh_carry[j] = dh;
    }
  }
}

// Backward through the whole loop, t = T-1..0.
//   dhs:  [T,B,H] total gradient reaching each hs[t], rows at any strides (States);
//   dc_T: [B,H] gradient of c_{T-1}
//   dz:   [T,B,G] out, gradient of the pre-activations (= d xw), zero at masked steps; it
//         may be `gates` itself (the binding's overwrite_saved): a row's gates are read
//         before its dz is written and no later step reads them, and a caller that discards
//         the gates saves a [T,B,G] array (13 MB at (64,100,64,128); bindings/rnn_checks.hpp
//         has the measurement)
//   dx:   [B,T,F] out, dz·kernelᵀ in x's layout (in.backward), or nullptr: not wanted
//   dbias: [G] out, Σ_{t,b} dz (sums: its per-range workspace, N = G)
//   dh0, dc0: [B,H] out
//   Ut: [G,H] workspace filled here, Wt: [G,F] kernelᵀ (when dx), both packed
//   (transpose_packed, cpu/gemm.hpp); dh_ws, dhd_ws, dc_ws: [B,H].
// dh_ws holds the part of dh_{t-1} that does not come through the GEMM (the whole dh at a
// masked step, which carries it back unchanged); dhd_ws the GEMM's (dz_t·Uᵀ)·dm. A masked
// row's dz_t is zero, so its GEMM row is exactly zero and needs no test.
template <typename scalar_t>
void lstm_backward(int64_t T, int64_t B, int64_t H, const States<const scalar_t>& dhs,
                   const scalar_t* dc_T,
                   const scalar_t* U, const scalar_t* c0, const scalar_t* cs,
                   const scalar_t* gates, const bool* mask, const scalar_t* dm,
                   const InputProjection<scalar_t>& in, scalar_t* dz, scalar_t* dx,
                   scalar_t* dbias, scalar_t* dh0, scalar_t* dc0, const ColumnSums<scalar_t>& sums,
                   scalar_t* Ut, scalar_t* Wt, scalar_t* dh_ws, scalar_t* dhd_ws, scalar_t* dc_ws) {
  const int64_t G = 4 * H, BH = B * H, BG = B * G;
  const double flops = 2.0 * T * B * (H + (dx ? in.F : 0)) * G;
  const GemmTile tile = step_tile<scalar_t>(B, flops, G);
  transpose_packed(H, G, U, Ut, 0, tile);
  if (dx) transpose_packed(in.F, G, in.W, Wt, 0, tile);
  sums.zero();
  parallel_rows<scalar_t>(B, flops, [&](int64_t range, int64_t b0, int64_t b1) {
    for (int64_t k = b0 * H; k < b1 * H; ++k) {
      dh_ws[k] = dhd_ws[k] = 0;
      dc_ws[k] = dc_T[k];
    }
    std::vector<scalar_t> part(sums.N);  // this range's column sums of one step
    // The next step's rows of gates, cs, dhs and dz are asked for while this step computes
    // (prefetch_row, cpu/simd.hpp) where they fit in half the L2 beside the packed Uᵀ; where
    // they do not, dz's rows are streamed (GradientRows, cpu/projection.hpp). dhs: a layer's
    // output gradient is batch-major, its rows T·H apart; AMD EPYC Zen 4 (family 25, model 17),
    // 2026-12-03, (64,100,64,128) with such a dhs, the builds alternating call by call, medians
    // of 40: 9.38 -> 8.82, 9.67 -> 9.26, 13.29 -> 12.95 ms.
    const bool ahead = step_rows_fit<scalar_t>(b1 - b0, 2 * G + 2 * H, G * H);
    GradientRows<scalar_t> dz_rows(dz, B, G, b0, b1, ahead);
    for (int64_t t = T - 1; t >= 0; --t) {
      const scalar_t* c_prev = t ? cs + (t - 1) * BH : c0;
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t r = t * BH + b * H;
        if (ahead && t > 0) {
          prefetch_row<false, 2>(gates + (t - 1) * BG + b * G, G);
          if (t > 1) prefetch_row<false, 2>(cs + (t - 2) * BH + b * H, H);
          prefetch_row<false, 2>(dhs.at(t - 1, b), H);
          if (dz_rows.in_place()) prefetch_row<true, 2>(dz_rows.row(t - 1, b), G);
        }
        // Keep: the row runs this step; Carry: some row may not (std::bool_constant each).
        const auto row = [&](auto keep, auto carry) {
          lstm_row_backward<keep(), carry()>(H, gates + t * BG + b * G, cs + r, c_prev + b * H,
                                             dhs.at(t, b), dhd_ws + b * H, dz_rows.row(t, b),
                                             dh_ws + b * H, dc_ws + b * H, part.data());
        };
        if (!mask)
          row(std::true_type{}, std::false_type{});
        else if (mask[t * B + b])
          row(std::true_type{}, std::true_type{});
        else
          row(std::false_type{}, std::true_type{});
      }
      sums.add_step(range, part.data());
      const Product<scalar_t> back[1] = {{G, dz_rows.row(t, b0), G, Ut, H, true}};
      gemm<scalar_t, 1>(b1 - b0, H, back, nullptr, 0, dhd_ws + b0 * H, H, tile);
      if (dx) in.backward(t, b0, b1, dz_rows.row(t, b0), G, Wt, dx, tile);
      dz_rows.flush(t);
      if (dm)
        for (int64_t k = b0 * H; k < b1 * H; ++k) dhd_ws[k] *= dm[k];
    }
    for (int64_t k = b0 * H; k < b1 * H; ++k) {
      dh0[k] = dh_ws[k] + dhd_ws[k];
      dc0[k] = dc_ws[k];
    }
    dz_rows.finish();
  });
  sums.total(dbias);
}

}  // namespace seqfuse
