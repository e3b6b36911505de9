// engine._C.conv1d_forward / conv1d_backward: validate, allocate, release the GIL, call
// kernels/cpu/conv1d.hpp; conv1d_algorithm says which of its algorithms a call would run.
#include "common.hpp"
#include "cpu/conv1d.hpp"

#include <utility>

namespace py = pybind11;
using namespace seqfuse_bind;

namespace {

// Checks x [B,L,C] and kernel [K,C,O] (same float dtype) and the steps; returns L_out >= 1.
int64_t check_conv1d(const py::array& x, const py::array& kernel, int64_t strides, int64_t dilation) {
  require_ndim(x, "conv1d", "x", 3);
  require_ndim(kernel, "conv1d", "kernel", 3);
  require_dim(kernel, "conv1d", "kernel", 1, x.shape(2));
  if (!x.dtype().is(kernel.dtype())) {
    throw py::type_error("conv1d: kernel dtype " + std::string(py::str(kernel.dtype())) +
                         " must match x dtype " + std::string(py::str(x.dtype())));
  }
  if (strides < 1 || dilation < 1) {
    throw py::value_error(message("conv1d: strides and dilation_rate must be >= 1, got ", strides, ", ",
                                  dilation));
  }
  const int64_t span = dilation * (kernel.shape(0) - 1) + 1;
  if (kernel.shape(0) < 1 || x.shape(1) < span) {
    throw py::value_error(message("conv1d: input length ", x.shape(1),
                                  " (after padding) is shorter than the window span ", span,
                                  " = dilation_rate*(size-1)+1; the output would be empty"));
  }
  return seqfuse::conv1d_output_length(x.shape(1), kernel.shape(0), strides, dilation);
}

template <typename T>
py::array forward(const py::array& x_in, const py::array& kernel_in, const py::object& bias_in,
                  int64_t s, int64_t d, int64_t lo) {
  carray<T> x(x_in), kernel(kernel_in);
  const int64_t B = x.shape(0), L = x.shape(1), C = x.shape(2), K = kernel.shape(0), O = kernel.shape(2);
  auto bias = optional_float_arg<T>(bias_in, "conv1d", "bias");
  if (bias) require_shape(*bias, "conv1d", "bias", "(O,)", {O});
  auto out = output<T>({B, lo, O});
  {
    py::gil_scoped_release release;
    seqfuse::conv1d_forward<T>(x.data(), B, L, C, kernel.data(), data_or_null(bias), K, O, s, d,
                               out.mutable_data());
  }
  return out;
}

template <typename T>
py::tuple backward(const py::array& grad_in, const py::array& x_in, const py::array& kernel_in,
                   int64_t s, int64_t d) {
  carray<T> grad(grad_in), x(x_in), kernel(kernel_in);
  const int64_t B = x.shape(0), L = x.shape(1), C = x.shape(2), K = kernel.shape(0), O = kernel.shape(2);
  auto dx = output<T>({B, L, C});
  auto dkernel = output<T>({K, C, O});
  auto dbias = output<T>({O});
  {
    py::gil_scoped_release release;
    seqfuse::conv1d_backward<T>(grad.data(), x.data(), B, L, C, kernel.data(), K, O, s, d,
                                dx.mutable_data(), dkernel.mutable_data(), dbias.mutable_data());
  }
  return py::make_tuple(dx, dkernel, dbias);
}

}  // namespace

void bind_conv1d(py::module_& m) {
  m.def("conv1d_forward",
        [](const py::array& x, const py::array& kernel, const py::object& bias, int64_t strides,
           int64_t dilation_rate) {
          const int64_t lo = check_conv1d(x, kernel, strides, dilation_rate);
          return is_float64(x, "conv1d", "x")
                     ? forward<double>(x, kernel, bias, strides, dilation_rate, lo)
                     : forward<float>(x, kernel, bias, strides, dilation_rate, lo);
        },
        py::arg("x"), py::arg("kernel"), py::arg("bias").none(true), py::arg("strides"),
        py::arg("dilation_rate"),
        "x: [B,L,C] padded, kernel: [K,C,O], bias: [O] or None -> [B,L_out,O], "
        "out[b,t] = bias + sum_k x[b,t*s+k*d] . kernel[k]");
  m.def("conv1d_backward",
        [](const py::array& grad, const py::array& x, const py::array& kernel, int64_t strides,
           int64_t dilation_rate) {
          const int64_t lo = check_conv1d(x, kernel, strides, dilation_rate);
          require_ndim(grad, "conv1d", "grad", 3);
          require_dim(grad, "conv1d", "grad", 0, x.shape(0));
          require_dim(grad, "conv1d", "grad", 1, lo);
          require_dim(grad, "conv1d", "grad", 2, kernel.shape(2));
          if (!grad.dtype().is(x.dtype())) throw py::type_error("conv1d: grad dtype must match x dtype");
          return is_float64(x, "conv1d", "x") ? backward<double>(grad, x, kernel, strides, dilation_rate)
                                              : backward<float>(grad, x, kernel, strides, dilation_rate);
        },
        py::arg("grad"), py::arg("x"), py::arg("kernel"), py::arg("strides"), py::arg("dilation_rate"),
        "grad: [B,L_out,O], x: [B,L,C], kernel: [K,C,O] -> (dx [B,L,C], dkernel [K,C,O], "
        "dbias [O] = grad summed over B and L_out)");
  m.def("conv1d_algorithm",
        [](const py::array& x, const py::array& kernel, int64_t strides, int64_t dilation_rate) {
          check_conv1d(x, kernel, strides, dilation_rate);
          const bool f64 = is_float64(x, "conv1d", "x");
          py::dict picks;
          for (const auto& [name, pass] : {std::pair{"forward", seqfuse::Conv1dPass::kForward},
                                           std::pair{"dx", seqfuse::Conv1dPass::kDx},
                                           std::pair{"dkernel", seqfuse::Conv1dPass::kDkernel}})
            picks[name] = seqfuse::conv1d_use_gemm(pass, x.shape(0), x.shape(2), kernel.shape(2), f64)
                              ? "gemm"
                              : "direct";
          return picks;
        },
        py::arg("x"), py::arg("kernel"), py::arg("strides"), py::arg("dilation_rate"),
        "{'forward', 'dx', 'dkernel'} -> 'direct' or 'gemm': the algorithm each pass of "
        "conv1d_forward/backward runs on arrays of these shapes and dtype under the choice in "
        "force (only shapes and dtype are read)");
}
