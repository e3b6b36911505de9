// Conv1D (cross-correlation) on the GPU, channels-last, on an already padded x
// (docs/kernels.md). The arithmetic is cuBLAS GEMMs in engine/backends/_cuda_conv.py; these
// kernels only move data between x's layout and the im2col layout
//   cols[r, k·C + c] = x[b, t·s + k·d, c],   r = b·Lo + t (a flat output row),
// in which out = cols · kernel.reshape(K·C, O) is one GEMM and dcols = grad · kernelᵀ.
//   x, dx: [B,L,C], cols, dcols: [rows, K·C] (one chunk of `rows` output rows from row0)
// Each block handles one row and its threads walk the channels, so the only 64-bit
// divisions are one per block (a per-element index split costs more than the copy).
// Ranges are checked on the host (_cuda_conv.py); indices are long long: B·L·C and
// rows·K·C can pass 2^31.

// cols[r - row0, :] = the K taps of output row r, for r in [row0, row0 + rows); grid (rows,).
template <typename T>
__global__ void conv1d_im2col(const T* __restrict__ x, long long L, int C, int K,
                              long long Lo, long long s, long long d, long long row0,
                              T* __restrict__ cols) {
  const long long r = row0 + blockIdx.x;
  const long long b = r / Lo, t = r % Lo;
  T* dst = cols + static_cast<long long>(blockIdx.x) * K * C;
  for (int k = 0; k < K; ++k) {
    const T* src = x + (b * L + t * s + k * d) * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) dst[static_cast<long long>(k) * C + c] = src[c];
  }
}

// The transpose of im2col, as a gather: dx[b, l, c] (+)= Σ_k dcols[r - row0, k·C + c] over
// the taps with l = t·s + k·d, 0 <= t < Lo, whose row r = b·Lo + t lies in this chunk.
// Each dx element has one writer that adds its taps in order k = 0..K-1 (the reference's
// order), so the result is deterministic and needs no atomics. Grid (nb·L,): the dx rows of
// batches b0 .. b0+nb-1, the ones the chunk touches. accumulate = 0 writes the rows (every
// element, taps or none), 1 adds to them (later chunks).
template <typename T>
__global__ void conv1d_col2im(const T* __restrict__ dcols, long long L, int C, int K,
                              long long Lo, long long s, long long d, long long row0,
                              long long rows, long long b0, int accumulate, T* __restrict__ dx) {
  const long long b = b0 + blockIdx.x / L, l = blockIdx.x % L;
  T* dst = dx + (b * L + l) * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    T sum = accumulate ? dst[c] : T(0);
    // The tap conditions depend on (b, l, k) only: the same branch for the whole block.
    for (int k = 0; k < K && k * d <= l; ++k) {
      const long long p = l - k * d;
      if (p % s) continue;
      const long long r = b * Lo + p / s - row0;
      if (p / s < Lo && r >= 0 && r < rows) sum += dcols[r * K * C + static_cast<long long>(k) * C + c];
    }
    dst[c] = sum;
  }
}
