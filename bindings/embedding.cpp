// engine._C.embedding_forward / embedding_coalesce: validate, allocate, release the GIL, call
// kernels/cpu/embedding.hpp.
#include "common.hpp"
#include "cpu/embedding.hpp"

#include <cstdint>

namespace py = pybind11;
using namespace seqfuse_bind;

namespace {

// IndexError naming the first id outside [0, v). The common case, every id in range, is one
// branch-free pass GCC vectorizes (the ids as unsigned, so a negative one is out of range
// too); the first bad position is looked for only then. A loop that stopped at the first
// bad id ran one id at a time, on one thread while the other waited: 32,000 ids of 128
// floats, raw gather 635 -> 614 us, one float 108 -> 82 us (two builds alternating, medians
// of 300, Intel Xeon family 6 model 167, 2026-12-03).
void check_ids(const carray<int64_t>& ids, int64_t v) {
  const int64_t* p = ids.data();
  const py::ssize_t n = ids.size();
  bool bad = false;
  for (py::ssize_t i = 0; i < n; ++i) bad |= static_cast<uint64_t>(p[i]) >= static_cast<uint64_t>(v);
  if (!bad) return;
  for (py::ssize_t i = 0; i < n; ++i) {
    if (p[i] < 0 || p[i] >= v) {
      throw py::index_error(
          message("embedding: ids must be in [0, ", v, "), got ", p[i], " at flat position ", i));
    }
  }
}

template <typename T>
py::array forward(const carray<int64_t>& ids, const py::array& table_in) {
  carray<T> table(table_in);
  require_ndim(table, "embedding", "table", 2);
  check_ids(ids, table.shape(0));
  const int64_t n = ids.size(), d = table.shape(1);
  auto out = output<T>({n, d});
  {
    py::gil_scoped_release release;
    seqfuse::embedding_forward<T>(ids.data(), n, table.data(), d, out.mutable_data());
  }
  return out;
}

template <typename T>
py::tuple coalesce(const carray<int64_t>& ids, const py::array& values_in, int64_t v) {
  // values keep their strides: a sparse gradient's values are often Sum's broadcast view, and
  // a C-order copy of it would cost more than the whole kernel.
  const auto values = strided_arg<T>(values_in);
  require_ndim(values, "embedding_coalesce", "values", 2);
  require_dim(values, "embedding_coalesce", "values", 0, ids.size());
  check_ids(ids, v);
  const int64_t n = ids.size(), d = values.shape(1);
  const int64_t row_stride = values.strides(0) / static_cast<py::ssize_t>(sizeof(T));
  const int64_t col_stride = values.strides(1) / static_cast<py::ssize_t>(sizeof(T));
  std::vector<int64_t> rows, perm, starts;
  {
    py::gil_scoped_release release;
    seqfuse::embedding_segments(ids.data(), n, v, rows, perm, starts);
  }
  auto summed = output<T>({static_cast<py::ssize_t>(rows.size()), d});  // the kernel writes every row
  {
    py::gil_scoped_release release;
    seqfuse::embedding_sum_segments<T>(values.data(), row_stride, col_stride, d, perm, starts,
                                       summed.mutable_data());
  }
  py::array_t<int64_t> rows_out(static_cast<py::ssize_t>(rows.size()));
  std::copy(rows.begin(), rows.end(), rows_out.mutable_data());
  return py::make_tuple(rows_out, summed);
}

}  // namespace

void bind_embedding(py::module_& m) {
  m.def("embedding_forward",
        [](const carray<int64_t>& ids, const py::array& table) {
          require_ndim(ids, "embedding", "ids", 1);
          return is_float64(table, "embedding", "table") ? forward<double>(ids, table)
                                                         : forward<float>(ids, table);
        },
        py::arg("ids"), py::arg("table"),
        "ids: [N] int64, table: [V,D] -> [N,D] rows of table");
  m.def("embedding_coalesce",
        [](const carray<int64_t>& ids, const py::array& values, int64_t num_rows) {
          require_ndim(ids, "embedding_coalesce", "ids", 1);
          if (num_rows <= 0) throw py::value_error("embedding_coalesce: num_rows must be positive");
          return is_float64(values, "embedding_coalesce", "values")
                     ? coalesce<double>(ids, values, num_rows)
                     : coalesce<float>(ids, values, num_rows);
        },
        py::arg("ids"), py::arg("values"), py::arg("num_rows"),
        "ids: [N] int64 in [0, num_rows), values: [N,D] any strides -> (rows [U] sorted distinct "
        "ids, summed [U,D] values summed per id)");
}
