"""The v2 (persistent, one launch per loop) GPU recurrent loops against reference.py's loops,
on a CUDA device: every variant × option × dtype of tests/rnn_cases.py, the B=1 / T=1 / H=1
edges, several units per block with ragged batch tiles, and the issue's H=512 shape.

Each failure names variant/option/dtype and every output beyond tolerance (forward hs, cs,
gates, uh; backward dz or dxw/du, dbias, dh0, dc0); the backward runs on the reference
forward's saved arrays, so a forward error does not hide in it. tests/test_cuda_persistent_host.py
runs the same comparisons on the CPU through an emulation of the kernels.
"""
import numpy as np
import pytest

import engine as en
from engine.backends import _cuda_persistent as persistent

pytestmark = pytest.mark.gpu

if "cupy" not in en.backends.available():
    pytest.skip(f"no GPU backend: {en.backends.why_unavailable().get('cupy', 'unknown')}",
                allow_module_level=True)

cupy = pytest.importorskip("cupy")

# VARIANTS also parametrizes `variant` (conftest.py).
from rnn_cases import OPTIONS, VARIANTS  # noqa: E402,F401
from test_cuda_persistent_host import compare_with_reference, loop_inputs  # noqa: E402

DTYPES = [np.float32, np.float64]


def check(variant, option, dtype, **shape):
    inp = loop_inputs(variant, option, dtype, **shape)
    B, H = inp["h0"].shape
    assert persistent.supports(inp["op"], B, H, dtype), f"{variant} B={B} H={H} should fit"
    label = f"{variant}/{option}/{np.dtype(dtype).name} {shape or ''}"
    compare_with_reference(inp, label, dtype, to_device=cupy.asarray, to_host=cupy.asnumpy)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("option", OPTIONS)
def test_loops_match_reference(variant, option, dtype):
    check(variant, option, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [dict(B=1), dict(T=1), dict(H=1), dict(B=7, T=4, H=37)],
                         ids=["B1", "T1", "H1", "H37"])
def test_edges(variant, shape, dtype):
    check(variant, "everything", dtype, **shape)


@pytest.mark.parametrize("dtype", DTYPES)
def test_several_units_per_block_and_ragged_batch_tiles(variant, dtype, monkeypatch):
    # H = 37 over 3 blocks: 13, 13 and 11 units; B = 13 in tiles of 6, 6 and 1 rows, each
    # tile in work items of 4 and 2 rows.
    monkeypatch.setattr(persistent, "MAX_BLOCKS", 3)
    monkeypatch.setattr(persistent, "MAX_BATCH_TILE", 6)
    check(variant, "everything", dtype, B=13, T=6, H=37)


@pytest.mark.parametrize("option", ["plain", "everything"])
@pytest.mark.parametrize("shape", [dict(B=16, T=64, F_=32, H=512), dict(B=16, T=8, F_=8, H=1024)],
                         ids=["H512", "H1024"])
def test_large_hidden_sizes_float32(variant, shape, option):
    # H=1024 float32 is near the largest slice of U an H100/H200 block holds (lstm: 131 KB);
    # its backward stages the batch in tiles of 5 rows.
    op = VARIANTS[variant][0]
    if not persistent.supports(op, shape["B"], shape["H"], np.float32):
        pytest.skip(f"{variant} H={shape['H']} does not fit this device's shared memory")
    check(variant, option, np.float32, **shape)


def test_shapes_that_do_not_fit_raise():
    H = 2048   # 16 units per block on 132 SMs: 262 KB of U in float64
    assert not persistent.supports("simple_rnn", 2, H, np.float64)
    xw, h = cupy.zeros((1, 2, H)), cupy.zeros((2, H))
    with pytest.raises(ValueError, match="H=2048 float64 does not fit the persistent kernel"):
        persistent.simple_rnn_loop_forward(xw, cupy.zeros((H, H)), h, None, None)


def test_host_arrays_are_refused():
    xw, U, h = np.zeros((2, 3, 2)), np.zeros((2, 2)), np.zeros((3, 2))
    with pytest.raises(TypeError, match="xw must be a cupy array on the GPU, got ndarray"):
        persistent.simple_rnn_loop_forward(xw, U, h, None, None)
