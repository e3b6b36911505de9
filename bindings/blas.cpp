// engine._C.gemm / gemm_tn: the big GEMMs around the fused kernels (input projections,
// weight gradients, Dense layers), split over the kernels' OpenMP threads, each block one
// single-threaded call of the OpenBLAS NumPy ships (its cblas_sgemm/dgemm, ILP64, found by
// engine/_blas.py and handed over once as addresses).
//
// No Python runs on the worker threads, so no GIL passes between them: with Python blocks
// (engine._C.parallel) each split GEMM waited ~1 ms for the sleeping worker to take the GIL
// on the 2-vCPU VM, which was half of an LSTM (32,100,32,32) training step.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common.hpp"
#include "cpu/blas.hpp"
#include "cpu/gemm_tn.hpp"
#include "cpu/threads.hpp"

namespace py = pybind11;
using namespace seqfuse_bind;

namespace {

using seqfuse::gemm_fn;
using seqfuse::OneBlasThread;

void set_blas(std::uintptr_t sgemm, std::uintptr_t dgemm, std::uintptr_t set_threads_local,
              int vector_bytes) {
  if (!sgemm || !dgemm) throw py::value_error("set_blas: sgemm and dgemm must be function addresses");
  if (vector_bytes < 0) throw py::value_error("set_blas: vector_bytes must be >= 0");
  seqfuse::Blas& blas = seqfuse::blas();
  blas.sgemm = reinterpret_cast<seqfuse::cblas_gemm<float>*>(sgemm);
  blas.dgemm = reinterpret_cast<seqfuse::cblas_gemm<double>*>(dgemm);
  blas.set_threads_local = reinterpret_cast<int (*)(int)>(set_threads_local);
  blas.vector_bytes = vector_bytes;
}

template <typename T>
void check(const carray<T>& a, const carray<T>& b, py::ssize_t shared_a, py::ssize_t shared_b,
           const char* op) {
  if (a.ndim() != 2 || b.ndim() != 2 || shared_a != shared_b) {
    throw py::value_error(message(op, ": a ", shape_str(a), " and b ", shape_str(b), " do not chain"));
  }
  if (!gemm_fn<T>()) throw std::runtime_error(std::string(op) + ": set_blas was not called");
}

// How many blocks a dimension of n splits into: one per OpenMP thread, at most n.
int blocks(py::ssize_t n) {
  return static_cast<int>(std::max<py::ssize_t>(1, std::min<py::ssize_t>(seqfuse::pool_threads(), n)));
}

template <typename T>
py::array zeros(carray<T>& c) {
  std::fill(c.mutable_data(), c.mutable_data() + c.size(), T(0));
  return c;
}

// C[M,N] = A[M,K]·B[K,N], rows split over the threads.
template <typename T>
py::array gemm(const carray<T>& a, const carray<T>& b) {
  check(a, b, a.shape(1), b.shape(0), "gemm");
  const py::ssize_t M = a.shape(0), K = a.shape(1), N = b.shape(1);
  auto c = output<T>({M, N});
  if (M * N == 0 || K == 0) return zeros(c);  // BLAS rejects leading dimensions of 0
  const int parts = blocks(M);
  const T *A = a.data(), *B = b.data();
  T* C = c.mutable_data();
  {
    py::gil_scoped_release release;
    OneBlasThread one_thread;
#if defined(SEQFUSE_OPENMP)
#pragma omp parallel for num_threads(parts) schedule(static, 1)
#endif
    for (int p = 0; p < parts; ++p) {
      const py::ssize_t lo = M * p / parts, hi = M * (p + 1) / parts;
      if (hi > lo)
        seqfuse::gemm_block<T>(false, false, hi - lo, N, K, A + lo * K, K, B, N, T(0), C + lo * N, N);
    }
  }
  return c;
}

// C[M,N] = Aᵀ·B for A[K,M], B[K,N]: K split over the threads, the parts summed.
template <typename T>
py::array gemm_tn(const carray<T>& a, const carray<T>& b) {
  check(a, b, a.shape(0), b.shape(0), "gemm_tn");
  const py::ssize_t K = a.shape(0), M = a.shape(1), N = b.shape(1);
  auto c = output<T>({M, N});
  if (M * N == 0 || K == 0) return zeros(c);
  const int parts = blocks(K);
  const T *A = a.data(), *B = b.data();
  T* C = c.mutable_data();
  {
    py::gil_scoped_release release;
    OneBlasThread one_thread;
    seqfuse::sum_of_parts(parts, M * N, C, [&](int p, T* out) {
      const py::ssize_t lo = K * p / parts, hi = K * (p + 1) / parts;
      if (hi > lo)
        seqfuse::gemm_block<T>(true, false, M, N, hi - lo, A + lo * M, M, B + lo * N, N, T(0), out, N);
      else
        std::fill(out, out + M * N, T(0));
    });
  }
  return c;
}

// One source of gemm_tn_sequences: a [T,B,M] sequence read in place (copied C-contiguous
// first if its rows are not contiguous), and optionally its first step's rows [B,M].
template <typename T>
struct Source {
  py::array a;
  std::optional<carray<T>> first;
  seqfuse::RowSequence<T> rows;
};

template <typename T>
Source<T> source(const py::handle& item, py::ssize_t steps, py::ssize_t nb, int index) {
  constexpr const char* OP = "gemm_tn_sequences";
  const std::string name = "sources[" + std::to_string(index) + "]";
  py::tuple pair;
  if (!py::isinstance<py::tuple>(item) || (pair = py::reinterpret_borrow<py::tuple>(item)).size() != 2)
    throw py::type_error(std::string(OP) + ": " + name + " must be a pair (a, first), got " +
                         std::string(py::str(py::type::of(item))));
  if (!py::isinstance<py::array>(pair[0])) throw py::type_error(std::string(OP) + ": " + name + "[0] must be an array");
  py::array a = py::reinterpret_borrow<py::array>(pair[0]);
  if (!py::isinstance<py::array_t<T>>(a)) float_arg<T>(a, OP, (name + "[0]").c_str());  // its TypeError
  require_ndim(a, OP, (name + "[0]").c_str(), 3);
  const py::ssize_t M = a.shape(2), item_size = sizeof(T);
  require_shape(a, OP, (name + "[0]").c_str(), "(T, B, M)", {steps, nb, M});
  if (M > 1 && a.strides(2) != item_size) a = carray<T>(a);
  Source<T> out{a, std::nullopt, {static_cast<const T*>(a.data()), a.strides(0) / item_size,
                                  a.strides(1) / item_size}};
  if (!pair[1].is_none()) {
    out.first = optional_float_arg<T>(pair[1], OP, (name + "[1]").c_str());
    require_shape(*out.first, OP, (name + "[1]").c_str(), "(B, M)", {nb, M});
    out.rows.first = out.first->data();
    out.rows.first_row = M;
  }
  return out;
}

// C [ΣM, N] = Σ_{t,b} [a_0(t,b) | a_1(t,b)]ᵀ · b(t,b) (kernels/cpu/gemm_tn.hpp).
template <typename T>
py::array gemm_tn_sequences(const py::list& sources, const py::array& b_in) {
  constexpr const char* OP = "gemm_tn_sequences";
  require_ndim(b_in, OP, "b", 3);
  py::array b = b_in;
  const py::ssize_t steps = b.shape(0), nb = b.shape(1), N = b.shape(2), item_size = sizeof(T);
  if (N > 1 && b.strides(2) != item_size) b = carray<T>(b);
  if (sources.size() < 1 || sources.size() > 2)
    throw py::value_error(std::string(OP) + ": sources must hold 1 or 2 pairs, got " + std::to_string(sources.size()));
  std::vector<Source<T>> s;
  for (size_t i = 0; i < sources.size(); ++i) s.push_back(source<T>(sources[i], steps, nb, static_cast<int>(i)));
  const seqfuse::RowSequence<T> rows{static_cast<const T*>(b.data()), b.strides(0) / item_size,
                                     b.strides(1) / item_size};
  py::ssize_t M = 0;
  for (const auto& x : s) M += x.a.shape(2);
  auto c = output<T>({M, N});
  if (M * N == 0) return c;
  if (steps * nb == 0) return zeros(c);
  py::gil_scoped_release release;
  if (s.size() == 1) {
    const seqfuse::RowSequence<T> a[1] = {s[0].rows};
    const int64_t m[1] = {s[0].a.shape(2)};
    seqfuse::gemm_tn_sequences<T, 1>(a, m, rows, N, steps, nb, c.mutable_data());
  } else {
    const seqfuse::RowSequence<T> a[2] = {s[0].rows, s[1].rows};
    const int64_t m[2] = {s[0].a.shape(2), s[1].a.shape(2)};
    seqfuse::gemm_tn_sequences<T, 2>(a, m, rows, N, steps, nb, c.mutable_data());
  }
  return c;
}

// C = the products over the sources' and the products' rows (seqfuse::TnProduct,
// kernels/cpu/gemm_tn.hpp): products is a list of (b [T,B,n] any strides, column, [(source,
// row), ...]); C's shape is the products' extent, and they must cover it, each element once.
template <typename T>
py::array gemm_tn_blocks(const py::list& sources, const py::list& products) {
  constexpr const char* OP = "gemm_tn_blocks";
  if (sources.size() < 1 || sources.size() > static_cast<size_t>(seqfuse::kTnSources))
    throw py::value_error(std::string(OP) + ": sources must hold 1 to " +
                          std::to_string(seqfuse::kTnSources) + " pairs, got " + std::to_string(sources.size()));
  if (products.size() < 1)
    throw py::value_error(std::string(OP) + ": products must hold at least one triple, got none");
  std::vector<py::array> bs;
  std::vector<seqfuse::TnProduct<T>> prods;
  py::ssize_t steps = -1, nb = -1, rows = 0, cols = 0;
  const py::ssize_t item_size = sizeof(T);
  for (size_t p = 0; p < products.size(); ++p) {
    const std::string name = "products[" + std::to_string(p) + "]";
    py::tuple triple;
    if (!py::isinstance<py::tuple>(products[p]) ||
        (triple = py::reinterpret_borrow<py::tuple>(products[p])).size() != 3)
      throw py::type_error(std::string(OP) + ": " + name + " must be a triple (b, column, [(source, row), ...])");
    if (!py::isinstance<py::array>(triple[0])) throw py::type_error(std::string(OP) + ": " + name + "[0] must be an array");
    py::array b = py::reinterpret_borrow<py::array>(triple[0]);
    if (!py::isinstance<py::array_t<T>>(b)) float_arg<T>(b, OP, (name + "[0]").c_str());  // its TypeError
    require_ndim(b, OP, (name + "[0]").c_str(), 3);
    if (steps < 0) steps = b.shape(0), nb = b.shape(1);
    require_shape(b, OP, (name + "[0]").c_str(), "(T, B, n)", {steps, nb, b.shape(2)});
    if (b.shape(2) > 1 && b.strides(2) != item_size) b = carray<T>(b);
    seqfuse::TnProduct<T> prod{{static_cast<const T*>(b.data()), b.strides(0) / item_size, b.strides(1) / item_size},
                               b.shape(2), triple[1].cast<int64_t>(), {-1, -1, -1}};
    for (const auto& pair : triple[2].cast<py::list>()) {
      const auto [source, row] = pair.cast<std::pair<int64_t, int64_t>>();
      if (source < 0 || source >= static_cast<int64_t>(sources.size()) || row < 0 || prod.row[source] >= 0)
        throw py::value_error(std::string(OP) + ": " + name + " names source " + std::to_string(source) +
                              " out of range or twice");
      prod.row[source] = row;
    }
    if (prod.col < 0) throw py::value_error(std::string(OP) + ": " + name + "'s column must be >= 0");
    bs.push_back(b);
    prods.push_back(prod);
  }
  std::vector<Source<T>> s;
  for (size_t i = 0; i < sources.size(); ++i) s.push_back(source<T>(sources[i], steps, nb, static_cast<int>(i)));
  for (const auto& prod : prods) {
    cols = std::max<py::ssize_t>(cols, prod.col + prod.n);
    for (size_t i = 0; i < s.size(); ++i)
      if (prod.row[i] >= 0) rows = std::max<py::ssize_t>(rows, prod.row[i] + s[i].a.shape(2));
  }
  std::vector<char> covered(rows * cols, 0);
  for (size_t p = 0; p < prods.size(); ++p)
    for (size_t i = 0; i < s.size(); ++i)
      if (prods[p].row[i] >= 0)
        for (py::ssize_t r = 0; r < s[i].a.shape(2); ++r)
          for (py::ssize_t c = 0; c < prods[p].n; ++c)
            if (covered[(prods[p].row[i] + r) * cols + prods[p].col + c]++)
              throw py::value_error(std::string(OP) + ": products[" + std::to_string(p) + "] overlaps another");
  if (std::count(covered.begin(), covered.end(), 0))
    throw py::value_error(std::string(OP) + ": the products leave part of the output uncovered");
  auto c = output<T>({rows, cols});
  if (rows * cols == 0) return c;
  if (steps * nb == 0) return zeros(c);
  py::gil_scoped_release release;
  const auto run = [&](auto ns) {
    seqfuse::RowSequence<T> a[ns()];
    int64_t m[ns()];
    for (int i = 0; i < ns(); ++i) a[i] = s[i].rows, m[i] = s[i].a.shape(2);
    seqfuse::gemm_tn_products<T, ns()>(a, m, prods.data(), static_cast<int>(prods.size()), steps, nb,
                                       c.mutable_data(), rows, cols);
  };
  if (s.size() == 1) run(std::integral_constant<int, 1>{});
  else if (s.size() == 2) run(std::integral_constant<int, 2>{});
  else run(std::integral_constant<int, 3>{});
  return c;
}

// True for float64, false for float32; TypeError unless a and b share one of them.
bool both_float64(const py::array& a, const py::array& b, const char* op) {
  const bool f64 = is_float64(a, op, "a");
  if (f64 != is_float64(b, op, "b")) throw py::type_error(std::string(op) + ": a and b must have one dtype");
  return f64;
}

}  // namespace

void bind_blas(py::module_& m) {
  m.def("set_blas", &set_blas, py::arg("sgemm"), py::arg("dgemm"), py::arg("set_threads_local"),
        py::arg("vector_bytes") = 0,
        "addresses of an ILP64 cblas_sgemm and cblas_dgemm (NumPy's OpenBLAS) and of that "
        "library's openblas_set_num_threads_local (or 0); vector_bytes: the width of the SIMD "
        "kernels it runs on this CPU (32 for AVX2, 64 for AVX-512; 0 if unknown)");
  m.def("gemm",
        [](const py::array& a, const py::array& b) {
          return both_float64(a, b, "gemm") ? gemm<double>(carray<double>(a), carray<double>(b))
                                            : gemm<float>(carray<float>(a), carray<float>(b));
        },
        py::arg("a"), py::arg("b"), "a [M,K] @ b [K,N], float32 or float64, rows split over the OpenMP threads");
  m.def("weight_gradients_on_tile", &seqfuse::weight_gradients_on_tile,
        "whether the recurrent weight gradients run on gemm_tn_sequences (the weight_gradients "
        "choice: forced, or with AVX2 or AVX-512) rather than OpenBLAS");
  m.def("weights_in_loop", &seqfuse::weights_in_loop,
        "whether engine/_recurrent.py asks simple_rnn_backward for the weight gradients summed "
        "inside its loop (the weights_in_loop choice)");
  m.def("gemm_tn_sequences",
        [](const py::list& sources, const py::array& b) {
          return is_float64(b, "gemm_tn_sequences", "b") ? gemm_tn_sequences<double>(sources, b)
                                                         : gemm_tn_sequences<float>(sources, b);
        },
        py::arg("sources"), py::arg("b"),
        "sources: 1 or 2 pairs (a [T,B,M_s] any strides, first [B,M_s] or None), b: [T,B,N] -> "
        "[ΣM_s, N] = Σ over the T·B rows of [a_0 | a_1]ᵀ·b, where with `first` a source's rows "
        "are first, a[0], ..., a[T-2] (the states before each step); steps split over the OpenMP "
        "threads, our register tile");
  m.def("gemm_tn_blocks",
        [](const py::list& sources, const py::list& products) {
          if (products.size() < 1 || !py::isinstance<py::tuple>(products[0]) ||
              py::reinterpret_borrow<py::tuple>(products[0]).size() != 3)
            throw py::type_error("gemm_tn_blocks: products must be a list of triples (b, column, [(source, row), ...])");
          const py::handle b = py::reinterpret_borrow<py::tuple>(products[0])[0];
          if (!py::isinstance<py::array>(b)) throw py::type_error("gemm_tn_blocks: products[0][0] must be an array");
          return is_float64(py::reinterpret_borrow<py::array>(b), "gemm_tn_blocks", "products[0][0]")
                     ? gemm_tn_blocks<double>(sources, products)
                     : gemm_tn_blocks<float>(sources, products);
        },
        py::arg("sources"), py::arg("products"),
        "sources: 1 to 3 pairs (a [T,B,M_s] any strides, first [B,M_s] or None) as gemm_tn_sequences's; "
        "products: 1 or more triples (b [T,B,n] any strides, column, [(source, row), ...]) -> C where "
        "C[row + i, column + j] = Σ over the T·B rows of a_source[i]·b[j] for each pair; the "
        "products must cover C, each element once (GRU's weight gradients in one call)");
  m.def("gemm_tn",
        [](const py::array& a, const py::array& b) {
          return both_float64(a, b, "gemm_tn") ? gemm_tn<double>(carray<double>(a), carray<double>(b))
                                               : gemm_tn<float>(carray<float>(a), carray<float>(b));
        },
        py::arg("a"), py::arg("b"), "a [K,M]ᵀ @ b [K,N], K split over the OpenMP threads and summed");
}
