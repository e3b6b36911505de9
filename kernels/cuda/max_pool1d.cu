// Max pooling over L on the GPU, channels-last, on an already padded x (-inf for "same")
// (docs/kernels.md); the forward is the loop of kernels/cpu/max_pool1d.hpp.
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

// Backward, dx arriving zeroed (rows no window picked keep 0); argmax lies in [0, L): the
// forward's own by construction, any other checked on the host (engine/backends/_cuda_conv.py).
// A forward's argmax never decreases along t: if window t picked row a and a later window t'
// picked a' < a, both rows lie in both windows; window t passing over the earlier a' means
// x[a] > x[a'] or x[a] is the window's first NaN, and either way window t' could not have
// picked a'. So the windows that picked one row form one run of consecutive t, and the first
// window of each run sums the run in order (the reference's np.add.at order) and writes dx
// once: every window in parallel, no atomics, deterministic. An argmax that is not the
// forward's and decreases somewhere goes to max_pool1d_backward_columns.
// Grid (B·Lo,), threads over the channels; a run is at most ceil(P/s) windows long.
template <typename T>
__global__ void max_pool1d_backward_runs(const T* __restrict__ grad,
                                         const long long* __restrict__ argmax, long long Lo,
                                         int C, long long L, T* __restrict__ dx) {
  const long long b = blockIdx.x / Lo, t = blockIdx.x % Lo;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const long long e = (b * Lo + t) * C + c;
    const long long where = argmax[e];
    if (t > 0 && argmax[e - C] == where) continue;  // inside a run another thread sums
    T sum = grad[e];
    for (long long u = e + C; u < (b + 1) * Lo * C && argmax[u] == where; u += C) sum += grad[u];
    dx[(b * L + where) * C + c] = sum;
  }
}

// Any argmax (not a forward's: rows may be revisited after others): one thread per (b, c)
// adds its column's windows in order t = 0..Lo-1, as np.add.at. Grid (B,).
template <typename T>
__global__ void max_pool1d_backward_columns(const T* __restrict__ grad,
                                            const long long* __restrict__ argmax, long long Lo,
                                            int C, long long L, T* __restrict__ dx) {
  const long long b = blockIdx.x;
  for (int c = threadIdx.x; c < C; c += blockDim.x)
    for (long long t = 0; t < Lo; ++t) {
      const long long e = (b * Lo + t) * C + c;
      dx[(b * L + argmax[e]) * C + c] += grad[e];
    }
}
