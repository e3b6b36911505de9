// The one PYBIND11_MODULE of engine._C. Each op's bindings live in bindings/<op>.cpp.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void bind_embedding(py::module_& m);

PYBIND11_MODULE(_C, m) {
  m.doc() = "seqfuse C++ kernels (private; use engine.functional)";
  bind_embedding(m);
}
