// engine._C.build_info(): what this build of the extension was compiled for, so `seqfuse bench`
// can say whether the kernels use the instruction set the CPU offers (a wheel built with
// SEQFUSE_NATIVE=OFF runs baseline x86-64 code on an AVX-512 machine).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

namespace py = pybind11;

namespace {

// The compiler's target macros, named as /proc/cpuinfo names the CPU flags.
std::vector<std::string> isa() {
  std::vector<std::string> out;
#if defined(__SSE4_2__)
  out.push_back("sse4_2");
#endif
#if defined(__AVX__)
  out.push_back("avx");
#endif
#if defined(__AVX2__)
  out.push_back("avx2");
#endif
#if defined(__FMA__)
  out.push_back("fma");
#endif
#if defined(__AVX512F__)
  out.push_back("avx512f");
#endif
#if defined(__AVX512BW__)
  out.push_back("avx512bw");
#endif
#if defined(__AVX512VL__)
  out.push_back("avx512vl");
#endif
  return out;
}

py::dict build_info() {
  py::dict info;
  info["isa"] = isa();
#if defined(__clang__)
  info["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  info["compiler"] = std::string("GCC ") + __VERSION__;
#else
  info["compiler"] = std::string("unknown");
#endif
#if defined(SEQFUSE_OPENMP)
  info["openmp"] = true;
#else
  info["openmp"] = false;
#endif
  return info;
}

}  // namespace

void bind_build_info(py::module_& m) {
  m.def("build_info", &build_info,
        "what the extension was compiled for: {'isa': [cpuinfo flag names], 'compiler', 'openmp'}");
}
