// GRU time loop, forward and backward, on raw pointers (docs/kernels.md, "gru").
// Keras gate order z,r,h; G = 3H. All arrays C-contiguous, time-major except x, dx, hs and dhs:
//   in:    the input projection xw_t = x_t·kernel + input bias, computed per step into a
//          [B,G] scratch (cpu/projection.hpp)
//   U:     [H,G]    recurrent kernel;  Ut: [G,H] its transpose (backward workspace)
//   rb:    [G]      recurrent bias (reset_after only) or nullptr
//   h0:    [B,H];  mask: [T,B] (1 = run the step) or nullptr;  dm: [B,H] dropout mask or nullptr
//   hs:    [T,B,H] states at any strides (States, cpu/projection.hpp; the binding's are
//          batch-major);  gates: [T,B,G] activated z,r,n;  uh: [T,B,H] u_h = (hd·U + rb)_h
//   save:  false for inference: nothing is kept for backward, so gates is a [B,G] and uh a
//          [B,H] scratch reused every step
// reset_after=True:  u = hd·U + rb, n = tanh(xw_h + r*u_h)      — one GEMM per step.
// reset_after=False: n = tanh(xw_h + (r*hd)·U_h)                — two GEMMs per step, since
//                    the second one's input needs r from the first.
// The blend uses the undropped h_{t-1}, as Keras 3 does. Threads split the batch rows.
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

// Row functions: pointers are one batch row, [H] unless marked [G]. A masked row
// (Keep = false) still stores its gates, as the reference does, and carries the state.
// Keep is a template argument because GCC 12 does not vectorize a select on a loop-invariant
// bool.

// reset_after: x [G] = xw row, u [G] = hd·U + rb row; writes gates g [G], uh and h.
template <bool Keep, typename scalar_t>
inline void gru_row_forward_after(int64_t H, const scalar_t* SEQFUSE_RESTRICT x,
                                  const scalar_t* SEQFUSE_RESTRICT u,
                                  const scalar_t* SEQFUSE_RESTRICT hp, scalar_t* SEQFUSE_RESTRICT g,
                                  scalar_t* SEQFUSE_RESTRICT uh, scalar_t* SEQFUSE_RESTRICT h) {
  int64_t j = 0;
  if constexpr (std::is_same_v<scalar_t, float>) {  // full-width vectors: lstm_row_forward
    using V = FloatVector;
    constexpr int64_t L = kFloatLanes;
    for (; j + L <= H; j += L) {
      const V un = load_vector<V>(u + 2 * H + j), h_prev = load_vector<V>(hp + j);
      V z, r, n, h_new;
      gru_gates_forward(load_vector<V>(x + j) + load_vector<V>(u + j),
                        load_vector<V>(x + H + j) + load_vector<V>(u + H + j), z, r);
      gru_blend_forward(z, load_vector<V>(x + 2 * H + j) + r * un, h_prev, n, h_new);
      store_vector(g + j, z);
      store_vector(g + H + j, r);
      store_vector(g + 2 * H + j, n);
      store_vector(uh + j, un);
      store_vector(h + j, Keep ? h_new : h_prev);
    }
  }
  for (; j < H; ++j) {
    scalar_t z, r, n, h_new;
    gru_gates_forward(x[j] + u[j], x[H + j] + u[H + j], z, r);
    gru_blend_forward(z, x[2 * H + j] + r * u[2 * H + j], hp[j], n, h_new);
    g[j] = z;
    g[H + j] = r;
    g[2 * H + j] = n;
    uh[j] = u[2 * H + j];
    h[j] = Keep ? h_new : hp[j];
  }
}

// !reset_after, first half: g [G] holds the z,r pre-activations; activates them in place and
// writes rh = r*hd, the input of the second GEMM.
template <typename scalar_t>
inline void gru_row_gates_before(int64_t H, scalar_t* SEQFUSE_RESTRICT g,
                                 const scalar_t* SEQFUSE_RESTRICT hd, scalar_t* SEQFUSE_RESTRICT rh) {
  int64_t j = 0;
  if constexpr (std::is_same_v<scalar_t, float>) {  // full-width vectors: lstm_row_forward
    using V = FloatVector;
    constexpr int64_t L = kFloatLanes;
    for (; j + L <= H; j += L) {
      V z, r;
      gru_gates_forward(load_vector<V>(g + j), load_vector<V>(g + H + j), z, r);
      store_vector(g + j, z);
      store_vector(g + H + j, r);
      store_vector(rh + j, r * load_vector<V>(hd + j));
    }
  }
  for (; j < H; ++j) {
    scalar_t z, r;
    gru_gates_forward(g[j], g[H + j], z, r);
    g[j] = z;
    g[H + j] = r;
    rh[j] = r * hd[j];
  }
}

// !reset_after, second half: g [G] holds z, r and the candidate's pre-activation.
template <bool Keep, typename scalar_t>
inline void gru_row_blend_before(int64_t H, scalar_t* SEQFUSE_RESTRICT g,
                                 const scalar_t* SEQFUSE_RESTRICT hp, scalar_t* SEQFUSE_RESTRICT h) {
  int64_t j = 0;
  if constexpr (std::is_same_v<scalar_t, float>) {  // full-width vectors: lstm_row_forward
    using V = FloatVector;
    constexpr int64_t L = kFloatLanes;
    for (; j + L <= H; j += L) {
      const V h_prev = load_vector<V>(hp + j);
      V n, h_new;
      gru_blend_forward(load_vector<V>(g + j), load_vector<V>(g + 2 * H + j), h_prev, n, h_new);
      store_vector(g + 2 * H + j, n);
      store_vector(h + j, Keep ? h_new : h_prev);
    }
  }
  for (; j < H; ++j) {
    scalar_t n, h_new;
    gru_blend_forward(g[j], g[2 * H + j], hp[j], n, h_new);
    g[2 * H + j] = n;
    h[j] = Keep ? h_new : hp[j];
  }
}

// Workspaces: xw_ws [B,G] the step's input projection; u_ws [B,G] (reset_after) or [B,H]
// holding r*hd (otherwise); hd_ws [B,H] holding h_{t-1}·dm (unused when dm is nullptr).
// uh is unused when !reset_after.
template <typename scalar_t>
void gru_forward(int64_t T, int64_t B, int64_t H, const InputProjection<scalar_t>& in,
                 const scalar_t* U,
                 const scalar_t* rb, const scalar_t* h0, const bool* mask, const scalar_t* dm,
                 bool reset_after, bool save, const States<scalar_t>& hs, scalar_t* gates, scalar_t* uh,
                 scalar_t* xw_ws, scalar_t* u_ws, scalar_t* hd_ws) {
  // Every product reads its B operand packed (packed_copy, cpu/gemm.hpp): the kernel, and U
  // whole (reset_after) or as its column slices U_zr and U_h, each packed on its own since
  // they are separate products.
  const int64_t G = 3 * H, BH = B * H, BG = B * G;
  const double flops = 2.0 * T * B * (H + in.F) * G;
  const GemmTile tile = step_tile<scalar_t>(B, flops, in.F + H);
  const Scratch<scalar_t> Wp = packed_copy(in.F, G, in.W, G, tile),
                          Up = packed_copy(H, reset_after ? G : 2 * H, U, G, tile),
                          Uh = reset_after ? Scratch<scalar_t>()
                                           : packed_copy(H, H, U + 2 * H, G, tile);
  const InputProjection<scalar_t> pin = in.with_packed(Wp);
  parallel_rows<scalar_t>(B, flops, [&](int64_t, int64_t b0, int64_t b1) {
    const int64_t nb = b1 - b0;
    if (dm)
      for (int64_t k = b0 * H; k < b1 * H; ++k) hd_ws[k] = h0[k] * dm[k];
    for (int64_t t = 0; t < T; ++t) {
      const scalar_t* h_prev = hs.previous(t, h0);
      const int64_t ldh = hs.previous_ld(t, H), ldd = dm ? H : ldh;  // rows of h_prev, hd
      const scalar_t* hd = dm ? hd_ws : h_prev;
      pin.forward(t, b0, b1, xw_ws, G, tile);
      const scalar_t* x = xw_ws;
      scalar_t* g = gates + (save ? t : 0) * BG;
      scalar_t* uh_t = reset_after ? uh + (save ? t : 0) * BH : nullptr;
      if (reset_after) {
        const Product<scalar_t> u[1] = {{H, hd + b0 * ldd, ldd, Up.data(), G, true}};
        gemm<scalar_t, 1>(nb, G, u, rb, 0, u_ws + b0 * G, G, tile);
      } else {
        // gates[t][:, :2H] = xw_zr + hd·U_zr, then activated; gates[t][:, 2H:] = xw_h +
        // (r*hd)·U_h, the candidate's pre-activation.
        const Product<scalar_t> zr[1] = {{H, hd + b0 * ldd, ldd, Up.data(), 2 * H, true}},
                                h[1] = {{H, u_ws + b0 * H, H, Uh.data(), H, true}};
        gemm<scalar_t, 1>(nb, 2 * H, zr, x + b0 * G, G, g + b0 * G, G, tile);
        for (int64_t b = b0; b < b1; ++b) gru_row_gates_before(H, g + b * G, hd + b * ldd, u_ws + b * H);
        gemm<scalar_t, 1>(nb, H, h, x + b0 * G + 2 * H, G, g + b0 * G + 2 * H, G, tile);
      }
      for (int64_t b = b0; b < b1; ++b) {
        const bool keep = !mask || mask[t * B + b];
        const scalar_t* hp = h_prev + b * ldh;
        scalar_t* h = hs.at(t, b);
        if (reset_after && keep)
          gru_row_forward_after<true>(H, x + b * G, u_ws + b * G, hp, g + b * G, uh_t + b * H, h);
        else if (reset_after)
          gru_row_forward_after<false>(H, x + b * G, u_ws + b * G, hp, g + b * G, uh_t + b * H, h);
        else if (keep)
          gru_row_blend_before<true>(H, g + b * G, hp, h);
        else
          gru_row_blend_before<false>(H, g + b * G, hp, h);
        if (dm)
          for (int64_t j = 0; j < H; ++j) hd_ws[b * H + j] = h[j] * dm[b * H + j];
      }
    }
  });
}

// One row of the backward blend pass. g [G]: activated z,r,n; uh: u_h row (reset_after
// only); dhd: gradient from step t+1's GEMMs; dx [G] out (reset_after: all three gates;
// otherwise z and h, the r columns come after the U_h GEMM); du [H] out, the gradient of the
// candidate's recurrent pre-activation (reset_after: of u_h, dn·r; otherwise of (r*hd)·U_h,
// dn): the z,r columns of the recurrent gradient are dx's. dx may be g itself and du uh
// itself (the binding's overwrite_saved): every element of g and uh is read before the one
// at its place is written, and gru_row_reset_before reads the r column before writing it, so
// those pairs are not restrict. dh_carry in/out as in lstm; sum: the step's column sums
// (ColumnSums::add_step), dx's columns, then with reset_after the recurrent gradient's (only
// its h columns are added: its z,r columns equal dx's).
template <bool Keep, bool ResetAfter, typename scalar_t>
inline void gru_row_backward(int64_t H, const scalar_t* g,
                             const scalar_t* SEQFUSE_RESTRICT hp,
                             const scalar_t* SEQFUSE_RESTRICT dhs_t,
                             const scalar_t* SEQFUSE_RESTRICT dhd,
                             const scalar_t* uh, scalar_t* dx,
                             scalar_t* du, scalar_t* SEQFUSE_RESTRICT dh_carry,
                             scalar_t* SEQFUSE_RESTRICT sum) {
  const int64_t G = 3 * H;
  int64_t j = 0;
  if constexpr (std::is_same_v<scalar_t, float>) {
    // Full-width vectors, as lstm_row_backward: the (64,100,64,128) backward, both ways
    // alternating in one process, medians of 40, Intel Xeon (family 6, model 167), 2026-12-02:
    // 4.70-4.97 -> 4.60-4.84 ms with a getenv per row on the vector side.
    using V = FloatVector;
    constexpr int64_t L = kFloatLanes;
    for (; j + L <= H; j += L) {
      const V dh = load_vector<V>(dhs_t + j) + load_vector<V>(dh_carry + j) + load_vector<V>(dhd + j);
      if constexpr (!Keep) {
        store_vector(dx + j, V{});
        store_vector(dx + 2 * H + j, V{});
        if (ResetAfter) store_vector(dx + H + j, V{});
        store_vector(du + j, V{});
        store_vector(dh_carry + j, dh);
      } else {
        const V r = load_vector<V>(g + H + j);
        V dz, dn, direct;
        gru_blend_backward(load_vector<V>(g + j), load_vector<V>(g + 2 * H + j), load_vector<V>(hp + j), dh, dz,
                           dn, direct);
        store_vector(dh_carry + j, direct);
        store_vector(dx + j, dz);
        store_vector(dx + 2 * H + j, dn);
        add_vector(sum + j, dz);
        add_vector(sum + 2 * H + j, dn);
        if (ResetAfter) {
          const V dr = gru_reset_backward(r, dn * load_vector<V>(uh + j));
          store_vector(dx + H + j, dr);
          store_vector(du + j, dn * r);
          add_vector(sum + H + j, dr);
          add_vector(sum + G + 2 * H + j, dn * r);
        } else {
          store_vector(du + j, dn);
        }
      }
    }
  }
  // No iteration reads what another writes, with dx on g and du on uh too (the vector side's
  // promise).
#pragma GCC ivdep
  for (; j < H; ++j) {
    const scalar_t dh = dhs_t[j] + dh_carry[j] + dhd[j];
    if (!Keep) {
      dx[j] = dx[2 * H + j] = du[j] = 0;
      if (ResetAfter) dx[H + j] = 0;
      dh_carry[j] = dh;
      continue;
    }
    const scalar_t r = g[H + j];
    scalar_t dz, dn;
    gru_blend_backward(g[j], g[2 * H + j], hp[j], dh, dz, dn, dh_carry[j]);
    dx[j] = dz;
    dx[2 * H + j] = dn;
    sum[j] += dz;
    sum[2 * H + j] += dn;
    if (ResetAfter) {
      const scalar_t dr = gru_reset_backward(r, dn * uh[j]);
      dx[H + j] = dr;
      du[j] = dn * r;
      sum[H + j] += dr;
      sum[G + 2 * H + j] += dn * r;
    } else {
      du[j] = dn;
    }
  }
}

// !reset_after: drh = (dn·U_hᵀ)·dm, the gradient reaching r*h_{t-1} (zero on a masked row,
// whose dn is zero); writes the r columns of dx, adds them to sum (as gru_row_backward's)
// and adds the r*hd path to dh_carry.
template <typename scalar_t>
inline void gru_row_reset_before(int64_t H, const scalar_t* g,
                                 const scalar_t* SEQFUSE_RESTRICT hp,
                                 const scalar_t* SEQFUSE_RESTRICT drh, scalar_t* dx,
                                 scalar_t* SEQFUSE_RESTRICT dh_carry,
                                 scalar_t* SEQFUSE_RESTRICT sum) {
#pragma GCC ivdep
  for (int64_t j = 0; j < H; ++j) {
    const scalar_t r = g[H + j];
    const scalar_t dr = gru_reset_backward(r, drh[j] * hp[j]);
    dx[H + j] = dr;
    sum[H + j] += dr;
    dh_carry[j] += drh[j] * r;
  }
}

// Backward through the whole loop, t = T-1..0.
//   dhs: [T,B,H] total gradient reaching each hs[t], rows at any strides (States)
//   dxw: [T,B,G] out, gradient of xw, which may be `gates` itself (as lstm_backward's dz)
//   du:  [T,B,H] out, gradient of the candidate's recurrent pre-activation (reset_after: of
//        u_h = (hd·U + rb)_h; otherwise of (r*hd)·U_h), which may be `uh` itself; the z,r
//        columns of the recurrent gradient are dxw's. Both zero at masked steps
//   dx:  [B,T,F] out, dxw·kernelᵀ in x's layout (in.backward), or nullptr: not wanted
//   dbias: out, reset_after: [2,G] = (Σ dxw, Σ du), else [G] = Σ dxw, sums over t and b
//        (sums: their per-range workspace, N = 2G or G)
//   dh0: [B,H] out
//   weights: with reset_after and no dm, or nullptr: the weight gradients [dkernel; dU]
//        summed in the loop (LoopWeights, cpu/gemm_tn.hpp; its parts set by
//        gru_loop_products below); then the step's dxw and du rows live in its workspaces and
//        dxw and du are not written (nullptr)
//   Workspaces: Ut [G,H] filled here with Uᵀ packed (transpose_packed, cpu/gemm.hpp), as its
//   row ranges U_zrᵀ [2H,H] and U_hᵀ [H,H] one after the other: the z,r rows of the step's
//   gradient are dxw's and the h rows du's, so they are separate products; Wt [G,F] kernelᵀ
//   packed (when dx);
//   dh_ws, dhd_ws, drh_ws [B,H]
//   (drh_ws: !reset_after only).
// dh_ws holds the part of dh_{t-1} that does not come through the last GEMM (dh·z, plus
// (dn·U_hᵀ)·dm·r when !reset_after; the whole dh at a masked step); dhd_ws the GEMM's
// ([dxw_zr | du]·Uᵀ)·dm, exactly zero on a masked row since its gradients are zero.
template <typename scalar_t>
void gru_backward(int64_t T, int64_t B, int64_t H, const States<const scalar_t>& dhs,
                  const scalar_t* U, const scalar_t* h0, const States<const scalar_t>& hs,
                  const scalar_t* gates, const scalar_t* uh, const bool* mask, const scalar_t* dm,
                  bool reset_after,
                  const InputProjection<scalar_t>& in, scalar_t* dxw, scalar_t* dx, scalar_t* du,
                  scalar_t* dbias, scalar_t* dh0, const ColumnSums<scalar_t>& sums, scalar_t* Ut,
                  scalar_t* Wt, scalar_t* dh_ws, scalar_t* dhd_ws, scalar_t* drh_ws,
                  const LoopWeights<scalar_t>* weights = nullptr) {
  const int64_t G = 3 * H, BH = B * H, BG = B * G;
  const double flops = 2.0 * T * B * (H + (dx ? in.F : 0)) * G;
  const GemmTile tile = step_tile<scalar_t>(B, flops, G);
  transpose_packed(H, 2 * H, U, Ut, G, tile);
  transpose_packed(H, H, U + 2 * H, Ut + 2 * H * H, G, tile);
  if (dx) transpose_packed(in.F, G, in.W, Wt, 0, tile);
  sums.zero();
  // One range's loop; dxw_rows and du_rows: where a step's gradient rows go (GradientRows,
  // or LoopRows with the weights summed in the loop), done(t) once step t is through.
  const auto loop = [&](int64_t range, int64_t b0, int64_t b1, bool ahead, auto& dxw_rows,
                        auto& du_rows, const auto& done) {
    const int64_t nb = b1 - b0;
    for (int64_t k = b0 * H; k < b1 * H; ++k) dh_ws[k] = dhd_ws[k] = 0;
    std::vector<scalar_t> part(sums.N);  // this range's column sums of one step
    for (int64_t t = T - 1; t >= 0; --t) {
      const scalar_t* h_prev = hs.previous(t, h0);
      const int64_t ldh = hs.previous_ld(t, H);  // rows of h_prev
      for (int64_t b = b0; b < b1; ++b) {
        const bool keep = !mask || mask[t * B + b];
        const scalar_t* g = gates + t * BG + b * G;
        const scalar_t* hp = h_prev + b * ldh;
        const scalar_t* dhs_t = dhs.at(t, b);
        const scalar_t* uhr = reset_after ? uh + t * BH + b * H : nullptr;
        scalar_t* dx = dxw_rows.row(t, b);
        scalar_t* dur = du_rows.row(t, b);
        scalar_t* carry = dh_ws + b * H;
        const scalar_t* dhd = dhd_ws + b * H;
        if (ahead && t > 0) {
          prefetch_row<false, 2>(g - BG, G);
          if (reset_after) prefetch_row<false, 2>(uhr - BH, H);
          prefetch_row<false, 2>(hs.previous(t - 1, h0) + b * hs.previous_ld(t - 1, H), H);
          prefetch_row<false, 2>(dhs.at(t - 1, b), H);
          if (dxw_rows.in_place()) {
            prefetch_row<true, 2>(dxw_rows.row(t - 1, b), G);
            prefetch_row<true, 2>(du_rows.row(t - 1, b), H);
          }
        }
        if (reset_after && keep)
          gru_row_backward<true, true>(H, g, hp, dhs_t, dhd, uhr, dx, dur, carry, part.data());
        else if (reset_after)
          gru_row_backward<false, true>(H, g, hp, dhs_t, dhd, uhr, dx, dur, carry, part.data());
        else if (keep)
          gru_row_backward<true, false>(H, g, hp, dhs_t, dhd, uhr, dx, dur, carry, part.data());
        else
          gru_row_backward<false, false>(H, g, hp, dhs_t, dhd, uhr, dx, dur, carry, part.data());
      }
      if (!reset_after) {
        const Product<scalar_t> dn[1] = {{H, du_rows.row(t, b0), H, Ut + 2 * H * H, H, true}};
        gemm<scalar_t, 1>(nb, H, dn, nullptr, 0, drh_ws + b0 * H, H, tile);
        if (dm)
          for (int64_t k = b0 * H; k < b1 * H; ++k) drh_ws[k] *= dm[k];
        for (int64_t b = b0; b < b1; ++b)
          gru_row_reset_before(H, gates + t * BG + b * G, h_prev + b * ldh, drh_ws + b * H,
                               dxw_rows.row(t, b), dh_ws + b * H, part.data());
      }
      // The recurrent gradient's z and r columns are dxw's (so are the two biases' z,r
      // gradients): only its h columns (du) are summed, the z,r sums are copied after the loop.
      sums.add_step(range, part.data());
      if (dx) in.backward(t, b0, b1, dxw_rows.row(t, b0), G, Wt, dx, tile);
      // reset_after: dhd = [dxw_zr | du]·Uᵀ; otherwise only the z,r columns (U_h's part went
      // via drh).
      const Product<scalar_t> zr = {2 * H, dxw_rows.row(t, b0), G, Ut, H, true};
      if (reset_after) {
        const Product<scalar_t> back[2] = {zr, {H, du_rows.row(t, b0), H, Ut + 2 * H * H, H, true}};
        gemm<scalar_t, 2>(nb, H, back, nullptr, 0, dhd_ws + b0 * H, H, tile);
      } else {
        const Product<scalar_t> back[1] = {zr};
        gemm<scalar_t, 1>(nb, H, back, nullptr, 0, dhd_ws + b0 * H, H, tile);
      }
      dxw_rows.flush(t);
      du_rows.flush(t);
      done(t);
      if (dm)
        for (int64_t k = b0 * H; k < b1 * H; ++k) dhd_ws[k] *= dm[k];
    }
    for (int64_t k = b0 * H; k < b1 * H; ++k) dh0[k] = dh_ws[k] + dhd_ws[k];
    dxw_rows.finish();
    du_rows.finish();
  };
  parallel_rows<scalar_t>(B, flops, [&](int64_t range, int64_t b0, int64_t b1) {
    // The next step's rows of gates, uh, h_{t-1}, dhs, dxw and du are asked for while this step
    // computes (prefetch_row, cpu/simd.hpp) where they fit in half the L2 beside the packed Uᵀ;
    // where they do not, dxw's and du's rows are streamed (GradientRows, cpu/projection.hpp).
    // h_{t-1} and dhs (the states and the output's gradient, batch-major: rows T·H apart)
    // since 2026-12-03: AMD EPYC Zen 4 (family 25, model 17), (64,100,64,128), the backward with
    // the weights in its loop and a batch-major dhs, builds alternating, medians of 40: 12.22 ->
    // 12.03, 12.29 -> 11.98, 11.76 -> 11.69 ms.
    const bool ahead = step_rows_fit<scalar_t>(b1 - b0, 2 * G + 4 * H, G * H);
    if (weights) {
      typename LoopWeights<scalar_t>::Range in_loop(*weights, range, b0, b1, T);
      LoopRows<scalar_t> dxw_rows{in_loop, 0, b0, G}, du_rows{in_loop, 1, b0, H};
      loop(range, b0, b1, ahead, dxw_rows, du_rows, [&](int64_t t) { in_loop.step(t); });
    } else {
      GradientRows<scalar_t> dxw_rows(dxw, B, G, b0, b1, ahead), du_rows(du, B, H, b0, b1, ahead);
      loop(range, b0, b1, ahead, dxw_rows, du_rows, [](int64_t) {});
    }
  });
  sums.total(dbias);
  if (reset_after)
    for (int64_t j = 0; j < 2 * H; ++j) dbias[G + j] = dbias[j];
  if (weights) weights->finish(row_ranges<scalar_t>(B, flops));
}

// The weight gradients of reset_after's backward summed in its loop (LoopWeights,
// cpu/gemm_tn.hpp): [dkernel; dU] [F+H, 3H] from dxw's rows (ring 0) and du's (ring 1), as
// the pass after the loop reads them (engine/_recurrent.py, _weight_grads).
template <typename scalar_t>
void gru_loop_products(LoopWeights<scalar_t>& w, int64_t H) {
  const int64_t F = w.m[0];
  w.rings = 2;
  w.width[0] = 3 * H;
  w.width[1] = H;
  w.parts = 3;
  w.part[0] = {0, 0, 2 * H, 0, {0, F}};
  w.part[1] = {0, 2 * H, H, 2 * H, {0, -1}};
  w.part[2] = {1, 0, H, 2 * H, {-1, F}};
}

}  // namespace seqfuse
