// The OpenMP pool every C++ kernel and engine._C's GEMMs share (docs/kernels.md, "Threads
// and memory"): how many threads a region may use and which one is running.
#pragma once

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

inline int pool_thread_id() {
#if defined(SEQFUSE_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}

}  // namespace seqfuse
