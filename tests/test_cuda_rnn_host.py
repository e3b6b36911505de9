"""The cupy backend's recurrent ops without a GPU (engine/backends/_cuda_rnn.py).

- Argument checks fire on the host, naming the argument, before cupy is touched.
- SEQFUSE_CUDA_RNN chooses between the v1 loops and the v2 persistent ones (a fake
  _cuda_persistent module stands in for the real one).
- The v1 loops run end to end on the CPU: kernels/cuda/{lstm,gru,simple_rnn}.cu are compiled
  as host C++ with g++ (`__global__` dropped, the grid run as a loop over blocks and threads),
  NumPy stands in for cupy, and the whole table is checked against the reference backend for
  every variant and option of tests/rnn_cases.py. This runs the exact CUDA source and the
  exact host loop; what it cannot check is the GPU itself (cuBLAS, launch configuration,
  memory), which tests/test_gpu_rnn.py does on a device.
"""
from __future__ import annotations

import ctypes
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest

import rnn_cases as rc
from engine import backends
from engine.backends import _cuda, _cuda_rnn

# ---------------------------------------------------------------------------------------------
# Argument checks


def _table_args(op, B=2, T=3, F=4, H=5, dtype=np.float32, reset_after=True):
    """Valid NumPy arguments of `{op}_forward` as a dict (recurrent_bias only for gru)."""
    G = {"lstm": 4, "gru": 3, "simple_rnn": 1}[op]
    args = dict(x=np.zeros((B, T, F), dtype), kernel=np.zeros((F, G * H), dtype),
                bias=np.zeros(G * H, dtype), U=np.zeros((H, G * H), dtype))
    if op == "gru":
        args["recurrent_bias"] = np.zeros(G * H, dtype) if reset_after else None
    args["h0"] = np.zeros((B, H), dtype)
    if op == "lstm":
        args["c0"] = np.zeros((B, H), dtype)
    args.update(mask=np.ones((T, B), bool), dropout_mask=np.ones((B, H), dtype))
    if op == "gru":
        args["reset_after"] = reset_after
    return args


def _forward(op, **changes):
    args = _table_args(op)
    args.update(changes)
    return getattr(_cuda_rnn, f"{op}_forward")(**args)


@pytest.fixture
def no_cupy(monkeypatch):
    """Any use of cupy fails the test: the checks must come first."""
    monkeypatch.setattr(_cuda_rnn, "cupy", None)
    monkeypatch.setitem(sys.modules, "cupy", None)


BAD_FORWARD = [
    ("x", np.zeros((2, 3), np.float32), ValueError, r"lstm: x must have 3 dimensions, got shape \(2, 3\)"),
    ("x", np.zeros((2, 3, 4), np.int64), TypeError, "lstm: x must be float32 or float64, got int64"),
    ("U", np.zeros((5, 19), np.float32), ValueError, r"lstm: U must have shape \(H, 4H\) = \(5, 20\), got \(5, 19\)"),
    ("kernel", np.zeros((3, 20), np.float32), ValueError,
     r"lstm: kernel must have shape \(F, 4H\) = \(4, 20\), got \(3, 20\)"),
    ("kernel", np.zeros((4, 20), np.float64), TypeError,
     "lstm: kernel must be float32 like the other float inputs, got float64"),
    ("bias", np.zeros(19, np.float32), ValueError, r"lstm: bias must have shape \(4H,\) = \(20,\), got \(19,\)"),
    ("h0", np.zeros((2, 4), np.float32), ValueError, r"lstm: h0 must have shape \(B, H\) = \(2, 5\), got \(2, 4\)"),
    ("c0", np.zeros((3, 5), np.float32), ValueError, r"lstm: c0 must have shape \(B, H\) = \(2, 5\), got \(3, 5\)"),
    ("mask", np.ones((3, 2), np.float32), TypeError, "lstm: mask must be a bool array of shape \\(T, B\\) or None, got float32"),
    ("mask", np.ones((2, 3), bool), ValueError, r"lstm: mask must have shape \(T, B\) = \(3, 2\), got \(2, 3\)"),
    ("dropout_mask", np.ones((2, 4), np.float32), ValueError, r"lstm: dropout_mask must have shape \(B, H\)"),
    ("dropout_mask", [[1.0]], TypeError, "lstm: dropout_mask must be an array, got list"),
]


@pytest.mark.parametrize("name, value, error, message", BAD_FORWARD, ids=[b[3][:40] for b in BAD_FORWARD])
def test_lstm_forward_checks_each_argument_before_cupy(no_cupy, name, value, error, message):
    with pytest.raises(error, match=message):
        _forward("lstm", **{name: value})


def test_gru_and_simple_rnn_forward_checks(no_cupy):
    with pytest.raises(ValueError, match=r"gru: U must have shape \(H, 3H\) = \(5, 15\), got \(5, 20\)"):
        _forward("gru", U=np.zeros((5, 20), np.float32))
    with pytest.raises(ValueError, match=r"gru: recurrent_bias must have shape \(3H,\) = \(15,\), got \(14,\)"):
        _forward("gru", recurrent_bias=np.zeros(14, np.float32))
    with pytest.raises(ValueError, match="recurrent_bias must be None when reset_after=False"):
        _forward("gru", reset_after=False)
    with pytest.raises(ValueError, match=r"simple_rnn: kernel must have shape \(F, H\) = \(4, 5\), got \(4, 6\)"):
        _forward("simple_rnn", kernel=np.zeros((4, 6), np.float32))


def test_numpy_arrays_are_refused_after_the_shape_checks(no_cupy):
    with pytest.raises(TypeError, match="lstm: x must be a GPU \\(cupy\\) array for the cupy backend, "
                                        "got numpy.ndarray"):
        _forward("lstm")


def test_backward_checks_each_argument_before_cupy(no_cupy):
    T, B, H = 3, 2, 5
    z = lambda *s: np.zeros(s, np.float32)  # noqa: E731
    lstm = dict(dhs=z(T, B, H), dc_T=z(B, H), U=z(H, 4 * H), h0=z(B, H), c0=z(B, H), hs=z(T, B, H),
                cs=z(T, B, H), gates=z(T, B, 4 * H), mask=None, dropout_mask=None)
    cases = [
        (dict(gates=z(T, B, 4 * H - 1)), ValueError,
         r"lstm: gates must have shape \(T, B, 4H\) = \(3, 2, 20\), got \(3, 2, 19\)"),
        (dict(cs=z(T - 1, B, H)), ValueError, r"lstm: cs must have shape \(T, B, H\) = \(3, 2, 5\)"),
        (dict(dc_T=np.zeros((B, H))), TypeError, "lstm: dc_T must be float32 like the other float inputs"),
        (dict(mask=np.ones((B, T), bool)), ValueError, r"lstm: mask must have shape \(T, B\) = \(3, 2\)"),
        (dict(kernel=z(4, 19)), ValueError, r"lstm: kernel must have size 20 on axis 1, got shape \(4, 19\)"),
        ({}, TypeError, "lstm: dhs must be a GPU"),
    ]
    for change, error, message in cases:
        with pytest.raises(error, match=message):
            _cuda_rnn.lstm_backward(**{**lstm, **change})
    gru = dict(dhs=z(T, B, H), U=z(H, 3 * H), recurrent_bias=None, h0=z(B, H), hs=z(T, B, H),
               gates=z(T, B, 3 * H), uh=z(T, B, H - 1), mask=None, dropout_mask=None)
    with pytest.raises(ValueError, match=r"gru: uh must have shape \(T, B, H\) = \(3, 2, 5\), got \(3, 2, 4\)"):
        _cuda_rnn.gru_backward(**gru)
    with pytest.raises(TypeError, match="gru: dhs must be a GPU"):   # uh unused without reset_after
        _cuda_rnn.gru_backward(**gru, reset_after=False)
    with pytest.raises(ValueError, match=r"simple_rnn: hs must have shape \(T, B, H\)"):
        _cuda_rnn.simple_rnn_backward(z(T, B, H), z(H, H), z(B, H), z(T, B, H + 1), None, None)


# ---------------------------------------------------------------------------------------------
# The version choice

def _fake_persistent(monkeypatch, supported):
    """A stand-in engine.backends._cuda_persistent whose supports() returns `supported`."""
    fake = types.ModuleType("engine.backends._cuda_persistent")
    fake.calls = []

    def supports(op, B, H, dtype, device=None):
        fake.calls.append((op, B, H, np.dtype(dtype)))
        return supported
    fake.supports = supports
    for op in ("lstm", "gru", "simple_rnn"):
        for direction in ("forward", "backward"):
            setattr(fake, f"{op}_loop_{direction}", f"v2 {op}_loop_{direction}")
    monkeypatch.setattr(_cuda_rnn, "_cuda_persistent", fake)
    return fake


def test_forced_v1_never_asks_v2(monkeypatch):
    monkeypatch.setenv(_cuda_rnn.ENV, "v1")
    fake = _fake_persistent(monkeypatch, True)
    assert _cuda_rnn.loop_version("lstm", 16, 512, np.float32) == "v1"
    assert _cuda_rnn._loop("gru", "backward", 16, 512, np.float32) is _cuda_rnn.gru_loop_backward
    assert fake.calls == []


@pytest.mark.parametrize("env", [None, "auto"])
def test_auto_takes_v2_where_supported(monkeypatch, env):
    if env is None:
        monkeypatch.delenv(_cuda_rnn.ENV, raising=False)
    else:
        monkeypatch.setenv(_cuda_rnn.ENV, env)
    fake = _fake_persistent(monkeypatch, True)
    assert _cuda_rnn.loop_version("gru", 16, 128, np.float32) == "v2"
    assert fake.calls == [("gru", 16, 128, np.dtype(np.float32))]
    assert _cuda_rnn._loop("lstm", "forward", 16, 128, np.float32) == "v2 lstm_loop_forward"
    _fake_persistent(monkeypatch, False)
    assert _cuda_rnn.loop_version("gru", 16, 4096, np.float32) == "v1"
    assert _cuda_rnn._loop("simple_rnn", "backward", 16, 4096, np.float32) is _cuda_rnn.simple_rnn_loop_backward


def test_forced_v2_where_unsupported_says_why(monkeypatch):
    monkeypatch.setenv(_cuda_rnn.ENV, "v2")
    fake = _fake_persistent(monkeypatch, True)
    assert _cuda_rnn.loop_version("lstm", 16, 128, np.float64) == "v2"
    assert fake.calls[-1] == ("lstm", 16, 128, np.dtype(np.float64))
    _fake_persistent(monkeypatch, False)
    with pytest.raises(ValueError, match=r"SEQFUSE_CUDA_RNN=v2, but the v2 persistent lstm kernel does "
                                         r"not support B=16, H=4096, float32 .*set SEQFUSE_CUDA_RNN=v1"):
        _cuda_rnn.loop_version("lstm", 16, 4096, np.float32)


@pytest.mark.parametrize("value", ["V1", "v3", "", "persistent"])
def test_unknown_version_names_the_variable(monkeypatch, value):
    monkeypatch.setenv(_cuda_rnn.ENV, value)
    with pytest.raises(ValueError, match=f"SEQFUSE_CUDA_RNN must be one of v1, v2, auto, got '{value}'"):
        _cuda_rnn.loop_version("lstm", 16, 128, np.float32)


def test_the_table_chooses_per_call_before_cupy(monkeypatch, no_cupy):
    # The choice comes after the checks and before anything runs: a forced, unsupported v2
    # fails on NumPy inputs only once their shapes are right, and never touches cupy.
    monkeypatch.setenv(_cuda_rnn.ENV, "v2")
    _fake_persistent(monkeypatch, False)
    monkeypatch.setattr(_cuda_rnn._Args, "on_device", lambda self: None)
    with pytest.raises(ValueError, match="does not support B=2, H=5, float32"):
        _forward("lstm")
    with pytest.raises(ValueError, match=r"h0 must have shape"):
        _forward("lstm", h0=np.zeros((2, 4), np.float32))


def test_the_kernel_table_is_the_cupy_backends():
    from engine.backends import cupy_cuda
    for op in ("lstm", "gru", "simple_rnn"):
        for direction in ("forward", "backward"):
            name = f"{op}_{direction}"
            assert getattr(cupy_cuda, name) is getattr(_cuda_rnn, name)
    for stem, count in (("lstm", 2), ("gru", 5), ("simple_rnn", 2)):
        assert len(_cuda.SOURCES[stem][0]) == count


# ---------------------------------------------------------------------------------------------
# The v1 loops on the CPU: the CUDA source compiled as host C++

HARNESS = r"""
#include <cstddef>
#include <type_traits>
#include <utility>
struct seqfuse_dim3 { unsigned x, y, z; };
static seqfuse_dim3 blockIdx, blockDim, threadIdx;
#define __global__
%(includes)s
// Runs fn(*args[0], *args[1], ...) for every thread of a 1-D grid, one after the other: the
// v1 kernels have no communication between threads, so any order is a valid schedule.
template <typename... A, std::size_t... I>
static void call(void (*fn)(A...), void** args, std::index_sequence<I...>) {
  fn(*static_cast<std::remove_reference_t<A>*>(args[I])...);
}
template <typename... A>
static void launch(void (*fn)(A...), unsigned grid, unsigned block, void** args) {
  blockDim = {block, 1, 1};
  for (unsigned b = 0; b < grid; ++b)
    for (unsigned t = 0; t < block; ++t) {
      blockIdx = {b, 0, 0};
      threadIdx = {t, 0, 0};
      call(fn, args, std::index_sequence_for<A...>{});
    }
}
%(wrappers)s
"""
STEMS = ("lstm", "gru", "simple_rnn")


@pytest.fixture(scope="module")
def host_kernels(tmp_path_factory):
    """{name expression: ctypes function(grid, block, void** args)} of every declared kernel."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is needed to run the CUDA sources on the host")
    names = [n for stem in STEMS for n in _cuda.name_expressions(stem)]
    source = HARNESS % dict(
        includes="\n".join(f'#include "cuda/{stem}.cu"' for stem in STEMS),
        wrappers="\n".join(f'extern "C" void run_{i}(unsigned g, unsigned b, void** a) '
                           f"{{ launch(&{name}, g, b, a); }}" for i, name in enumerate(names)))
    tmp = tmp_path_factory.mktemp("host_kernels")
    (tmp / "harness.cpp").write_text(source)
    subprocess.run(["g++", "-std=c++17", "-O1", "-shared", "-fPIC", f"-I{_cuda.KERNEL_DIR}",
                    str(tmp / "harness.cpp"), "-o", str(tmp / "harness.so")], check=True)
    lib = ctypes.CDLL(str(tmp / "harness.so"))
    kernels = {}
    for i, name in enumerate(names):
        fn = getattr(lib, f"run_{i}")
        fn.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_void_p)]
        kernels[name] = fn
    return kernels


def _host_argument(value, dtype):
    """The ctypes object a kernel argument becomes, with the checks a GPU launch would need:
    C-contiguous arrays of the launch's dtype (or bool masks), typed scalars."""
    if isinstance(value, np.ndarray):
        assert value.flags.c_contiguous, "a kernel got a non-contiguous array"
        assert value.dtype in (dtype, np.bool_), f"a {dtype} kernel got a {value.dtype} array"
        return ctypes.c_void_p(value.ctypes.data)
    if isinstance(value, np.uint64):
        assert value == 0, "np.uint64 is only the null pointer"
        return ctypes.c_void_p(None)
    if isinstance(value, np.int64):
        return ctypes.c_longlong(int(value))
    if isinstance(value, np.int32):
        return ctypes.c_int(int(value))
    raise AssertionError(f"kernel argument of type {type(value).__name__}: not typed for a launch")


@pytest.fixture
def emulated_backend(monkeypatch, host_kernels):
    """Registers backend "cuda_host": the cupy backend's table with NumPy for cupy and the
    host-compiled kernels for the GPU's, v1 loops forced."""
    def function(stem, template, dtype):
        name = template.format(T=_cuda.ctype(dtype))
        assert name in _cuda.name_expressions(stem), f"{name} is not declared for {stem}.cu"
        run = host_kernels[name]

        def launch(grid, block, args):
            assert len(grid) == 1 and len(block) == 1
            held = [_host_argument(a, np.dtype(dtype)) for a in args]
            pointers = (ctypes.c_void_p * len(held))(*[ctypes.addressof(h) for h in held])
            run(grid[0], block[0], pointers)
        return launch

    monkeypatch.setattr(_cuda, "function", function)
    monkeypatch.setattr(_cuda_rnn, "cupy", np)
    monkeypatch.setattr(_cuda_rnn._Args, "on_device", lambda self: None)
    monkeypatch.setenv(_cuda_rnn.ENV, "v1")
    module = types.ModuleType("cuda_host")
    module.NAME, module.DEVICE = "cuda_host", "cpu"
    module.available, module.why_unavailable = (lambda: True), (lambda: "")
    for op in STEMS:
        for direction in ("forward", "backward"):
            setattr(module, f"{op}_{direction}", getattr(_cuda_rnn, f"{op}_{direction}"))
    backends._discover()
    monkeypatch.setitem(backends._modules, "cuda_host", module)
    return "cuda_host"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("option", rc.OPTIONS)
@pytest.mark.parametrize("variant", list(rc.VARIANTS))
def test_v1_source_on_the_host_matches_reference(emulated_backend, variant, option, dtype):
    rc.check_backend(rc.make_case(variant, option, B=3, T=5, F_=3, H=4), emulated_backend, dtype)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (1, 4, 2, 3), (3, 1, 2, 2), (2, 3, 2, 1)],
                         ids=lambda s: "B%d-T%d-F%d-H%d" % s)
@pytest.mark.parametrize("variant", list(rc.VARIANTS))
def test_v1_source_on_the_host_edge_shapes(emulated_backend, variant, shape):
    for option in ("plain", "everything"):
        rc.check_backend(rc.make_case(variant, option, *shape), emulated_backend, np.float64)


@pytest.mark.parametrize("option", rc.INFERENCE_OPTIONS)
@pytest.mark.parametrize("variant", list(rc.VARIANTS))
def test_v1_source_on_the_host_inference_matches_training(emulated_backend, variant, option):
    rc.check_inference(variant, option, emulated_backend, np.float32)


@pytest.mark.parametrize("variant", list(rc.VARIANTS))
def test_v1_source_on_the_host_sums_the_bias_gradient_exactly(emulated_backend, variant):
    dbias, exact = rc.bias_sum_case(emulated_backend, variant, B=16, T=50, F_=4, H=8)
    assert dbias.dtype == np.float32
    assert np.abs(dbias - exact).max() <= 2e-7 * np.abs(exact).max()
