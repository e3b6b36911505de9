"""The v2 (persistent) GPU loops without a GPU: which shapes they take on H100/H200/A100,
argument checks before anything touches CuPy, the NVRTC/nvcc compile of
kernels/cuda/rnn_persistent.cu, and the kernels themselves run on the CPU.

The CPU run compiles the real .cu with g++ behind a small shim (every CUDA thread a fiber
on one OS thread, switched at __syncthreads, at each warp's shuffles and in the source's own
grid barrier, in random orders that let some warps run ahead to their next barrier while
others lag; a deadlock fails the launch) and drives it through engine/backends/_cuda_persistent.py
with NumPy standing in for CuPy. It checks the indexing, the phases and barriers, the
dropout/mask/state paths and the host module end to end against reference.py; it cannot
check what only the hardware does (the L1/L2 visibility rules, timing). tests/test_gpu_persistent.py runs the
same comparisons on a device. The helpers here (loop_inputs, compare_with_reference) serve
both files.
"""
import ctypes
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest

from engine import testing
from engine.backends import _cuda, _cuda_persistent as persistent, reference
from engine.backends._projection import input_projection
# VARIANTS also parametrizes `variant` (conftest.py).
from rnn_cases import FORWARD_RTOL, GRAD_RTOL, VARIANTS, cast, make_case

H100 = {"multiProcessorCount": 132, "sharedMemPerBlockOptin": 232448, "cooperativeLaunch": 1}
A100 = {"multiProcessorCount": 108, "sharedMemPerBlockOptin": 166912, "cooperativeLaunch": 1}


# ---------------------------------------------------------------- shared with the GPU tests

def loop_inputs(variant, option, dtype, B=3, T=5, F_=3, H=2):
    """The time-major loop arguments of an rnn_cases case (NumPy), as functional hands them
    to a backend: xw from the input projection in processing order, the mask transposed to
    [T,B] (and flipped for go_backwards), zero initial states when the case has none, plus
    random dhs / dc_T cotangents for the backward."""
    op, extra, _ = VARIANTS[variant]
    case = cast(make_case(variant, option, B=B, T=T, F_=F_, H=H), dtype)
    d, kw = dict(zip(case.names, case.arrays)), case.kwargs
    bias, rb = d.get("bias"), None
    if op == "gru" and extra["reset_after"] and bias is not None:
        bias, rb = bias[0], np.ascontiguousarray(bias[1])
    go_backwards = kw.get("go_backwards", False)
    mask = kw.get("mask")
    if mask is not None:
        mask = np.ascontiguousarray(mask.T[::-1] if go_backwards else mask.T)
    rng = np.random.default_rng(7)
    zeros = np.zeros((B, H), dtype)
    return dict(op=op, reset_after=extra.get("reset_after", True),
                xw=input_projection(d["x"], d["kernel"], bias, go_backwards), U=d["recurrent_kernel"],
                rb=rb, h0=d.get("h0", zeros), c0=d.get("c0", zeros), mask=mask,
                dm=kw.get("recurrent_dropout_mask"),
                dhs=rng.standard_normal((T, B, H)).astype(dtype),
                dc_T=rng.standard_normal((B, H)).astype(dtype))


FORWARD_NAMES = {"lstm": ("hs", "cs", "gates"), "gru": ("hs", "gates", "uh"), "simple_rnn": ("hs",)}
BACKWARD_NAMES = {"lstm": ("dz", "dbias", "dh0", "dc0"), "gru": ("dxw", "du", "dbias", "dh0"),
                  "simple_rnn": ("dz", "dbias", "dh0")}


def run_forward(module, prefix, inp, to_device, save=True):
    """module.<prefix><op>_forward (reference: `_`, ours: ``... `_loop`) -> tuple of outputs."""
    op, a = inp["op"], {k: to_device(v) for k, v in inp.items() if isinstance(v, np.ndarray)}
    fn = getattr(module, prefix.format(op=op, d="forward"))
    g = lambda k: a.get(k)  # noqa: E731  (absent optional arrays are None)
    kw = {} if op == "simple_rnn" else {"save": save}
    if op == "lstm":
        out = fn(g("xw"), g("U"), g("h0"), g("c0"), g("mask"), g("dm"), **kw)
    elif op == "gru":
        out = fn(g("xw"), g("U"), g("rb"), g("h0"), g("mask"), g("dm"), inp["reset_after"], **kw)
    else:
        out = (fn(g("xw"), g("U"), g("h0"), g("mask"), g("dm")),)
    return tuple(out)


def run_backward(module, prefix, inp, saved, to_device):
    """The backward on the reference forward's saved arrays -> tuple of its returns."""
    op = inp["op"]
    a = {k: to_device(v) for k, v in inp.items() if isinstance(v, np.ndarray)}
    s = [to_device(v) for v in saved]
    g = lambda k: a.get(k)  # noqa: E731
    fn = getattr(module, prefix.format(op=op, d="backward"))
    if op == "lstm":
        return fn(g("dhs"), g("dc_T"), g("U"), g("h0"), g("c0"), *s, g("mask"), g("dm"))
    if op == "gru":
        return fn(g("dhs"), g("U"), g("rb"), g("h0"), *s, g("mask"), g("dm"), inp["reset_after"])
    return fn(g("dhs"), g("U"), g("h0"), *s, g("mask"), g("dm"))


def compare_with_reference(inp, label, dtype, module=persistent, to_device=np.asarray,
                           to_host=np.asarray, forward_rtol=None, grad_rtol=None):
    """Our forward (save and inference) and backward vs reference.py's loops; one assertion
    listing every output beyond tolerance, named `label` (variant/option/dtype)."""
    kind = np.dtype(dtype).type
    forward_rtol = FORWARD_RTOL[kind] if forward_rtol is None else forward_rtol
    grad_rtol = GRAD_RTOL[kind] if grad_rtol is None else grad_rtol
    op = inp["op"]
    expected = run_forward(reference, "_{op}_{d}", inp, np.asarray)
    ours = [to_host(o) for o in run_forward(module, "{op}_loop_{d}", inp, to_device)]
    errors = {f"forward {n}": testing.relative_error(o, e)
              for n, o, e in zip(FORWARD_NAMES[op], ours, expected)}
    if op != "simple_rnn":
        # Inference keeps nothing but hs (and lstm's c_T), bit-identical to the saving run.
        hs, *rest = run_forward(module, "{op}_loop_{d}", inp, to_device, save=False)
        assert np.array_equal(to_host(hs), ours[0]), f"{label}: hs differs with save=False"
        if op == "lstm":
            assert rest[0].shape[0] == 1 and np.array_equal(to_host(rest[0])[0], ours[1][-1]), \
                f"{label}: save=False cs is not c_T"
            assert rest[1] is None
        else:
            assert rest == [None, None]
    grads_expected = run_backward(reference, "_{op}_{d}", inp, expected, np.asarray)
    grads = run_backward(module, "{op}_loop_{d}", inp, expected, to_device)
    errors.update({f"backward {n}": testing.relative_error(to_host(o), e)
                   for n, o, e in zip(BACKWARD_NAMES[op], grads, grads_expected)})
    bad = {k: f"{e:.2e}" for k, e in errors.items()
           if not e <= (forward_rtol if k.startswith("forward") else grad_rtol)}
    assert not bad, f"persistent vs reference, {label}: relative errors {bad}"


# ---------------------------------------------------------------- which shapes run

@pytest.mark.parametrize("props,op,B,H,dtype,expected", [
    (H100, "lstm", 16, 512, np.float32, True),      # the small-batch target
    (H100, "gru", 16, 512, np.float32, True),
    (H100, "lstm", 64, 256, np.float32, True),
    (H100, "lstm", 16, 1024, np.float32, True),     # 8 units/block: 131 KB of U per block
    (H100, "lstm", 16, 2048, np.float32, False),    # 16 units/block: 524 KB
    (H100, "lstm", 16, 1024, np.float64, False),
    (H100, "lstm", 16, 512, np.float64, True),
    (H100, "simple_rnn", 4096, 2048, np.float32, True),  # B only sets the batch tile
    (H100, "simple_rnn", 16, 4096, np.float32, False),
    (H100, "lstm", 1, 1, np.float64, True),
    (A100, "lstm", 16, 1024, np.float32, False),    # 163 KB opt-in: 10 units/block do not fit
    (A100, "gru", 16, 1024, np.float32, True),
    (A100, "lstm", 16, 512, np.float32, True),
    (H100, "lstm", 16, 512, np.float16, False),     # no half kernels
    ({**H100, "cooperativeLaunch": 0}, "lstm", 16, 128, np.float32, False),
])
def test_fits_on_known_cards(props, op, B, H, dtype, expected):
    assert persistent.fits(op, B, H, dtype, props) is expected


def test_plan_splits_units_and_batch_within_shared_memory():
    p = persistent.plan("lstm", 16, 512, 4, H100)
    # 132 SMs: ceil(512/132) = 4 units per block, so 128 blocks, none empty.
    assert (p.blocks, p.units, p.batch_tile) == (128, 4, 16)
    assert p.shared_bytes == (4 * 4 * 513 + 16 * 512) * 4
    back = persistent.plan("lstm", 16, 1024, 4, H100, backward=True)
    assert back.units == 8 and back.shared_bytes <= H100["sharedMemPerBlockOptin"]
    assert back.batch_tile == (232448 // 4 - 8 * (4 * 1024 + 1)) // (4 * 1024) < 16
    for op in persistent.GATES:
        for H in (1, 2, 37, 131, 132, 133, 700):
            for backward in (False, True):
                p = persistent.plan(op, 5, H, 8, H100, backward=backward)
                assert p.blocks <= 132 and (p.blocks - 1) * p.units < H <= p.blocks * p.units


def test_plan_follows_the_test_caps(monkeypatch):
    monkeypatch.setattr(persistent, "MAX_BLOCKS", 3)
    monkeypatch.setattr(persistent, "MAX_BATCH_TILE", 2)
    p = persistent.plan("gru", 5, 37, 8, H100)
    assert (p.blocks, p.units, p.batch_tile) == (3, 13, 2)


def test_supports_asks_the_current_device():
    from engine.backends import cupy_cuda
    if cupy_cuda.available():
        assert persistent.supports("lstm", 16, 128, np.float32) is persistent.fits(
            "lstm", 16, 128, np.float32, persistent.device_properties())
    else:
        assert persistent.supports("lstm", 16, 128, np.float32) is False
    with pytest.raises(ValueError, match="op must be one of"):
        persistent.fits("gru_reset_before", 16, 128, np.float32, H100)
    with pytest.raises(ValueError, match="B and H must be >= 1, got B=0"):
        persistent.fits("lstm", 0, 128, np.float32, H100)


# ---------------------------------------------------------------- argument checks (NumPy in)

def test_arguments_are_checked_before_cupy_is_touched(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)   # any import of cupy would raise
    f64 = lambda *s: np.zeros(s)  # noqa: E731
    xw, U, h = f64(5, 3, 8), f64(2, 8), f64(3, 2)
    cases = [
        (ValueError, r"lstm_loop_forward: U must have shape \(H, 4H\), got \(2, 7\)",
         lambda: persistent.lstm_loop_forward(xw, U[:, :7], h, h, None, None)),
        (ValueError, r"lstm_loop_forward: xw must have shape \(5, 3, 8\), got \(5, 3, 6\)",
         lambda: persistent.lstm_loop_forward(xw[..., :6], U, h, h, None, None)),
        (TypeError, "h0 must have dtype float64 like xw, got float32",
         lambda: persistent.lstm_loop_forward(xw, U, h.astype(np.float32), h, None, None)),
        (ValueError, r"mask must have shape \(T, B\) = \(5, 3\), got \(3, 5\)",
         lambda: persistent.lstm_loop_forward(xw, U, h, h, np.ones((3, 5), bool), None)),
        (TypeError, "mask must be bool, got float64",
         lambda: persistent.lstm_loop_forward(xw, U, h, h, np.ones((5, 3)), None)),
        (ValueError, r"dropout_mask must have shape \(3, 2\), got \(2, 3\)",
         lambda: persistent.lstm_loop_forward(xw, U, h, h, None, f64(2, 3))),
        (TypeError, "xw must be float32 or float64, got int64",
         lambda: persistent.simple_rnn_loop_forward(xw.astype(np.int64), U[:, :2], h, None, None)),
        (ValueError, r"xw must have shape \(T, B, ...\) with T, B >= 1, got \(0, 3, 8\)",
         lambda: persistent.lstm_loop_forward(xw[:0], U, h, h, None, None)),
        (ValueError, r"recurrent_bias must have shape \(6,\), got \(5,\)",
         lambda: persistent.gru_loop_forward(xw[..., :6], U[:, :6], f64(5), h, None, None)),
        (ValueError, "recurrent_bias must be None when reset_after is False",
         lambda: persistent.gru_loop_forward(xw[..., :6], U[:, :6], f64(6), h, None, None, False)),
        (ValueError, r"gru_loop_backward: uh must have shape \(5, 3, 2\), got \(0,\)",
         lambda: persistent.gru_loop_backward(f64(5, 3, 2), U[:, :6], None, h, f64(5, 3, 2),
                                              f64(5, 3, 6), f64(0), None, None, True)),
        (ValueError, r"lstm_loop_backward: gates must have shape \(5, 3, 8\), got \(5, 3, 6\)",
         lambda: persistent.lstm_loop_backward(f64(5, 3, 2), h, U, h, h, f64(5, 3, 2), f64(5, 3, 2),
                                               f64(5, 3, 6), None, None)),
        (ValueError, r"simple_rnn_loop_backward: hs must have shape \(5, 3, 2\), got \(5, 2, 2\)",
         lambda: persistent.simple_rnn_loop_backward(f64(5, 3, 2), U[:, :2], h, f64(5, 2, 2),
                                                     None, None)),
    ]
    for error, message, call in cases:
        with pytest.raises(error, match=message):
            call()


# ---------------------------------------------------------------- compile checks

needs_nvrtc = pytest.mark.skipif(bool(_cuda.nvrtc_unavailable()),
                                 reason=_cuda.nvrtc_unavailable() or "nvrtc")


def test_every_kernel_is_declared_for_float_and_double():
    names = _cuda.name_expressions(persistent.STEM)
    assert len(names) == 12 and "gru_persistent_backward<double>" in names
    assert _cuda.SOURCES[persistent.STEM][1], "the persistent kernels need a cooperative launch"


@needs_nvrtc
@pytest.mark.parametrize("arch", ["80", "90"])
def test_nvrtc_compiles_every_kernel(arch):
    ptx, lowered = _cuda.nvrtc_compile(persistent.STEM, arch)
    ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
    assert len(lowered) == 12 and all(f".entry {name}(" in ptx for name in lowered)


# ---------------------------------------------------------------- the kernels on the CPU

SHIM = r"""
#include <ucontext.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <type_traits>
#include <utility>
#include <vector>

struct Dim3 { unsigned x = 0, y = 0, z = 0; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(16) double2 { double x, y; };
Dim3 gridDim, blockDim;
namespace emu {
// Every CUDA thread is a fiber (ucontext) on the calling OS thread; a fiber runs until it
// waits at a barrier, then the scheduler resumes the next one. Barriers count progress, so a
// full pass over the fibers without any is a deadlock (the launch returns -1).
long progress = 0;
ucontext_t scheduler;
struct Barrier {
  int expected, arrived = 0;
  unsigned generation = 0;
  void wait();
};
struct Block {
  Block(int threads, int smem_bytes) : all{threads}, lanes(threads), smem(smem_bytes + 16) {
    for (int w = 0; w < threads / 32; ++w) warps.push_back(Barrier{32});
  }
  Barrier all;
  std::vector<Barrier> warps;
  std::vector<double> lanes;
  std::vector<unsigned char> smem;
};
struct Fiber {
  ucontext_t context;
  std::unique_ptr<char[]> stack;
  Dim3 thread, block_index;
  Block* block;
  std::function<void()> body;
  bool done = false;
};
Fiber* current;
inline void yield() { swapcontext(&current->context, &scheduler); }
void Barrier::wait() {
  const unsigned seen = generation;
  ++progress;
  if (++arrived == expected) {
    arrived = 0;
    ++generation;
  }
  do yield(); while (generation == seen);   // the last to arrive waits its turn as well
}
void fiber_main() {
  current->body();
  current->done = true;
  ++progress;
}
}  // namespace emu
#define threadIdx (emu::current->thread)
#define blockIdx (emu::current->block_index)
#define __global__
#define __device__
#define __host__
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
inline void __syncthreads() { emu::current->block->all.wait(); }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline unsigned atomicAdd(unsigned* p, unsigned v) {
  ++emu::progress;
  const unsigned old = *p;
  *p = old + v;
  return old;
}
template <typename T> T __ldcg(const T* p) { return *p; }
template <typename T> T __shfl_xor_sync(unsigned, T v, int lane_mask) {
  emu::Block& b = *emu::current->block;
  const unsigned t = threadIdx.x;
  emu::Barrier& warp = b.warps[t / 32];
  b.lanes[t] = static_cast<double>(v);       // exact for float and double
  warp.wait();
  const T r = static_cast<T>(b.lanes[(t & ~31u) | ((t & 31u) ^ unsigned(lane_mask))]);
  warp.wait();
  return r;
}
"""

LAUNCHER = r"""
template <typename... A, std::size_t... I>
void call_with(void (*k)(A...), void** p, std::index_sequence<I...>) {
  k(*static_cast<std::remove_cv_t<A>*>(p[I])...);
}
// Runs the grid. Rounds alternate: a full round resumes every waiting thread once, in a
// fresh random order (fixed seed); then rounds that resume only a random half of the warps
// until those are all blocked, so some warps run ahead to their next barrier while the
// others have not moved since the last one. A full round without progress is a deadlock.
template <typename... A>
int launch(void (*k)(A...), int blocks, int threads, int smem, void** p) {
  constexpr std::size_t kStack = 256 * 1024;
  gridDim = {unsigned(blocks), 1, 1};
  blockDim = {unsigned(threads), 1, 1};
  std::vector<std::unique_ptr<emu::Block>> state;
  for (int b = 0; b < blocks; ++b) state.push_back(std::make_unique<emu::Block>(threads, smem));
  std::vector<std::unique_ptr<emu::Fiber>> fibers;
  for (int b = 0; b < blocks; ++b)
    for (int t = 0; t < threads; ++t) {
      auto f = std::make_unique<emu::Fiber>();
      f->stack.reset(new char[kStack]);
      f->thread = {unsigned(t), 0, 0};
      f->block_index = {unsigned(b), 0, 0};
      f->block = state[b].get();
      f->body = [k, p] { call_with(k, p, std::index_sequence_for<A...>{}); };
      getcontext(&f->context);
      f->context.uc_stack.ss_sp = f->stack.get();
      f->context.uc_stack.ss_size = kStack;
      f->context.uc_link = &emu::scheduler;
      makecontext(&f->context, emu::fiber_main, 0);
      fibers.push_back(std::move(f));
    }
  std::vector<emu::Fiber*> order;
  for (auto& f : fibers) order.push_back(f.get());
  std::mt19937 random(12345);
  std::vector<char> ahead(fibers.size() / 32);
  std::size_t alive = fibers.size();
  // Resumes the threads `chosen` picks; true if anything moved.
  auto round = [&](auto chosen) {
    const long before = emu::progress;
    std::shuffle(order.begin(), order.end(), random);
    for (emu::Fiber* f : order) {
      if (f->done || !chosen(f)) continue;
      emu::current = f;
      swapcontext(&emu::scheduler, &f->context);
      if (f->done) --alive;
    }
    return emu::progress != before;
  };
  while (alive) {
    if (!round([](emu::Fiber*) { return true; }) && alive) {
      std::fprintf(stderr, "emulated launch: deadlock, %zu threads waiting\n", alive);
      return -1;    // the waiting fibers' stacks are leaked
    }
    for (auto& a : ahead) a = char(random() % 2);
    auto warp = [&](emu::Fiber* f) {
      return ahead[(f->block_index.x * blockDim.x + f->thread.x) / 32] != 0;
    };
    while (alive && round(warp)) {
    }
  }
  return 0;
}
#define EXPORT(name, T) \
  extern "C" int name##_##T(int blocks, int threads, int smem, void** p) { \
    return launch(&name<T>, blocks, threads, smem, p); }
"""


def _emulator_source():
    """The .cu with its includes inlined, made host code: the dynamic shared memory array
    becomes the emulated block's buffer, and the grid barrier's spin yields to the other
    fibers."""
    text = _cuda.source_path(persistent.STEM).read_text()
    header = (_cuda.KERNEL_DIR / "cuda" / "persistent.cuh").read_text()
    spin = "while (((old ^ *seen) & 0x80000000u) == 0) {"
    assert spin in header, "grid_barrier changed: update the emulator's spin hook"
    header = header.replace(spin, spin + " emu::yield();").replace("#pragma once\n", "")
    text = text.replace('#include "cuda/persistent.cuh"', header)
    shared = "extern __shared__ __align__(16) unsigned char smem_bytes[];"
    assert text.count(shared) == 6
    text = text.replace(shared, "unsigned char* smem_bytes = emu::current->block->smem.data();")
    exports = "\n".join(f"EXPORT({op}_persistent_{d}, {t})" for op in persistent.GATES
                        for d in ("forward", "backward") for t in ("float", "double"))
    return SHIM + text + LAUNCHER + exports + "\n"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("g++ is not on PATH")
    build = tmp_path_factory.mktemp("persistent_emulator")
    (build / "emulated.cpp").write_text(_emulator_source())
    lib = build / "emulated.so"
    done = subprocess.run(["g++", "-std=c++17", "-O1", "-shared", "-fPIC",
                           f"-I{_cuda.KERNEL_DIR}", str(build / "emulated.cpp"), "-o", str(lib)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return ctypes.CDLL(str(lib))


class EmulatedKernel:
    """Stands in for a cupy RawKernel: checks the launch as the device would, then runs the
    g++ build of the same instantiation with cuLaunchKernel-style parameter pointers."""

    def __init__(self, lib, properties, template, dtype):
        self.function = getattr(lib, template.replace("<{T}>", "_" + _cuda.ctype(dtype)))
        self.properties, self.dtype = properties, np.dtype(dtype)
        self.max_dynamic_shared_size_bytes = 0

    def __call__(self, grid, block, args, shared_mem=0):
        assert block == (persistent.THREADS,) and len(grid) == 1
        assert grid[0] <= self.properties["multiProcessorCount"], "not co-resident"
        assert shared_mem <= self.max_dynamic_shared_size_bytes <= self.properties["sharedMemPerBlockOptin"]
        holders = []
        for a in args:
            if isinstance(a, np.ndarray):
                assert a.flags.c_contiguous and a.dtype in (self.dtype, np.bool_, np.uint32)
                holders.append(ctypes.c_void_p(a.ctypes.data))
            elif isinstance(a, np.int32):
                holders.append(ctypes.c_int32(int(a)))
            else:
                assert isinstance(a, np.uint64) and a == 0, f"unexpected kernel argument {a!r}"
                holders.append(ctypes.c_uint64(0))
        pointers = (ctypes.c_void_p * len(holders))(*[ctypes.addressof(h) for h in holders])
        assert self.function(grid[0], block[0], shared_mem, pointers) == 0, "the launch deadlocked"


@pytest.fixture
def emulated(emulator, monkeypatch):
    """_cuda_persistent running on the CPU: NumPy as cupy, a small 3-SM device whose opt-in
    shared memory is an H100's, kernels from the emulator."""
    properties = {**H100, "multiProcessorCount": 3}
    fake = types.ModuleType("cupy")
    fake.ndarray, fake.uint32 = np.ndarray, np.uint32
    fake.empty, fake.zeros, fake.ascontiguousarray = np.empty, np.zeros, np.ascontiguousarray
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(
        getDevice=lambda: 0, getDeviceProperties=lambda dev: properties,
        CUDARuntimeError=RuntimeError))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(persistent, "_properties", {})
    monkeypatch.setattr(_cuda, "function", lambda stem, template, dtype:
                        EmulatedKernel(emulator, properties, template, dtype))
    return persistent


# plain: every optional pointer null; everything: mask, dropout, initial state, go_backwards;
# masked_row: a row masked at every step (its gradients pass straight through to dh0).
EMULATED = [("plain", {}), ("everything", {}), ("masked_row", {"H": 3})]


@pytest.mark.parametrize("option,shape", EMULATED, ids=[o for o, _ in EMULATED])
def test_emulated_kernels_match_reference(emulated, variant, option, shape):
    inp = loop_inputs(variant, option, np.float64, **shape)
    compare_with_reference(inp, f"{variant}/{option}/float64 (emulated)", np.float64, emulated)


def test_emulated_kernels_with_several_units_per_block_and_ragged_batch_tiles(emulated, variant,
                                                                             monkeypatch):
    # H = 7 over 3 blocks: 3, 3 and 1 units; B = 13 in tiles of 6, 6 and 1 rows, each tile
    # in work items of 4 and 2 rows.
    monkeypatch.setattr(persistent, "MAX_BATCH_TILE", 6)
    inp = loop_inputs(variant, "everything", np.float32, B=13, T=3, H=7)
    compare_with_reference(inp, f"{variant}/everything/float32 (emulated)", np.float32, emulated)
