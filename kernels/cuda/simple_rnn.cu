// SimpleRNN v1 step kernels (docs/kernels.md, "simple_rnn"; Haste's design): per forward step
// the host (engine/backends/_cuda_rnn.py) runs one cuBLAS GEMM u = hd_{t-1}·U, then
// simple_rnn_step_forward; per backward step simple_rnn_step_backward, then dhd = dz_t·Uᵀ.
// One thread per (batch row b, unit j); same layouts and semantics as kernels/cpu/simple_rnn.hpp:
//   xw: [T,B,H] input projection;  u: [B,H];  h0: [B,H];  hs: [T,B,H]
//   mask: [T,B] or null;  dm: [B,H] dropout mask or null;  hd: [B,H] h_t·dm (when dm is given)
#include "common/cell.hpp"

template <typename T>
__global__ void simple_rnn_step_forward(long long B, long long H, long long t,
                                        const T* __restrict__ xw, const T* __restrict__ u,
                                        const T* __restrict__ h0, const bool* __restrict__ mask,
                                        const T* __restrict__ dm, T* __restrict__ hs,
                                        T* __restrict__ hd) {
  const long long BH = B * H;
  const long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x;  // = b·H + j
  if (k >= BH) return;
  const long long b = k / H;
  const T hp = t ? hs[(t - 1) * BH + k] : h0[k];
  const bool keep = !mask || mask[t * B + b];
  const T h = keep ? seqfuse::tanh_act(xw[t * BH + k] + u[k]) : hp;
  hs[t * BH + k] = h;
  if (dm) hd[k] = h * dm[k];
}

// Backward step t; dhd, dz, carry as in lstm.cu (dz: [T,B,H]).
template <typename T>
__global__ void simple_rnn_step_backward(long long B, long long H, long long t,
                                         const T* __restrict__ dhs, const T* __restrict__ hs,
                                         const bool* __restrict__ mask, const T* __restrict__ dm,
                                         const T* __restrict__ dhd, T* __restrict__ dz,
                                         T* __restrict__ carry) {
  const long long BH = B * H;
  const long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (k >= BH) return;
  const long long b = k / H;
  const T dh = dhs[t * BH + k] + carry[k] + (dm ? dhd[k] * dm[k] : dhd[k]);
  const bool keep = !mask || mask[t * B + b];
  dz[t * BH + k] = keep ? seqfuse::simple_rnn_cell_backward(hs[t * BH + k], dh) : T(0);
  carry[k] = keep ? T(0) : dh;
}
