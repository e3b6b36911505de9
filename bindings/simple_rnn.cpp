// engine._C.simple_rnn_forward / simple_rnn_backward: validate, allocate, release the GIL,
// call kernels/cpu/simple_rnn.hpp. Shapes as in docs/kernels.md ("simple_rnn").
#include "cpu/simple_rnn.hpp"
#include "rnn_checks.hpp"

#include <vector>

namespace py = pybind11;
using namespace seqfuse_bind;

namespace {

constexpr const char* OP = "simple_rnn";

template <typename scalar_t>
py::array forward(const py::array& x_in, const py::array& kernel_in, const py::object& bias_in,
                  const py::array& U_in, const py::array& h0_in, const py::object& mask_in,
                  const py::object& dm_in, bool go_backwards) {
  auto U = float_arg<scalar_t>(U_in, OP, "U");
  require_ndim(U, OP, "U", 2);
  const py::ssize_t H = U.shape(0);
  require_shape(U, OP, "U", "(H, H)", {H, H});
  auto in = projection_args<scalar_t>(x_in, kernel_in, bias_in, OP, "H", H);
  const py::ssize_t B = in.x.shape(0), T = in.x.shape(1);
  auto h0 = float_arg<scalar_t>(h0_in, OP, "h0");
  require_shape(h0, OP, "h0", "(B, H)", {B, H});
  auto mask = mask_arg(mask_in, OP, T, B);
  auto dm = optional_float_arg<scalar_t>(dm_in, OP, "dropout_mask");
  if (dm) require_shape(*dm, OP, "dropout_mask", "(B, H)", {B, H});

  StateSequence<scalar_t> hs(T, B, H);
  std::vector<scalar_t> hd_ws(dm ? B * H : 0);
  {
    py::gil_scoped_release release;
    seqfuse::simple_rnn_forward<scalar_t>(T, B, H, in.projection(go_backwards), U.data(), h0.data(),
                                          data_or_null(mask), data_or_null(dm), hs.states(),
                                          hd_ws.data());
  }
  return hs.result();
}

template <typename scalar_t>
py::tuple backward(const py::array& dhs_in, const py::array& U_in, const py::array& h0_in,
                   const py::array& hs_in, const py::object& mask_in, const py::object& dm_in,
                   const py::object& kernel_in, bool go_backwards, const py::object& x_in) {
  auto dhs = sequence_arg<scalar_t>(dhs_in, OP, "dhs");
  auto U = float_arg<scalar_t>(U_in, OP, "U");
  require_ndim(U, OP, "U", 2);
  const py::ssize_t T = dhs.shape(0), B = dhs.shape(1), H = U.shape(0);
  require_shape(U, OP, "U", "(H, H)", {H, H});
  require_shape(dhs, OP, "dhs", "(T, B, H)", {T, B, H});
  auto h0 = float_arg<scalar_t>(h0_in, OP, "h0");
  auto hs = sequence_arg<scalar_t>(hs_in, OP, "hs");
  require_shape(h0, OP, "h0", "(B, H)", {B, H});
  require_shape(hs, OP, "hs", "(T, B, H)", {T, B, H});
  auto mask = mask_arg(mask_in, OP, T, B);
  auto dm = optional_float_arg<scalar_t>(dm_in, OP, "dropout_mask");
  if (dm) require_shape(*dm, OP, "dropout_mask", "(B, H)", {B, H});

  auto in = input_gradient_arg<scalar_t>(kernel_in, OP, T, B, H, go_backwards);
  if (dm && !x_in.is_none())
    throw py::value_error(std::string(OP) + ": x (the weight gradients summed in the loop) cannot "
                          "be given with a dropout_mask: dU is then Σ (h·dropout_mask)ᵀ·dz");
  auto weights = in_loop_weights_arg<scalar_t>(x_in, OP, T, B, H, H, sequence_rows(hs), h0.data(),
                                               go_backwards);

  std::optional<carray<scalar_t>> dz;  // none with the weights summed in the loop (its rows stay there)
  if (!weights.loop()) dz = output<scalar_t>({T, B, H});
  auto dbias = output<scalar_t>({H});
  auto dh0 = output<scalar_t>({B, H});
  std::vector<scalar_t> Ut(H * H), dh_ws(B * H), dhd_ws(B * H);
  std::vector<double> sums_ws(seqfuse::max_row_ranges() * H);
  {
    py::gil_scoped_release release;
    seqfuse::simple_rnn_backward<scalar_t>(T, B, H, sequence_rows(dhs), U.data(), sequence_rows(hs),
                                           data_or_null(mask), data_or_null(dm), in.projection,
                                           dz ? dz->mutable_data() : nullptr, in.dx_data(),
                                           dbias.mutable_data(), dh0.mutable_data(),
                                           {sums_ws.data(), H}, Ut.data(),
                                           in.Wt.data(), dh_ws.data(), dhd_ws.data(), weights.loop());
  }
  return py::make_tuple(dz ? py::object(*dz) : py::object(py::none()), in.result(), dbias, dh0,
                        weights.result());
}

}  // namespace

void bind_simple_rnn(py::module_& m) {
  m.def("simple_rnn_forward",
        [](const py::array& x, const py::array& kernel, const py::object& bias, const py::array& U,
           const py::array& h0, const py::object& mask, const py::object& dropout_mask,
           bool go_backwards, bool /*save: hs is all SimpleRNN keeps either way*/) {
          return is_float64(x, OP, "x")
                     ? forward<double>(x, kernel, bias, U, h0, mask, dropout_mask, go_backwards)
                     : forward<float>(x, kernel, bias, U, h0, mask, dropout_mask, go_backwards);
        },
        py::arg("x"), py::arg("kernel"), py::arg("bias").none(true), py::arg("U"), py::arg("h0"),
        py::arg("mask").none(true), py::arg("dropout_mask").none(true), py::kw_only(),
        py::arg("go_backwards") = false, py::arg("save") = true,
        "x: [B,T,F], kernel: [F,H], bias: [H] or None, U: [H,H], h0: [B,H], mask: [T,B] bool "
        "(processing order) or None, dropout_mask: [B,H] or None -> hs [T,B,H] in processing "
        "order, a view of batch-major memory (the layer's output layout); save changes nothing");
  m.def("simple_rnn_backward",
        [](const py::array& dhs, const py::array& U, const py::array& h0, const py::array& hs,
           const py::object& mask, const py::object& dropout_mask, const py::object& kernel,
           bool go_backwards, const py::object& x) {
          return is_float64(dhs, OP, "dhs")
                     ? backward<double>(dhs, U, h0, hs, mask, dropout_mask, kernel, go_backwards, x)
                     : backward<float>(dhs, U, h0, hs, mask, dropout_mask, kernel, go_backwards, x);
        },
        py::arg("dhs"), py::arg("U"), py::arg("h0"), py::arg("hs"), py::arg("mask").none(true),
        py::arg("dropout_mask").none(true), py::kw_only(),
        py::arg("kernel").none(true) = py::none(), py::arg("go_backwards") = false,
        py::arg("x").none(true) = py::none(),
        "dhs: [T,B,H], rest as simple_rnn_forward's inputs and output; kernel: [F,H] for dx, or "
        "None; x: [B,T,F] the layer's input, for the weight gradients summed in the loop (not "
        "with a dropout_mask), or None -> (dz [T,B,H] (None with x), dx [B,T,F] or None, dbias "
        "[H] = dz summed over T and B, dh0 [B,H], [dkernel; dU] [F+H,H] (with x) or None)");
}
