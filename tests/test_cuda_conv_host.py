"""The GPU conv1d, max_pool1d and embedding of the cupy backend, checked on the CPU.

1. Host checks: every table function rejects bad shapes, dtypes and ranges with the C++
   bindings' exceptions before it touches cupy (called here with NumPy arrays), and a NumPy
   array that passes them is refused with a TypeError naming the device.
2. The kernels themselves, without a GPU: kernels/cuda/{conv1d,max_pool1d,embedding}.cu are
   compiled for the host by g++ with a few lines of shims (blockIdx/threadIdx as globals, a
   launch that runs every block and thread in turn, atomicAdd as +=), and the backend's own
   Python (_cuda_conv.py, _cuda_embedding.py: chunking, launch grids, strides) runs on a
   stand-in `cupy` made of NumPy. The results must match the reference backend. This checks
   the index arithmetic of the exact sources the GPU compiles; it cannot see races (threads
   run one at a time) or CuPy's own behaviour, which tests/test_gpu_conv_embedding.py checks
   on a device.
"""
from __future__ import annotations

import ctypes
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest

from engine.backends import _cuda, _cuda_conv, _cuda_embedding, reference

conv1d_forward, conv1d_backward = _cuda_conv.conv1d_forward, _cuda_conv.conv1d_backward
max_pool1d_forward, max_pool1d_backward = _cuda_conv.max_pool1d_forward, _cuda_conv.max_pool1d_backward
embedding_forward, embedding_backward = _cuda_embedding.embedding_forward, _cuda_embedding.embedding_backward
embedding_coalesce = _cuda_embedding.embedding_coalesce

f32, f64, i64 = np.float32, np.float64, np.int64


def z(*shape, dtype=f64):
    return np.zeros(shape, dtype)


# 1. Host checks, on NumPy arrays.

@pytest.mark.parametrize("call,error,match", [
    (lambda: conv1d_forward(z(1, 2, 1), z(3, 1, 1), None, 1, 1),
     ValueError, "shorter than the window span 3"),
    (lambda: conv1d_forward(z(5, 2), z(3, 2, 4), None, 1, 1),
     ValueError, r"x must have 3 dimensions, got shape \(5, 2\)"),
    (lambda: conv1d_forward(z(1, 5, 2), z(3, 4), None, 1, 1), ValueError, "kernel must have 3 dimensions"),
    (lambda: conv1d_forward(z(1, 5, 2), z(3, 4, 1), None, 1, 1),
     ValueError, "kernel must have size 2 on axis 1"),
    (lambda: conv1d_forward(z(1, 5, 2), z(3, 2, 4), z(3), 1, 1),
     ValueError, "bias must have size 4 on axis 0"),
    (lambda: conv1d_forward(z(1, 5, 2), z(3, 2, 4), z(4, 1), 1, 1),
     ValueError, "bias must have 1 dimensions"),
    (lambda: conv1d_forward(z(1, 5, 2), z(3, 2, 4), z(4, dtype=f32), 1, 1),
     TypeError, "bias dtype float32 must match x dtype float64"),
    (lambda: conv1d_forward(z(1, 5, 2, dtype=i64), z(3, 2, 4), None, 1, 1),
     TypeError, "x must be float32 or float64, got int64"),
    (lambda: conv1d_forward(z(1, 5, 2, dtype=f32), z(3, 2, 4), None, 1, 1),
     TypeError, "kernel dtype float64 must match x dtype float32"),
    (lambda: conv1d_forward(z(1, 5, 2), z(3, 2, 4), None, 0, 1),
     ValueError, "strides and dilation_rate must be >= 1"),
    (lambda: conv1d_forward(z(1, 5, 2), z(3, 2, 4), None, 1, 0),
     ValueError, "strides and dilation_rate must be >= 1"),
    (lambda: conv1d_forward(z(1, 5, 2), z(3, 2, 4), None, 1, 3),
     ValueError, "shorter than the window span 7"),
    (lambda: conv1d_forward(z(1, 5, 2), z(3, 2, 4), None, 1, 1),
     TypeError, "x is a numpy.ndarray; move it with Tensor.to"),
    (lambda: conv1d_backward(z(1, 9, 1), z(1, 5, 1), z(3, 1, 1), 1, 1),
     ValueError, "grad must have size 3 on axis 1"),
    (lambda: conv1d_backward(z(2, 3, 1), z(1, 5, 1), z(3, 1, 1), 1, 1),
     ValueError, "grad must have size 1 on axis 0"),
    (lambda: conv1d_backward(z(1, 3, 2), z(1, 5, 1), z(3, 1, 1), 1, 1),
     ValueError, "grad must have size 1 on axis 2"),
    (lambda: conv1d_backward(z(1, 3), z(1, 5, 1), z(3, 1, 1), 1, 1),
     ValueError, "grad must have 3 dimensions"),
    (lambda: conv1d_backward(z(1, 3, 1, dtype=f32), z(1, 5, 1), z(3, 1, 1), 1, 1),
     TypeError, "grad dtype float32 must match"),
    (lambda: conv1d_backward(z(1, 2, 1), z(1, 5, 1), z(3, 1, 1), 2, 1), TypeError, "grad is a numpy.ndarray"),
    (lambda: max_pool1d_forward(z(1, 2, 1), 3, 1),
     ValueError, "max_pool1d: input length 2 .* the output would be empty"),
    (lambda: max_pool1d_forward(z(1, 4, 1), 0, 1),
     ValueError, "size, strides and dilation_rate must be >= 1"),
    (lambda: max_pool1d_forward(z(4, 1), 2, 1), ValueError, "x must have 3 dimensions"),
    (lambda: max_pool1d_forward(z(1, 4, 1, dtype=np.int32), 2, 1), TypeError, "x must be float32 or float64"),
    (lambda: max_pool1d_forward(z(1, 4, 1), 2, 2), TypeError, "x is a numpy.ndarray"),
    (lambda: max_pool1d_backward(np.ones((1, 1, 1)), np.array([[[5]]]), 3),
     IndexError, r"argmax must lie in \[0, 3\), got 5 at flat position 0"),
    (lambda: max_pool1d_backward(np.ones((1, 2, 1)), np.array([[[0]], [[-1]]]).reshape(1, 2, 1), 3),
     IndexError, "got -1 at flat position 1"),
    (lambda: max_pool1d_backward(np.ones((1, 2, 1)), z(1, 1, 1, dtype=i64), 3),
     ValueError, "argmax must have size 2 on axis 1"),
    (lambda: max_pool1d_backward(np.ones((1, 2)), z(1, 2, dtype=i64), 3),
     ValueError, "grad must have 3 dimensions"),
    (lambda: max_pool1d_backward(np.ones((1, 2, 1)), z(1, 2, 1, dtype=np.int32), 3),
     TypeError, "argmax must be int64, got int32"),
    (lambda: max_pool1d_backward(np.ones((1, 2, 1), np.int64), z(1, 2, 1, dtype=i64), 3),
     TypeError, "grad must be float32"),
    (lambda: max_pool1d_backward(np.ones((1, 2, 1)), z(1, 2, 1, dtype=i64), 3),
     TypeError, "grad is a numpy.ndarray"),
    (lambda: embedding_forward(np.array([0, 1]), z(5)), ValueError, "table must have 2 dimensions"),
    (lambda: embedding_forward(np.array([0.0, 1.0]), z(5, 2)), TypeError,
     "ids must be an integer array, got dtype float64"),
    (lambda: embedding_coalesce(np.array([0.0, 1.0]), z(2, 3), 5), TypeError, "ids must be an integer array"),
    (lambda: embedding_forward(np.array([[0, 5]]), z(5, 2)),
     IndexError, r"ids must be in \[0, 5\), got 5 at position \(0, 1\)"),
    (lambda: embedding_forward(np.array([-1]), z(5, 2)), IndexError, "got -1"),
    (lambda: embedding_forward(np.array([1]), z(5, 2, dtype=i64)),
     TypeError, "table must be float32 or float64"),
    (lambda: embedding_forward(np.array([1]), z(5, 2)), TypeError, "ids is a numpy.ndarray"),
    (lambda: embedding_backward(np.array([[0, 1]]), z(2, 3), 5), ValueError, "grad must have 3 dimensions"),
    (lambda: embedding_backward(np.array([[0, 1]]), z(1, 3, 3), 5),
     ValueError, "grad must have size 2 on axis 1"),
    (lambda: embedding_backward(np.array([[0, 7]]), z(1, 2, 3), 5), IndexError, "got 7"),
    (lambda: embedding_backward(np.array([[0, 1]]), z(1, 2, 3, dtype=i64), 5),
     TypeError, "grad must be float32"),
    (lambda: embedding_backward(np.array([[0, 1]]), z(1, 2, 3), 5), TypeError, "ids is a numpy.ndarray"),
    (lambda: embedding_coalesce(np.array([[0, 1]]), z(2, 3), 5), ValueError, "ids must have 1 dimensions"),
    (lambda: embedding_coalesce(np.array([0, 1]), z(3, 3), 5),
     ValueError, "values must have size 2 on axis 0"),
    (lambda: embedding_coalesce(np.array([0, 1]), z(2), 5), ValueError, "values must have 2 dimensions"),
    (lambda: embedding_coalesce(np.array([0, 1]), z(2, 3), 0), ValueError, "num_rows must be positive"),
    (lambda: embedding_coalesce(np.array([0, 2**40]), z(2, 3), 5), IndexError, str(2**40)),
    (lambda: embedding_coalesce(np.array([0, 1]), z(2, 3, dtype=np.float16), 5),
     TypeError, "values must be float32 or float64, got float16"),
    (lambda: embedding_coalesce(np.array([0, 1]), z(2, 3), 5), TypeError, "ids is a numpy.ndarray"),
])
def test_host_checks_fire_before_any_device_work(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_chunks_cover_every_row_once_within_the_byte_bound(monkeypatch):
    monkeypatch.setattr(_cuda_conv, "COLS_BYTES", 1000)
    for total, row_bytes in [(1, 8), (10, 100), (11, 100), (7, 5000), (1000, 96)]:
        parts = _cuda_conv.chunks(total, row_bytes)
        assert [r0 for r0, _ in parts] == list(np.cumsum([0] + [n for _, n in parts[:-1]]))
        assert sum(n for _, n in parts) == total and all(n >= 1 for _, n in parts)
        assert all(n * row_bytes <= 1000 for _, n in parts) or row_bytes > 1000
    assert _cuda_conv.chunk_batches(0, 10, 5) == (0, 2)      # rows 0..9 of L_out=5: batches 0, 1
    assert _cuda_conv.chunk_batches(7, 5, 5) == (1, 2)      # rows 7..11: batches 1, 2
    assert _cuda_conv.chunk_batches(10, 1, 5) == (2, 1)


def test_max_pool1d_backward_takes_the_parallel_kernel_for_a_forwards_argmax():
    x = np.random.default_rng(0).integers(-2, 2, (3, 20, 4)).astype(f64)
    x[1, 3, 2] = np.nan
    for pool_size, strides in [(3, 1), (2, 2), (5, 2), (2, 3)]:
        argmax = reference.max_pool1d_forward(x, pool_size, strides)[1]
        assert _cuda_conv._check_positions(argmax, 20)   # never decreases along L_out
    assert not _cuda_conv._check_positions(np.array([[[2], [1]]]), 3)
    assert _cuda_conv._check_positions(np.zeros((2, 0, 3), np.int64), 3)


def test_launch_shapes():
    assert [_cuda_conv.threads(n) for n in (1, 32, 33, 5000)] == [(32,), (32,), (64,), (256,)]
    assert _cuda_conv.grid(3, "conv1d") == (3,)
    with pytest.raises(ValueError, match="conv1d: 2147483648 rows exceed"):
        _cuda_conv.grid(2**31, "conv1d")


def test_every_kernel_launched_is_declared():
    # The emulated launches below assert the same for every kernel they run.
    declared = {name for stem in STEMS for name in _cuda.name_expressions(stem)}
    kernels = ["conv1d_im2col", "conv1d_col2im", "max_pool1d_forward", "max_pool1d_backward_runs",
               "max_pool1d_backward_columns", "embedding_gather", "embedding_scatter_add",
               "embedding_sum_segments"]
    assert {f"{k}<{t}>" for k in kernels for t in ("float", "double")} == declared


# 2. The .cu sources on the host.

HARNESS = r"""
#include <cstddef>
#include <utility>
struct Dim3 { unsigned x = 0, y = 0, z = 0; };
static Dim3 blockIdx, threadIdx, blockDim, gridDim;
#define __global__
template <typename T> T atomicAdd(T* p, T v) { T old = *p; *p += v; return old; }
#include "cuda/conv1d.cu"
#include "cuda/max_pool1d.cu"
#include "cuda/embedding.cu"

// cuLaunchKernel's convention: args[i] points at the value of parameter i.
template <typename... A, std::size_t... I>
void call(void (*kernel)(A...), void** args, std::index_sequence<I...>) {
  kernel(*static_cast<A*>(args[I])...);
}

// Every block, every thread, one at a time.
template <typename... A>
void run(void (*kernel)(A...), unsigned blocks, unsigned threads, void** args) {
  gridDim.x = blocks;
  blockDim.x = threads;
  for (unsigned b = 0; b < blocks; ++b)
    for (unsigned t = 0; t < threads; ++t) {
      blockIdx.x = b;
      threadIdx.x = t;
      call(kernel, args, std::index_sequence_for<A...>{});
    }
}
"""
STEMS = ("conv1d", "max_pool1d", "embedding")
SIGNATURES = r"""
#include <type_traits>
// One letter per kernel parameter, to check each launch's arguments against the kernel:
// F/D/Q pointers to float/double/long long, f/d/q/i the scalars.
template <typename A> constexpr char code() {
  using P = std::remove_cv_t<std::remove_pointer_t<A>>;
  if constexpr (std::is_pointer_v<A>)
    return std::is_same_v<P, float> ? 'F' : std::is_same_v<P, double> ? 'D'
         : std::is_same_v<P, long long> ? 'Q' : '?';
  else
    return std::is_same_v<A, float> ? 'f' : std::is_same_v<A, double> ? 'd'
         : std::is_same_v<A, long long> ? 'q' : std::is_same_v<A, int> ? 'i' : '?';
}
template <typename... A> const char* signature(void (*)(A...)) {
  static const char letters[] = {code<A>()..., 0};
  return letters;
}
"""
POINTER_CODES = {np.dtype(f32): "F", np.dtype(f64): "D", np.dtype(i64): "Q"}
SCALAR_CODES = {np.int32: ("i", ctypes.c_int), np.int64: ("q", ctypes.c_longlong),
                np.float32: ("f", ctypes.c_float), np.float64: ("d", ctypes.c_double)}


class DeviceArray(np.ndarray):
    """A NumPy array the backend takes for a cupy one: its type's module starts with "cupy",
    and `.data.ptr` is its first element's address, as cupy's."""

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self.ctypes.data)


DeviceArray.__module__ = "cupy_host_emulation"


def device(a):
    return np.asarray(a).view(DeviceArray)


def _fake_cupy():
    """The few cupy functions the backend calls, made of NumPy. `empty` fills with NaN (or -7
    for ints), so an element a kernel should write but does not shows up in the comparison."""
    def wrap(fn):
        def call(*args, **kwargs):
            out = fn(*args, **kwargs)
            return out.view(DeviceArray) if isinstance(out, np.ndarray) else out
        return call

    def empty(shape, dtype=f64):
        return np.full(shape, np.nan if np.dtype(dtype).kind == "f" else -7, dtype)

    fake = types.ModuleType("cupy")
    for name in ("ascontiguousarray", "zeros", "full", "concatenate", "flatnonzero", "matmul"):
        setattr(fake, name, wrap(getattr(np, name)))
    fake.empty = wrap(empty)
    fake.argsort = wrap(lambda a: np.argsort(a, kind="stable"))   # cupy's argsort is stable
    return fake


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    """{name expression: (letters of its parameters, launch_i)} from the .cu files built by g++."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    names = [n for stem in STEMS for n in _cuda.name_expressions(stem)]
    lines = [HARNESS, SIGNATURES]
    for i, name in enumerate(names):
        lines.append(f'extern "C" void launch_{i}(unsigned g, unsigned b, void** a) '
                     f'{{ run(&{name}, g, b, a); }}')
        lines.append(f'extern "C" const char* signature_{i}() {{ return signature(&{name}); }}')
    tmp = tmp_path_factory.mktemp("cuda_host")
    (tmp / "harness.cpp").write_text("\n".join(lines))
    done = subprocess.run(["g++", "-std=c++17", "-O1", "-shared", "-fPIC", f"-I{_cuda.KERNEL_DIR}",
                           str(tmp / "harness.cpp"), "-o", str(tmp / "harness.so")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lib = ctypes.CDLL(str(tmp / "harness.so"))
    found = {}
    for i, name in enumerate(names):
        getattr(lib, f"signature_{i}").restype = ctypes.c_char_p
        found[name] = (getattr(lib, f"signature_{i}")().decode(), getattr(lib, f"launch_{i}"))
    return found


@pytest.fixture
def emulated(kernels, monkeypatch):
    """The backend's own Python with cupy made of NumPy and the kernels run on the host."""
    def function(stem, template, dtype):
        name = template.format(T=_cuda.ctype(dtype))
        assert stem in STEMS and name in _cuda.name_expressions(stem), f"{name} is not declared"
        letters, entry = kernels[name]

        def launch(grid, block, args):
            assert len(grid) == 1 and len(block) == 1 and 1 <= grid[0] <= 2**31 - 1 and 1 <= block[0] <= 1024
            assert len(args) == len(letters), f"{name}: {len(args)} arguments for {len(letters)} parameters"
            values = []
            for i, (a, letter) in enumerate(zip(args, letters)):
                if isinstance(a, np.ndarray):
                    assert POINTER_CODES.get(a.dtype) == letter, \
                        f"{name} argument {i}: {a.dtype} array for {letter}"
                    values.append(ctypes.c_void_p(a.ctypes.data))
                else:  # cupy needs typed scalars (np.int32, np.int64, ...): a Python int is a bug
                    code, ctype = SCALAR_CODES[type(a)]
                    assert code == letter, f"{name} argument {i}: {type(a).__name__} for {letter}"
                    values.append(ctype(a))
            pointers = (ctypes.c_void_p * len(values))(
                *[ctypes.cast(ctypes.pointer(v), ctypes.c_void_p) for v in values])
            entry(ctypes.c_uint(grid[0]), ctypes.c_uint(block[0]), pointers)
        return launch

    monkeypatch.setattr(_cuda, "function", function)
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy())


def assert_close(actual, expected, dtype, what):
    """Error relative to the largest expected magnitude: float32 1e-5, float64 1e-12."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype, what
    scale = max(float(np.abs(expected).max(initial=0.0)), 1e-30)
    err = float(np.abs(actual.astype(f64) - expected).max(initial=0.0)) / scale
    assert err <= (1e-5 if dtype == f32 else 1e-12), f"{what}: relative error {err:.1e}"


CONV_CASES = [(s, d, K) for s in (1, 2, 3) for d in (1, 2) for K in (1, 3, 5)]


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("dtype", [f32, f64])
@pytest.mark.parametrize("strides,dilation_rate,K", CONV_CASES)
def test_conv1d_sources_match_reference(emulated, monkeypatch, strides, dilation_rate, K, dtype, chunked):
    if chunked:   # 3 output rows per chunk: chunks start and end inside a batch row
        monkeypatch.setattr(_cuda_conv, "COLS_BYTES", 3 * K * 4 * np.dtype(dtype).itemsize)
    rng = np.random.default_rng(strides * 100 + dilation_rate * 10 + K)
    x = rng.standard_normal((3, 16, 4)).astype(dtype)
    kernel = rng.standard_normal((K, 4, 5)).astype(dtype)
    bias = rng.standard_normal(5).astype(dtype)
    ref = reference.conv1d_forward(x, kernel, bias, strides, dilation_rate)
    out = conv1d_forward(device(x), device(kernel), device(bias), strides, dilation_rate)
    assert_close(out, ref, dtype, "out")
    assert_close(conv1d_forward(device(x), device(kernel), None, strides, dilation_rate),
                 reference.conv1d_forward(x, kernel, None, strides, dilation_rate), dtype, "out without bias")
    grad = rng.standard_normal(ref.shape).astype(dtype)
    got = conv1d_backward(device(grad), device(x), device(kernel), strides, dilation_rate)
    expected = reference.conv1d_backward(grad, x, kernel, strides, dilation_rate)
    for what, a, b in zip(("dx", "dkernel", "dbias"), got, expected):
        assert_close(a, b, dtype, what)


def test_conv1d_empty_batch_and_channels(emulated):
    for shape, kernel_shape in [((0, 6, 2), (3, 2, 4)), ((2, 6, 0), (3, 0, 4)), ((2, 6, 2), (3, 2, 0))]:
        x, kernel = np.ones(shape), np.ones(kernel_shape)
        out = conv1d_forward(device(x), device(kernel), None, 1, 1)
        assert_close(out, reference.conv1d_forward(x, kernel, None, 1, 1), f64, f"out {shape}")
        grad = np.ones(out.shape)
        for a, b in zip(conv1d_backward(device(grad), device(x), device(kernel), 1, 1),
                        reference.conv1d_backward(grad, x, kernel, 1, 1)):
            assert_close(a, b, f64, f"grads {shape}")


@pytest.mark.parametrize("dtype", [f32, f64])
@pytest.mark.parametrize("pool_size,strides", [(2, 2), (3, 1), (2, 3), (1, 1), (4, 2), (5, 1)])
def test_max_pool1d_sources_match_reference(emulated, dtype, pool_size, strides):
    rng = np.random.default_rng(pool_size * 10 + strides)
    x = rng.integers(-3, 3, (3, 17, 5)).astype(dtype)   # small integers: many ties
    x[0, 4, 1] = x[1, 9, 2] = np.nan
    x[2, :, 3] = -np.inf
    out, argmax = max_pool1d_forward(device(x), pool_size, strides)
    ref_out, ref_argmax = reference.max_pool1d_forward(x, pool_size, strides)
    np.testing.assert_array_equal(argmax, ref_argmax)
    np.testing.assert_array_equal(out, ref_out)   # NaN where the reference has NaN
    grad = rng.standard_normal(ref_out.shape).astype(dtype)
    dx = max_pool1d_backward(device(grad), device(argmax), x.shape[1])
    np.testing.assert_array_equal(dx, reference.max_pool1d_backward(grad, ref_argmax, x.shape[1]))


def test_max_pool1d_backward_any_argmax_order(emulated):
    # Not a forward's argmax (those never decrease along L_out): rows revisited after others.
    argmax = np.array([[[2], [2], [0], [3], [0], [2], [6]]], np.int64)
    grad = np.arange(1.0, 8.0).reshape(1, 7, 1)
    dx = max_pool1d_backward(device(grad), device(argmax), 8)
    np.testing.assert_array_equal(dx, reference.max_pool1d_backward(grad, argmax, 8))


def test_max_pool1d_backward_skips_the_host_check_only_for_the_forwards_own_argmax(emulated, monkeypatch):
    # The argmax max_pool1d_forward returned, handed back as autograd does, is not read back
    # (on a GPU that read waits for the device every training step); a copy of it, or a
    # length shorter than the forward's, is checked as any other argmax.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 9, 3))
    out, argmax = max_pool1d_forward(device(x), 3, 2)
    grad = rng.standard_normal(out.shape)
    expected = reference.max_pool1d_backward(grad, np.asarray(argmax), 9)
    checked, check = [], _cuda_conv._check_positions
    monkeypatch.setattr(_cuda_conv, "_check_positions", lambda a, n: checked.append(n) or check(a, n))
    np.testing.assert_array_equal(max_pool1d_backward(device(grad), argmax, 9), expected)
    np.testing.assert_array_equal(max_pool1d_backward(device(grad), argmax, 12)[:, :9], expected)
    assert checked == []
    np.testing.assert_array_equal(max_pool1d_backward(device(grad), device(np.array(argmax)), 9), expected)
    assert checked == [9]
    with pytest.raises(IndexError, match=r"max_pool1d: argmax must lie in \[0, 4\)"):
        max_pool1d_backward(device(grad), argmax, 4)   # the last window's rows are 6..8
    assert checked[-1] == 4
    key = id(argmax)
    del argmax
    assert key not in _cuda_conv._forward_argmax   # the entry went with the array


def _ids(rng, shape, vocab):
    ids = rng.integers(0, vocab, shape)
    ids.flat[: min(ids.size, 6)] = 3   # repeated ids accumulate
    return ids


@pytest.mark.parametrize("dtype", [f32, f64])
def test_embedding_sources_match_reference(emulated, dtype):
    rng = np.random.default_rng(0)
    ids = _ids(rng, (4, 9), 12)
    table = rng.standard_normal((12, 7)).astype(dtype)
    out = embedding_forward(device(ids), device(table))
    np.testing.assert_array_equal(out, reference.embedding_forward(ids, table))
    base = rng.standard_normal((4, 9, 7)).astype(dtype)
    for layout, grad in {"contiguous": base, "reversed rows": base[::-1, ::-1],
                         "transposed": np.ascontiguousarray(base.transpose(2, 0, 1)).transpose(1, 2, 0),
                         "broadcast": np.broadcast_to(base[:1, :1], base.shape)}.items():
        dense = embedding_backward(device(ids), device(grad), 12)
        assert_close(dense, reference.embedding_backward(ids, np.ascontiguousarray(grad), 12), dtype, layout)
        rows, summed = embedding_coalesce(device(ids.reshape(-1)), device(grad.reshape(-1, 7)), 12)
        ref_rows, ref_summed = reference.embedding_coalesce(ids.reshape(-1),
                                                            np.ascontiguousarray(grad).reshape(-1, 7), 12)
        np.testing.assert_array_equal(rows, ref_rows)
        np.testing.assert_array_equal(summed, ref_summed)   # same order of additions: exact


@pytest.mark.parametrize("ids", [[0, 9, 0, 9, 4, 0], [9], [3, 3, 3], list(range(10))[::-1], []])
def test_embedding_coalesce_segments(emulated, ids):
    ids = np.array(ids, np.int64)
    values = np.random.default_rng(ids.size).standard_normal((ids.size, 4))
    rows, summed = embedding_coalesce(device(ids), device(values), 10)
    ref_rows, ref_summed = reference.embedding_coalesce(ids, values, 10)
    np.testing.assert_array_equal(rows, ref_rows)
    np.testing.assert_array_equal(summed, ref_summed)
    assert summed.shape == (ref_rows.size, 4) and rows.dtype == np.int64


def test_embedding_takes_any_integer_ids(emulated):
    ids, table = np.array([[4, 0], [4, 2]], np.int32), np.arange(10.0).reshape(5, 2)
    np.testing.assert_array_equal(embedding_forward(device(ids), device(table)), table[ids])
    dense = embedding_backward(device(ids.astype(np.uint8)), device(np.ones((2, 2, 2))), 5)
    np.testing.assert_array_equal(dense[:, 0], [1, 0, 1, 0, 2])
    rows, summed = embedding_coalesce(device(ids.reshape(-1)), device(np.ones((4, 2))), 5)
    assert rows.dtype == np.int64 and rows.tolist() == [0, 2, 4] and summed[:, 0].tolist() == [1, 1, 2]


def test_embedding_empty_ids(emulated):
    table = np.ones((5, 3))
    assert embedding_forward(device(np.zeros((2, 0), np.int64)), device(table)).shape == (2, 0, 3)
    dense = embedding_backward(device(np.zeros(0, np.int64)), device(np.zeros((0, 3))), 5)
    np.testing.assert_array_equal(dense, np.zeros((5, 3)))
