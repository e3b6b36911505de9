// engine._C.lstm_forward / lstm_backward: validate, allocate, release the GIL, call
// kernels/cpu/lstm.hpp. Shapes as in docs/kernels.md ("lstm"), time-major.
#include "cpu/lstm.hpp"
#include "rnn_checks.hpp"

#include <vector>

namespace py = pybind11;
using namespace seqfuse_bind;

namespace {

constexpr const char* OP = "lstm";

template <typename scalar_t>
py::tuple forward(const py::array& x_in, const py::array& kernel_in, const py::object& bias_in,
                  const py::array& U_in, const py::array& h0_in, const py::array& c0_in,
                  const py::object& mask_in, const py::object& dm_in, bool go_backwards,
                  bool save) {
  auto U = float_arg<scalar_t>(U_in, OP, "U");
  require_ndim(U, OP, "U", 2);
  const py::ssize_t H = U.shape(0);
  require_shape(U, OP, "U", "(H, 4H)", {H, 4 * H});
  auto in = projection_args<scalar_t>(x_in, kernel_in, bias_in, OP, "4H", 4 * H);
  const py::ssize_t B = in.x.shape(0), T = in.x.shape(1);
  auto h0 = float_arg<scalar_t>(h0_in, OP, "h0");
  auto c0 = float_arg<scalar_t>(c0_in, OP, "c0");
  require_shape(h0, OP, "h0", "(B, H)", {B, H});
  require_shape(c0, OP, "c0", "(B, H)", {B, H});
  auto mask = mask_arg(mask_in, OP, T, B);
  auto dm = optional_float_arg<scalar_t>(dm_in, OP, "dropout_mask");
  if (dm) require_shape(*dm, OP, "dropout_mask", "(B, H)", {B, H});

  // Without save, cs is a ring of two steps and no gates are kept (cpu/lstm.hpp).
  StateSequence<scalar_t> hs(T, B, H);
  auto cs = output<scalar_t>({save ? T : 2, B, H});
  auto gates = output<scalar_t>({save ? T : 0, B, 4 * H});
  std::vector<scalar_t> z_ws(B * 4 * H), hd_ws(dm ? B * H : 0);
  {
    py::gil_scoped_release release;
    seqfuse::lstm_forward<scalar_t>(T, B, H, in.projection(go_backwards), U.data(), h0.data(), c0.data(),
                                    data_or_null(mask), data_or_null(dm), save, hs.states(),
                                    cs.mutable_data(), save ? gates.mutable_data() : nullptr,
                                    z_ws.data(), hd_ws.data());
  }
  if (save) return py::make_tuple(hs.result(), cs, gates);
  // c_T, an output of the layer, is in ring slot (T-1) % 2.
  const py::ssize_t last = (T - 1) % 2;
  return py::make_tuple(hs.result(), cs[py::slice(last, last + 1, 1)], py::none());
}

template <typename scalar_t>
py::tuple backward(const py::array& dhs_in, const py::array& dc_T_in, const py::array& U_in,
                   const py::array& h0_in, const py::array& c0_in, const py::array& hs_in,
                   const py::array& cs_in, const py::array& gates_in, const py::object& mask_in,
                   const py::object& dm_in, const py::object& kernel_in, bool go_backwards,
                   bool overwrite_saved) {
  auto dhs = sequence_arg<scalar_t>(dhs_in, OP, "dhs");
  auto U = float_arg<scalar_t>(U_in, OP, "U");
  require_ndim(U, OP, "U", 2);
  const py::ssize_t T = dhs.shape(0), B = dhs.shape(1), H = U.shape(0);
  require_shape(U, OP, "U", "(H, 4H)", {H, 4 * H});
  require_shape(dhs, OP, "dhs", "(T, B, H)", {T, B, H});
  auto dc_T = float_arg<scalar_t>(dc_T_in, OP, "dc_T");
  auto h0 = float_arg<scalar_t>(h0_in, OP, "h0");
  auto c0 = float_arg<scalar_t>(c0_in, OP, "c0");
  require_dtype<scalar_t>(hs_in, OP, "hs");  // checked, not read: any layout (the forward's)
  auto cs = float_arg<scalar_t>(cs_in, OP, "cs");
  auto gates = float_arg<scalar_t>(gates_in, OP, "gates");
  require_shape(dc_T, OP, "dc_T", "(B, H)", {B, H});
  require_shape(h0, OP, "h0", "(B, H)", {B, H});
  require_shape(c0, OP, "c0", "(B, H)", {B, H});
  require_shape(hs_in, OP, "hs", "(T, B, H)", {T, B, H});
  require_shape(cs, OP, "cs", "(T, B, H)", {T, B, H});
  require_shape(gates, OP, "gates", "(T, B, 4H)", {T, B, 4 * H});
  auto mask = mask_arg(mask_in, OP, T, B);
  auto dm = optional_float_arg<scalar_t>(dm_in, OP, "dropout_mask");
  if (dm) require_shape(*dm, OP, "dropout_mask", "(B, H)", {B, H});
  auto in = input_gradient_arg<scalar_t>(kernel_in, OP, T, B, 4 * H, go_backwards);

  auto dz = gradient_over_saved<scalar_t>(gates_in, gates, overwrite_saved, T, B, 4 * H);
  auto dbias = output<scalar_t>({4 * H});
  auto dh0 = output<scalar_t>({B, H});
  auto dc0 = output<scalar_t>({B, H});
  std::vector<scalar_t> Ut(4 * H * H), dh_ws(B * H), dhd_ws(B * H), dc_ws(B * H);
  std::vector<double> sums_ws(seqfuse::max_row_ranges() * 4 * H);
  {
    py::gil_scoped_release release;
    seqfuse::lstm_backward<scalar_t>(T, B, H, sequence_rows(dhs), dc_T.data(), U.data(), c0.data(),
                                     cs.data(), gates.data(), data_or_null(mask), data_or_null(dm),
                                     in.projection, dz.mutable_data(), in.dx_data(),
                                     dbias.mutable_data(), dh0.mutable_data(), dc0.mutable_data(),
                                     {sums_ws.data(), 4 * H}, Ut.data(), in.Wt.data(),
                                     dh_ws.data(), dhd_ws.data(), dc_ws.data());
  }
  return py::make_tuple(dz, in.result(), dbias, dh0, dc0);
}

}  // namespace

void bind_lstm(py::module_& m) {
  m.def("lstm_forward",
        [](const py::array& x, const py::array& kernel, const py::object& bias, const py::array& U,
           const py::array& h0, const py::array& c0, const py::object& mask,
           const py::object& dropout_mask, bool go_backwards, bool save) {
          return is_float64(x, OP, "x")
                     ? forward<double>(x, kernel, bias, U, h0, c0, mask, dropout_mask, go_backwards, save)
                     : forward<float>(x, kernel, bias, U, h0, c0, mask, dropout_mask, go_backwards, save);
        },
        py::arg("x"), py::arg("kernel"), py::arg("bias").none(true), py::arg("U"), py::arg("h0"),
        py::arg("c0"), py::arg("mask").none(true), py::arg("dropout_mask").none(true),
        py::kw_only(), py::arg("go_backwards") = false, py::arg("save") = true,
        "x: [B,T,F], kernel: [F,4H], bias: [4H] or None, U: [H,4H], h0, c0: [B,H], mask: [T,B] "
        "bool (processing order) or None, dropout_mask: [B,H] or None -> (hs [T,B,H], cs [T,B,H], "
        "gates [T,B,4H] activated i,f,g,o), time-major in processing order; with save=False "
        "(inference) cs is only its last step [1,B,H] and gates is None");
  m.def("lstm_backward",
        [](const py::array& dhs, const py::array& dc_T, const py::array& U, const py::array& h0,
           const py::array& c0, const py::array& hs, const py::array& cs, const py::array& gates,
           const py::object& mask, const py::object& dropout_mask, const py::object& kernel,
           bool go_backwards, bool overwrite_saved) {
          return is_float64(dhs, OP, "dhs")
                     ? backward<double>(dhs, dc_T, U, h0, c0, hs, cs, gates, mask, dropout_mask,
                                        kernel, go_backwards, overwrite_saved)
                     : backward<float>(dhs, dc_T, U, h0, c0, hs, cs, gates, mask, dropout_mask,
                                       kernel, go_backwards, overwrite_saved);
        },
        py::arg("dhs"), py::arg("dc_T"), py::arg("U"), py::arg("h0"), py::arg("c0"), py::arg("hs"),
        py::arg("cs"), py::arg("gates"), py::arg("mask").none(true),
        py::arg("dropout_mask").none(true), py::kw_only(), py::arg("kernel").none(true) = py::none(),
        py::arg("go_backwards") = false, py::arg("overwrite_saved") = false,
        "dhs: [T,B,H], dc_T: [B,H], rest as lstm_forward's inputs and outputs; kernel: [F,4H] "
        "for dx, or None -> (dz [T,B,4H], dx [B,T,F] or None, dbias [4H] = dz summed over T and B, "
        "dh0 [B,H], dc0 [B,H]); overwrite_saved: the caller discards gates, so dz may be "
        "written over it (it is, where gates is a writeable C-contiguous array of dhs's dtype "
        "and dz's shape)");
}
