"""The Numba backend's own building blocks at sizes the op-level suites do not reach: the
SIMD GEMM (_numba_gemm) against NumPy with ragged tiles, transposed A and accumulation, and
conv1d across several row blocks and threads against the reference."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import fresh_process

pytest.importorskip("numba")
from engine.backends import _numba_gemm as gemm  # noqa: E402
from engine.backends import numba_cpu, reference  # noqa: E402

DTYPES = (np.float32, np.float64)
# Relative to the largest expected entry: float32 sums of up to ~1000 products.
TOL = {np.float32: 2e-5, np.float64: 1e-12}


def assert_close(actual, expected, dtype, what=""):
    scale = max(float(np.abs(expected).max(initial=0.0)), 1e-30)
    err = float(np.abs(np.asarray(actual, np.float64) - expected).max(initial=0.0)) / scale
    assert err <= TOL[dtype], f"{what}: relative error {err:.2e}"


# Shapes around the tile (MR rows x NR columns): below, at, just past, and several of each;
# K = 0 (an empty product) writes zeros.
SHAPES = [(1, 1, 1), (7, 5, 3), (9, 0, 40), (gemm.MR, 32, 32), (gemm.MR + 1, 17, 33), (64, 128, 512), (13, 64, 100)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,K,N", SHAPES)
def test_gemm_matches_numpy(M, K, N, dtype):
    rng = np.random.default_rng(M * 1000 + K * 10 + N)
    a = rng.standard_normal((M, K)).astype(dtype)
    b = rng.standard_normal((K, N)).astype(dtype)
    bp, tile = gemm.packed(b), gemm.tile_scratch(dtype)
    assert bp.shape == (-(-N // gemm.panel_width(dtype)), K, gemm.panel_width(dtype))
    c = np.full((M, N), np.nan, dtype)
    gemm.gemm(a.reshape(-1), 0, K, 1, bp, c, False, tile)
    assert_close(c, a.astype(np.float64) @ b, dtype, "A·B")
    # Aᵀ read in place (row step 1, k step M), accumulating into c, within a wider array.
    at = np.ascontiguousarray(a.T)
    wide = np.ones((M, N + 3), dtype)
    gemm.gemm(at.reshape(-1), 0, 1, M, bp, wide[:, 1:N + 1], True, tile)
    assert_close(wide[:, 1:N + 1], 1 + a.astype(np.float64) @ b, dtype, "1 + (Aᵀ)ᵀ·B")
    assert (wide[:, 0] == 1).all() and (wide[:, N + 1:] == 1).all(), "wrote outside c"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("strides,dilation_rate", [(1, 1), (2, 1), (1, 2), (3, 1), (2, 3)])
def test_conv1d_many_blocks(strides, dilation_rate, dtype):
    """L_out spans several 256-row blocks; C and O are not multiples of a panel."""
    rng = np.random.default_rng(strides * 10 + dilation_rate)
    x = rng.standard_normal((3, 700, 37)).astype(dtype)
    kernel = rng.standard_normal((4, 37, 45)).astype(dtype)
    bias = rng.standard_normal(45).astype(dtype)
    out = numba_cpu.conv1d_forward(x, kernel, bias, strides, dilation_rate)
    assert_close(out, reference.conv1d_forward(x, kernel, bias, strides, dilation_rate), dtype, "out")
    grad = rng.standard_normal(out.shape).astype(dtype)
    ours = numba_cpu.conv1d_backward(grad, x, kernel, strides, dilation_rate)
    theirs = reference.conv1d_backward(grad, x, kernel, strides, dilation_rate)
    for name, a, b in zip(("dx", "dkernel", "dbias"), ours, theirs):
        assert_close(a, b, dtype, name)


@pytest.mark.parametrize("parts", [1, 3])
def test_conv1d_any_number_of_parts(parts, monkeypatch):
    """The blocks split over any number of threads (more parts than blocks included)."""
    monkeypatch.setattr(numba_cpu.numba, "get_num_threads", lambda: parts)
    rng = np.random.default_rng(parts)
    x, kernel = rng.standard_normal((2, 300, 5)), rng.standard_normal((3, 5, 7))
    out = numba_cpu.conv1d_forward(x, kernel, None, 1, 1)
    assert_close(out, reference.conv1d_forward(x, kernel, None, 1, 1), np.float64, "out")
    grad = rng.standard_normal(out.shape)
    for name, a, b in zip(("dx", "dkernel", "dbias"), numba_cpu.conv1d_backward(grad, x, kernel, 1, 1),
                          reference.conv1d_backward(grad, x, kernel, 1, 1)):
        assert_close(a, b, np.float64, name)


# The recurrent loops split the batch into parts (one per thread, each running the whole
# loop on its rows). B = 19 over 3 parts gives rows 6, 6, 7: every part a ragged GEMM tile;
# B = 2 over 3 parts leaves one part empty. H = 37 puts vector bodies and tails in each gate
# loop and a partial panel in each GEMM.
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("option", ["plain", "no_bias", "go_backwards_mask", "everything"])
@pytest.mark.parametrize("variant", ["lstm", "gru", "gru_reset_before", "simple_rnn"])
@pytest.mark.parametrize("B,parts", [(19, 3), (2, 3), (19, 1)])
def test_recurrent_parts(B, parts, variant, option, dtype, monkeypatch):
    import rnn_cases as rc
    monkeypatch.setattr(numba_cpu, "_parts", lambda rows: parts)
    rc.check_backend(rc.make_case(variant, option, B=B, T=4, F_=5, H=37), "numba", dtype)


def test_vector_width_is_checked():
    assert gemm.vector_bytes({gemm.VECTOR_ENV: "32"}) == 32
    assert gemm.vector_bytes({}) in (16, 32, 64)
    with pytest.raises(ValueError, match="SEQFUSE_NUMBA_VECTOR_BYTES must be one of 16, 32, 64, got '48'"):
        gemm.vector_bytes({gemm.VECTOR_ENV: "48"})


def test_vector_width_in_force():
    """The width the environment forces (or the host's) is the one compiled; a forced width
    other than the host's is never written to the on-disk cache."""
    forced = os.environ.get(gemm.VECTOR_ENV)
    host = gemm.vector_bytes({})
    assert gemm.VECTOR_BYTES == (int(forced) if forced else host)
    assert gemm.CACHE == (gemm.VECTOR_BYTES == host)
    assert gemm.panel_width(np.float32) == 2 * gemm.VECTOR_BYTES // 4


def test_kernels_cached_from_another_gemm_are_compiled_afresh(tmp_path):
    """A kernel module's Numba cache is dropped when _numba_gemm.py is not the version its
    kernels were compiled with (gemm.refresh_caches), and kept while it is. Fresh processes
    with their own cache directory; max_pool1d is the cheapest kernel of such a module."""
    code = ("import numpy as np; from engine.backends import _numba_conv1d as c; "
            "c.max_pool1d_forward(np.ones((1, 4, 2), np.float32), 2, 2); "
            "print(sum(c._max_pool1d_forward.stats.cache_hits.values()))")

    def cache_hits():
        done = fresh_process.run_python(code, NUMBA_CACHE_DIR=str(tmp_path))
        assert done.returncode == 0, done.stderr[-3000:]
        return int(done.stdout)

    assert cache_hits() == 0                     # compiled, saved with the digest
    assert cache_hits() == 1                     # loaded
    stamp, = tmp_path.rglob("_numba_conv1d.gemm-digest")
    stamp.write_text("compiled from an older _numba_gemm.py")
    assert cache_hits() == 0                     # dropped, compiled afresh
    assert stamp.read_text() == gemm._DIGEST
    assert cache_hits() == 1


@pytest.mark.slow
def test_other_vector_widths(tmp_path):
    """A CPU with another SIMD width runs other tiles (NR = 2 vectors): force each width in a
    fresh process and rerun this file's GEMM tests there (all the width-specific code is in
    _numba_gemm), plus one float32 conv1d and lstm case through the kernels that call it. The
    two processes run at once: each spends most of its time in Numba's compiler, on one core."""
    tests = ("width_in_force or gemm_matches_numpy or (conv1d_many_blocks and 1-1 and float32)"
             " or (recurrent_parts and 19-3 and lstm and everything and float32)")
    runs = {}
    for width in (w for w in (16, 32, 64) if w != gemm.vector_bytes({})):
        log = tmp_path / f"width{width}.log"
        with log.open("w") as out:
            runs[width] = log, subprocess.Popen(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k", tests],
                env=dict(os.environ, **{gemm.VECTOR_ENV: str(width)}), stdout=out, stderr=subprocess.STDOUT)
    try:
        for width, (log, run) in runs.items():
            assert run.wait(timeout=900) == 0, f"{gemm.VECTOR_ENV}={width}:\n{log.read_text()[-3000:]}"
    finally:
        for _, run in runs.values():  # the other process, when one failed or timed out
            run.kill()
