// Embedding lookup, its dense gradient and row coalescing on the GPU (docs/kernels.md).
//   ids: [N] int64, checked on the host to lie in [0, V) before any of these runs
//   table, dense: [V,D] C-contiguous; out: [N,D]; summed: [U,D]
//   grad, values: [N,D] with element strides (row_stride, col_stride), any sign, 0 for a
//   broadcast view: Sum's backward hands over a read-only broadcast view, which is read in
//   place instead of being copied to C order first.
// One block per id row, threads over D: the only 64-bit products are per row.

// out[n, :] = table[ids[n], :]; grid (N,).
template <typename T>
__global__ void embedding_gather(const long long* __restrict__ ids, const T* __restrict__ table,
                                 int D, T* __restrict__ out) {
  const T* src = table + ids[blockIdx.x] * D;
  T* dst = out + static_cast<long long>(blockIdx.x) * D;
  for (int j = threadIdx.x; j < D; j += blockDim.x) dst[j] = src[j];
}

// dense[ids[n], :] += grad[n, :] for every n; dense arrives zeroed. Repeated ids meet in
// atomicAdd, so no update is lost (the summation order of a repeated row is not fixed:
// float32 rounding differs from run to run). Grid (N,).
template <typename T>
__global__ void embedding_scatter_add(const long long* __restrict__ ids, const T* __restrict__ grad,
                                      long long row_stride, long long col_stride, int D,
                                      T* __restrict__ dense) {
  const T* src = grad + static_cast<long long>(blockIdx.x) * row_stride;
  T* dst = dense + ids[blockIdx.x] * D;
  for (int j = threadIdx.x; j < D; j += blockDim.x) atomicAdd(dst + j, src[j * col_stride]);
}

// summed[u, :] = Σ values[order[k], :] for k in [starts[u], starts[u+1]): `order` is the
// stable sort of the ids, so each segment holds one id's positions in ascending order and
// its rows are added in the order they occur, as the reference's np.add.at and the C++
// counting sort. One block per segment: deterministic, no atomics. Grid (U,).
template <typename T>
__global__ void embedding_sum_segments(const T* __restrict__ values, long long row_stride,
                                       long long col_stride, int D,
                                       const long long* __restrict__ order,
                                       const long long* __restrict__ starts,
                                       T* __restrict__ summed) {
  const long long first = starts[blockIdx.x], last = starts[blockIdx.x + 1];
  T* dst = summed + static_cast<long long>(blockIdx.x) * D;
  for (int j = threadIdx.x; j < D; j += blockDim.x) {
    T sum = values[order[first] * row_stride + j * col_stride];
    for (long long k = first + 1; k < last; ++k) sum += values[order[k] * row_stride + j * col_stride];
    dst[j] = sum;
  }
}
