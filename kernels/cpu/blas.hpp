// The BLAS the C++ side calls: NumPy's bundled OpenBLAS (ILP64 cblas_sgemm/dgemm), found by
// engine/_blas.py and handed over once as function addresses (engine._C.set_blas). Used by
// engine._C.gemm / gemm_tn (bindings/blas.cpp) and conv1d's GEMM algorithm (cpu/conv1d_gemm.hpp).
// Every call is single-threaded (OneBlasThread): the callers split the work over their own
// OpenMP threads, so no OpenBLAS thread pool competes with ours for the cores.
#pragma once
#include <cstdint>

namespace seqfuse {

using blas_int = int64_t;  // NumPy's OpenBLAS is built with 64-bit integers (ILP64)
enum : int { kRowMajor = 101, kNoTrans = 111, kTrans = 112 };  // CBLAS enums
template <typename T>
using cblas_gemm = void(int, int, int, blas_int, blas_int, blas_int, T, const T*, blas_int, const T*,
                        blas_int, T, T*, blas_int);

struct Blas {
  cblas_gemm<float>* sgemm = nullptr;
  cblas_gemm<double>* dgemm = nullptr;
  int (*set_threads_local)(int) = nullptr;  // OpenBLAS's per-thread thread count, or nullptr
  int vector_bytes = 0;  // width of the SIMD kernels OpenBLAS picked for this CPU; 0: unknown
};

inline Blas& blas() {
  static Blas instance;
  return instance;
}

template <typename T>
cblas_gemm<T>* gemm_fn();
template <>
inline cblas_gemm<float>* gemm_fn<float>() { return blas().sgemm; }
template <>
inline cblas_gemm<double>* gemm_fn<double>() { return blas().dgemm; }

// True once engine._C.set_blas was called (engine/_blas.py does it when it finds the library).
inline bool have_blas() { return blas().sgemm && blas().dgemm; }

// OpenBLAS on one thread for the lifetime of this object, set and restored by the calling
// (Python) thread around a parallel region. In NumPy's OpenBLAS the "local" count is what
// every thread sees, so worker threads must not set it: two of them setting and restoring
// raced, and a count left at 1 made every later NumPy matmul of the process run on one core
// (460 -> 236 GFLOP/s at n = 2048 on the Zen 5 VM).
class OneBlasThread {
 public:
  OneBlasThread() : previous_(blas().set_threads_local ? blas().set_threads_local(1) : 0) {}
  ~OneBlasThread() {
    if (blas().set_threads_local) blas().set_threads_local(previous_);
  }
  OneBlasThread(const OneBlasThread&) = delete;
  OneBlasThread& operator=(const OneBlasThread&) = delete;

 private:
  int previous_;
};

// C[M,N] = op(A)·op(B) + beta·C, row-major, as one BLAS call from an OpenMP thread inside a
// OneBlasThread region (so single-threaded). op(A) is A [M,K] (row stride lda) or, with
// trans_a, Aᵀ for A [K,M]; the same for B [K,N] / trans_b. M, N, K >= 1.
template <typename T>
inline void gemm_block(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* A,
                       int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  gemm_fn<T>()(kRowMajor, trans_a ? kTrans : kNoTrans, trans_b ? kTrans : kNoTrans, M, N, K, T(1), A,
               lda, B, ldb, beta, C, ldc);
}

}  // namespace seqfuse
