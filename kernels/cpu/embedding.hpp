// Embedding lookup and its gradient on raw pointers.
//   ids:   [N] int64, already checked to lie in [0, V)
//   table: [V,D], out: [N,D], grad: [N,D]
// The gradient is a counting sort of ids (stable, O(N+V)) followed by one pass per distinct
// id that sums its rows; distinct ids own disjoint output rows, so threads never race.
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

namespace seqfuse {

template <typename T>
void embedding_forward(const int64_t* ids, int64_t n, const T* table, int64_t d, T* out) {
#pragma omp parallel for schedule(static) if (n * d > 32768)
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(out + i * d, table + ids[i] * d, sizeof(T) * d);
}

// Distinct ids in ascending order; fills `rows` ([U]) and returns the permutation and
// segment starts so that ids[perm[starts[u] .. starts[u+1])] == rows[u].
inline void embedding_segments(const int64_t* ids, int64_t n, int64_t v, std::vector<int64_t>& rows,
                               std::vector<int64_t>& perm, std::vector<int64_t>& starts) {
  std::vector<int64_t> offset(v + 1, 0);
  for (int64_t i = 0; i < n; ++i) ++offset[ids[i] + 1];
  rows.clear();
  starts.assign(1, 0);
  for (int64_t r = 0; r < v; ++r) {
    if (offset[r + 1]) {
      rows.push_back(r);
      starts.push_back(starts.back() + offset[r + 1]);
    }
    offset[r + 1] += offset[r];
  }
  perm.resize(n);
  for (int64_t i = 0; i < n; ++i) perm[offset[ids[i]]++] = i;
}

// values: [U,D] zero-initialised; values[u] = sum of grad rows in segment u.
template <typename T>
void embedding_backward(const T* grad, int64_t d, const std::vector<int64_t>& perm,
                        const std::vector<int64_t>& starts, T* values) {
  const int64_t segments = static_cast<int64_t>(starts.size()) - 1;
#pragma omp parallel for schedule(dynamic, 64) if (segments > 64)
  for (int64_t u = 0; u < segments; ++u) {
    T* dst = values + u * d;
    for (int64_t k = starts[u]; k < starts[u + 1]; ++k) {
      const T* src = grad + perm[k] * d;
      for (int64_t j = 0; j < d; ++j) dst[j] += src[j];
    }
  }
}

}  // namespace seqfuse
