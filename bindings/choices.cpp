// engine._C.set_choice / choices / choice_options: the run-time kernel choices of
// kernels/cpu/choices.hpp, by name and value (engine/tuning.py sets them).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <map>
#include <string>
#include <vector>

#include "cpu/choices.hpp"

namespace py = pybind11;

namespace {

// name -> its values, in the order of the enum they map to.
const std::map<std::string, std::vector<std::string>>& options() {
  static const std::map<std::string, std::vector<std::string>> table{
      {"conv1d", {"auto", "direct", "gemm", "ragged_gemm", "wide_gemm"}},  // Conv1dAlgorithm (cpu/choices.hpp)
      {"gemm_tile", {"auto", "8x2", "8x3", "6x4", "6x1", "4x1"}},  // kGemmTiles (cpu/gemm.hpp): rows x 64 B
      {"weight_gradients", {"auto", "tile", "blas"}},               // WeightGradients (cpu/choices.hpp)
      {"backward_rows", {"auto", "in_place", "streamed"}},          // BackwardRows (cpu/choices.hpp)
      {"weights_in_loop", {"auto", "on", "off"}},                   // WeightsInLoop (cpu/choices.hpp)
      // GatherStores (cpu/choices.hpp)
      {"gather_stores", {"auto", "stream_above_8mib", "stream", "plain"}},
  };
  return table;
}

std::atomic<int>& slot(const std::string& name) {
  auto& c = seqfuse::choices();
  if (name == "conv1d") return c.conv1d;
  if (name == "gemm_tile") return c.gemm_tile;
  if (name == "weight_gradients") return c.weight_gradients;
  if (name == "backward_rows") return c.backward_rows;
  if (name == "weights_in_loop") return c.weights_in_loop;
  if (name == "gather_stores") return c.gather_stores;
  std::string known;
  for (const auto& [key, values] : options()) known += (known.empty() ? "" : ", ") + key;
  throw py::value_error("set_choice: unknown choice '" + name + "'; expected one of " + known);
}

void set_choice(const std::string& name, const std::string& value) {
  std::atomic<int>& target = slot(name);
  const auto& values = options().at(name);
  for (size_t i = 0; i < values.size(); ++i)
    if (values[i] == value) {
      target = static_cast<int>(i);
      return;
    }
  std::string known;
  for (const auto& v : values) known += (known.empty() ? "" : ", ") + v;
  throw py::value_error("set_choice: " + name + " must be one of " + known + ", got '" + value + "'");
}

std::map<std::string, std::string> current() {
  std::map<std::string, std::string> out;
  for (const auto& [name, values] : options()) out[name] = values.at(slot(name).load());
  return out;
}

}  // namespace

void bind_choices(py::module_& m) {
  m.def("set_choice", &set_choice, py::arg("name"), py::arg("value"),
        "select a kernel variant for this process, e.g. set_choice('conv1d', 'gemm')");
  m.def("choices", &current, "the kernel variant selected for each choice, {name: value}");
  m.def("choice_options", &options, "every choice and its values, {name: [values]}");
}
