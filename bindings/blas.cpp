// engine._C.gemm / gemm_tn: the big GEMMs around the fused kernels (input projections,
// weight gradients, Dense layers), split over the kernels' OpenMP threads, each block one
// single-threaded call of the OpenBLAS NumPy ships (its cblas_sgemm/dgemm, ILP64, found by
// engine/_blas.py and handed over once as addresses).
//
// No Python runs on the worker threads, so no GIL passes between them: with Python blocks
// (engine._C.parallel) each split GEMM waited ~1 ms for the sleeping worker to take the GIL
// on the 2-vCPU VM, which was half of an LSTM (32,100,32,32) training step.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "common.hpp"
#include "cpu/threads.hpp"

namespace py = pybind11;
using namespace seqfuse_bind;

namespace {

using blas_int = int64_t;  // NumPy's OpenBLAS is built with 64-bit integers (ILP64)
enum : int { kRowMajor = 101, kNoTrans = 111, kTrans = 112 };  // CBLAS enums
template <typename T>
using cblas_gemm = void(int, int, int, blas_int, blas_int, blas_int, T, const T*, blas_int, const T*,
                        blas_int, T, T*, blas_int);

struct Blas {
  cblas_gemm<float>* sgemm = nullptr;
  cblas_gemm<double>* dgemm = nullptr;
  int (*set_threads_local)(int) = nullptr;  // OpenBLAS's per-thread thread count, or nullptr
};
Blas blas;

template <typename T>
cblas_gemm<T>* gemm_fn();
template <>
cblas_gemm<float>* gemm_fn<float>() { return blas.sgemm; }
template <>
cblas_gemm<double>* gemm_fn<double>() { return blas.dgemm; }

void set_blas(std::uintptr_t sgemm, std::uintptr_t dgemm, std::uintptr_t set_threads_local) {
  if (!sgemm || !dgemm) throw py::value_error("set_blas: sgemm and dgemm must be function addresses");
  blas.sgemm = reinterpret_cast<cblas_gemm<float>*>(sgemm);
  blas.dgemm = reinterpret_cast<cblas_gemm<double>*>(dgemm);
  blas.set_threads_local = reinterpret_cast<int (*)(int)>(set_threads_local);
}

template <typename T>
void check(const carray<T>& a, const carray<T>& b, py::ssize_t shared_a, py::ssize_t shared_b,
           const char* op) {
  if (a.ndim() != 2 || b.ndim() != 2 || shared_a != shared_b) {
    std::ostringstream s;
    s << op << ": a " << shape_str(a) << " and b " << shape_str(b) << " do not chain";
    throw py::value_error(s.str());
  }
  if (!gemm_fn<T>()) throw std::runtime_error(std::string(op) + ": set_blas was not called");
}

// How many blocks a dimension of n splits into: one per OpenMP thread, at most n.
int blocks(py::ssize_t n) {
  return static_cast<int>(std::max<py::ssize_t>(1, std::min<py::ssize_t>(seqfuse::pool_threads(), n)));
}

// OpenBLAS on one thread for the lifetime of this object, set and restored by the calling
// (Python) thread around a parallel region. In NumPy's OpenBLAS the "local" count is what
// every thread sees, so worker threads must not set it: two of them setting and restoring
// raced, and a count left at 1 made every later NumPy matmul of the process run on one core
// (460 -> 236 GFLOP/s at n = 2048 on the Zen 5 VM).
class OneBlasThread {
 public:
  OneBlasThread() : previous_(blas.set_threads_local ? blas.set_threads_local(1) : 0) {}
  ~OneBlasThread() {
    if (blas.set_threads_local) blas.set_threads_local(previous_);
  }
  OneBlasThread(const OneBlasThread&) = delete;
  OneBlasThread& operator=(const OneBlasThread&) = delete;

 private:
  int previous_;
};

// One BLAS call from an OpenMP thread (inside a OneBlasThread region: single-threaded).
template <typename T>
void gemm_block(int trans_a, py::ssize_t M, py::ssize_t N, py::ssize_t K, const T* A, py::ssize_t lda,
                const T* B, T* C) {
  gemm_fn<T>()(kRowMajor, trans_a, kNoTrans, M, N, K, T(1), A, lda, B, N, T(0), C, N);
}

template <typename T>
py::array zeros(carray<T>& c) {
  std::fill(c.mutable_data(), c.mutable_data() + c.size(), T(0));
  return c;
}

// C[M,N] = A[M,K]·B[K,N], rows split over the threads.
template <typename T>
py::array gemm(const carray<T>& a, const carray<T>& b) {
  check(a, b, a.shape(1), b.shape(0), "gemm");
  const py::ssize_t M = a.shape(0), K = a.shape(1), N = b.shape(1);
  carray<T> c({M, N});
  if (M * N == 0 || K == 0) return zeros(c);  // BLAS rejects leading dimensions of 0
  const int parts = blocks(M);
  const T *A = a.data(), *B = b.data();
  T* C = c.mutable_data();
  {
    py::gil_scoped_release release;
    OneBlasThread one_thread;
#if defined(SEQFUSE_OPENMP)
#pragma omp parallel for num_threads(parts) schedule(static, 1)
#endif
    for (int p = 0; p < parts; ++p) {
      const py::ssize_t lo = M * p / parts, hi = M * (p + 1) / parts;
      if (hi > lo) gemm_block<T>(kNoTrans, hi - lo, N, K, A + lo * K, K, B, C + lo * N);
    }
  }
  return c;
}

// C[M,N] = Aᵀ·B for A[K,M], B[K,N]: K split over the threads, the parts summed.
template <typename T>
py::array gemm_tn(const carray<T>& a, const carray<T>& b) {
  check(a, b, a.shape(0), b.shape(0), "gemm_tn");
  const py::ssize_t K = a.shape(0), M = a.shape(1), N = b.shape(1);
  carray<T> c({M, N});
  if (M * N == 0 || K == 0) return zeros(c);
  const int parts = blocks(K);
  std::vector<T> partial(static_cast<size_t>(parts - 1) * M * N);
  const T *A = a.data(), *B = b.data();
  T* C = c.mutable_data();
  {
    py::gil_scoped_release release;
    OneBlasThread one_thread;
#if defined(SEQFUSE_OPENMP)
#pragma omp parallel num_threads(parts)
#endif
    {
#if defined(SEQFUSE_OPENMP)
#pragma omp for schedule(static, 1)
#endif
      for (int p = 0; p < parts; ++p) {
        const py::ssize_t lo = K * p / parts, hi = K * (p + 1) / parts;
        T* out = p == 0 ? C : partial.data() + (p - 1) * M * N;
        if (hi > lo)
          gemm_block<T>(kTrans, M, N, hi - lo, A + lo * M, M, B + lo * N, out);
        else
          std::fill(out, out + M * N, T(0));
      }
#if defined(SEQFUSE_OPENMP)
#pragma omp for schedule(static)
#endif
      for (py::ssize_t e = 0; e < M * N; ++e)
        for (int p = 1; p < parts; ++p) C[e] += partial[(p - 1) * M * N + e];
    }
  }
  return c;
}

// True for float64, false for float32; TypeError unless a and b share one of them.
bool both_float64(const py::array& a, const py::array& b, const char* op) {
  const bool f64 = is_float64(a, op, "a");
  if (f64 != is_float64(b, op, "b")) throw py::type_error(std::string(op) + ": a and b must have one dtype");
  return f64;
}

}  // namespace

void bind_blas(py::module_& m) {
  m.def("set_blas", &set_blas, py::arg("sgemm"), py::arg("dgemm"), py::arg("set_threads_local"),
        "addresses of an ILP64 cblas_sgemm and cblas_dgemm (NumPy's OpenBLAS) and of that "
        "library's openblas_set_num_threads_local (or 0)");
  m.def("gemm",
        [](const py::array& a, const py::array& b) {
          return both_float64(a, b, "gemm") ? gemm<double>(carray<double>(a), carray<double>(b))
                                            : gemm<float>(carray<float>(a), carray<float>(b));
        },
        py::arg("a"), py::arg("b"), "a [M,K] @ b [K,N], float32 or float64, rows split over the OpenMP threads");
  m.def("gemm_tn",
        [](const py::array& a, const py::array& b) {
          return both_float64(a, b, "gemm_tn") ? gemm_tn<double>(carray<double>(a), carray<double>(b))
                                               : gemm_tn<float>(carray<float>(a), carray<float>(b));
        },
        py::arg("a"), py::arg("b"), "a [K,M]ᵀ @ b [K,N], K split over the OpenMP threads and summed");
}
