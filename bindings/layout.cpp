// engine._C.contiguous(a): a C-contiguous copy of a 3-D float array of any strides, the layout
// changes around the recurrent kernels ([B,T,·] <-> [T,B,·], reversed in time for
// go_backwards: engine/backends/_projection.py) split over the kernels' OpenMP threads.
//
// A training step's arrays outgrow what the VM leaves of the L3, so each such copy streams
// from DRAM, and one core alone does not reach the memory's bandwidth: SimpleRNN
// (64,100,64,128)'s outputs [T,B,H] -> [B,T,H] (3.3 MB) took 1.6 ms on one thread and 1.0 on
// two (NumPy on two Python threads, after a cache-evicting pass; 2-vCPU AMD EPYC Zen 3).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstring>

#include "common.hpp"
#include "cpu/threads.hpp"

namespace py = pybind11;
using namespace seqfuse_bind;

namespace {

// Below this many bytes the copy stays on the calling thread: waking a worker costs more.
constexpr py::ssize_t kSplitBytes = 1 << 20;

template <typename T>
py::array contiguous(const py::array& a) {
  const py::ssize_t n0 = a.shape(0), n1 = a.shape(1), n2 = a.shape(2);
  const py::ssize_t s0 = a.strides(0), s1 = a.strides(1), s2 = a.strides(2);
  py::array_t<T> out({n0, n1, n2});
  const char* src = static_cast<const char*>(a.data());
  T* dst = out.mutable_data();
  const bool rows_contiguous = s2 == static_cast<py::ssize_t>(sizeof(T));
  {
    py::gil_scoped_release release;
    const int threads = n0 * n1 * n2 * static_cast<py::ssize_t>(sizeof(T)) >= kSplitBytes
                            ? seqfuse::pool_threads() : 1;
#if defined(SEQFUSE_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(static)
#endif
    for (py::ssize_t i = 0; i < n0; ++i)
      for (py::ssize_t j = 0; j < n1; ++j) {
        const char* row = src + i * s0 + j * s1;
        T* to = dst + (i * n1 + j) * n2;
        if (rows_contiguous) {
          std::memcpy(to, row, n2 * sizeof(T));
        } else {
          for (py::ssize_t k = 0; k < n2; ++k) std::memcpy(to + k, row + k * s2, sizeof(T));
        }
      }
    (void)threads;
  }
  return out;
}

}  // namespace

void bind_layout(py::module_& m) {
  m.def("contiguous",
        [](const py::array& a) {
          require_ndim(a, "contiguous", "a", 3);
          return is_float64(a, "contiguous", "a") ? contiguous<double>(a) : contiguous<float>(a);
        },
        py::arg("a"),
        "a C-contiguous copy of a 3-D float32/float64 array of any strides (a transposed or "
        "reversed view), its outer rows split over the OpenMP threads");
}
