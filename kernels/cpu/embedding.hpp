// Embedding lookup and row coalescing on raw pointers.
//   ids:    [N] int64, already checked to lie in [0, V)
//   table:  [V,D], out: [N,D] C-contiguous; values: [N,D] strided (see embedding_sum_segments)
// Coalescing (summing the rows of repeated ids, as a sparse gradient needs before an update)
// is a counting sort of ids (stable, O(N+V)) followed by one pass per distinct id that sums
// its rows; distinct ids own disjoint output rows, so threads never race.
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu/choices.hpp"
#include "cpu/simd.hpp"

namespace seqfuse {

// Ids are random rows of a table that is often far larger than the caches: each row starts
// with a memory miss the hardware prefetcher cannot predict. Requesting the row a few ids
// ahead overlaps those misses with the copy (V=100k, D=300, N=51200 gather: 14.5-16.3 ms ->
// 11.5-13.0 ms, medians of 41 in a standalone study). Streaming stores alone made it slower
// (19.6-20.5 ms); with the prefetch they gain (kStreamBytes).
constexpr int64_t kPrefetchAhead = 4;

// A gather whose output is larger than this is written with non-temporal stores (where the
// ISA has them): they skip reading each output line into the cache before it is overwritten and
// leave the cache to the table's rows. Below it, plain stores win: the output may still be in
// the cache when the next layer reads it. Half the 32 MiB L3 of the AMD VMs measured (Zen 3,
// 4, 5): the two cross between 16 and 23 MiB. 2-vCPU AMD EPYC Zen 4, 2026-12-04, medians of
// 60 alternating in one process (V=10000, D=128), plain / streaming stores: 3.9 MiB out 0.069
// / 0.088 ms, 7.8 MiB 0.134 / 0.177, 15.6 MiB 0.302 / 0.346 (1.05 / 1.10 with a read of the
// whole output after it), 23.4 MiB 0.82 / 0.57, 31.2 MiB 0.96 / 0.73, 62.5 MiB 2.47 / 1.45.
// The Zen 3 VM (session 26, medians of 41): even up to ~20 MiB (15.6 MiB 0.54-0.60 /
// 0.59-0.66), streaming ahead above (31.2 MiB 1.25-2.14 / 1.20-1.32; 61 MiB, V=100k, D=300,
// N=51200: 12.4 / 10.0-10.9), though on a busier day (session 24) it had streamed 16 MiB
// faster (1.54-1.83 / 1.19-1.28): the gather_stores choice times streaming from 8 MiB against
// this rule at first use.
constexpr int64_t kStreamBytes = int64_t{16} << 20;

// Whether a gather of `bytes` of output streams it, under the gather_stores choice
// (cpu/choices.hpp): the rule above, or streaming past 8 MiB, which engine/tuning.py times
// against it at first use on a 15.6 MiB output.
inline bool gather_streams(int64_t bytes) {
  switch (choices().gather_stores.load()) {
    case kGatherStream:
      return true;
    case kGatherPlain:
      return false;
    case kGatherAbove8MiB:
      return bytes > (int64_t{8} << 20);
    default:
      return bytes > kStreamBytes;
  }
}

template <typename T>
void embedding_forward(const int64_t* ids, int64_t n, const T* table, int64_t d, T* out) {
  const bool stream = gather_streams(n * d * static_cast<int64_t>(sizeof(T)));
#pragma omp parallel if (n * d > 32768)
  {
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      if (i + kPrefetchAhead < n) prefetch_row(table + ids[i + kPrefetchAhead] * d, d);
      if (stream) {
        stream_row(out + i * d, table + ids[i] * d, d);
      } else {
        std::memcpy(out + i * d, table + ids[i] * d, sizeof(T) * d);
      }
    }
    if (stream) stream_fence();  // this thread's streaming stores are visible before the join
  }
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

// dst: [D] = sum over k in [first, last) of values row perm[k]; element j of row i is
// values[i * row_stride + j * col_stride]. Contiguous (col_stride == 1) is its own
// instantiation so that the inner loops vectorise.
template <typename T, bool Contiguous>
void embedding_sum_rows(const T* values, int64_t row_stride, int64_t col_stride, int64_t d,
                        const int64_t* perm, int64_t first, int64_t last, T* dst) {
  const int64_t cs = Contiguous ? 1 : col_stride;
  const T* src = values + perm[first] * row_stride;
  for (int64_t j = 0; j < d; ++j) dst[j] = src[j * cs];
  for (int64_t k = first + 1; k < last; ++k) {
    src = values + perm[k] * row_stride;
    for (int64_t j = 0; j < d; ++j) dst[j] += src[j * cs];
  }
}

// values: [N,D] with strides in elements (any sign; 0 for a broadcast view), so a strided or
// broadcast gradient is read in place instead of being copied to C order first.
// summed: [U,D], need not be initialised: each segment's first row is assigned, not added,
// which saves a zero-fill pass over the whole output.
template <typename T>
void embedding_sum_segments(const T* values, int64_t row_stride, int64_t col_stride, int64_t d,
                            const std::vector<int64_t>& perm, const std::vector<int64_t>& starts,
                            T* summed) {
  const int64_t segments = static_cast<int64_t>(starts.size()) - 1;
#pragma omp parallel for schedule(dynamic, 64) if (segments > 64)
  for (int64_t u = 0; u < segments; ++u) {
    if (col_stride == 1)
      embedding_sum_rows<T, true>(values, row_stride, 1, d, perm.data(), starts[u], starts[u + 1],
                                  summed + u * d);
    else
      embedding_sum_rows<T, false>(values, row_stride, col_stride, d, perm.data(), starts[u],
                                   starts[u + 1], summed + u * d);
  }
}

}  // namespace seqfuse
