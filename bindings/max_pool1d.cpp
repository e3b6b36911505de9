// engine._C.max_pool1d_forward / max_pool1d_backward: validate, allocate, release the GIL, call
// kernels/cpu/max_pool1d.hpp.
#include "common.hpp"
#include "cpu/max_pool1d.hpp"

namespace py = pybind11;
using namespace seqfuse_bind;

namespace {

template <typename T>
py::tuple forward(const py::array& x_in, int64_t pool, int64_t s) {
  carray<T> x(x_in);
  const int64_t B = x.shape(0), L = x.shape(1), C = x.shape(2), lo = (L - pool) / s + 1;
  auto out = output<T>({B, lo, C});
  auto argmax = output<int64_t>({B, lo, C});
  {
    py::gil_scoped_release release;
    seqfuse::max_pool1d_forward<T>(x.data(), B, L, C, pool, s, out.mutable_data(), argmax.mutable_data());
  }
  return py::make_tuple(out, argmax);
}

template <typename T>
py::array backward(const py::array& grad_in, const carray<int64_t>& argmax, int64_t length) {
  carray<T> grad(grad_in);
  const int64_t B = grad.shape(0), lo = grad.shape(1), C = grad.shape(2);
  const int64_t* where = argmax.data();
  for (py::ssize_t i = 0; i < argmax.size(); ++i) {
    if (where[i] < 0 || where[i] >= length) {
      throw py::index_error(message("max_pool1d: argmax must lie in [0, ", length, "), got ", where[i],
                                    " at flat position ", i));
    }
  }
  auto dx = output<T>({B, length, C});
  {
    py::gil_scoped_release release;
    seqfuse::max_pool1d_backward<T>(grad.data(), where, B, lo, C, length, dx.mutable_data());
  }
  return dx;
}

}  // namespace

void bind_max_pool1d(py::module_& m) {
  m.def("max_pool1d_forward",
        [](const py::array& x, int64_t pool_size, int64_t strides) {
          require_ndim(x, "max_pool1d", "x", 3);
          if (pool_size < 1 || strides < 1) {
            throw py::value_error(message("max_pool1d: pool_size and strides must be >= 1, got ",
                                          pool_size, ", ", strides));
          }
          if (x.shape(1) < pool_size) {
            throw py::value_error(message("max_pool1d: input length ", x.shape(1),
                                          " (after padding) is shorter than the window span ",
                                          pool_size, "; the output would be empty"));
          }
          return is_float64(x, "max_pool1d", "x") ? forward<double>(x, pool_size, strides)
                                                  : forward<float>(x, pool_size, strides);
        },
        py::arg("x"), py::arg("pool_size"), py::arg("strides"),
        "x: [B,L,C] padded -> (out [B,L_out,C], argmax [B,L_out,C] int64 position along L)");
  m.def("max_pool1d_backward",
        [](const py::array& grad, const carray<int64_t>& argmax, int64_t length) {
          require_ndim(grad, "max_pool1d", "grad", 3);
          require_ndim(argmax, "max_pool1d", "argmax", 3);
          for (py::ssize_t axis = 0; axis < 3; ++axis)
            require_dim(argmax, "max_pool1d", "argmax", axis, grad.shape(axis));
          return is_float64(grad, "max_pool1d", "grad") ? backward<double>(grad, argmax, length)
                                                        : backward<float>(grad, argmax, length);
        },
        py::arg("grad"), py::arg("argmax"), py::arg("length"),
        "grad: [B,L_out,C], argmax: [B,L_out,C] int64 -> dx [B,length,C] (gradients summed per position)");
}
