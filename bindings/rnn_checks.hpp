// Argument checks shared by the recurrent bindings (lstm.cpp, gru.cpp, simple_rnn.cpp).
// Every float argument must have xw's dtype exactly (float32 or float64, never cast); shapes
// are checked against the sizes T, B, H read from xw and U before any kernel runs.
#pragma once
#include "common.hpp"

#include <initializer_list>
#include <optional>
#include <sstream>
#include <string>

namespace seqfuse_bind {

inline std::string dims_str(std::initializer_list<py::ssize_t> dims) {
  std::ostringstream s;
  s << "(";
  py::ssize_t i = 0;
  for (py::ssize_t d : dims) s << (i++ ? ", " : "") << d;
  s << (dims.size() == 1 ? ",)" : ")");
  return s.str();
}

// ValueError "op: name must have shape (B, H) = (4, 8), got (4, 7)".
inline void require_shape(const py::array& a, const char* op, const char* name, const char* symbols,
                          std::initializer_list<py::ssize_t> dims) {
  bool ok = a.ndim() == static_cast<py::ssize_t>(dims.size());
  py::ssize_t axis = 0;
  for (py::ssize_t d : dims) ok = ok && a.shape(axis++) == d;
  if (!ok) {
    std::ostringstream s;
    s << op << ": " << name << " must have shape " << symbols << " = " << dims_str(dims) << ", got "
      << shape_str(a);
    throw py::value_error(s.str());
  }
}

// A float argument as a C-contiguous array of scalar_t (the dtype of the op's first input);
// TypeError if its dtype differs.
template <typename scalar_t>
carray<scalar_t> float_arg(const py::array& a, const char* op, const char* name) {
  if (!py::isinstance<py::array_t<scalar_t>>(a)) {
    std::ostringstream s;
    s << op << ": " << name << " must be " << std::string(py::str(py::dtype::of<scalar_t>()))
      << " like the other float inputs, got " << std::string(py::str(a.dtype()));
    throw py::type_error(s.str());
  }
  return carray<scalar_t>(a);
}

// An optional float argument (None -> empty optional).
template <typename scalar_t>
std::optional<carray<scalar_t>> optional_float_arg(const py::object& a, const char* op,
                                                   const char* name) {
  if (a.is_none()) return std::nullopt;
  if (!py::isinstance<py::array>(a)) {
    std::ostringstream s;
    s << op << ": " << name << " must be a numpy array or None, got "
      << std::string(py::str(py::type::of(a)));
    throw py::type_error(s.str());
  }
  return float_arg<scalar_t>(py::reinterpret_borrow<py::array>(a), op, name);
}

// The step mask: None, or a bool array of shape [T,B].
inline std::optional<carray<bool>> mask_arg(const py::object& a, const char* op, py::ssize_t T,
                                            py::ssize_t B) {
  if (a.is_none()) return std::nullopt;
  if (!py::isinstance<py::array_t<bool>>(a)) {
    std::ostringstream s;
    s << op << ": mask must be a bool array of shape (T, B) or None, got "
      << (py::isinstance<py::array>(a) ? std::string(py::str(py::reinterpret_borrow<py::array>(a).dtype()))
                                       : std::string(py::str(py::type::of(a))));
    throw py::type_error(s.str());
  }
  carray<bool> mask(py::reinterpret_borrow<py::array>(a));
  require_shape(mask, op, "mask", "(T, B)", {T, B});
  return mask;
}

template <typename A>
auto data_or_null(const std::optional<A>& a) -> decltype(a->data()) {
  return a ? a->data() : nullptr;
}

}  // namespace seqfuse_bind
