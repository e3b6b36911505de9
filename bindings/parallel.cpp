// engine._C.parallel(fn, n): fn(0) .. fn(n-1) on the OpenMP threads that run the kernels.
//
// engine/_blas.py's fallback for GEMMs engine._C.gemm cannot take (another NumPy build without
// its bundled OpenBLAS, strided operands): Python blocks still run on the kernels' threads, so
// no second pool competes with the kernels' briefly spinning OpenMP workers (with a pool of
// Python threads, LSTM (64,100,64,128) weight-gradient GEMMs took 15 ms instead of 8).
// Each call of fn holds the GIL; NumPy releases it inside the GEMM, so the GEMMs overlap.
// engine._C.total(a): the sum of a C-contiguous float array on the same threads (cpu/sum.hpp).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <exception>
#include <string>

#include "cpu/sum.hpp"
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

double total(const py::array& a) {
  if (!(a.flags() & py::array::c_style))
    throw py::value_error("total: a must be C-contiguous");
  const int64_t n = a.size();
  const bool single = py::isinstance<py::array_t<float>>(a);
  const void* data = a.data();
  py::gil_scoped_release release;
  return single ? seqfuse::total(static_cast<const float*>(data), n)
                : seqfuse::total(static_cast<const double*>(data), n);
}

}  // namespace

void bind_parallel(py::module_& m) {
  m.def("parallel", &parallel, py::arg("fn"), py::arg("n"),
        "fn(i) for i in range(n), each on its own OpenMP thread holding the GIL while in "
        "Python (NumPy releases it in a GEMM); the first error is raised after all return");
  m.def("total",
        [](const py::array& a) {
          if (!py::isinstance<py::array_t<float>>(a) && !py::isinstance<py::array_t<double>>(a))
            throw py::type_error("total: a must be float32 or float64, got " + std::string(py::str(a.dtype())));
          return total(a);
        },
        py::arg("a"),
        "the sum of every element of a C-contiguous float32 or float64 array, in double, each "
        "OpenMP thread summing one contiguous share");
}
