// The one PYBIND11_MODULE of engine._C. Each op's bindings live in bindings/<op>.cpp.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void bind_embedding(py::module_& m);
void bind_lstm(py::module_& m);
void bind_gru(py::module_& m);
void bind_simple_rnn(py::module_& m);
void bind_conv1d(py::module_& m);
void bind_max_pool1d(py::module_& m);
void bind_parallel(py::module_& m);
void bind_blas(py::module_& m);

PYBIND11_MODULE(_C, m) {
  m.doc() = "seqfuse C++ kernels (private; use engine.functional)";
  bind_embedding(m);
  bind_lstm(m);
  bind_gru(m);
  bind_simple_rnn(m);
  bind_conv1d(m);
  bind_max_pool1d(m);
  bind_parallel(m);
  bind_blas(m);
}
