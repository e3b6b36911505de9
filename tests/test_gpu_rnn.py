"""The recurrent ops of the cupy backend on a GPU (engine/backends/_cuda_rnn.py, the v1 loops
of kernels/cuda/{lstm,gru,simple_rnn}.cu), against the NumPy reference.

Every failure names the variant, option, dtype and output. tests/test_cuda_rnn_host.py runs
the same sources and loops on the CPU; what only this file checks is the device: cuBLAS,
launches, NVRTC's build, memory.
"""
import numpy as np
import pytest

import engine as en
import rnn_cases as rc
from engine import testing
from engine.backends import _cuda_rnn

pytestmark = pytest.mark.gpu

if "cupy" not in en.backends.available():
    pytest.skip(f"no GPU backend: {en.backends.why_unavailable().get('cupy', 'unknown')}",
                allow_module_level=True)

cupy = pytest.importorskip("cupy")

DTYPES = [np.float32, np.float64]


@pytest.fixture(autouse=True)
def v1(monkeypatch):
    """Every test here runs the v1 loops (v2 has its own tests)."""
    monkeypatch.setenv(_cuda_rnn.ENV, "v1")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("option", rc.OPTIONS)
@pytest.mark.parametrize("variant", list(rc.VARIANTS))
def test_v1_matches_reference(variant, option, dtype):
    rc.check_backend(rc.make_case(variant, option), "cupy", dtype)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (1, 4, 2, 3), (3, 1, 2, 2), (2, 3, 2, 1)],
                         ids=lambda s: "B%d-T%d-F%d-H%d" % s)
@pytest.mark.parametrize("variant", list(rc.VARIANTS))
def test_v1_edge_shapes(variant, shape):
    for option in ("plain", "masked_row", "everything"):
        for dtype in DTYPES:
            rc.check_backend(rc.make_case(variant, option, *shape), "cupy", dtype)


@pytest.mark.parametrize("option", ["plain", "everything"])
@pytest.mark.parametrize("variant", list(rc.VARIANTS))
def test_v1_larger_shape_float32(variant, option):
    # More threads than one block, H not a multiple of the warp, cuBLAS's real tile paths.
    rc.check_backend(rc.make_case(variant, option, B=16, T=50, F_=32, H=128), "cupy", np.float32)


def _table_inputs(variant, option, dtype, B=5, T=6, F=4, H=37):
    """(op, forward's positional arguments, keyword arguments) as cupy arrays, time-major mask."""
    op, extra, G = rc.VARIANTS[variant]
    rng = np.random.default_rng(rc._seed("gpu", variant, option))
    arr = lambda *s, scale=0.5: cupy.asarray((rng.uniform(-scale, scale, s)).astype(dtype))  # noqa: E731
    x, kernel, U, bias = arr(B, T, F, scale=1.0), arr(F, G * H), arr(H, G * H), arr(G * H, scale=0.3)
    h0 = arr(B, H, scale=0.8) if option in ("initial_state", "everything") else cupy.zeros((B, H), dtype)
    mask = dm = None
    if option in ("mask_holes", "everything"):
        mask = cupy.asarray(rc.random_mask(rng, B, T, option).T.copy())
    if option in ("dropout", "everything"):
        dm = cupy.asarray(((rng.random((B, H)) >= 0.3) / 0.7).astype(dtype))
    kwargs = {"go_backwards": option == "everything"}
    if op == "lstm":
        return op, (x, kernel, bias, U, h0, h0 * 0.5, mask, dm), kwargs
    if op == "gru":
        reset_after = extra["reset_after"]
        rb = arr(G * H, scale=0.3) if reset_after else None
        return op, (x, kernel, bias, U, rb, h0, mask, dm, reset_after), kwargs
    return op, (x, kernel, bias, U, h0, mask, dm), kwargs


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("option", ["plain", "mask_holes", "dropout", "initial_state", "everything"])
@pytest.mark.parametrize("variant", ["lstm", "gru", "gru_reset_before"])
def test_v1_inference_is_bit_identical_to_training(variant, option, dtype):
    op, args, kwargs = _table_inputs(variant, option, dtype)
    forward = getattr(_cuda_rnn, f"{op}_forward")
    trained = forward(*args, **kwargs, save=True)
    inferred = forward(*args, **kwargs, save=False)
    where = f"{variant}/{option}/{np.dtype(dtype).name}"
    np.testing.assert_array_equal(cupy.asnumpy(inferred[0]), cupy.asnumpy(trained[0]),
                                  err_msg=f"{where}: hs under save=False")
    if op == "lstm":
        assert inferred[1].shape == (1,) + trained[1].shape[1:], f"{where}: c_T's shape"
        np.testing.assert_array_equal(cupy.asnumpy(inferred[1][0]), cupy.asnumpy(trained[1][-1]),
                                      err_msg=f"{where}: c_T under save=False")
        assert inferred[2] is None, f"{where}: gates kept under save=False"
    else:
        assert inferred[1:] == (None, None), f"{where}: gates/uh kept under save=False"


class _Allocations(cupy.cuda.MemoryHook):
    """Counts the memory pool's allocations while active."""
    name = "seqfuse_allocations"

    def __init__(self):
        self.count = 0

    def malloc_preprocess(self, **kwargs):
        self.count += 1


def _loop_allocations(variant, T, dtype=np.float32):
    """Pool allocations of one forward and one backward loop call on fresh inputs of length T."""
    op, args, _ = _table_inputs(variant, "everything", dtype, B=4, T=T, F=3, H=8)
    x, kernel, bias, *rest = args
    xw = cupy.ascontiguousarray(cupy.matmul(x, kernel).transpose(1, 0, 2))
    forward = getattr(_cuda_rnn, f"{op}_loop_forward")
    backward = getattr(_cuda_rnn, f"{op}_loop_backward")
    dhs = cupy.ones((T, 4, 8), dtype)
    cupy.cuda.Device().synchronize()
    hook = _Allocations()
    with hook:
        saved = forward(xw, *rest)
        if op == "lstm":
            U, h0, c0, mask, dm = rest
            hs, cs, gates = saved
            backward(dhs, c0, U, h0, c0, hs, cs, gates, mask, dm)
        elif op == "gru":
            U, rb, h0, mask, dm, reset_after = rest
            hs, gates, uh = saved
            backward(dhs, U, rb, h0, hs, gates, uh, mask, dm, reset_after)
        else:
            U, h0, mask, dm = rest
            backward(dhs, U, h0, saved, mask, dm)
    return hook.count


@pytest.mark.parametrize("variant", list(rc.VARIANTS))
def test_v1_loops_allocate_nothing_per_step(variant):
    # Buffers are made before the time loop: 4 and 40 steps allocate the same number of times.
    assert _loop_allocations(variant, 4) == _loop_allocations(variant, 40), (
        f"{variant}: the v1 loops allocate device memory inside the time loop")


def test_v1_loops_run_with_the_version_forced_and_auto(monkeypatch):
    # Forced v1 and auto agree to the tolerance (auto may run v2 where it is supported).
    op, args, kwargs = _table_inputs("lstm", "everything", np.float32)
    hs_v1 = cupy.asnumpy(_cuda_rnn.lstm_forward(*args, **kwargs)[0])
    monkeypatch.setenv(_cuda_rnn.ENV, "auto")
    hs_auto = cupy.asnumpy(_cuda_rnn.lstm_forward(*args, **kwargs)[0])
    assert testing.relative_error(hs_auto, hs_v1) <= rc.FORWARD_RTOL[np.float32]
