// engine._C.embedding_forward / embedding_backward: validate, allocate, release the GIL, call
// kernels/cpu/embedding.hpp.
#include "common.hpp"
#include "cpu/embedding.hpp"

#include <sstream>

namespace py = pybind11;
using namespace seqfuse_bind;

namespace {

void check_ids(const carray<int64_t>& ids, int64_t v) {
  const int64_t* p = ids.data();
  for (py::ssize_t i = 0; i < ids.size(); ++i) {
    if (p[i] < 0 || p[i] >= v) {
      std::ostringstream s;
      s << "embedding: ids must be in [0, " << v << "), got " << p[i] << " at flat position " << i;
      throw py::index_error(s.str());
    }
  }
}

template <typename T>
py::array forward(const carray<int64_t>& ids, const py::array& table_in) {
  carray<T> table(table_in);
  require_ndim(table, "embedding", "table", 2);
  check_ids(ids, table.shape(0));
  const int64_t n = ids.size(), d = table.shape(1);
  carray<T> out({n, d});
  {
    py::gil_scoped_release release;
    seqfuse::embedding_forward<T>(ids.data(), n, table.data(), d, out.mutable_data());
  }
  return out;
}

template <typename T>
py::tuple backward(const carray<int64_t>& ids, const py::array& grad_in, int64_t v) {
  carray<T> grad(grad_in);
  require_ndim(grad, "embedding", "grad", 2);
  require_dim(grad, "embedding", "grad", 0, ids.size());
  check_ids(ids, v);
  const int64_t n = ids.size(), d = grad.shape(1);
  std::vector<int64_t> rows, perm, starts;
  py::array_t<T> values;
  {
    py::gil_scoped_release release;
    seqfuse::embedding_segments(ids.data(), n, v, rows, perm, starts);
  }
  values = py::array_t<T>({static_cast<int64_t>(rows.size()), d});
  std::fill(values.mutable_data(), values.mutable_data() + values.size(), T(0));
  {
    py::gil_scoped_release release;
    seqfuse::embedding_backward<T>(grad.data(), d, perm, starts, values.mutable_data());
  }
  py::array_t<int64_t> rows_out(static_cast<py::ssize_t>(rows.size()));
  std::copy(rows.begin(), rows.end(), rows_out.mutable_data());
  return py::make_tuple(rows_out, values);
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
  m.def("embedding_backward",
        [](const carray<int64_t>& ids, const py::array& grad, int64_t num_embeddings) {
          require_ndim(ids, "embedding", "ids", 1);
          if (num_embeddings <= 0) throw py::value_error("embedding: num_embeddings must be positive");
          return is_float64(grad, "embedding", "grad") ? backward<double>(ids, grad, num_embeddings)
                                                       : backward<float>(ids, grad, num_embeddings);
        },
        py::arg("ids"), py::arg("grad"), py::arg("num_embeddings"),
        "ids: [N] int64, grad: [N,D] -> (rows [U] sorted distinct ids, values [U,D] summed grads)");
}
