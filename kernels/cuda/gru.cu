// GRU v1 step kernels (docs/kernels.md, "gru"; Haste's design), both reset_after forms.
// engine/backends/_cuda_rnn.py runs the time loop on the host:
//   reset_after=True, forward:  GEMM u = hd·U [B,3H];  gru_step_forward_after
//   reset_after=False, forward: GEMM u_zr = hd·U_zr [B,2H];  gru_step_gates_before (writes
//                               r*hd);  GEMM u_h = (r*hd)·U_h [B,H];  gru_step_blend_before
//   backward, both forms:       gru_step_backward;  reset_after=False adds the GEMM
//                               drh = dn·U_hᵀ and gru_step_reset_before;  then the GEMM dhd
// One thread per (batch row b, unit j); the cell math is common/cell.hpp, the functions the
// C++ loops (kernels/cpu/gru.hpp) run. Layouts, all C-contiguous, time-major:
//   xw:    [T,B,3H] input projection x_t·kernel + input bias (gates z,r,h)
//   rb:    [3H] recurrent bias (reset_after only) or null
//   h0:    [B,H];  mask: [T,B] (true = run step t on row b) or null;  dm: [B,H] or null
//   hs:    [T,B,H]
//   gates: [T,B,3H] activated z,r,n (save) or one step [1,B,3H] of scratch (inference);
//   uh:    [T,B,H] u_h = (hd·U + rb)_h, likewise [1,B,H] in inference (reset_after only)
//   hd:    [B,H] h_t·dm, the next step's GEMM input (written only when dm is given)
// The blend uses the undropped h_{t-1}, as Keras 3 does. Optional arrays are null when absent.
#include "common/cell.hpp"

// reset_after: u [B,3H] = hd·U (without rb).
template <typename T>
__global__ void gru_step_forward_after(long long B, long long H, long long t, int save,
                                       const T* __restrict__ xw, const T* __restrict__ u,
                                       const T* __restrict__ rb, const T* __restrict__ h0,
                                       const bool* __restrict__ mask, const T* __restrict__ dm,
                                       T* __restrict__ hs, T* __restrict__ gates,
                                       T* __restrict__ uh, T* __restrict__ hd) {
  const long long BH = B * H, G = 3 * H;
  const long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x;  // = b·H + j
  if (k >= BH) return;
  const long long b = k / H, j = k - b * H;
  const T* x = xw + (t * B + b) * G;
  const T* ur = u + b * G;
  const T uz = rb ? ur[j] + rb[j] : ur[j];
  const T urr = rb ? ur[H + j] + rb[H + j] : ur[H + j];
  const T un = rb ? ur[2 * H + j] + rb[2 * H + j] : ur[2 * H + j];
  const T hp = t ? hs[(t - 1) * BH + k] : h0[k];
  T z, r, n, h;
  seqfuse::gru_gates_forward(x[j] + uz, x[H + j] + urr, z, r);
  seqfuse::gru_blend_forward(z, x[2 * H + j] + r * un, hp, n, h);
  // A masked row still stores its gates, as the reference does, and carries the state.
  const long long step = save ? t : 0;
  T* g = gates + (step * B + b) * G;
  g[j] = z;
  g[H + j] = r;
  g[2 * H + j] = n;
  uh[step * BH + k] = un;
  const bool keep = !mask || mask[t * B + b];
  h = keep ? h : hp;
  hs[t * BH + k] = h;
  if (dm) hd[k] = h * dm[k];
}

// reset_after=False, first half: u_zr [B,2H] = hd·U_zr; hd_in [B,H] the GEMM's input (h_{t-1}
// or h_{t-1}·dm). Writes the activated z, r into gates and rh [B,H] = r*hd, the second
// GEMM's input.
template <typename T>
__global__ void gru_step_gates_before(long long B, long long H, long long t, int save,
                                      const T* __restrict__ xw, const T* __restrict__ u_zr,
                                      const T* __restrict__ hd_in, T* __restrict__ gates,
                                      T* __restrict__ rh) {
  const long long BH = B * H, G = 3 * H;
  const long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (k >= BH) return;
  const long long b = k / H, j = k - b * H;
  const T* x = xw + (t * B + b) * G;
  const T* ur = u_zr + b * 2 * H;
  T z, r;
  seqfuse::gru_gates_forward(x[j] + ur[j], x[H + j] + ur[H + j], z, r);
  T* g = gates + ((save ? t : 0) * B + b) * G;
  g[j] = z;
  g[H + j] = r;
  rh[k] = r * hd_in[k];
}

// reset_after=False, second half: u_h [B,H] = (r*hd)·U_h; z from gates.
template <typename T>
__global__ void gru_step_blend_before(long long B, long long H, long long t, int save,
                                      const T* __restrict__ xw, const T* __restrict__ u_h,
                                      const T* __restrict__ h0, const bool* __restrict__ mask,
                                      const T* __restrict__ dm, T* __restrict__ hs,
                                      T* __restrict__ gates, T* __restrict__ hd) {
  const long long BH = B * H, G = 3 * H;
  const long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (k >= BH) return;
  const long long b = k / H, j = k - b * H;
  T* g = gates + ((save ? t : 0) * B + b) * G;
  const T hp = t ? hs[(t - 1) * BH + k] : h0[k];
  T n, h;
  seqfuse::gru_blend_forward(g[j], xw[(t * B + b) * G + 2 * H + j] + u_h[k], hp, n, h);
  g[2 * H + j] = n;
  const bool keep = !mask || mask[t * B + b];
  h = keep ? h : hp;
  hs[t * BH + k] = h;
  if (dm) hd[k] = h * dm[k];
}

// Backward step t through the blend (the host runs t = T-1..0).
//   dhs: [T,B,H];  gates, uh (reset_after only, else null): as saved by the forward
//   dhd: [B,H] in, the previous backward step's GEMM du_{t+1}·Uᵀ (reset_after) or
//        du_{t+1,zr}·U_zrᵀ, not yet multiplied by the dropout mask; zeros before the first
//   dxw, du: [T,B,3H] out, row t (reset_after=False: the z and h columns; the r columns
//        come from gru_step_reset_before); zero on a masked row
//   dn:  [B,H] out (reset_after=False only, else null): the h column of du, contiguous for the
//        GEMM dn·U_hᵀ; zero on a masked row
//   carry: [B,H] in/out, the part of dh_{t-1} that does not come through the GEMMs: dh·z, or
//        the whole dh at a masked step, which copied h forward
// A masked row's du is zero, so its GEMM rows are exactly zero (see lstm.cu).
template <typename T>
__global__ void gru_step_backward(long long B, long long H, long long t, int reset_after,
                                  const T* __restrict__ dhs, const T* __restrict__ h0,
                                  const T* __restrict__ hs, const T* __restrict__ gates,
                                  const T* __restrict__ uh, const bool* __restrict__ mask,
                                  const T* __restrict__ dm, const T* __restrict__ dhd,
                                  T* __restrict__ dxw, T* __restrict__ du, T* __restrict__ dn_out,
                                  T* __restrict__ carry) {
  const long long BH = B * H, G = 3 * H;
  const long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (k >= BH) return;
  const long long b = k / H, j = k - b * H;
  const T dh = dhs[t * BH + k] + carry[k] + (dm ? dhd[k] * dm[k] : dhd[k]);
  T* dx = dxw + (t * B + b) * G;
  T* dur = du + (t * B + b) * G;
  if (mask && !mask[t * B + b]) {
    dx[j] = dx[H + j] = dx[2 * H + j] = T(0);
    dur[j] = dur[H + j] = dur[2 * H + j] = T(0);
    if (!reset_after) dn_out[k] = T(0);
    carry[k] = dh;
    return;
  }
  const T* g = gates + (t * B + b) * G;
  const T hp = t ? hs[(t - 1) * BH + k] : h0[k];
  T dz, dn, direct;
  seqfuse::gru_blend_backward(g[j], g[2 * H + j], hp, dh, dz, dn, direct);
  dx[j] = dur[j] = dz;
  dx[2 * H + j] = dn;
  if (reset_after) {
    const T r = g[H + j];
    dx[H + j] = dur[H + j] = seqfuse::gru_reset_backward(r, dn * uh[t * BH + k]);
    dur[2 * H + j] = dn * r;
  } else {
    dur[2 * H + j] = dn;
    dn_out[k] = dn;
  }
  carry[k] = direct;
}

// reset_after=False, after the GEMM drh = dn·U_hᵀ [B,H] (the gradient reaching r*hd, zero on
// a masked row): writes the r columns of dxw and du, adds the r*hd path to carry, and fills
// dzr [B,2H] = du's z,r columns, contiguous for the GEMM du_zr·U_zrᵀ.
template <typename T>
__global__ void gru_step_reset_before(long long B, long long H, long long t,
                                      const T* __restrict__ h0, const T* __restrict__ hs,
                                      const T* __restrict__ gates, const T* __restrict__ dm,
                                      const T* __restrict__ drh, T* __restrict__ dxw,
                                      T* __restrict__ du, T* __restrict__ dzr,
                                      T* __restrict__ carry) {
  const long long BH = B * H, G = 3 * H;
  const long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (k >= BH) return;
  const long long b = k / H, j = k - b * H;
  const long long row = (t * B + b) * G;
  const T r = gates[row + H + j];
  const T hp = t ? hs[(t - 1) * BH + k] : h0[k];
  const T d = dm ? drh[k] * dm[k] : drh[k];  // gradient reaching r*h_{t-1}·dm, per factor
  const T dr = seqfuse::gru_reset_backward(r, d * hp);
  dxw[row + H + j] = du[row + H + j] = dr;
  carry[k] += d * r;
  dzr[b * 2 * H + j] = du[row + j];
  dzr[b * 2 * H + H + j] = dr;
}
