// engine._C.copy_into(dst, src): a copy between 3-D float arrays of any strides, for the layout
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

// dst[i, j, :] = src[i, j, :] for 3-D arrays of one shape and any strides (bytes), the outer
// rows split over the OpenMP threads when the copy is large.
template <typename T>
void copy3(const char* src, const py::ssize_t* ss, char* dst, const py::ssize_t* ds,
           py::ssize_t n0, py::ssize_t n1, py::ssize_t n2) {
  const py::ssize_t item = sizeof(T);
  const bool rows_contiguous = ss[2] == item && ds[2] == item;
  py::gil_scoped_release release;
  const int threads = n0 * n1 * n2 * item >= kSplitBytes ? seqfuse::pool_threads() : 1;
#if defined(SEQFUSE_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(static)
#endif
  for (py::ssize_t i = 0; i < n0; ++i)
    for (py::ssize_t j = 0; j < n1; ++j) {
      const char* from = src + i * ss[0] + j * ss[1];
      char* to = dst + i * ds[0] + j * ds[1];
      if (rows_contiguous) {
        std::memcpy(to, from, n2 * item);
      } else {
        for (py::ssize_t k = 0; k < n2; ++k) std::memcpy(to + k * ds[2], from + k * ss[2], item);
      }
    }
  (void)threads;
}

template <typename T>
void copy_into(py::array& dst, const py::array& src) {
  copy3<T>(static_cast<const char*>(src.data()), src.strides(), static_cast<char*>(dst.mutable_data()),
           dst.strides(), src.shape(0), src.shape(1), src.shape(2));
}

}  // namespace

void bind_layout(py::module_& m) {
  m.def("copy_into",
        [](py::array dst, const py::array& src) {
          require_ndim(dst, "copy_into", "dst", 3);
          require_ndim(src, "copy_into", "src", 3);
          for (py::ssize_t axis = 0; axis < 3; ++axis) require_dim(dst, "copy_into", "dst", axis, src.shape(axis));
          const bool f64 = is_float64(src, "copy_into", "src");
          if (is_float64(dst, "copy_into", "dst") != f64)
            throw py::type_error("copy_into: dst and src must have one dtype");
          if (!dst.writeable()) throw py::value_error("copy_into: dst is read-only");
          f64 ? copy_into<double>(dst, src) : copy_into<float>(dst, src);
        },
        py::arg("dst"), py::arg("src"),
        "dst[...] = src for 3-D float32/float64 arrays of one shape and any strides (views into "
        "a larger array), its outer rows split over the OpenMP threads");
}
