// The OpenMP pool every C++ kernel and engine._C's GEMMs share (docs/kernels.md, "Threads
// and memory"): how many threads a region may use and which one is running.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#if defined(SEQFUSE_OPENMP)
#include <omp.h>
#endif

namespace seqfuse {

// OpenMP's limit (OMP_NUM_THREADS, the affinity; 1 in a forked child: bindings/module.cpp),
// or 1 in a build without OpenMP.
inline int pool_threads() {
#if defined(SEQFUSE_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// n elements of scratch memory, left uninitialized, for buffers whose every element is written
// before it is read (packed operands, a thread's partial sums): std::vector<T>(n) writes n
// zeros first, about 0.7 MB per weight-gradient call and thread at (64,100,64,128) with a
// 2 MiB L2 (gemm_tn_range's packed blocks, cpu/gemm_tn.hpp).
template <typename T>
class Scratch {
 public:
  Scratch() = default;
  explicit Scratch(int64_t n) : data_(n > 0 ? new T[static_cast<size_t>(n)] : nullptr) {}
  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }

 private:
  std::unique_ptr<T[]> data_;
};

inline int pool_thread_id() {
#if defined(SEQFUSE_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// C[0..size) = Σ over p < parts of what fn(p, out) writes into out (all `size` elements):
// each part on an OpenMP thread, part 0 straight into C and the others into partials that are
// then added to it, split by elements (a summed dimension of a GEMM split over the threads).
template <typename T, typename F>
void sum_of_parts(int parts, int64_t size, T* C, F&& fn) {
  Scratch<T> partial(static_cast<int64_t>(parts - 1) * size);
#if defined(SEQFUSE_OPENMP)
#pragma omp parallel num_threads(parts)
#endif
  {
#if defined(SEQFUSE_OPENMP)
#pragma omp for schedule(static, 1)
#endif
    for (int p = 0; p < parts; ++p) fn(p, p == 0 ? C : partial.data() + (p - 1) * size);
#if defined(SEQFUSE_OPENMP)
#pragma omp for schedule(static)
#endif
    for (int64_t e = 0; e < size; ++e)
      for (int p = 1; p < parts; ++p) C[e] += partial.data()[(p - 1) * size + e];
  }
}

}  // namespace seqfuse
