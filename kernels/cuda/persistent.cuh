// Building blocks of the persistent recurrent kernels (cuda/rnn_persistent.cu, "v2"): the
// whole time loop runs in one launch, every block owns a contiguous range of hidden units for
// the whole loop and keeps its slice of the recurrent kernel U in shared memory; the blocks
// meet at a grid-wide barrier once per step (twice for the steps whose second product needs
// the first one's result from every unit).
//
// Memory rules that make the barrier correct:
// - Every load of an array the kernel itself writes (states, carries, gate scratch, step
//   gradients) is `__ldcg`: cached in L2 only. L1 is per SM and not coherent between SMs, and
//   the read-only path (`ld.global.nc`, which `const __restrict__` invites) must never see
//   data written during the launch. Such arrays are plain `T*` parameters, never restrict.
// - grid_barrier orders everything a block wrote before it against everything any block
//   reads after it (__syncthreads, then one thread's __threadfence and atomic, the scheme of
//   cooperative_groups::grid_group::sync). NVRTC ships no <cooperative_groups.h> (checked
//   with CuPy 14.2's NVRTC), so it is written here; the launch is still cooperative
//   (`_cuda.declare(..., cooperative=True)`), which guarantees that every block is resident.
#pragma once

namespace seqfuse {
namespace persistent {

// Threads per block. Host side: engine/backends/_cuda_persistent.py THREADS (keep equal).
constexpr int kThreads = 256;
constexpr unsigned kFullWarp = 0xffffffffu;

// Grid-wide barrier on one counter word, zeroed by the host before the launch. Block 0 adds
// 2^31 - (blocks - 1), every other block 1: once all have arrived the top bit has flipped and
// the low bits are back where they were, so the next barrier needs no reset (sense reversal
// in one word).
__device__ inline void grid_barrier(unsigned int* counter) {
  __syncthreads();
  if (threadIdx.x == 0) {
    const unsigned int add = blockIdx.x == 0 ? 0x80000000u - (gridDim.x - 1) : 1u;
    __threadfence();  // release: this block's writes before the arrival
    const unsigned int old = atomicAdd(counter, add);
    volatile unsigned int* seen = counter;
    while (((old ^ *seen) & 0x80000000u) == 0) {
    }
    __threadfence();  // acquire: the other blocks' writes before what this block reads next
  }
  __syncthreads();
}

// The block's slice of hidden units: [j0, j0 + count), count >= 1 (the host sizes the grid so
// that no block is empty).
struct Units {
  int j0, count;
};

__device__ inline Units block_units(int H, int units_per_block) {
  const int j0 = blockIdx.x * units_per_block;
  const int rest = H - j0;
  return {j0, rest < units_per_block ? rest : units_per_block};
}

// A slice of U in shared memory: `rows` rows per unit, each `stride` elements (padded by one
// so that the groups of a warp, which read rows of neighbouring units, hit different banks).
template <typename T>
struct SharedWeights {
  const T* w;
  int rows, stride;
  __device__ const T* row(int u, int r) const { return w + (u * rows + r) * stride; }
};

// Rows of a [B, ...] array to multiply: element k of row b is src[b * stride + offset + k].
template <typename T>
struct Rows {
  const T* src;  // written by the kernel: read through __ldcg
  long long stride;
  int offset, K;
  const T* dm;   // [B,K] recurrent dropout mask applied while staging, or nullptr
};

// Stages rows b0..b0+bt of `in` into tile [bt, K], multiplied by the dropout mask if any.
// The source is L2-resident data of the previous phase, so the copy is latency-bound: each
// thread issues kStageLoads independent loads before it stores any, 16 bytes each where the
// rows allow it (the backward stages B·G·H elements per step in every block).
constexpr int kStageLoads = 8;

template <typename T>
struct Chunk16;
template <>
struct Chunk16<float> {
  using type = float4;
};
template <>
struct Chunk16<double> {
  using type = double2;
};

// The copy in loads of V (T itself, or a 16-byte vector of C elements of T).
template <typename V, typename T>
__device__ inline void stage_rows_as(T* tile, const Rows<T>& in, int b0, int bt) {
  constexpr int C = sizeof(V) / sizeof(T);
  const int KC = in.K / C, n = bt * KC;
  for (int base = threadIdx.x; base < n; base += kThreads * kStageLoads) {
    V v[kStageLoads];
#pragma unroll
    for (int r = 0; r < kStageLoads; ++r) {
      const int idx = base + r * kThreads, b = idx / KC, k = idx % KC * C;
      if (idx < n)
        v[r] = __ldcg(reinterpret_cast<const V*>(in.src + (long long)(b0 + b) * in.stride + in.offset + k));
    }
#pragma unroll
    for (int r = 0; r < kStageLoads; ++r) {
      const int idx = base + r * kThreads, b = idx / KC, k = idx % KC * C;
      if (idx >= n) continue;
      const T* e = reinterpret_cast<const T*>(&v[r]);
#pragma unroll
      for (int i = 0; i < C; ++i)
        tile[b * in.K + k + i] = in.dm ? e[i] * in.dm[(long long)(b0 + b) * in.K + k + i] : e[i];
    }
  }
}

template <typename T>
__device__ inline void stage_rows(T* tile, const Rows<T>& in, int b0, int bt) {
  using V = typename Chunk16<T>::type;
  constexpr int C = sizeof(V) / sizeof(T);
  const bool vectors = in.K % C == 0 && in.stride % C == 0 && in.offset % C == 0 &&
                       reinterpret_cast<unsigned long long>(in.src) % sizeof(V) == 0;
  if (vectors)
    stage_rows_as<V>(tile, in, b0, bt);
  else
    stage_rows_as<T>(tile, in, b0, bt);
}

// A work item of products() is kRowsPerItem batch rows × units_per_item<NG> units: each
// weight read from shared memory serves the rows, each staged input the units. With one
// product per unit (simple_rnn, gru's candidate, every backward product: G·H inputs each)
// the reads of the staged inputs bound the loop, so an item takes 4 units; with G products
// per unit the G weights already reuse each input read.
constexpr int kRowsPerItem = 4;
template <int NG>
constexpr int units_per_item = NG == 1 ? 4 : 1;

// For every row b of the batch and unit u of the block, the NG dot products
//   acc[g] = Σ_k in[b, k] · w.row(u, g0 + g)[w_offset + k],   g < NG, k < in.K,
// then epilogue(b, u, acc) on one thread. The batch goes through shared memory in tiles of
// `batch_tile` rows. A work item (see units_per_item) is summed by a group of S lanes of one
// warp (S a power of two, as large as fits the block, so small batches still use every
// thread) and reduced with shuffles; every thread runs the same number of rounds, so the
// shuffles always see the full warp. Neighbouring groups take neighbouring units of the same
// rows: their tile reads are broadcasts.
template <int NG, typename T, typename Epilogue>
__device__ inline void products(T* tile, int batch_tile, int B, const Rows<T>& in,
                                const SharedWeights<T>& w, int g0, int w_offset,
                                Units units, Epilogue epilogue) {
  constexpr int R = kRowsPerItem, V = units_per_item<NG>;
  const int unit_groups = (units.count + V - 1) / V;
  for (int b0 = 0; b0 < B; b0 += batch_tile) {
    const int bt = B - b0 < batch_tile ? B - b0 : batch_tile;
    __syncthreads();  // nobody still reads the previous tile
    stage_rows(tile, in, b0, bt);
    __syncthreads();
    const int items = (bt + R - 1) / R * unit_groups;
    int S = 32;
    while (S > 1 && items * S > kThreads) S >>= 1;
    const int groups = kThreads / S, lane = threadIdx.x % S;
    for (int base = 0; base < items; base += groups) {
      const int item = base + threadIdx.x / S;
      const bool active = item < items;
      const int u0 = active ? item % unit_groups * V : 0;     // first unit
      const int first = active ? item / unit_groups * R : 0;  // first row in the tile
      const int rows = active ? (bt - first < R ? bt - first : R) : 0;
      const int nu = active ? (units.count - u0 < V ? units.count - u0 : V) : 0;
      T acc[R][V][NG];
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int v = 0; v < V; ++v)
#pragma unroll
          for (int g = 0; g < NG; ++g) acc[r][v][g] = T(0);
      for (int k = lane; k < in.K && rows > 0; k += S) {
        T wk[V][NG];
#pragma unroll
        for (int v = 0; v < V; ++v)
#pragma unroll
          for (int g = 0; g < NG; ++g)
            wk[v][g] = v < nu ? w.row(u0 + v, g0 + g)[w_offset + k] : T(0);
#pragma unroll
        for (int r = 0; r < R; ++r) {
          const T xk = r < rows ? tile[(first + r) * in.K + k] : T(0);
#pragma unroll
          for (int v = 0; v < V; ++v)
#pragma unroll
            for (int g = 0; g < NG; ++g) acc[r][v][g] += xk * wk[v][g];
        }
      }
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int v = 0; v < V; ++v)
#pragma unroll
          for (int g = 0; g < NG; ++g)
            for (int off = S / 2; off > 0; off >>= 1)
              acc[r][v][g] += __shfl_xor_sync(kFullWarp, acc[r][v][g], off);
      if (lane == 0)
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
          for (int v = 0; v < V; ++v)
            if (r < rows && v < nu) epilogue(b0 + first + r, u0 + v, acc[r][v]);
    }
  }
}

// Forward weights: for unit u and gate g the column g·H + j0 + u of U [H, G·H], as a row
// over k < H. Backward weights: the row j0 + u of U, all G·H columns (dh_prev = dz·Uᵀ).
template <typename T>
__device__ inline SharedWeights<T> load_forward_weights(T* smem, const T* U, int H, int G, Units units) {
  const SharedWeights<T> w{smem, G, H + 1};
  const long long GH = (long long)G * H;
  for (int idx = threadIdx.x; idx < units.count * G * H; idx += kThreads) {
    // consecutive threads read consecutive columns of one row of U
    const int u = idx % units.count, g = (idx / units.count) % G, k = idx / (units.count * G);
    smem[(u * G + g) * w.stride + k] = U[k * GH + (long long)g * H + units.j0 + u];
  }
  return w;
}

template <typename T>
__device__ inline SharedWeights<T> load_backward_weights(T* smem, const T* U, int H, int G, Units units) {
  const SharedWeights<T> w{smem, 1, G * H + 1};
  const int GH = G * H;
  for (int idx = threadIdx.x; idx < units.count * GH; idx += kThreads) {
    const int u = idx / GH, k = idx % GH;
    smem[u * w.stride + k] = U[(long long)(units.j0 + u) * GH + k];
  }
  return w;
}

// Shared memory layout: weights first, then the batch tile. Sizes in elements; the host
// computes the same numbers (engine/backends/_cuda_persistent.py plan()).
__host__ __device__ inline int forward_weight_elements(int units_per_block, int H, int G) {
  return units_per_block * G * (H + 1);
}
__host__ __device__ inline int backward_weight_elements(int units_per_block, int H, int G) {
  return units_per_block * (G * H + 1);
}

}  // namespace persistent
}  // namespace seqfuse
