// engine._C.gru_forward / gru_backward: validate, allocate, release the GIL, call
// kernels/cpu/gru.hpp. Shapes as in docs/kernels.md ("gru"), time-major.
#include "cpu/gru.hpp"
#include "rnn_checks.hpp"

#include <vector>

namespace py = pybind11;
using namespace seqfuse_bind;

namespace {

constexpr const char* OP = "gru";

template <typename scalar_t>
std::optional<carray<scalar_t>> recurrent_bias_arg(const py::object& rb_in, py::ssize_t H,
                                                   bool reset_after) {
  auto rb = optional_float_arg<scalar_t>(rb_in, OP, "recurrent_bias");
  if (rb && !reset_after)
    throw py::value_error("gru: recurrent_bias must be None when reset_after=False "
                          "(the whole bias is inside xw)");
  if (rb) require_shape(*rb, OP, "recurrent_bias", "(3H,)", {3 * H});
  return rb;
}

template <typename scalar_t>
py::tuple forward(const py::array& x_in, const py::array& kernel_in, const py::object& bias_in,
                  const py::array& U_in, const py::object& rb_in, const py::array& h0_in,
                  const py::object& mask_in, const py::object& dm_in, bool reset_after,
                  bool go_backwards, bool save) {
  auto U = float_arg<scalar_t>(U_in, OP, "U");
  require_ndim(U, OP, "U", 2);
  const py::ssize_t H = U.shape(0);
  require_shape(U, OP, "U", "(H, 3H)", {H, 3 * H});
  auto in = projection_args<scalar_t>(x_in, kernel_in, bias_in, OP, "3H", 3 * H);
  const py::ssize_t B = in.x.shape(0), T = in.x.shape(1);
  auto rb = recurrent_bias_arg<scalar_t>(rb_in, H, reset_after);
  auto h0 = float_arg<scalar_t>(h0_in, OP, "h0");
  require_shape(h0, OP, "h0", "(B, H)", {B, H});
  auto mask = mask_arg(mask_in, OP, T, B);
  auto dm = optional_float_arg<scalar_t>(dm_in, OP, "dropout_mask");
  if (dm) require_shape(*dm, OP, "dropout_mask", "(B, H)", {B, H});

  // Without save, gates and uh are one step of scratch (cpu/gru.hpp).
  const py::ssize_t steps = save ? T : 1;
  StateSequence<scalar_t> hs(T, B, H);
  auto gates = output<scalar_t>({steps, B, 3 * H});
  carray<scalar_t> uh = reset_after ? output<scalar_t>({steps, B, H}) : carray<scalar_t>(0);
  std::vector<scalar_t> xw_ws(B * 3 * H), u_ws(B * (reset_after ? 3 * H : H)), hd_ws(dm ? B * H : 0);
  {
    py::gil_scoped_release release;
    seqfuse::gru_forward<scalar_t>(T, B, H, in.projection(go_backwards), U.data(), data_or_null(rb),
                                   h0.data(), data_or_null(mask), data_or_null(dm), reset_after,
                                   save, hs.states(), gates.mutable_data(),
                                   uh.mutable_data(), xw_ws.data(), u_ws.data(), hd_ws.data());
  }
  if (!save) return py::make_tuple(hs.result(), py::none(), py::none());
  return py::make_tuple(hs.result(), gates, uh);
}

template <typename scalar_t>
py::tuple backward(const py::array& dhs_in, const py::array& U_in, const py::object& rb_in,
                   const py::array& h0_in, const py::array& hs_in, const py::array& gates_in,
                   const py::array& uh_in, const py::object& mask_in, const py::object& dm_in,
                   bool reset_after, const py::object& kernel_in, bool go_backwards,
                   bool overwrite_saved, const py::object& x_in) {
  auto dhs = sequence_arg<scalar_t>(dhs_in, OP, "dhs");
  auto U = float_arg<scalar_t>(U_in, OP, "U");
  require_ndim(U, OP, "U", 2);
  const py::ssize_t T = dhs.shape(0), B = dhs.shape(1), H = U.shape(0);
  require_shape(U, OP, "U", "(H, 3H)", {H, 3 * H});
  require_shape(dhs, OP, "dhs", "(T, B, H)", {T, B, H});
  recurrent_bias_arg<scalar_t>(rb_in, H, reset_after);
  auto h0 = float_arg<scalar_t>(h0_in, OP, "h0");
  auto hs = sequence_arg<scalar_t>(hs_in, OP, "hs");
  auto gates = float_arg<scalar_t>(gates_in, OP, "gates");
  require_shape(h0, OP, "h0", "(B, H)", {B, H});
  require_shape(hs, OP, "hs", "(T, B, H)", {T, B, H});
  require_shape(gates, OP, "gates", "(T, B, 3H)", {T, B, 3 * H});
  auto uh = float_arg<scalar_t>(uh_in, OP, "uh");
  if (reset_after) require_shape(uh, OP, "uh", "(T, B, H)", {T, B, H});
  auto mask = mask_arg(mask_in, OP, T, B);
  auto dm = optional_float_arg<scalar_t>(dm_in, OP, "dropout_mask");
  if (dm) require_shape(*dm, OP, "dropout_mask", "(B, H)", {B, H});

  auto in = input_gradient_arg<scalar_t>(kernel_in, OP, T, B, 3 * H, go_backwards);
  if (!x_in.is_none() && (dm || !reset_after))
    throw py::value_error(std::string(OP) + ": x (the weight gradients summed in the loop) needs "
                          "reset_after=True and no dropout_mask: dU's candidate columns are then "
                          "Σ hᵀ·du");
  auto weights = in_loop_weights_arg<scalar_t>(x_in, OP, T, B, H, 3 * H, sequence_rows(hs),
                                               h0.data(), go_backwards);
  if (weights.loop()) seqfuse::gru_loop_products(weights.weights, H);

  // dbias: (Σ dxw, Σ recurrent gradient) with reset_after (the layer's [2,3H] bias), else
  // Σ dxw; du: the recurrent gradient's h columns (its z,r columns are dxw's).
  const py::ssize_t sums = (reset_after ? 2 : 1) * 3 * H;
  // None with the weights summed in the loop (their rows stay there).
  std::optional<carray<scalar_t>> dxw, du;
  if (!weights.loop()) {
    dxw = gradient_over_saved<scalar_t>(gates_in, gates, overwrite_saved, T, B, 3 * H);
    du = gradient_over_saved<scalar_t>(uh_in, uh, overwrite_saved && reset_after, T, B, H);
  }
  auto dh0 = output<scalar_t>({B, H});
  carray<scalar_t> dbias = reset_after ? output<scalar_t>({2, 3 * H}) : output<scalar_t>({3 * H});
  std::vector<scalar_t> Ut(3 * H * H), dh_ws(B * H), dhd_ws(B * H), drh_ws(reset_after ? 0 : B * H);
  std::vector<double> sums_ws(seqfuse::max_row_ranges() * sums);
  {
    py::gil_scoped_release release;
    seqfuse::gru_backward<scalar_t>(T, B, H, sequence_rows(dhs), U.data(), h0.data(),
                                    sequence_rows(hs), gates.data(), uh.data(), data_or_null(mask),
                                    data_or_null(dm),
                                    reset_after, in.projection,
                                    dxw ? dxw->mutable_data() : nullptr, in.dx_data(),
                                    du ? du->mutable_data() : nullptr, dbias.mutable_data(),
                                    dh0.mutable_data(), {sums_ws.data(), sums}, Ut.data(),
                                    in.Wt.data(), dh_ws.data(), dhd_ws.data(), drh_ws.data(),
                                    weights.loop());
  }
  const auto or_none = [](const std::optional<carray<scalar_t>>& a) {
    return a ? py::object(*a) : py::object(py::none());
  };
  return py::make_tuple(or_none(dxw), in.result(), or_none(du), dbias, dh0, weights.result());
}

}  // namespace

void bind_gru(py::module_& m) {
  m.def("gru_forward",
        [](const py::array& x, const py::array& kernel, const py::object& bias, const py::array& U,
           const py::object& recurrent_bias, const py::array& h0, const py::object& mask,
           const py::object& dropout_mask, bool reset_after, bool go_backwards, bool save) {
          return is_float64(x, OP, "x")
                     ? forward<double>(x, kernel, bias, U, recurrent_bias, h0, mask, dropout_mask,
                                       reset_after, go_backwards, save)
                     : forward<float>(x, kernel, bias, U, recurrent_bias, h0, mask, dropout_mask,
                                      reset_after, go_backwards, save);
        },
        py::arg("x"), py::arg("kernel"), py::arg("bias").none(true), py::arg("U"),
        py::arg("recurrent_bias").none(true), py::arg("h0"), py::arg("mask").none(true),
        py::arg("dropout_mask").none(true), py::arg("reset_after") = true, py::kw_only(),
        py::arg("go_backwards") = false, py::arg("save") = true,
        "x: [B,T,F], kernel: [F,3H], bias: [3H] (input bias) or None, U: [H,3H], "
        "recurrent_bias: [3H] or None, h0: [B,H], mask: [T,B] bool (processing order) or None, "
        "dropout_mask: [B,H] or None -> (hs [T,B,H], gates [T,B,3H] activated z,r,n, "
        "uh [T,B,H], or [0] when reset_after=False), time-major in processing order; gates and "
        "uh are None when save=False (inference)");
  m.def("gru_backward",
        [](const py::array& dhs, const py::array& U, const py::object& recurrent_bias,
           const py::array& h0, const py::array& hs, const py::array& gates, const py::array& uh,
           const py::object& mask, const py::object& dropout_mask, bool reset_after,
           const py::object& kernel, bool go_backwards, bool overwrite_saved, const py::object& x) {
          return is_float64(dhs, OP, "dhs")
                     ? backward<double>(dhs, U, recurrent_bias, h0, hs, gates, uh, mask,
                                        dropout_mask, reset_after, kernel, go_backwards,
                                        overwrite_saved, x)
                     : backward<float>(dhs, U, recurrent_bias, h0, hs, gates, uh, mask,
                                       dropout_mask, reset_after, kernel, go_backwards,
                                       overwrite_saved, x);
        },
        py::arg("dhs"), py::arg("U"), py::arg("recurrent_bias").none(true), py::arg("h0"),
        py::arg("hs"), py::arg("gates"), py::arg("uh"), py::arg("mask").none(true),
        py::arg("dropout_mask").none(true), py::arg("reset_after") = true, py::kw_only(),
        py::arg("kernel").none(true) = py::none(), py::arg("go_backwards") = false,
        py::arg("overwrite_saved") = false, py::arg("x").none(true) = py::none(),
        "dhs: [T,B,H], rest as gru_forward's inputs and outputs; kernel: [F,3H] for dx, or None "
        "-> (dxw [T,B,3H], dx [B,T,F] or None, du [T,B,H] gradient of the candidate's recurrent "
        "pre-activation (the z,r columns of the recurrent gradient are dxw's), dbias [2,3H] = "
        "(dxw, [dxw_zr | du]) summed over T and B, or [3H] = dxw's sum when reset_after=False, "
        "dh0 [B,H], None); overwrite_saved: the caller discards gates and uh, so dxw and du may "
        "be written over them (they are, where those are writeable C-contiguous arrays of dhs's "
        "dtype and the gradient's shape); x: [B,T,F] the layer's input, for the weight "
        "gradients summed in the loop (reset_after, no dropout_mask), or None -> then dxw and "
        "du are None and the last item is [dkernel; dU] [F+H,3H]");
}
