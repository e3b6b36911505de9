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
#include "cpu/blas.hpp"
#include "cpu/threads.hpp"

namespace py = pybind11;
using namespace seqfuse_bind;

namespace {

using seqfuse::gemm_fn;
using seqfuse::OneBlasThread;

void set_blas(std::uintptr_t sgemm, std::uintptr_t dgemm, std::uintptr_t set_threads_local,
              int vector_bytes) {
  if (!sgemm || !dgemm) throw py::value_error("set_blas: sgemm and dgemm must be function addresses");
  if (vector_bytes < 0) throw py::value_error("set_blas: vector_bytes must be >= 0");
  seqfuse::Blas& blas = seqfuse::blas();
  blas.sgemm = reinterpret_cast<seqfuse::cblas_gemm<float>*>(sgemm);
  blas.dgemm = reinterpret_cast<seqfuse::cblas_gemm<double>*>(dgemm);
  blas.set_threads_local = reinterpret_cast<int (*)(int)>(set_threads_local);
  blas.vector_bytes = vector_bytes;
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
      if (hi > lo)
        seqfuse::gemm_block<T>(false, false, hi - lo, N, K, A + lo * K, K, B, N, T(0), C + lo * N, N);
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
          seqfuse::gemm_block<T>(true, false, M, N, hi - lo, A + lo * M, M, B + lo * N, N, T(0), out, N);
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
        py::arg("vector_bytes") = 0,
        "addresses of an ILP64 cblas_sgemm and cblas_dgemm (NumPy's OpenBLAS) and of that "
        "library's openblas_set_num_threads_local (or 0); vector_bytes: the width of the SIMD "
        "kernels it runs on this CPU (32 for AVX2, 64 for AVX-512; 0 if unknown)");
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
