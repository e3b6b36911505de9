// Σ of n contiguous values on the OpenMP threads (engine._C.total, behind Tensor.sum() of a
// large array: engine/_blas.py total). Each thread sums one contiguous share, in double, in
// the order parallel_rows hands out batch rows (share p to thread p), so an array the
// recurrent loops just wrote, batch-major, is read mostly where it was written.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "cpu/threads.hpp"

namespace seqfuse {

// x[0] + ... + x[n-1] in double, in W interleaved partial sums (vector registers).
template <typename T>
double sum_range(const T* x, int64_t n) {
  constexpr int W = 16;
  double acc[W] = {};
  int64_t i = 0;
  for (; i + W <= n; i += W)
    for (int c = 0; c < W; ++c) acc[c] += x[i + c];
  double s = 0;
  for (; i < n; ++i) s += x[i];
  for (int c = 0; c < W; ++c) s += acc[c];
  return s;
}

// Shares of at least 64K values, at most one per pool thread.
template <typename T>
double total(const T* x, int64_t n) {
  const int parts = static_cast<int>(std::clamp<int64_t>(n >> 16, 1, pool_threads()));
  std::vector<double> share(static_cast<size_t>(parts));
#if defined(SEQFUSE_OPENMP)
#pragma omp parallel for num_threads(parts) schedule(static, 1)
#endif
  for (int p = 0; p < parts; ++p) share[p] = sum_range(x + n * p / parts, n * (p + 1) / parts - n * p / parts);
  double s = 0;
  for (double v : share) s += v;
  return s;
}

}  // namespace seqfuse
