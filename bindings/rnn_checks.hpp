// Argument checks shared by the recurrent bindings (lstm.cpp, gru.cpp, simple_rnn.cpp).
// Every float argument must have xw's dtype exactly (float32 or float64, never cast); shapes
// are checked against the sizes T, B, H read from xw and U before any kernel runs.
#pragma once
#include "common.hpp"
#include "cpu/gemm_tn.hpp"
#include "cpu/projection.hpp"
#include "step_gemm.hpp"

#include <optional>
#include <string>
#include <vector>

namespace seqfuse_bind {

// The step mask: None, or a bool array of shape [T,B].
inline std::optional<carray<bool>> mask_arg(const py::object& a, const char* op, py::ssize_t T,
                                            py::ssize_t B) {
  if (a.is_none()) return std::nullopt;
  if (!py::isinstance<py::array_t<bool>>(a)) {
    throw py::type_error(message(
        op, ": mask must be a bool array of shape (T, B) or None, got ",
        py::isinstance<py::array>(a) ? std::string(py::str(py::reinterpret_borrow<py::array>(a).dtype()))
                                     : std::string(py::str(py::type::of(a)))));
  }
  carray<bool> mask(py::reinterpret_borrow<py::array>(a));
  require_shape(mask, op, "mask", "(T, B)", {T, B});
  return mask;
}

// (The two structs below hold pybind11 arrays, whose types are hidden: so are they.)
// The layer input and the input projection's weights, validated and kept alive for the
// kernel: x [B,T,F], kernel [F,G], bias [G] or None (G = gates·H).
template <typename scalar_t>
struct __attribute__((visibility("hidden"))) ProjectionArgs {
  carray<scalar_t> x, kernel;
  std::optional<carray<scalar_t>> bias;

  seqfuse::InputProjection<scalar_t> projection(bool go_backwards) const {
    return {x.data(), kernel.data(), data_or_null(bias), x.shape(1), x.shape(2), kernel.shape(1),
            go_backwards};
  }
};

template <typename scalar_t>
ProjectionArgs<scalar_t> projection_args(const py::array& x_in, const py::array& kernel_in,
                                         const py::object& bias_in, const char* op,
                                         const char* g_symbol, py::ssize_t G) {
  auto x = float_arg<scalar_t>(x_in, op, "x");
  require_ndim(x, op, "x", 3);
  auto kernel = float_arg<scalar_t>(kernel_in, op, "kernel");
  require_shape(kernel, op, "kernel", (std::string("(F, ") + g_symbol + ")").c_str(),
                {x.shape(2), G});
  auto bias = optional_float_arg<scalar_t>(bias_in, op, "bias");
  if (bias) require_shape(*bias, op, "bias", (std::string("(") + g_symbol + ",)").c_str(), {G});
  return {x, kernel, bias};
}

// The forward's state sequence hs [T,B,H]: batch-major [B,T,H] memory returned as a [T,B,H]
// view, so the layer's [B,T,H] output is that memory with no transposed copy (States,
// cpu/projection.hpp), in training as in inference: the backwards and the weight gradients
// read hs where it lies (sequence_arg). On the Zen 3 VM, steps (64,100,64,128) against
// time-major hs (medians of 10 alternating processes, 2026-12-02): LSTM 37.51 -> 37.00 ms
// (its backward never reads hs), SimpleRNN 10.60 -> 10.43, GRU 31.23 -> 31.49 and
// 31.62 -> 31.29 (even: its backward reads h_{t-1} rows T·H apart).
template <typename scalar_t>
struct __attribute__((visibility("hidden"))) StateSequence {
  carray<scalar_t> array;  // [B,T,H]

  StateSequence(py::ssize_t T, py::ssize_t B, py::ssize_t H) : array(output<scalar_t>({B, T, H})) {}

  seqfuse::States<scalar_t> states() {
    return {array.mutable_data(), array.shape(2), array.shape(1) * array.shape(2)};
  }
  py::object result() const { return array.attr("transpose")(1, 0, 2); }
};

// A [T,B,H] sequence a backward reads row by row, read where it lies: any strides whose rows
// are contiguous (States<const T>, cpu/projection.hpp). dhs, the gradient reaching each state,
// comes as the layer's [B,T,H] output gradient transposed or as a broadcast (stride 0); hs as
// the forward wrote it, batch-major. Neither needs a time-major copy. Rows with a stride are
// copied to C order, misaligned views too (strided_arg). TypeError unless its dtype is
// scalar_t's.
template <typename scalar_t>
py::array_t<scalar_t> sequence_arg(const py::array& in, const char* op, const char* name) {
  require_dtype<scalar_t>(in, op, name);
  require_ndim(in, op, name, 3);
  auto a = strided_arg<scalar_t>(in);
  if (a.strides(2) == static_cast<py::ssize_t>(sizeof(scalar_t)) || a.shape(2) == 1) return a;
  return carray<scalar_t>(a);
}

template <typename scalar_t>
seqfuse::States<const scalar_t> sequence_rows(const py::array_t<scalar_t>& a) {
  const auto item = static_cast<py::ssize_t>(sizeof(scalar_t));
  return {a.data(), a.strides(0) / item, a.strides(1) / item};
}

// A gradient an LSTM or GRU backward writes row by row over an array its forward saved
// (LSTM's dz over gates, GRU's dxw over gates and du over uh): with overwrite_saved, the
// caller's array itself, where it is theirs to give up (writeable, and taken without a
// conversion copy, so `saved` is the very array passed) and of the gradient's shape; the
// kernels read a row's saved values before they write its gradient there, and no later step
// reads them (cpu/lstm.hpp, lstm_backward). Otherwise a new array. A training step then
// touches one array fewer: (64,100,64,128) steps, functional passing it or not alternating
// call by call (bench/profile_step.py --toggle), medians of 60, Intel Xeon family 6 model 167,
// 2026-12-03: LSTM 17.92 -> 17.39 and 17.68 -> 17.22 ms; GRU (dxw over gates only) 14.37 ->
// 13.74 and 14.33 -> 13.72; (128,200,128,256), where the rows are streamed: even (GRU
// 188.0 / 188.9, 185.9 / 186.2 ms, LSTM 240.5 / 241.8).
template <typename scalar_t>
carray<scalar_t> gradient_over_saved(const py::array& saved_in, const carray<scalar_t>& saved,
                                     bool overwrite, py::ssize_t T, py::ssize_t B, py::ssize_t G) {
  if (overwrite && saved.ptr() == saved_in.ptr() && saved_in.writeable() && saved.ndim() == 3 &&
      saved.shape(0) == T && saved.shape(1) == B && saved.shape(2) == G)
    return saved;
  return output<scalar_t>({T, B, G});
}

// Backward's dx = dz·kernelᵀ, written by the kernel in x's layout [B,T,F]: kernel [F,G], or
// None when dx is not wanted (then dx() is nullptr and result() None).
template <typename scalar_t>
struct __attribute__((visibility("hidden"))) InputGradient {
  std::optional<carray<scalar_t>> kernel, dx;
  std::vector<scalar_t> Wt;  // kernelᵀ [G,F], filled by the kernel
  seqfuse::InputProjection<scalar_t> projection;

  scalar_t* dx_data() { return dx ? dx->mutable_data() : nullptr; }
  py::object result() const { return dx ? py::object(*dx) : py::object(py::none()); }
};

template <typename scalar_t>
InputGradient<scalar_t> input_gradient_arg(const py::object& kernel_in, const char* op,
                                           py::ssize_t T, py::ssize_t B, py::ssize_t G,
                                           bool go_backwards) {
  InputGradient<scalar_t> out;
  out.kernel = optional_float_arg<scalar_t>(kernel_in, op, "kernel");
  py::ssize_t F = 0;
  if (out.kernel) {
    require_ndim(*out.kernel, op, "kernel", 2);
    require_dim(*out.kernel, op, "kernel", 1, G);
    F = out.kernel->shape(0);
    out.dx.emplace(std::vector<py::ssize_t>{B, T, F});
  }
  out.Wt.resize(G * F);  // kernelᵀ, packed (transpose_packed, cpu/gemm.hpp)
  out.projection = {nullptr, data_or_null(out.kernel), nullptr, T, F, G, go_backwards};
  return out;
}

// The weight gradients [F+H, N] = Σ_{t,b} [x_t | h_{t-1}]ᵀ·dz_t summed inside a backward's
// loop (seqfuse::LoopWeights, cpu/gemm_tn.hpp), for x: [B,T,F] the layer's input, or None:
// not there (then loop() is nullptr and result() None).
template <typename scalar_t>
struct __attribute__((visibility("hidden"))) InLoopWeights {
  std::optional<carray<scalar_t>> x, C;
  std::vector<scalar_t> partials;
  seqfuse::LoopWeights<scalar_t> weights{};

  const seqfuse::LoopWeights<scalar_t>* loop() const { return C ? &weights : nullptr; }
  py::object result() const { return C ? py::object(*C) : py::object(py::none()); }
};

template <typename scalar_t>
InLoopWeights<scalar_t> in_loop_weights_arg(const py::object& x_in, const char* op, py::ssize_t T,
                                            py::ssize_t B, py::ssize_t H, py::ssize_t N,
                                            const seqfuse::States<const scalar_t>& hs,
                                            const scalar_t* h0, bool go_backwards) {
  InLoopWeights<scalar_t> out;
  out.x = optional_float_arg<scalar_t>(x_in, op, "x");
  if (!out.x) return out;
  require_ndim(*out.x, op, "x", 3);
  const py::ssize_t F = out.x->shape(2);
  require_shape(*out.x, op, "x", "(B, T, F)", {B, T, F});
  out.C.emplace(std::vector<py::ssize_t>{F + H, N});
  if (T * B == 0)  // no rows, so no loop writes C
    std::fill(out.C->mutable_data(), out.C->mutable_data() + (F + H) * N, scalar_t(0));
  out.partials.resize(std::max<py::ssize_t>(0, seqfuse::max_row_ranges() - 1) * (F + H) * N);
  const scalar_t* x = out.x->data();
  out.weights = {{{x + (go_backwards ? (T - 1) * F : 0), go_backwards ? -F : F, T * F},
                  {hs.data, hs.step, hs.row, h0, H}},
                 {F, H}, N, out.C->mutable_data(), out.partials.data()};
  out.weights.one_product();  // SimpleRNN's; GRU's binding sets its own (gru_loop_products)
  return out;
}

}  // namespace seqfuse_bind
