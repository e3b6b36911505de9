// Validation helpers shared by the bindings: each failure is a Python exception that names
// the argument, what was expected and what arrived.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <new>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace seqfuse_bind {
namespace py = pybind11;

template <typename T>
using carray = py::array_t<T, py::array::c_style | py::array::forcecast>;

// Error messages are joined as std::string, integers through std::to_string, never with
// std::ostringstream. On the H200 machine's image (CXX=/opt/gcc/bin/g++, GCC 13.3,
// 2026-12-04) the extension came out with GCC 13's libstdc++ linked into it statically (no
// libstdc++.so in ldd; its own copy of the iostreams code), beside the newer shared
// libstdc++ (6.0.33, GCC 14's) the process had loaded, and every message with a number in it
// crashed instead of raising: SIGSEGV in the extension's copy of ostream::_M_insert<long>,
// which formats through the locale's facets. (A static link of the same GCC 12 as the shared
// library, on the Zen 4 VM, raised fine: the two versions mixing is the likely cause.)
// std::to_string needs no locale.
inline void append(std::string& s, const char* part) { s += part; }
inline void append(std::string& s, const std::string& part) { s += part; }
template <typename Int, typename = std::enable_if_t<std::is_integral_v<Int>>>
void append(std::string& s, Int part) {
  s += std::to_string(part);
}

template <typename... Parts>
std::string message(const Parts&... parts) {
  std::string s;
  (append(s, parts), ...);
  return s;
}

inline std::string dims_str(const py::ssize_t* dims, std::size_t n) {
  std::string s = "(";
  for (std::size_t i = 0; i < n; ++i) s += message(i ? ", " : "", dims[i]);
  return s + (n == 1 ? ",)" : ")");
}

inline std::string shape_str(const py::array& a) {
  return dims_str(a.shape(), static_cast<std::size_t>(a.ndim()));
}

inline void require_ndim(const py::array& a, const char* op, const char* name, py::ssize_t ndim) {
  if (a.ndim() != ndim) {
    throw py::value_error(message(op, ": ", name, " must have ", ndim, " dimensions, got shape ",
                                  shape_str(a)));
  }
}

inline void require_dim(const py::array& a, const char* op, const char* name, py::ssize_t axis,
                        py::ssize_t expected) {
  if (a.shape(axis) != expected) {
    throw py::value_error(message(op, ": ", name, " must have size ", expected, " on axis ", axis,
                                  ", got shape ", shape_str(a)));
  }
}

// Float arrays must be exactly float32 or float64 (no silent casts of the caller's data).
inline bool is_float64(const py::array& a, const char* op, const char* name) {
  if (py::isinstance<py::array_t<double>>(a)) return true;
  if (py::isinstance<py::array_t<float>>(a)) return false;
  throw py::type_error(message(op, ": ", name, " must be float32 or float64, got ",
                               std::string(py::str(a.dtype()))));
}

// ValueError "op: name must have shape (B, H) = (4, 8), got (4, 7)".
inline void require_shape(const py::array& a, const char* op, const char* name, const char* symbols,
                          std::initializer_list<py::ssize_t> dims) {
  bool ok = a.ndim() == static_cast<py::ssize_t>(dims.size());
  py::ssize_t axis = 0;
  for (py::ssize_t d : dims) ok = ok && a.shape(axis++) == d;
  if (!ok) {
    throw py::value_error(message(op, ": ", name, " must have shape ", symbols, " = ",
                                  dims_str(dims.begin(), dims.size()), ", got ", shape_str(a)));
  }
}

// TypeError unless `a` has scalar_t's dtype (the dtype of the op's first input).
template <typename scalar_t>
void require_dtype(const py::array& a, const char* op, const char* name) {
  if (!py::isinstance<py::array_t<scalar_t>>(a)) {
    throw py::type_error(message(op, ": ", name, " must be ",
                                 std::string(py::str(py::dtype::of<scalar_t>())),
                                 " like the other float inputs, got ",
                                 std::string(py::str(a.dtype()))));
  }
}

// `in` as an array of T read where it lies, at its element strides (any sign, 0 for a
// broadcast); a misaligned view (into packed records), which cannot be indexed with element
// strides, is copied (numpy's copy is aligned, C order).
template <typename T>
py::array_t<T, py::array::forcecast> strided_arg(const py::array& in) {
  py::array_t<T, py::array::forcecast> a(in);
  bool aligned = reinterpret_cast<std::uintptr_t>(a.data()) % alignof(T) == 0;
  for (py::ssize_t i = 0; i < a.ndim(); ++i)
    aligned = aligned && a.strides(i) % static_cast<py::ssize_t>(sizeof(T)) == 0;
  return aligned ? a : py::array_t<T, py::array::forcecast>(a.attr("copy")());
}

// A float argument as a C-contiguous array of scalar_t; TypeError if its dtype differs.
template <typename scalar_t>
carray<scalar_t> float_arg(const py::array& a, const char* op, const char* name) {
  require_dtype<scalar_t>(a, op, name);
  return carray<scalar_t>(a);
}

// An optional float argument (None -> empty optional).
template <typename scalar_t>
std::optional<carray<scalar_t>> optional_float_arg(const py::object& a, const char* op,
                                                   const char* name) {
  if (a.is_none()) return std::nullopt;
  if (!py::isinstance<py::array>(a)) {
    throw py::type_error(message(op, ": ", name, " must be a numpy array or None, got ",
                                 std::string(py::str(py::type::of(a)))));
  }
  return float_arg<scalar_t>(py::reinterpret_borrow<py::array>(a), op, name);
}

// A new C-order array for a kernel to write, its data on a 64-byte (cache line) boundary,
// in memory of its own (malloc'd, freed by a capsule, the array's base): no other array
// views it, so engine/tensor.py may keep a kernel's gradient as a leaf's .grad without a copy.
// NumPy's own large arrays start 16 or 32 bytes past a line, so every row of a multiple of 64
// bytes straddles a line more than it needs to, and a 64-byte vector store always splits in
// two. 2-vCPU Intel Xeon (family 6, model 167), 2026-12-02, embedding gathers of 128 float32
// columns, medians of 9 steady rounds, both ways alternating in one process, NumPy's
// placement -> aligned: 1.0 MiB out 0.025-0.027 -> 0.018-0.021 ms, 3.1 MiB 0.176 ->
// 0.139-0.148, 7.8 MiB 0.39-0.50 -> 0.35-0.42 (300 and 100 columns: even); recurrent steps
// (64,100,64,128): GRU 15.72 -> 15.27 ms, LSTM 19.61 -> 19.24, SimpleRNN even
// (bench/profile_step.py, medians of 40).
template <typename T>
carray<T> output(std::initializer_list<py::ssize_t> shape) {
  constexpr std::uintptr_t kAlign = 64;
  std::vector<py::ssize_t> dims(shape), strides(dims.size());
  py::ssize_t size = 1;
  for (size_t i = dims.size(); i-- > 0;) {
    strides[i] = size * static_cast<py::ssize_t>(sizeof(T));
    size *= dims[i];
  }
  // malloc and round up, not aligned_alloc: glibc's aligned allocations faulted fresh pages
  // again after a free (GRU (128,200,128,256) training: 11,500 page faults a step, 3% of it),
  // its plain ones reuse the heap that engine/_memory.py keeps.
  void* raw = std::malloc(size * sizeof(T) + kAlign);
  if (!raw) throw std::bad_alloc();
  py::capsule owner;
  try {
    owner = py::capsule(raw, [](void* q) { std::free(q); });
  } catch (...) {
    std::free(raw);
    throw;
  }
  const auto at = (reinterpret_cast<std::uintptr_t>(raw) + kAlign - 1) / kAlign * kAlign;
  return carray<T>(dims, strides, reinterpret_cast<T*>(at), owner);
}

template <typename A>
auto data_or_null(const std::optional<A>& a) -> decltype(a->data()) {
  return a ? a->data() : nullptr;
}

}  // namespace seqfuse_bind
