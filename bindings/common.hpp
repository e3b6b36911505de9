// Validation helpers shared by the bindings: each failure is a Python exception that names
// the argument, what was expected and what arrived.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <sstream>
#include <string>

namespace seqfuse_bind {
namespace py = pybind11;

template <typename T>
using carray = py::array_t<T, py::array::c_style | py::array::forcecast>;

inline std::string shape_str(const py::array& a) {
  std::ostringstream s;
  s << "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
  s << (a.ndim() == 1 ? ",)" : ")");
  return s.str();
}

inline void require_ndim(const py::array& a, const char* op, const char* name, py::ssize_t ndim) {
  if (a.ndim() != ndim) {
    std::ostringstream s;
    s << op << ": " << name << " must have " << ndim << " dimensions, got shape " << shape_str(a);
    throw py::value_error(s.str());
  }
}

inline void require_dim(const py::array& a, const char* op, const char* name, py::ssize_t axis,
                        py::ssize_t expected) {
  if (a.shape(axis) != expected) {
    std::ostringstream s;
    s << op << ": " << name << " must have size " << expected << " on axis " << axis
      << ", got shape " << shape_str(a);
    throw py::value_error(s.str());
  }
}

// Float arrays must be exactly float32 or float64 (no silent casts of the caller's data).
inline bool is_float64(const py::array& a, const char* op, const char* name) {
  if (py::isinstance<py::array_t<double>>(a)) return true;
  if (py::isinstance<py::array_t<float>>(a)) return false;
  std::ostringstream s;
  s << op << ": " << name << " must be float32 or float64, got " << std::string(py::str(a.dtype()));
  throw py::type_error(s.str());
}

}  // namespace seqfuse_bind
