"""The C++ conv1d's two algorithms (direct, gemm), the "auto" rule that picks one per pass,
"ragged_gemm" (gemm only where the direct tile would be ragged) and "wide_gemm" (also where C
and O are both >= 128, float64 256): every choice × dtype × option against the reference, the
picks, and the fallback to direct without a BLAS
(kernels/cpu/conv1d.hpp, docs/kernels.md)."""
from __future__ import annotations


import numpy as np
import pytest

import engine as en
import engine.functional as F
from engine import _cpu, backends, tuning
from fresh_process import run_python
from test_conv1d import (DTYPES, EDGES, FORWARD_TOL, GRAD_TOL, PADDINGS, STEPS, assert_close,
                         inputs, run)

pytestmark = pytest.mark.skipif(not backends.get("cpp").available(), reason="engine._C not built")

ALGORITHMS = ["direct", "gemm", "auto", "ragged_gemm", "wide_gemm"]
PASSES = ("forward", "dx", "dkernel")


@pytest.fixture(scope="module")
def C():
    """engine._C with NumPy's OpenBLAS wired in (the gemm algorithm needs it)."""
    from engine import _C, _blas
    backends.get("cpp")
    if _blas.wire_extension() is None:
        pytest.skip("this NumPy has no bundled OpenBLAS: conv1d always runs direct")
    return _C


def picks(C, x_shape, kernel_shape, dtype=np.float32, strides=1, dilation_rate=1):
    return C.conv1d_algorithm(np.empty(x_shape, dtype), np.empty(kernel_shape, dtype), strides,
                              dilation_rate)


@pytest.mark.parametrize("algorithm", ["direct", "gemm"])
def test_forced_choice_runs_that_algorithm_in_every_pass(C, algorithm):
    with tuning.forced("conv1d", algorithm):
        assert picks(C, (2, 9, 3), (3, 3, 4)) == dict.fromkeys(PASSES, algorithm)
        assert picks(C, (2, 9, 64), (3, 64, 64), np.float64, 2, 2) == dict.fromkeys(PASSES, algorithm)


def run_with_or_without_bias(backend, x, kernel, bias, **options):
    """run() of test_conv1d, also for bias None: (out, dx, dkernel, dbias or None)."""
    if bias is not None:
        return run(backend, x, kernel, bias, **options)
    xt, kt = (en.Tensor(a, requires_grad=True) for a in (x, kernel))
    with en.use_backend(backend):
        out = F.conv1d(xt, kt, None, **options)
        weights = np.random.default_rng(1).standard_normal(out.shape).astype(x.dtype)
        (out * weights).sum().backward()
    return out.numpy(), xt.grad, kt.grad, None


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("strides,dilation_rate", STEPS)
@pytest.mark.parametrize("with_bias", [True, False])
def test_algorithm_matches_reference(C, algorithm, dtype, padding, strides, dilation_rate, with_bias):
    # 37 and 45 channels: full register tiles and edges in the direct kernel, both kinds of
    # pick for "auto". The bias is fused: the forward starts from it, dbias sums grad.
    x, kernel, bias = inputs(2, 40, 37, 45, 3, dtype, seed=strides * 10 + dilation_rate)
    bias = bias if with_bias else None
    options = dict(strides=strides, padding=padding, dilation_rate=dilation_rate)
    expected = run_with_or_without_bias("reference", x, kernel, bias, **options)
    with tuning.forced("conv1d", algorithm):
        got = run_with_or_without_bias("cpp", x, kernel, bias, **options)
    for name, a, e in zip(("out", "dx", "dkernel", "dbias"), got, expected):
        if e is None:
            assert a is None
            continue
        assert a.dtype == dtype
        assert_close(a, e, (FORWARD_TOL if name == "out" else GRAD_TOL)[dtype], f"{algorithm} {name}")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_algorithm_kernel_table_with_and_without_bias(C, algorithm, dtype):
    # The table's own calls (no autograd): bias None starts the output from zero.
    cpp, ref = backends.get("cpp"), backends.get("reference")
    x, kernel, bias = inputs(3, 70, 16, 40, 5, dtype, seed=3)
    grad = np.random.default_rng(4).standard_normal((3, 62, 40)).astype(dtype)
    with tuning.forced("conv1d", algorithm):
        for b in (bias, None):
            assert_close(cpp.conv1d_forward(x, kernel, b, 1, 2), ref.conv1d_forward(x, kernel, b, 1, 2),
                         FORWARD_TOL[dtype], "out")
        got = cpp.conv1d_backward(grad, x, kernel, 1, 2)
    for name, a, e in zip(("dx", "dkernel", "dbias"), got, ref.conv1d_backward(grad, x, kernel, 1, 2)):
        assert a.dtype == dtype
        assert_close(a, e, GRAD_TOL[dtype], name)


def _assert_forced_matches_reference(algorithm, x, kernel, bias, **options):
    """float64 outputs and every gradient of the cpp conv1d with `algorithm` forced, within
    1e-10 of the reference."""
    expected = run("reference", x, kernel, bias, **options)
    with tuning.forced("conv1d", algorithm):
        got = run("cpp", x, kernel, bias, **options)
    for name, a, e in zip(("out", "dx", "dkernel", "dbias"), got, expected):
        assert_close(a, e, 1e-10, f"{algorithm} {name}")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("B,L,C_,O,K,strides,dilation_rate,padding", EDGES)
def test_edge_cases_every_algorithm(C, algorithm, B, L, C_, O, K, strides, dilation_rate, padding):
    x, kernel, bias = inputs(B, L, C_, O, K)
    _assert_forced_matches_reference(algorithm, x, kernel, bias, strides=strides, padding=padding,
                                     dilation_rate=dilation_rate)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_one_batch_row_and_long_sequences_split_over_threads(C, algorithm):
    # B=1: the gemm algorithm splits L_out into blocks (and dx's rows into blocks whose taps
    # overlap block edges); L_out = 1,500 spans several blocks of 512 rows.
    x, kernel, bias = inputs(1, 1504, 8, 16, 3, np.float64, seed=7)
    _assert_forced_matches_reference(algorithm, x, kernel, bias, strides=1, padding="same",
                                     dilation_rate=2)


@pytest.mark.parametrize("algorithm", ["direct", "gemm"])
def test_every_pass_gives_the_same_bits_on_every_call(C, algorithm):
    # Forward and dx hand out their blocks dynamically (kernels/cpu/conv1d.hpp), which is
    # safe only because each block writes its own rows; dkernel's per-thread partial sums keep
    # a static split. Many blocks (B·L_out / block rows) for the threads to share differently.
    rng = np.random.default_rng(11)
    x = rng.standard_normal((16, 1030, 24)).astype(np.float32)
    kernel = rng.standard_normal((7, 24, 40)).astype(np.float32)
    bias = rng.standard_normal(40).astype(np.float32)
    grad = rng.standard_normal((16, 1024, 40)).astype(np.float32)
    cpp = backends.get("cpp")
    with tuning.forced("conv1d", algorithm):
        first = (cpp.conv1d_forward(x, kernel, bias, 1, 1), *cpp.conv1d_backward(grad, x, kernel, 1, 1))
        for _ in range(3):
            again = (cpp.conv1d_forward(x, kernel, bias, 1, 1), *cpp.conv1d_backward(grad, x, kernel, 1, 1))
            for a, b in zip(first, again):
                np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_float32_dbias_is_summed_in_double_by_every_algorithm(C, algorithm):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, 4002, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 4)).astype(np.float32)
    grad = (rng.standard_normal((8, 4000, 4)) + 0.5).astype(np.float32)
    with tuning.forced("conv1d", algorithm):
        dbias = backends.get("cpp").conv1d_backward(grad, x, kernel, 1, 1)[2]
    exact = grad.astype(np.float64).sum(axis=(0, 1))
    assert np.abs(dbias - exact).max() <= 2e-7 * np.abs(exact).max()


@pytest.mark.parametrize("algorithm", ["direct", "gemm"])
def test_bad_input_errors_do_not_depend_on_the_algorithm(C, algorithm):
    cpp = backends.get("cpp")
    with tuning.forced("conv1d", algorithm):
        with pytest.raises(ValueError, match="shorter than the window span"):
            cpp.conv1d_forward(np.zeros((1, 2, 1)), np.zeros((3, 1, 1)), None, 1, 1)
        with pytest.raises(ValueError, match="bias"):
            cpp.conv1d_forward(np.zeros((1, 5, 2)), np.zeros((3, 2, 4)), np.zeros(3), 1, 1)
        with pytest.raises(ValueError, match="grad must have size 3 on axis 1"):
            cpp.conv1d_backward(np.zeros((1, 9, 1)), np.zeros((1, 5, 1)), np.zeros((3, 1, 1)), 1, 1)
        with pytest.raises(TypeError, match="kernel dtype"):
            C.conv1d_algorithm(np.zeros((1, 5, 2)), np.zeros((3, 2, 4), np.float32), 1, 1)


def _regime(C):
    """Which branch of the "auto" rule (kernels/cpu/conv1d.hpp) applies in this process:
    "sse" (a build without AVX: gemm always), "avx2" (the direct kernel at AVX2's width),
    "narrow" (AVX-512 build, OpenBLAS runs narrower kernels) or "wide"."""
    from engine import _blas
    isa = C.build_info()["isa"]
    if "avx512f" not in isa:
        return "avx2" if "avx2" in isa else "sse"
    return "narrow" if 0 < _blas.vector_bytes < 64 else "wide"


ALL_GEMM = dict.fromkeys(PASSES, "gemm")
ALL_DIRECT = dict.fromkeys(PASSES, "direct")
MIXED = {"forward": "direct", "dx": "gemm", "dkernel": "direct"}
# ((x shape, kernel shape, dtype, strides, dilation), picks beside narrower BLAS kernels,
# picks beside AVX-512 ones)
AUTO_PICKS = [
    # Scalar edge tiles in every pass (columns not a multiple of 32 float32 / 16 float64).
    (((4, 50, 16), (3, 16, 8), np.float32, 1, 1), ALL_GEMM, ALL_GEMM),
    (((4, 50, 24), (3, 24, 40), np.float64, 1, 1), ALL_GEMM, ALL_GEMM),
    # Full tiles, C and O >= 128 (float64: 256): direct beside either BLAS kernels (only
    # "wide_gemm" sends them to gemm).
    (((64, 1000, 128), (5, 128, 128), np.float32, 1, 1), ALL_DIRECT, ALL_DIRECT),
    (((4, 50, 256), (3, 256, 256), np.float64, 1, 1), ALL_DIRECT, ALL_DIRECT),
    (((4, 50, 128), (3, 128, 256), np.float64, 1, 1), ALL_DIRECT, ALL_DIRECT),
    # Full tiles below that: direct either way.
    (((2, 30, 32), (7, 32, 32), np.float32, 2, 2), ALL_DIRECT, ALL_DIRECT),
    (((8, 99, 128), (3, 128, 128), np.float64, 1, 1), ALL_DIRECT, ALL_DIRECT),
    (((4, 50, 20), (3, 20, 64), np.float32, 1, 1), MIXED, MIXED),  # C = 20: dx has the edge
    # Beside narrower BLAS kernels many full tiles hide the edge in forward and dkernel
    # (columns O), never in dx (C); beside AVX-512 ones every edge takes gemm.
    (((4, 50, 200), (3, 200, 200), np.float32, 1, 1), MIXED, ALL_GEMM),
    (((4, 50, 64), (3, 64, 200), np.float32, 1, 1), {**MIXED, "dx": "direct"},
     {**ALL_GEMM, "dx": "direct"}),
]


# The picks of an AVX2 build, in AUTO_PICKS order: its direct tile is 16 float32 / 8 float64
# columns, and gemm runs where a pass's columns are ragged, or in dx and dkernel where
# min(C, O) >= 64 and max(C, O) >= 128.
DIRECT_FORWARD = {"forward": "direct", "dx": "gemm", "dkernel": "gemm"}
AVX2_PICKS = [{"forward": "gemm", "dx": "direct", "dkernel": "gemm"}, ALL_DIRECT, DIRECT_FORWARD,
              DIRECT_FORWARD, DIRECT_FORWARD, ALL_DIRECT, DIRECT_FORWARD, MIXED, ALL_GEMM, ALL_GEMM]


@pytest.mark.parametrize("args,narrow,wide,avx2",
                         [(*row, avx2) for row, avx2 in zip(AUTO_PICKS, AVX2_PICKS, strict=True)])
def test_auto_rule_picks(C, args, narrow, wide, avx2):
    x_shape, kernel_shape, dtype, strides, dilation_rate = args
    expected = {"sse": ALL_GEMM, "avx2": avx2, "narrow": narrow, "wide": wide}[_regime(C)]
    with tuning.forced("conv1d", "auto"):
        assert picks(C, x_shape, kernel_shape, dtype, strides, dilation_rate) == expected


def _ragged(C, x_shape, kernel_shape, dtype):
    """{pass: whether its columns leave the direct tile ragged}. The tile's columns: 32 float32
    / 16 float64 with AVX-512, 16 / 8 with AVX, 8 / 4 with SSE2 (the build's vector width, two
    vectors: kernels/cpu/conv1d_direct.hpp)."""
    isa = C.build_info()["isa"]
    width = 64 if "avx512f" in isa else 32 if "avx" in isa else 16
    tile = 2 * width // np.dtype(dtype).itemsize
    columns = {"forward": kernel_shape[2], "dx": x_shape[2], "dkernel": kernel_shape[2]}
    return {p: columns[p] % tile != 0 for p in PASSES}


@pytest.mark.parametrize("args", [row[0] for row in AUTO_PICKS])
def test_ragged_gemm_runs_gemm_exactly_where_the_direct_tile_is_ragged(C, args):
    x_shape, kernel_shape, dtype, strides, dilation_rate = args
    ragged = _ragged(C, x_shape, kernel_shape, dtype)
    expected = {p: "gemm" if ragged[p] else "direct" for p in PASSES}
    with tuning.forced("conv1d", "ragged_gemm"):
        assert picks(C, x_shape, kernel_shape, dtype, strides, dilation_rate) == expected


@pytest.mark.parametrize("args", [row[0] for row in AUTO_PICKS])
def test_wide_gemm_also_runs_gemm_where_both_channel_counts_are_wide(C, args):
    x_shape, kernel_shape, dtype, strides, dilation_rate = args
    ragged = _ragged(C, x_shape, kernel_shape, dtype)
    wide = min(x_shape[2], kernel_shape[2]) >= (256 if dtype == np.float64 else 128)
    expected = {p: "gemm" if ragged[p] or wide else "direct" for p in PASSES}
    with tuning.forced("conv1d", "wide_gemm"):
        assert picks(C, x_shape, kernel_shape, dtype, strides, dilation_rate) == expected


def test_without_blas_every_choice_runs_direct():
    # engine._C alone (no engine/_blas.py wiring, as with a NumPy that bundles no OpenBLAS).
    code = ("import numpy as np; from engine import _C; _C.set_choice('conv1d', 'gemm'); "
            "picks = _C.conv1d_algorithm(np.zeros((2, 9, 3)), np.zeros((3, 3, 4)), 1, 1); "
            "print(sorted(set(picks.values())))")
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['direct']"


def _cpu_has(flag):
    return flag in _cpu.flags()


@pytest.mark.parametrize("core,flag,width", [("Haswell", "avx2", 32), ("SkylakeX", "avx512f", 64)])
def test_blas_width_follows_the_kernels_openblas_runs(C, core, flag, width):
    # SEQFUSE_BLAS_CORE makes NumPy's OpenBLAS run another CPU's kernels (engine/_openblas.py):
    # the width handed to engine._C follows, and with it the pick for a 200-channel conv1d,
    # whose columns leave the direct tile ragged (in an AVX-512 build: beside AVX2 kernels the
    # forward and dkernel stay direct, beside AVX-512 kernels every pass runs gemm).
    if not _cpu_has(flag):
        pytest.skip(f"this CPU has no {flag}")
    code = ("import numpy as np; from engine import _blas, _C, backends; backends.get('cpp'); "
            "print(_blas.vector_bytes, sorted(set(_C.conv1d_algorithm("
            "np.zeros((4, 50, 200), np.float32), np.zeros((3, 200, 200), np.float32), 1, 1).values())))")
    result = run_python(code, SEQFUSE_BLAS_CORE=core, SEQFUSE_CONV1D="auto")
    assert result.returncode == 0, result.stderr
    got_width, picked = result.stdout.split(" ", 1)
    assert int(got_width) == width
    if "avx512f" in C.build_info()["isa"]:
        assert picked.strip() == ("['gemm']" if width == 64 else "['direct', 'gemm']")
