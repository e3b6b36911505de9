"""The backend registry: discovery, selection, and why a backend is missing."""
import os
import subprocess
import sys

import numpy as np
import pytest

import engine as en


def test_cpu_backends_are_available():
    assert {"reference", "numba", "cpp"} <= set(en.backends.available())
    assert en.backends.names()[:3] == ["reference", "numba", "cpp"]


def test_unavailable_backends_say_why():
    reasons = en.backends.why_unavailable()
    assert set(reasons) == set(en.backends.names()) - set(en.backends.available())
    assert all(isinstance(r, str) and r for r in reasons.values())


def test_every_backend_has_the_same_kernel_table():
    ops = {name for name in dir(en.backends.get("reference"))
           if name.endswith(("_forward", "_backward", "_coalesce")) and not name.startswith("_")}
    assert {"embedding_forward", "embedding_backward", "embedding_coalesce"} <= ops
    for name in en.backends.names():
        module = en.backends._discover()[name]
        assert module.NAME == name and module.DEVICE in ("cpu", "cuda")
        if module.DEVICE == "cpu":
            missing = ops - set(dir(module))
            assert not missing, f"backend {name} lacks {sorted(missing)}"


def test_selection_precedence(monkeypatch):
    monkeypatch.delenv("ENGINE_BACKEND", raising=False)
    default = en.get_backend()
    assert default == next(n for n in en.backends.CPU_PREFERENCE if n in en.backends.available())
    with en.use_backend("reference"):
        assert en.get_backend() == "reference"
        with en.use_backend("numba"):
            assert en.get_backend() == "numba"
        assert en.get_backend() == "reference"
    try:
        en.set_backend("numba")
        assert en.get_backend() == "numba"
    finally:
        en.backends._chosen = None
    assert en.get_backend() == default


def test_bad_names_are_clear():
    with pytest.raises(ValueError, match="unknown name 'nope'"):
        en.set_backend("nope")
    missing = en.backends.why_unavailable()
    for name, reason in missing.items():
        with pytest.raises(ValueError, match="not available"):
            en.set_backend(name)


def test_environment_variable_selects_backend(tmp_path):
    env = dict(os.environ, ENGINE_BACKEND="reference")
    out = subprocess.run([sys.executable, "-c", "import engine; print(engine.get_backend())"],
                         env=env, capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.strip() == "reference"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blas_split_gemms_match_numpy(dtype):
    """engine._blas splits big GEMMs over the cores (on engine._C.parallel when built)."""
    from engine import _blas
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3001, 64)).astype(dtype), rng.standard_normal((64, 129)).astype(dtype)
    c = rng.standard_normal((3001, 129)).astype(dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(_blas.matmul(a, b), a @ b, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(_blas.matmul_tn(a, c), a.T @ c, rtol=rtol, atol=rtol * 100)
    assert _blas.matmul(a[:2], b).shape == (2, 129)  # small: one call, no split


def test_unit_rows_keeps_values_and_copies_only_a_broadcast_row():
    from engine import _blas
    a = np.arange(24.0).reshape(2, 3, 4)
    assert _blas.unit_rows(a) is a
    t = a.transpose(1, 0, 2)
    assert _blas.unit_rows(t) is t
    for b in (np.broadcast_to(np.float32(2), (5, 6, 7)), np.broadcast_to(a[:, :1, 1:2], (2, 3, 4)),
              np.broadcast_to(a[0, :, :1], (2, 3, 4))):
        rows = _blas.unit_rows(b)
        assert rows.strides[-1] == rows.itemsize and rows.shape == b.shape
        np.testing.assert_array_equal(rows, b)
    assert _blas.unit_rows(np.broadcast_to(np.float32(2), (5, 6, 7))).base.size == 7


def test_cpp_parallel_runs_every_index_and_raises_the_first_error():
    _C = pytest.importorskip("engine._C")
    seen = []
    _C.parallel(seen.append, 5)
    assert sorted(seen) == [0, 1, 2, 3, 4]

    def fail(i):
        if i == 3:
            raise KeyError("block 3")
    with pytest.raises(KeyError, match="block 3"):
        _C.parallel(fail, 4)
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        _C.parallel(seen.append, 0)


def _weight_gradient_reference(sources, b):
    """[a_0 | a_1]ᵀ·b over the T·B rows, in float64 (first: the rows before a[0], a[:-1])."""
    T, B, N = b.shape
    rows = [a if first is None else np.concatenate([first[None], a[:-1]]) for a, first in sources]
    stacked = np.concatenate([r.reshape(T * B, -1) for r in rows], axis=1).astype(np.float64)
    return stacked.T @ b.reshape(T * B, N).astype(np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weight_gradient_gemm_matches_numpy(dtype):
    """_blas.matmul_tn_sequences (the recurrent weight gradients) against NumPy, on
    engine._C.gemm_tn_sequences with every gemm tile and on OpenBLAS (the weight_gradients
    choice): one and two sources, with and without first rows, read
    in place from batch-major x as [T,B,F], reversed in time (go_backwards), a column block of
    a wider array (GRU's du[..., :2H]) and reversed rows (copied first); row tiles and column
    panels cut short at every edge."""
    from engine import _blas, tuning
    _C = pytest.importorskip("engine._C")
    rng = np.random.default_rng(5)
    tol = 1e-5 if dtype == np.float32 else 1e-13  # of the largest entry; sums of up to 6,400 rows
    for T, B, M1, M2, N in [(100, 64, 64, 128, 128), (3, 5, 7, 9, 11), (1, 1, 1, 1, 1),
                            (2, 5, 13, 17, 40), (7, 3, 2, 30, 3), (300, 2, 3, 5, 33)]:
        x = rng.standard_normal((B, T, M1)).astype(dtype)
        hs = rng.standard_normal((T, B, M2)).astype(dtype)
        h0 = rng.standard_normal((B, M2)).astype(dtype)
        wide = rng.standard_normal((T, B, N + 6)).astype(dtype)
        cases = [([(x.transpose(1, 0, 2), None), (hs, h0)], wide[:, :, :N]),
                 ([(x.transpose(1, 0, 2)[::-1], None)], wide[:, :, 6:]),
                 ([(hs, h0)], np.ascontiguousarray(wide[:, :, 3:3 + N])),
                 ([(hs[:, :, ::-1], None), (x.transpose(1, 0, 2), None)], wide[:, :, :N])]
        paths = [("tile", tile) for tile in _C.choice_options()["gemm_tile"]] + [("blas", "auto")]
        for path, tile in paths:
            with tuning.forced("weight_gradients", path), tuning.forced("gemm_tile", tile):
                for sources, b in cases:
                    want = _weight_gradient_reference(sources, b)
                    got = _blas.matmul_tn_sequences(sources, b)
                    assert got.dtype == dtype and got.shape == want.shape
                    assert np.abs(got - want).max() <= tol * max(1.0, np.abs(want).max()), (T, B, M1, M2, N, tile)


def test_weight_gradient_gemm_without_the_extension(monkeypatch):
    """Without engine._C (and for CuPy arrays) the rows are gathered for one matmul_tn."""
    import engine
    from engine import _blas
    rng = np.random.default_rng(6)
    x, hs, h0, b = (rng.standard_normal(s) for s in [(4, 3, 5), (3, 4, 6), (4, 6), (3, 4, 7)])
    sources = [(x.transpose(1, 0, 2), None), (hs, h0)]
    want = _weight_gradient_reference(sources, b)
    monkeypatch.setitem(sys.modules, "engine._C", None)
    monkeypatch.delattr(engine, "_C", raising=False)
    np.testing.assert_allclose(_blas.matmul_tn_sequences(sources, b), want, rtol=1e-12)
    np.testing.assert_allclose(_blas.matmul_tn_sequences([sources[1]], b), want[5:], rtol=1e-12)


def test_weight_gradient_gemm_rejects_bad_arguments():
    _C = pytest.importorskip("engine._C")
    a, b, first = np.zeros((3, 2, 4)), np.zeros((3, 2, 5)), np.zeros((2, 4))
    with pytest.raises(ValueError, match="sources must hold 1 or 2 pairs, got 3"):
        _C.gemm_tn_sequences([(a, None)] * 3, b)
    with pytest.raises(TypeError, match=r"sources\[0\] must be a pair \(a, first\)"):
        _C.gemm_tn_sequences([a], b)
    with pytest.raises(ValueError, match=r"sources\[1\]\[0\] must have shape \(T, B, M\) = \(3, 2, 4\), got \(3, 3, 4\)"):
        _C.gemm_tn_sequences([(a, None), (np.zeros((3, 3, 4)), None)], b)
    with pytest.raises(TypeError, match=r"sources\[0\]\[0\] must be float64 like the other float inputs, got float32"):
        _C.gemm_tn_sequences([(a.astype(np.float32), None)], b)
    with pytest.raises(ValueError, match=r"sources\[0\]\[1\] must have shape \(B, M\) = \(2, 4\), got \(4, 2\)"):
        _C.gemm_tn_sequences([(a, first.T)], b)
    with pytest.raises(ValueError, match=r"b must have 3 dimensions, got shape \(3, 2\)"):
        _C.gemm_tn_sequences([(a, None)], np.zeros((3, 2)))
    assert _C.gemm_tn_sequences([(a[:0], None)], b[:0]).shape == (4, 5)  # no rows: zeros
    assert not _C.gemm_tn_sequences([(a[:0], None)], b[:0]).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weight_gradient_blocks_match_numpy(dtype):
    """engine._C.gemm_tn_blocks (GRU's weight gradients in one call: several products over the
    same rows, each writing its own block of C) against the products one by one in NumPy, with
    every gemm tile: GRU's layout with two and three sources (reset_after and not), x reversed
    in time, products whose widths cut the column panels short, a single product."""
    from engine import tuning
    _C = pytest.importorskip("engine._C")
    rng = np.random.default_rng(8)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    for T, B, F, H in [(100, 64, 64, 128), (3, 5, 7, 9), (1, 1, 1, 1), (40, 3, 2, 37)]:
        x = rng.standard_normal((B, T, F)).astype(dtype).transpose(1, 0, 2)
        hs = rng.standard_normal((B, T, H)).astype(dtype).transpose(1, 0, 2)
        h0, rhd = rng.standard_normal((B, H)).astype(dtype), rng.standard_normal((T, B, H)).astype(dtype)
        dxw, du = rng.standard_normal((T, B, 3 * H)).astype(dtype), rng.standard_normal((T, B, H)).astype(dtype)
        ref = lambda sources, b: _weight_gradient_reference(sources, b)  # noqa: E731
        xs, states = (x[::-1], None), (hs, h0)
        dkernel = ref([xs], dxw)
        cases = [
            ([xs, states], [(dxw[:, :, :2 * H], 0, [(0, 0), (1, F)]), (dxw[:, :, 2 * H:], 2 * H, [(0, 0)]),
                            (du, 2 * H, [(1, F)])],
             np.concatenate([dkernel, np.concatenate([ref([states], dxw[:, :, :2 * H]), ref([states], du)], 1)])),
            ([xs, states, (rhd, None)], [(dxw[:, :, :2 * H], 0, [(0, 0), (1, F)]),
                                         (dxw[:, :, 2 * H:], 2 * H, [(0, 0)]), (du, 2 * H, [(2, F)])],
             np.concatenate([dkernel, np.concatenate([ref([states], dxw[:, :, :2 * H]), ref([(rhd, None)], du)], 1)])),
            ([states], [(du, 0, [(0, 0)])], ref([states], du)),
        ]
        for tile in _C.choice_options()["gemm_tile"]:
            with tuning.forced("gemm_tile", tile):
                for sources, products, want in cases:
                    got = _C.gemm_tn_blocks(sources, products)
                    assert got.dtype == dtype and got.shape == want.shape
                    assert np.abs(got - want).max() <= tol * max(1.0, np.abs(want).max()), (T, B, F, H, tile)


def test_weight_gradient_blocks_reject_bad_arguments():
    _C = pytest.importorskip("engine._C")
    a, b, c = np.zeros((3, 2, 4)), np.zeros((3, 2, 5)), np.zeros((3, 2, 2))
    with pytest.raises(ValueError, match="products\\[1\\] overlaps another"):
        _C.gemm_tn_blocks([(a, None)], [(b, 0, [(0, 0)]), (c, 3, [(0, 0)])])
    with pytest.raises(ValueError, match="leave part of the output uncovered"):
        _C.gemm_tn_blocks([(a, None)], [(b, 0, [(0, 0)]), (c, 6, [(0, 0)])])
    with pytest.raises(ValueError, match="names source 1 out of range or twice"):
        _C.gemm_tn_blocks([(a, None)], [(b, 0, [(1, 0)])])
    with pytest.raises(ValueError, match="names source 0 out of range or twice"):
        _C.gemm_tn_blocks([(a, None)], [(b, 0, [(0, 0), (0, 4)])])
    with pytest.raises(ValueError, match=r"products\[1\]\[0\] must have shape \(T, B, n\)"):
        _C.gemm_tn_blocks([(a, None)], [(b, 0, [(0, 0)]), (np.zeros((2, 2, 2)), 5, [(0, 0)])])
    with pytest.raises(TypeError, match="products must be a list of triples"):
        _C.gemm_tn_blocks([(a, None)], [b])
    with pytest.raises(TypeError, match="must be float64 like the other float inputs, got float32"):
        _C.gemm_tn_blocks([(a.astype(np.float32), None)], [(b, 0, [(0, 0)])])
    assert not _C.gemm_tn_blocks([(a[:0], None)], [(b[:0], 0, [(0, 0)])]).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layout_copies_match_numpy(dtype):
    """_blas.contiguous and copy_into (engine._C.copy_into when built: split over the OpenMP
    threads above 1 MB) copy transposed, reversed and strided views exactly; contiguous returns
    a contiguous array itself unless asked to copy; other arrays copy as NumPy."""
    from engine import _blas
    rng = np.random.default_rng(2)
    for shape in [(3, 4, 5), (100, 64, 128), (1, 1, 1), (0, 3, 4), (5, 0, 2)]:
        a = rng.standard_normal(shape).astype(dtype)
        for view in (a, a.transpose(1, 0, 2), a.transpose(1, 0, 2)[::-1], a[:, :, ::-1],
                     a.transpose(2, 1, 0), a[::2]):
            out = _blas.contiguous(view, copy=True)
            assert out.flags.c_contiguous and out.dtype == dtype and not np.shares_memory(out, a)
            np.testing.assert_array_equal(out, view)
            same = _blas.contiguous(view)  # as ascontiguousarray: no copy of a contiguous array
            assert same.flags.c_contiguous and (same is view) == view.flags.c_contiguous
            np.testing.assert_array_equal(same, view)
    for shape in [(100, 64, 128), (3, 4, 5), (0, 2, 3)]:  # into a column block of a wider array
        src = rng.standard_normal(shape).astype(dtype)
        wide = np.zeros(shape[:2] + (shape[2] + 7,), dtype)
        view = src[:, ::-1]  # a reversed view, as go_backwards copies x
        _blas.copy_into(wide[:, :, 3:3 + shape[2]], view)
        np.testing.assert_array_equal(wide[:, :, 3:3 + shape[2]], view)
        assert not wide[:, :, :3].any() and not wide[:, :, 3 + shape[2]:].any()
    ints = np.arange(24).reshape(2, 3, 4).transpose(1, 0, 2)
    np.testing.assert_array_equal(_blas.contiguous(ints), ints)
    assert _blas.contiguous(ints).flags.c_contiguous
    _C = pytest.importorskip("engine._C")
    with pytest.raises(ValueError, match=r"copy_into: src must have 3 dimensions, got shape \(2, 2\)"):
        _C.copy_into(np.zeros((2, 2, 2), dtype), np.zeros((2, 2), dtype))
    with pytest.raises(TypeError, match="copy_into: src must be float32 or float64, got int32"):
        _C.copy_into(np.zeros((2, 2, 2), dtype), np.zeros((2, 2, 2), np.int32))
    with pytest.raises(ValueError, match=r"copy_into: dst must have size 5 on axis 2, got shape \(2, 2, 3\)"):
        _C.copy_into(np.zeros((2, 2, 3), dtype), np.zeros((2, 2, 5), dtype))
    with pytest.raises(TypeError, match="copy_into: dst and src must have one dtype"):
        _C.copy_into(np.zeros((2, 2, 2), np.float32 if dtype == np.float64 else np.float64),
                     np.zeros((2, 2, 2), dtype))
    frozen = np.zeros((2, 2, 2), dtype)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="copy_into: dst is read-only"):
        _C.copy_into(frozen, np.zeros((2, 2, 2), dtype))


def test_freed_memory_policy_applies_once_and_can_be_declined():
    code = "import engine._memory as m; print(m.KEPT)"
    env = dict(os.environ, SEQFUSE_MALLOC="default")
    declined = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                              check=True)
    assert declined.stdout.strip() == "False"
    kept = subprocess.run([sys.executable, "-c", code], env={k: v for k, v in env.items()
                                                            if k != "SEQFUSE_MALLOC"},
                          capture_output=True, text=True, check=True)
    assert kept.stdout.strip() == ("True" if os.confstr("CS_GNU_LIBC_VERSION") else "False")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cpp_gemm_on_numpys_blas(dtype):
    """engine._C.gemm / gemm_tn (rows or K split over the OpenMP threads) against NumPy."""
    from engine import _blas
    _C = pytest.importorskip("engine._C")
    if _blas._native(np.zeros(1, dtype)) is None:
        pytest.skip("NumPy's bundled OpenBLAS was not found")
    rng = np.random.default_rng(1)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for K, M, N in [(1, 1, 1), (3, 5, 2), (257, 33, 65), (4000, 7, 130)]:
        a, b = rng.standard_normal((K, M)).astype(dtype), rng.standard_normal((K, N)).astype(dtype)
        np.testing.assert_allclose(_C.gemm_tn(a, b), a.T @ b, rtol=rtol, atol=rtol * K)
        w = rng.standard_normal((M, N)).astype(dtype)
        np.testing.assert_allclose(_C.gemm(a, w), a @ w, rtol=rtol, atol=rtol * M)
        np.testing.assert_allclose(_C.gemm(a[::2], w[:, ::-1]), a[::2] @ w[:, ::-1], rtol=rtol,
                                   atol=rtol * M)  # strided inputs are copied, not misread
    for K, M, N in [(0, 3, 2), (4, 0, 2), (4, 3, 0)]:
        a, b, w = np.ones((K, M), dtype), np.ones((K, N), dtype), np.ones((M, N), dtype)
        np.testing.assert_array_equal(_C.gemm_tn(a, b), a.T @ b)
        np.testing.assert_array_equal(_C.gemm(a.T.copy(), b), a.T @ b)
    with pytest.raises(ValueError, match=r"gemm: a \(3, 5\) and b \(4, 2\) do not chain"):
        _C.gemm(np.zeros((3, 5), dtype), np.zeros((4, 2), dtype))
    with pytest.raises(ValueError, match=r"gemm_tn: a \(3, 5\) and b \(4, 2\) do not chain"):
        _C.gemm_tn(np.zeros((3, 5), dtype), np.zeros((4, 2), dtype))
    with pytest.raises(TypeError, match="a and b must have one dtype"):
        _C.gemm(np.zeros((3, 5), dtype), np.zeros((5, 2), np.float32 if dtype == np.float64 else np.float64))
    with pytest.raises(TypeError, match="a must be float32 or float64, got int64"):
        _C.gemm(np.zeros((3, 5), np.int64), np.zeros((5, 2), dtype))


FORK_SCRIPT = """
import os, numpy as np
import engine as en
from engine.benchmark import ours
en.set_backend("cpp")  # numba's own OpenMP layer terminates forked children on purpose

def steps():
    rng = np.random.default_rng(0)
    for op, size in [("lstm", (16, 20, 8, 32)), ("gru", (16, 20, 8, 32)), ("conv1d", (4, 50, 8, 8, 3)),
                     ("embedding", (1000, 16, 8, 20, True))]:
        ours(op, size, rng)[0]()
    a = en.Tensor(rng.standard_normal((3000, 64)).astype("float32"), requires_grad=True)
    (a @ a.T[:, :64]).sum().backward()

steps()
pid = os.fork()
if pid == 0:
    steps()
    os._exit(0)
_, status = os.waitpid(pid, 0)
print("child exit", os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_can_run_every_kernel(tmp_path):
    """GNU OpenMP cannot start a team in a forked child; the child must run them on one thread
    instead of waiting forever (multiprocessing's default start method on Linux)."""
    if "cpp" not in en.backends.available():
        pytest.skip(en.backends.why_unavailable().get("cpp", "cpp backend unavailable"))
    # Outside the checkout, so the child imports the same engine (with its _C) as this process.
    done = subprocess.run([sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "child exit 0" in done.stdout


@pytest.mark.skipif(not en.backends.get("cpp").available(), reason="engine._C not built")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cpp_outputs_start_on_a_cache_line(dtype):
    # bindings/common.hpp output(): every array a kernel writes starts on a 64-byte boundary
    # (NumPy's large arrays start 16 or 32 bytes past one), whatever size, even empty, in
    # memory of its own (a capsule frees it), which a leaf may keep as its .grad uncopied.
    from engine import _C
    rng = np.random.default_rng(0)
    B, T, F, H = 3, 5, 4, 8
    x = rng.standard_normal((B, T, F)).astype(dtype)
    h0 = np.zeros((B, H), dtype)
    lstm = _C.lstm_forward(x, rng.standard_normal((F, 4 * H)).astype(dtype), None,
                           rng.standard_normal((H, 4 * H)).astype(dtype), h0, h0, None, None)
    hs, cs, gates = lstm
    dhs = np.ones((T, B, H), dtype)
    back = _C.lstm_backward(dhs, h0, rng.standard_normal((H, 4 * H)).astype(dtype), h0, h0, hs, cs,
                            gates, None, None)
    U3 = rng.standard_normal((H, 3 * H)).astype(dtype)
    rb = np.zeros(3 * H, dtype)
    gru = _C.gru_forward(x, rng.standard_normal((F, 3 * H)).astype(dtype), None, U3, rb, h0,
                         None, None)
    gru_back = _C.gru_backward(dhs, U3, rb, h0, gru[0], gru[1], gru[2], None, None)
    conv = _C.conv1d_forward(x, rng.standard_normal((2, F, 6)).astype(dtype), None, 1, 1)
    for n in (0, 1, 7, 1000):
        gather = _C.embedding_forward(np.arange(n) % 3, rng.standard_normal((3, 5)).astype(dtype))
        assert gather.ctypes.data % 64 == 0 and gather.shape == (n, 5)
    values = rng.standard_normal((3, 5)).astype(dtype)
    coalesced = _C.embedding_coalesce(np.array([2, 0, 2]), values, 3)
    arrays = [*lstm, *[a for a in (*back, *gru_back) if a is not None], *gru, conv, coalesced[1],
              _C.gemm(x[0], x[0].T.copy())]
    for a in arrays:
        assert a.ctypes.data % 64 == 0 and a.dtype == dtype
        owner = a.base
        while isinstance(owner, np.ndarray):  # hs: a [T,B,H] view of batch-major memory
            owner = owner.base
        assert type(owner).__name__ == "PyCapsule" and a.flags.writeable


@pytest.mark.skipif(not en.backends.get("cpp").available(), reason="engine._C not built")
def test_cpp_outputs_reuse_freed_memory_without_page_faults():
    # With engine/_memory.py's glibc settings, the outputs a training step frees are allocated
    # again from the same heap pages: no fresh page faults. glibc's aligned_alloc, used for
    # the outputs for a while, faulted ~190 pages per GRU (32,50,16,64) step here and 11,500
    # per (128,200,128,256) step.
    resource = pytest.importorskip("resource")
    from engine import _memory
    from engine.benchmark import ours
    if not _memory.KEPT:
        pytest.skip("glibc's malloc settings not in effect here")
    with en.use_backend("cpp"):
        step = ours("gru", (32, 50, 16, 64), np.random.default_rng(0))[0]
        for _ in range(3):
            step()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5):
            step()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 50


@pytest.mark.skipif(not en.backends.get("cpp").available(), reason="engine._C not built")
def test_a_kernels_gradient_becomes_the_leafs_grad_without_a_copy():
    # conv1d's dx comes from output() (its own memory): x.grad is that array, not a copy
    # (the (64,1000,128,128,5) training step copied 32 MB). A view of another gradient is
    # still copied, so updating one .grad in place never changes another.
    from engine import functional as F
    from engine.tensor import _views_other_memory
    rng = np.random.default_rng(1)
    x = en.Tensor(rng.standard_normal((2, 9, 3)).astype(np.float32), requires_grad=True)
    kernel = en.Tensor(rng.standard_normal((2, 3, 4)).astype(np.float32), requires_grad=True)
    with en.use_backend("cpp"):
        F.conv1d(x, kernel).sum().backward()
    assert type(x.grad.base).__name__ == "PyCapsule" and not _views_other_memory(x.grad)
    before = kernel.grad.copy()
    x.grad += 1.0
    np.testing.assert_array_equal(kernel.grad, before)
    y = en.Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    z = en.Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    (y.reshape((6,)) + z.reshape((6,))).sum().backward()
    assert y.grad.base is None and z.grad.base is None  # reshaped views copied
    y.grad += 1.0
    np.testing.assert_array_equal(z.grad, np.ones((2, 3)))
