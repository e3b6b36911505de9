"""engine/_openblas.py: the bundled OpenBLAS kernels re-picked per CPU, and results unchanged."""
import numpy as np
import pytest

from engine import _cpu, _openblas
from fresh_process import run_python

AVX512 = _openblas.SKYLAKEX_FLAGS


@pytest.mark.parametrize("current, choice, flags, expected", [
    ("Haswell", "auto", AVX512 | {"avx2"}, "SkylakeX"),   # an AVX-512 CPU OpenBLAS did not know
    ("Zen", "auto", AVX512, "SkylakeX"),
    ("Haswell", "auto", {"avx2", "fma"}, None),            # no AVX-512: keep
    ("Haswell", "auto", {"avx512f"}, None),                # not every extension SkylakeX uses
    ("SkylakeX", "auto", AVX512, None),                    # already the AVX-512 kernels
    ("Cooperlake", "auto", AVX512 | {"avx512_bf16"}, None),
    ("Haswell", "keep", AVX512, None),
    ("SkylakeX", "Haswell", AVX512, "Haswell"),            # forced
    ("Haswell", "haswell", AVX512, None),
])
def test_target_core(current, choice, flags, expected):
    assert _openblas.target_core(current, choice, flags) == expected


def _run(code, **env):
    result = run_python(code, **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


# Prints the core types in use and the worst relative error of float32 matmuls (one that also
# ran before a re-pick in this process) against float64.
_CHECK = """
import numpy as np
rng = np.random.default_rng(0)
a, b = rng.standard_normal((300, 200)), rng.standard_normal((200, 500))
before = a.astype(np.float32) @ b.astype(np.float32)
from engine import _openblas
after = a.astype(np.float32) @ b.astype(np.float32)
tn = a.T.astype(np.float32) @ a.astype(np.float32)
exact, exact_tn = a @ b, a.T @ a
err = max(abs(before - exact).max(), abs(after - exact).max()) / abs(exact).max()
err = max(err, abs(tn - exact_tn).max() / abs(exact_tn).max())
print(sorted(set(_openblas.picked.values())), err)
"""


@pytest.mark.skipif(not _openblas.bundled_libraries(), reason="NumPy without a bundled OpenBLAS")
@pytest.mark.parametrize("choice", ["keep", "Haswell", "SkylakeX", "auto"])
def test_each_core_type_gives_correct_products(choice):
    if choice == "SkylakeX" and not AVX512 <= _cpu.flags():
        pytest.skip("this CPU cannot run the SkylakeX kernels")
    cores, err = _run(_CHECK, SEQFUSE_BLAS_CORE=choice).rsplit(" ", 1)
    assert float(err) < 1e-5
    if choice in ("Haswell", "SkylakeX"):
        assert cores == f"['{choice}']"
    if choice == "auto" and AVX512 <= _cpu.flags():
        assert "Haswell" not in cores


def test_select_after_blas_ran_in_this_process():
    """Re-picking while NumPy's BLAS threads exist (after a threaded matmul) keeps results right."""
    a = np.random.default_rng(1).standard_normal((512, 512)).astype(np.float32)
    reference = a.astype(np.float64) @ a.astype(np.float64)
    for choice in ("Haswell", "auto"):
        _openblas.select({"SEQFUSE_BLAS_CORE": choice})
        np.testing.assert_allclose(a @ a, reference, rtol=1e-4, atol=1e-3)


@pytest.mark.skipif(not _openblas.bundled_libraries(), reason="NumPy without a bundled OpenBLAS")
def test_keep_and_auto_start_from_openblas_own_pick_after_a_switch():
    """Each choice applies to the core type OpenBLAS picked at load, not to the one an earlier
    select() left: after a forced Haswell, "keep" gives OpenBLAS's own pick again (it used to
    leave Haswell) and "auto" the rule's (an Intel CPU's own Cooperlake would have become
    SkylakeX)."""
    keep = _openblas.select({"SEQFUSE_BLAS_CORE": "keep"})
    auto = _openblas.select({"SEQFUSE_BLAS_CORE": "auto"})
    for forced in ("Haswell", "Sandybridge"):
        _openblas.select({"SEQFUSE_BLAS_CORE": forced})
        assert _openblas.select({"SEQFUSE_BLAS_CORE": "keep"}) == keep
        _openblas.select({"SEQFUSE_BLAS_CORE": forced})
        assert _openblas.select({"SEQFUSE_BLAS_CORE": "auto"}) == auto


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_sums_split_over_the_cores_match_numpy(dtype):
    from engine import Tensor, _blas
    a = np.random.default_rng(2).standard_normal(_blas._SPLIT_SUM + 12345 * 5).astype(dtype)
    exact = a.astype(np.float64).sum()
    total = _blas.total(a)
    assert type(total) is type(a.sum()) and total.dtype == dtype
    assert abs(total - exact) <= 1e-6 * np.abs(a).sum()
    t = Tensor(a, requires_grad=True)
    out = t.sum()
    assert out.numpy() == total
    out.backward()
    assert np.all(t.grad == 1)
    assert _blas.total(a[::2]) == a[::2].sum()  # strided: NumPy's own sum
    assert _blas.total(a[:1000]) == a[:1000].sum()  # small: NumPy's own sum


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_native_total_sums_in_double_on_every_share(dtype):
    """engine._C.total (kernels/cpu/sum.hpp) against the float64 sum: empty, shorter than
    its 16 partial sums, one share, and shares split unevenly over the threads."""
    _C = pytest.importorskip("engine._C")
    rng = np.random.default_rng(3)
    for n in (0, 1, 15, 17, 1000, (1 << 16) + 3, 3 * (1 << 17) + 7):
        a = rng.standard_normal(n).astype(dtype) + 0.5
        exact = a.astype(np.float64).sum()
        assert abs(_C.total(a) - exact) <= 1e-12 * max(1.0, np.abs(a).sum()), n
    with pytest.raises(ValueError, match="total: a must be C-contiguous"):
        _C.total(np.zeros((4, 4), dtype)[:, ::2])
    with pytest.raises(TypeError, match="total: a must be float32 or float64, got int64"):
        _C.total(np.zeros(4, np.int64))
