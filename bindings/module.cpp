// The one PYBIND11_MODULE of engine._C. Each op's bindings live in bindings/<op>.cpp.
#include <pybind11/pybind11.h>

#include <pthread.h>
#if defined(SEQFUSE_OPENMP)
#include <omp.h>
#endif

namespace py = pybind11;

void bind_embedding(py::module_& m);
void bind_lstm(py::module_& m);
void bind_gru(py::module_& m);
void bind_simple_rnn(py::module_& m);
void bind_conv1d(py::module_& m);
void bind_max_pool1d(py::module_& m);
void bind_parallel(py::module_& m);
void bind_layout(py::module_& m);
void bind_blas(py::module_& m);
void bind_choices(py::module_& m);
void bind_build_info(py::module_& m);

namespace {

// GNU OpenMP cannot start a team in a forked child: the parent's pool threads are gone and the
// child would wait for them forever (multiprocessing's default start method on Linux). A child
// of a process that used the kernels therefore runs them on one thread.
void one_thread_after_fork() {
#if defined(SEQFUSE_OPENMP)
  omp_set_num_threads(1);
#endif
}

}  // namespace

// SEQFUSE_MODULE_NAME: _C, or _C_x86_64_v3 / _v4 for the level builds (CMakeLists.txt).
#ifndef SEQFUSE_MODULE_NAME
#define SEQFUSE_MODULE_NAME _C
#endif

PYBIND11_MODULE(SEQFUSE_MODULE_NAME, m) {
  m.doc() = "seqfuse C++ kernels (private; use engine.functional)";
  pthread_atfork(nullptr, nullptr, one_thread_after_fork);
  bind_embedding(m);
  bind_lstm(m);
  bind_gru(m);
  bind_simple_rnn(m);
  bind_conv1d(m);
  bind_max_pool1d(m);
  bind_parallel(m);
  bind_layout(m);
  bind_blas(m);
  bind_choices(m);
  bind_build_info(m);
}
