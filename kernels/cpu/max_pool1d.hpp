// Max pooling over L on raw pointers, channels-last; x is already padded (-inf for "same").
//   x: [B,L,C], out/argmax: [B,Lo,C], Lo = (L - P) / s + 1; argmax = position along L.
// Ties keep the first position and NaN wins, as np.argmax in the reference backend.
#pragma once
#include <cstdint>

namespace seqfuse {

template <typename T>
void max_pool1d_forward(const T* x, int64_t B, int64_t L, int64_t C, int64_t pool, int64_t s,
                        T* out, int64_t* argmax) {
  const int64_t Lo = (L - pool) / s + 1;
#pragma omp parallel for collapse(2) schedule(static) if (B * Lo * C > 32768)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < Lo; ++t) {
      T* best = out + (b * Lo + t) * C;
      int64_t* where = argmax + (b * Lo + t) * C;
      const T* row = x + (b * L + t * s) * C;
      for (int64_t c = 0; c < C; ++c) {
        best[c] = row[c];
        where[c] = t * s;
      }
      for (int64_t p = 1; p < pool; ++p) {
        row += C;
        for (int64_t c = 0; c < C; ++c) {
          const T v = row[c];
          const bool wins = v > best[c] || (v != v && best[c] == best[c]);
          best[c] = wins ? v : best[c];
          where[c] = wins ? t * s + p : where[c];
        }
      }
    }
}

// grad, argmax: [B,Lo,C] (argmax checked to lie in [0, L)) -> dx: [B,L,C] (fully written).
// Each batch row owns its slice of dx, so overlapping windows accumulate without races.
template <typename T>
void max_pool1d_backward(const T* grad, const int64_t* argmax, int64_t B, int64_t Lo, int64_t C,
                         int64_t L, T* dx) {
#pragma omp parallel for schedule(static) if (B * Lo * C > 32768)
  for (int64_t b = 0; b < B; ++b) {
    T* dxb = dx + b * L * C;
    for (int64_t e = 0; e < L * C; ++e) dxb[e] = T(0);
    for (int64_t t = 0; t < Lo; ++t) {
      const T* g = grad + (b * Lo + t) * C;
      const int64_t* where = argmax + (b * Lo + t) * C;
      for (int64_t c = 0; c < C; ++c) dxb[where[c] * C + c] += g[c];
    }
  }
}

}  // namespace seqfuse
