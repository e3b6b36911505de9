// Max pooling over L on the GPU, channels-last, on an already padded x (-inf for "same");
// the same loops as kernels/cpu/max_pool1d.hpp (docs/kernels.md).
//   x: [B,L,C], out/argmax/grad: [B,Lo,C], Lo = (L - P)/s + 1; argmax = position along L.
// Ties keep the first position and NaN wins, as np.argmax in the reference backend.

// One block per output row (b, t), threads over the channels; grid (B·Lo,).
template <typename T>
__global__ void max_pool1d_forward(const T* __restrict__ x, long long L, int C, long long pool,
                                   long long s, long long Lo, T* __restrict__ out,
                                   long long* __restrict__ argmax) {
  const long long b = blockIdx.x / Lo, t = blockIdx.x % Lo;
  const T* row = x + (b * L + t * s) * C;
  const long long o = static_cast<long long>(blockIdx.x) * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    T best = row[c];
    long long where = t * s;
    for (long long p = 1; p < pool; ++p) {
      const T v = row[p * C + c];
      const bool wins = v > best || (v != v && best == best);
      best = wins ? v : best;
      where = wins ? t * s + p : where;
    }
    out[o + c] = best;
    argmax[o + c] = where;
  }
}

// dx[b, argmax[b,t,c], c] += grad[b,t,c] for t = 0..Lo-1 in order: one thread per (b, c)
// owns that column of dx, so overlapping windows accumulate without atomics and in the
// reference's order (np.add.at). dx arrives zeroed. A run of windows that share a maximum
// is summed in a register and written once; the forward's argmax never decreases along t
// (a later window that picked an earlier row would have to tie-break against the earlier
// window's choice), so a run's row is fresh unless it is at or below the highest row
// written, where it is added instead. Grid (B,), threads over the channels; argmax is
// checked on the host to lie in [0, L).
template <typename T>
__global__ void max_pool1d_backward(const T* __restrict__ grad,
                                    const long long* __restrict__ argmax, long long Lo, int C,
                                    long long L, T* __restrict__ dx) {
  const long long b = blockIdx.x;
  T* column = dx + b * L * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    long long run = -1, written = -1;
    T sum = T(0);
    for (long long t = 0; t < Lo; ++t) {
      const long long e = (b * Lo + t) * C + c;
      const long long where = argmax[e];
      if (where != run) {
        if (run >= 0) column[run * C + c] = run > written ? sum : column[run * C + c] + sum;
        written = run > written ? run : written;
        run = where;
        sum = grad[e];
      } else {
        sum += grad[e];
      }
    }
    column[run * C + c] = run > written ? sum : column[run * C + c] + sum;
  }
}
