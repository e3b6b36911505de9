// "v2" recurrent time loops: the whole loop of lstm, gru (both reset_after forms) and
// simple_rnn, forward and backward, in ONE cooperative launch each (the design of cuDNN's
// persistent RNN and FlashRNN). v1 (engine/backends/_cuda_rnn.py) runs one cuBLAS GEMM plus
// one fused pointwise kernel per step; here nothing is launched per step, and U is read from
// global memory once per call instead of once per step.
//
// Work split (see cuda/persistent.cuh for the building blocks and the memory rules):
// - block k owns hidden units [k·units, (k+1)·units) for the whole loop; the grid has one
//   block per SM at most and every block has at least one unit;
// - forward: the block keeps the columns of U [H,G·H] of its units' G gates in shared memory
//   (units·G·(H+1) elements), so it computes all G pre-activations of its units and applies
//   the cell math of common/cell.hpp to them without talking to any other block; per step it
//   stages hd_{t-1} = h_{t-1}·dm (written by every block in the previous step, L2-resident)
//   in batch tiles, writes h_t for its units, then the grid meets at the barrier;
// - backward: the block keeps the ROWS of U of its units (units·(G·H+1) elements): phase A
//   turns the gradient reaching h_t (dhs[t] plus the carry) into the step's pre-activation
//   gradients for its units (elementwise, no barrier needed before it), barrier, phase B
//   reads the whole dz_t row of every batch entry and computes dh_{t-1}[b, j] = Σ_k dz_t[b,k]·U[j,k]
//   for its units into the carry. Phase A of step t-1 then only touches the block's own
//   units, so one barrier per step suffices;
// - gru with reset_after=False needs r of every unit before (r·hd)·U_h (forward) and dn of
//   every unit before dn·U_hᵀ (backward): one more barrier per step.
// Semantics are reference.py's loops exactly: masked steps carry the state (gates are still
// stored as computed), their pre-activation gradients are zero and the state gradients pass
// straight back; the dropout mask multiplies h_{t-1} only where it enters U (gru blends with
// the undropped h).
//
// Shapes (all C-contiguous, time-major): xw [T,B,G·H] input projection, U [H,G·H], h0/c0 [B,H],
// mask [T,B] bool or nullptr, dm [B,H] or nullptr, hs/cs [T,B,H], gates [T,B,G·H] activated.
// Grid: `units` per block as planned by engine/backends/_cuda_persistent.py, dynamic shared
// memory = weights + batch_tile·K elements (K = H forward, G·H backward).
#include "common/cell.hpp"
#include "cuda/persistent.cuh"

namespace sp = seqfuse::persistent;

// ---------------------------------------------------------------- forward

// LSTM. save != 0: cs [T,B,H] and gates [T,B,4H] are written. save == 0 (inference): cs is a
// [B,H] buffer holding c0 at the launch and updated in place (each (b,j) is read and written
// by one thread in one step), so it ends as c_T; gates is not touched (may be nullptr).
template <typename T>
__global__ void __launch_bounds__(sp::kThreads, 1)
lstm_persistent_forward(int steps, int B, int H, int units_per_block, int batch_tile,
                        const T* __restrict__ xw, const T* __restrict__ U, const T* __restrict__ h0,
                        const T* __restrict__ c0, const bool* __restrict__ mask,
                        const T* __restrict__ dm, T* hs, T* cs, T* gates, int save,
                        unsigned int* barrier) {
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  T* smem = reinterpret_cast<T*>(smem_bytes);
  const int G = 4 * H;
  const long long BH = (long long)B * H;
  const sp::Units units = sp::block_units(H, units_per_block);
  const auto w = sp::load_forward_weights(smem, U, H, 4, units);
  T* tile = smem + sp::forward_weight_elements(units_per_block, H, 4);
  for (int t = 0; t < steps; ++t) {
    const T* h_prev = t ? hs + (t - 1) * BH : h0;
    const T* c_prev = save ? (t ? cs + (t - 1) * BH : c0) : cs;
    T* c_new = save ? cs + t * BH : cs;
    sp::products<4>(tile, batch_tile, B, sp::Rows<T>{h_prev, H, 0, H, dm}, w, 0, 0, units,
                    [&](int b, int u, T(&acc)[4]) {
      const int j = units.j0 + u;
      const long long row = (long long)t * B + b;
      const T* x = xw + row * G;
      const T hp = __ldcg(h_prev + b * (long long)H + j), cp = __ldcg(c_prev + b * (long long)H + j);
      T i, f, g, o, c, h;
      seqfuse::lstm_cell_forward(x[j] + acc[0], x[H + j] + acc[1], x[2 * H + j] + acc[2],
                                 x[3 * H + j] + acc[3], cp, i, f, g, o, c, h);
      const bool keep = !mask || mask[row];
      if (save) {
        T* gt = gates + row * G;
        gt[j] = i;
        gt[H + j] = f;
        gt[2 * H + j] = g;
        gt[3 * H + j] = o;
      }
      c_new[b * (long long)H + j] = keep ? c : cp;
      hs[row * H + j] = keep ? h : hp;
    });
    sp::grid_barrier(barrier);
  }
}

// GRU. gates: [T,B,3H] when save, else a [B,3H] scratch (reset_after=False keeps z in it
// across the step's second barrier). uh: [T,B,H] when save and reset_after, else unused.
// rh: [B,H] scratch for r·hd (reset_after=False). rb: [3H] recurrent bias or nullptr.
template <typename T>
__global__ void __launch_bounds__(sp::kThreads, 1)
gru_persistent_forward(int steps, int B, int H, int units_per_block, int batch_tile,
                       const T* __restrict__ xw, const T* __restrict__ U, const T* __restrict__ rb,
                       const T* __restrict__ h0, const bool* __restrict__ mask,
                       const T* __restrict__ dm, T* hs, T* gates, T* uh, T* rh, int save,
                       int reset_after, unsigned int* barrier) {
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  T* smem = reinterpret_cast<T*>(smem_bytes);
  const int G = 3 * H;
  const long long BH = (long long)B * H;
  const sp::Units units = sp::block_units(H, units_per_block);
  const auto w = sp::load_forward_weights(smem, U, H, 3, units);
  T* tile = smem + sp::forward_weight_elements(units_per_block, H, 3);
  for (int t = 0; t < steps; ++t) {
    const T* h_prev = t ? hs + (t - 1) * BH : h0;
    T* g_t = gates + (save ? t * (long long)B * G : 0);
    const sp::Rows<T> hd{h_prev, H, 0, H, dm};
    if (reset_after) {
      sp::products<3>(tile, batch_tile, B, hd, w, 0, 0, units, [&](int b, int u, T(&acc)[3]) {
        const int j = units.j0 + u;
        const long long row = (long long)t * B + b;
        const T* x = xw + row * G;
        const T uz = acc[0] + (rb ? rb[j] : T(0)), ur = acc[1] + (rb ? rb[H + j] : T(0));
        const T un = acc[2] + (rb ? rb[2 * H + j] : T(0));
        const T hp = __ldcg(h_prev + b * (long long)H + j);
        T z, r, n, h;
        seqfuse::gru_gates_forward(x[j] + uz, x[H + j] + ur, z, r);
        seqfuse::gru_blend_forward(z, x[2 * H + j] + r * un, hp, n, h);
        if (save) {
          g_t[b * (long long)G + j] = z;
          g_t[b * (long long)G + H + j] = r;
          g_t[b * (long long)G + 2 * H + j] = n;
          uh[row * H + j] = un;
        }
        hs[row * H + j] = (!mask || mask[row]) ? h : hp;
      });
    } else {
      // z and r from hd·U_zr; r·hd is what the candidate's product needs from every unit.
      sp::products<2>(tile, batch_tile, B, hd, w, 0, 0, units, [&](int b, int u, T(&acc)[2]) {
        const int j = units.j0 + u;
        const T* x = xw + ((long long)t * B + b) * G;
        T z, r;
        seqfuse::gru_gates_forward(x[j] + acc[0], x[H + j] + acc[1], z, r);
        g_t[b * (long long)G + j] = z;
        g_t[b * (long long)G + H + j] = r;
        const long long at = b * (long long)H + j;
        rh[at] = r * (__ldcg(h_prev + at) * (dm ? dm[at] : T(1)));
      });
      sp::grid_barrier(barrier);
      sp::products<1>(tile, batch_tile, B, sp::Rows<T>{rh, H, 0, H, nullptr}, w, 2, 0, units,
                      [&](int b, int u, T(&acc)[1]) {
        const int j = units.j0 + u;
        const long long row = (long long)t * B + b;
        const T hp = __ldcg(h_prev + b * (long long)H + j);
        const T z = __ldcg(g_t + b * (long long)G + j);
        T n, h;
        seqfuse::gru_blend_forward(z, xw[row * G + 2 * H + j] + acc[0], hp, n, h);
        g_t[b * (long long)G + 2 * H + j] = n;
        hs[row * H + j] = (!mask || mask[row]) ? h : hp;
      });
    }
    sp::grid_barrier(barrier);
  }
}

// SimpleRNN: h_t = tanh(xw[t] + hd_{t-1}·U).
template <typename T>
__global__ void __launch_bounds__(sp::kThreads, 1)
simple_rnn_persistent_forward(int steps, int B, int H, int units_per_block, int batch_tile,
                              const T* __restrict__ xw, const T* __restrict__ U,
                              const T* __restrict__ h0, const bool* __restrict__ mask,
                              const T* __restrict__ dm, T* hs, unsigned int* barrier) {
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  T* smem = reinterpret_cast<T*>(smem_bytes);
  const long long BH = (long long)B * H;
  const sp::Units units = sp::block_units(H, units_per_block);
  const auto w = sp::load_forward_weights(smem, U, H, 1, units);
  T* tile = smem + sp::forward_weight_elements(units_per_block, H, 1);
  for (int t = 0; t < steps; ++t) {
    const T* h_prev = t ? hs + (t - 1) * BH : h0;
    sp::products<1>(tile, batch_tile, B, sp::Rows<T>{h_prev, H, 0, H, dm}, w, 0, 0, units,
                    [&](int b, int u, T(&acc)[1]) {
      const int j = units.j0 + u;
      const long long row = (long long)t * B + b;
      const T h = seqfuse::tanh_act(xw[row * H + j] + acc[0]);
      hs[row * H + j] = (!mask || mask[row]) ? h : __ldcg(h_prev + b * (long long)H + j);
    });
    sp::grid_barrier(barrier);
  }
}

// ---------------------------------------------------------------- backward
// dhs [T,B,H]: total gradient reaching each hs[t]. dh: [B,H] zeroed by the host; it carries
// the gradient reaching h_{t-1} from step t (what does not come from dhs) and ends as dh0.
// Phase A leaves in dh the part that bypasses U (a masked row's whole dh; gru's dh·z), phase
// B adds dm·(dz_t·Uᵀ). A masked row's dz_t is zero, so its phase B adds exactly zero.

// Phase B: dh[b, j] += dm[b, j] · Σ_k grads[t, b, offset + k] · U[j, offset + k], k < K;
// grads: [T,B,GH] (GH = G·H columns).
template <typename T>
__device__ inline void add_recurrent_gradient(T* tile, int batch_tile, int B, int H, int GH, int t,
                                              const T* grads, int offset, int K,
                                              const sp::SharedWeights<T>& w, sp::Units units,
                                              const T* dm, T* dh) {
  const sp::Rows<T> in{grads + (long long)t * B * GH, GH, offset, K, nullptr};
  sp::products<1>(tile, batch_tile, B, in, w, 0, offset, units, [&](int b, int u, T(&acc)[1]) {
    const long long at = b * (long long)H + units.j0 + u;
    dh[at] = __ldcg(dh + at) + (dm ? dm[at] * acc[0] : acc[0]);
  });
}

// LSTM. dc: [B,H] holding dc_T at the launch, the carried c gradient, ends as dc0.
// dz: [T,B,4H] out.
template <typename T>
__global__ void __launch_bounds__(sp::kThreads, 1)
lstm_persistent_backward(int steps, int B, int H, int units_per_block, int batch_tile,
                         const T* __restrict__ dhs, const T* __restrict__ U,
                         const T* __restrict__ c0, const T* __restrict__ cs,
                         const T* __restrict__ gates, const bool* __restrict__ mask,
                         const T* __restrict__ dm, T* dz, T* dh, T* dc, unsigned int* barrier) {
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  T* smem = reinterpret_cast<T*>(smem_bytes);
  const int G = 4 * H;
  const long long BH = (long long)B * H;
  const sp::Units units = sp::block_units(H, units_per_block);
  const auto w = sp::load_backward_weights(smem, U, H, 4, units);
  T* tile = smem + sp::backward_weight_elements(units_per_block, H, 4);
  for (int t = steps - 1; t >= 0; --t) {
    __syncthreads();  // phase B's carries, written by other threads of this block
    for (int idx = threadIdx.x; idx < B * units.count; idx += sp::kThreads) {
      const int b = idx / units.count, j = units.j0 + idx % units.count;
      const long long row = (long long)t * B + b, at = b * (long long)H + j;
      const T dh_t = dhs[row * H + j] + __ldcg(dh + at);
      T* dzr = dz + row * G;
      if (!mask || mask[row]) {
        const T* g = gates + row * G;
        const T c_prev = t ? cs[(t - 1) * BH + at] : c0[at];
        T dzi, dzf, dzg, dzo, dc_prev;
        seqfuse::lstm_cell_backward(g[j], g[H + j], g[2 * H + j], g[3 * H + j], cs[t * BH + at],
                                    c_prev, dh_t, __ldcg(dc + at), dzi, dzf, dzg, dzo, dc_prev);
        dzr[j] = dzi;
        dzr[H + j] = dzf;
        dzr[2 * H + j] = dzg;
        dzr[3 * H + j] = dzo;
        dc[at] = dc_prev;
        dh[at] = T(0);
      } else {  // the step copied h and c forward: their gradients pass straight back
        dzr[j] = dzr[H + j] = dzr[2 * H + j] = dzr[3 * H + j] = T(0);
        dh[at] = dh_t;
      }
    }
    sp::grid_barrier(barrier);
    add_recurrent_gradient(tile, batch_tile, B, H, G, t, dz, 0, G, w, units, dm, dh);
  }
}

// GRU. dxw, du: [T,B,3H] out (docs/kernels.md "gru"). uh: [T,B,H] (reset_after) or unused.
template <typename T>
__global__ void __launch_bounds__(sp::kThreads, 1)
gru_persistent_backward(int steps, int B, int H, int units_per_block, int batch_tile,
                        const T* __restrict__ dhs, const T* __restrict__ U,
                        const T* __restrict__ h0, const T* __restrict__ hs,
                        const T* __restrict__ gates, const T* __restrict__ uh,
                        const bool* __restrict__ mask, const T* __restrict__ dm, T* dxw, T* du,
                        T* dh, int reset_after, unsigned int* barrier) {
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  T* smem = reinterpret_cast<T*>(smem_bytes);
  const int G = 3 * H;
  const long long BH = (long long)B * H;
  const sp::Units units = sp::block_units(H, units_per_block);
  const auto w = sp::load_backward_weights(smem, U, H, 3, units);
  T* tile = smem + sp::backward_weight_elements(units_per_block, H, 3);
  for (int t = steps - 1; t >= 0; --t) {
    __syncthreads();
    for (int idx = threadIdx.x; idx < B * units.count; idx += sp::kThreads) {
      const int b = idx / units.count, j = units.j0 + idx % units.count;
      const long long row = (long long)t * B + b, at = b * (long long)H + j;
      const T dh_t = dhs[row * H + j] + __ldcg(dh + at);
      T* dx = dxw + row * G;
      T* dr = du + row * G;
      if (!mask || mask[row]) {
        const T* g = gates + row * G;
        const T hp = t ? hs[(t - 1) * BH + at] : h0[at];
        T dzg, dn, direct;
        seqfuse::gru_blend_backward(g[j], g[2 * H + j], hp, dh_t, dzg, dn, direct);
        dx[j] = dr[j] = dzg;
        dx[2 * H + j] = dn;
        if (reset_after) {
          const T r = g[H + j];
          dx[H + j] = dr[H + j] = seqfuse::gru_reset_backward(r, dn * uh[row * H + j]);
          dr[2 * H + j] = dn * r;
        } else {
          dr[2 * H + j] = dn;  // the r columns need dn of every unit: after the barrier
        }
        dh[at] = direct;
      } else {
        dx[j] = dx[H + j] = dx[2 * H + j] = dr[j] = dr[H + j] = dr[2 * H + j] = T(0);
        dh[at] = dh_t;
      }
    }
    sp::grid_barrier(barrier);
    if (!reset_after) {
      // drh = dn·U_hᵀ reaches r·hd: dr = drh·hd·r(1-r), and drh·r goes (dropped) to h_{t-1}.
      const sp::Rows<T> dn_rows{du + (long long)t * B * G, G, 2 * H, H, nullptr};
      sp::products<1>(tile, batch_tile, B, dn_rows, w, 0, 2 * H, units,
                      [&](int b, int u, T(&acc)[1]) {
        const int j = units.j0 + u;
        const long long row = (long long)t * B + b, at = b * (long long)H + j;
        if (mask && !mask[row]) return;  // its r columns are already zero
        const T r = gates[row * G + H + j];
        const T dmv = dm ? dm[at] : T(1);
        const T hd = (t ? hs[(t - 1) * BH + at] : h0[at]) * dmv;
        dxw[row * G + H + j] = du[row * G + H + j] = seqfuse::gru_reset_backward(r, acc[0] * hd);
        dh[at] = __ldcg(dh + at) + dmv * (acc[0] * r);
      });
      sp::grid_barrier(barrier);
    }
    add_recurrent_gradient(tile, batch_tile, B, H, G, t, du, 0, reset_after ? G : 2 * H, w,
                              units, dm, dh);
  }
}

// SimpleRNN. dz: [T,B,H] out.
template <typename T>
__global__ void __launch_bounds__(sp::kThreads, 1)
simple_rnn_persistent_backward(int steps, int B, int H, int units_per_block, int batch_tile,
                               const T* __restrict__ dhs, const T* __restrict__ U,
                               const T* __restrict__ hs, const bool* __restrict__ mask,
                               const T* __restrict__ dm, T* dz, T* dh, unsigned int* barrier) {
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  T* smem = reinterpret_cast<T*>(smem_bytes);
  const sp::Units units = sp::block_units(H, units_per_block);
  const auto w = sp::load_backward_weights(smem, U, H, 1, units);
  T* tile = smem + sp::backward_weight_elements(units_per_block, H, 1);
  for (int t = steps - 1; t >= 0; --t) {
    __syncthreads();
    for (int idx = threadIdx.x; idx < B * units.count; idx += sp::kThreads) {
      const int b = idx / units.count, j = units.j0 + idx % units.count;
      const long long row = (long long)t * B + b, at = b * (long long)H + j;
      const T dh_t = dhs[row * H + j] + __ldcg(dh + at);
      const bool keep = !mask || mask[row];
      dz[row * H + j] = keep ? seqfuse::simple_rnn_cell_backward(hs[row * H + j], dh_t) : T(0);
      dh[at] = keep ? T(0) : dh_t;
    }
    sp::grid_barrier(barrier);
    add_recurrent_gradient(tile, batch_tile, B, H, H, t, dz, 0, H, w, units, dm, dh);
  }
}
