// engine._C.parallel(fn, n): fn(0) .. fn(n-1) on the OpenMP threads that run the kernels.
//
// engine/_blas.py's fallback for GEMMs engine._C.gemm cannot take (another NumPy build without
// its bundled OpenBLAS, strided operands): Python blocks still run on the kernels' threads, so
// no second pool competes with the kernels' briefly spinning OpenMP workers (with a pool of
// Python threads, LSTM (64,100,64,128) weight-gradient GEMMs took 15 ms instead of 8).
// Each call of fn holds the GIL; NumPy releases it inside the GEMM, so the GEMMs overlap.
#include <pybind11/pybind11.h>

#include <algorithm>
#include <exception>
#include <string>

#include "cpu/threads.hpp"

namespace py = pybind11;

namespace {

void parallel(const py::function& fn, int n) {
  if (n < 1) throw py::value_error("parallel: n must be >= 1, got " + std::to_string(n));
  std::exception_ptr error;
  {
    py::gil_scoped_release release;
#if defined(SEQFUSE_OPENMP)
    const int team = std::min(n, seqfuse::pool_threads());
#pragma omp parallel for num_threads(team) schedule(static, 1)
#endif
    for (int i = 0; i < n; ++i) {
      py::gil_scoped_acquire acquire;
      try {
        fn(i);
      } catch (...) {
#if defined(SEQFUSE_OPENMP)
#pragma omp critical(seqfuse_parallel_error)
#endif
        if (!error) error = std::current_exception();
      }
    }
  }
  if (error) std::rethrow_exception(error);  // with the GIL held again
}

}  // namespace

void bind_parallel(py::module_& m) {
  m.def("parallel", &parallel, py::arg("fn"), py::arg("n"),
        "fn(i) for i in range(n), each on its own OpenMP thread holding the GIL while in "
        "Python (NumPy releases it in a GEMM); the first error is raised after all return");
}
