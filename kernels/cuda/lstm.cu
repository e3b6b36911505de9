// LSTM v1 step kernels (docs/kernels.md, "lstm"; Haste's design). engine/backends/_cuda_rnn.py
// runs the time loop on the host: per forward step one cuBLAS GEMM u = hd_{t-1}·U into a [B,4H]
// buffer, then lstm_step_forward; per backward step lstm_step_backward, then one GEMM
// dhd = dz_t·Uᵀ. One thread per (batch row b, unit j); the cell math is common/cell.hpp, the
// functions the C++ loops (kernels/cpu/lstm.hpp) run. Layouts, all C-contiguous, time-major:
//   xw:     [T,B,4H] input projection x_t·kernel + bias (gates i,f,c,o)
//   u:      [B,4H]   this step's hd_{t-1}·U
//   h0, c0: [B,H];  mask: [T,B] (true = run step t on row b) or null;  dm: [B,H] or null
//   hs:     [T,B,H]; cs: [T,B,H] (save) or a ring [2,B,H] of c_{t-1}, c_t (inference);
//   gates:  [T,B,4H] activated i,f,g,o (save) or one step [1,B,4H] of scratch (inference)
//   hd:     [B,H]    h_t·dm, the next step's GEMM input (written only when dm is given)
// Optional arrays are null pointers when absent.
#include "common/cell.hpp"

template <typename T>
__global__ void lstm_step_forward(long long B, long long H, long long t, int save,
                                  const T* __restrict__ xw, const T* __restrict__ u,
                                  const T* __restrict__ h0, const T* __restrict__ c0,
                                  const bool* __restrict__ mask, const T* __restrict__ dm,
                                  T* __restrict__ hs, T* __restrict__ cs, T* __restrict__ gates,
                                  T* __restrict__ hd) {
  const long long BH = B * H, G = 4 * H;
  const long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x;  // = b·H + j
  if (k >= BH) return;
  const long long b = k / H, j = k - b * H;
  const T* x = xw + (t * B + b) * G;
  const T* ur = u + b * G;
  const T hp = t ? hs[(t - 1) * BH + k] : h0[k];
  const T cp = t ? cs[(save ? t - 1 : (t - 1) & 1) * BH + k] : c0[k];
  T i, f, g, o, c, h;
  seqfuse::lstm_cell_forward(x[j] + ur[j], x[H + j] + ur[H + j], x[2 * H + j] + ur[2 * H + j],
                             x[3 * H + j] + ur[3 * H + j], cp, i, f, g, o, c, h);
  // A masked row still stores its gates, as the reference does, and carries the state.
  T* gr = gates + ((save ? t : 0) * B + b) * G;
  gr[j] = i;
  gr[H + j] = f;
  gr[2 * H + j] = g;
  gr[3 * H + j] = o;
  const bool keep = !mask || mask[t * B + b];
  h = keep ? h : hp;
  cs[(save ? t : t & 1) * BH + k] = keep ? c : cp;
  hs[t * BH + k] = h;
  if (dm) hd[k] = h * dm[k];
}

// Backward step t (the host runs t = T-1..0).
//   dhs:  [T,B,H] total gradient reaching each hs[t];  cs, gates: as saved by the forward
//   dhd:  [B,H] in, dz_{t+1}·Uᵀ from the previous backward step's GEMM (zeros before the first),
//         not yet multiplied by the dropout mask
//   dz:   [T,B,4H] out, row t: gradient of the pre-activations, zero on a masked row
//   carry: [B,H] in/out, the part of dh that does not come through the GEMM (the whole dh at a
//         masked step, which copied h forward); dc: [B,H] in/out, the gradient reaching c_t
// A masked row's dz is zero, so its GEMM row is exactly zero: dh = dhs + carry + dhd adds
// one of the two recurrent parts and an exact zero, as the reference's single term does.
template <typename T>
__global__ void lstm_step_backward(long long B, long long H, long long t,
                                   const T* __restrict__ dhs, const T* __restrict__ c0,
                                   const T* __restrict__ cs, const T* __restrict__ gates,
                                   const bool* __restrict__ mask, const T* __restrict__ dm,
                                   const T* __restrict__ dhd, T* __restrict__ dz,
                                   T* __restrict__ carry, T* __restrict__ dc) {
  const long long BH = B * H, G = 4 * H;
  const long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (k >= BH) return;
  const long long b = k / H, j = k - b * H;
  const T dh = dhs[t * BH + k] + carry[k] + (dm ? dhd[k] * dm[k] : dhd[k]);
  T* dzr = dz + (t * B + b) * G;
  if (mask && !mask[t * B + b]) {
    // A masked step copied h and c forward, so their gradients pass straight back.
    dzr[j] = dzr[H + j] = dzr[2 * H + j] = dzr[3 * H + j] = T(0);
    carry[k] = dh;
    return;
  }
  const T* g = gates + (t * B + b) * G;
  const T cp = t ? cs[(t - 1) * BH + k] : c0[k];
  T dc_prev;
  seqfuse::lstm_cell_backward(g[j], g[H + j], g[2 * H + j], g[3 * H + j], cs[t * BH + k], cp, dh,
                              dc[k], dzr[j], dzr[H + j], dzr[2 * H + j], dzr[3 * H + j], dc_prev);
  dc[k] = dc_prev;
  carry[k] = T(0);
}
