"""The CUDA sources compile without a GPU: NVRTC (the compiler cupy.RawModule runs on the
device) builds every kernel the cupy backend declares, for float and double, for sm_80 and
sm_90; compile errors name the .cu file and line. Needs the nvrtc extra (CI installs it);
tools/check_cuda.py adds nvcc's register/spill report."""
import numpy as np
import pytest

from engine.backends import _cuda, cupy_cuda  # noqa: F401  (cupy_cuda declares the sources)

needs_nvrtc = pytest.mark.skipif(bool(_cuda.nvrtc_unavailable()),
                                 reason=_cuda.nvrtc_unavailable() or "nvrtc")


def test_every_source_in_kernels_cuda_is_declared():
    on_disk = {p.stem for p in (_cuda.KERNEL_DIR / "cuda").glob("*.cu")}
    assert on_disk == set(_cuda.SOURCES), "a .cu file the backend never loads, or a declared one missing"


@needs_nvrtc
@pytest.mark.parametrize("arch", ["80", "90"])
@pytest.mark.parametrize("stem", sorted(_cuda.SOURCES))
def test_source_compiles_with_nvrtc(stem, arch):
    ptx, lowered = _cuda.nvrtc_compile(stem, arch)
    assert len(lowered) == len(_cuda.name_expressions(stem)) and all(lowered)
    for name in lowered:
        assert f".entry {name}(" in ptx, f"{stem}.cu: {name} has no kernel in the PTX"


@pytest.fixture
def scratch_source(tmp_path, monkeypatch):
    """A kernels/ directory of our own with one source, declared as stem "scratch"."""
    (tmp_path / "cuda").mkdir()
    (tmp_path / "common").symlink_to(_cuda.KERNEL_DIR / "common")
    monkeypatch.setattr(_cuda, "KERNEL_DIR", tmp_path)
    monkeypatch.setattr(_cuda, "OPTIONS", ("--std=c++17", f"-I{tmp_path}"))
    monkeypatch.setitem(_cuda.SOURCES, "scratch", ((), False))

    def write(text, *templates):
        (tmp_path / "cuda" / "scratch.cu").write_text(text)
        monkeypatch.setitem(_cuda.SOURCES, "scratch", (templates, False))
        return tmp_path / "cuda" / "scratch.cu"
    return write


@needs_nvrtc
def test_compile_error_names_the_file_and_line(scratch_source):
    path = scratch_source('#include "common/cell.hpp"\n'
                          "template <typename T> __global__ void bad(T* y) {\n"
                          "  y[0] = seqfuse::tanh_act(y[0]) + undeclared_name;\n"
                          "}\n", "bad<{T}>")
    with pytest.raises(_cuda.CompileError, match=rf"{path}:3: identifier \"undeclared_name\" is undefined"):
        _cuda.nvrtc_compile("scratch", "90")


@needs_nvrtc
def test_cell_math_compiles_for_the_device(scratch_source):
    scratch_source('#include "common/cell.hpp"\n'
                   "template <typename T> __global__ void cell(T* v) {\n"
                   "  T i, f, g, o, c, h;\n"
                   "  seqfuse::lstm_cell_forward(v[0], v[1], v[2], v[3], v[4], i, f, g, o, c, h);\n"
                   "  v[5] = h;\n"
                   "}\n", "cell<{T}>")
    _, lowered = _cuda.nvrtc_compile("scratch", "80")
    assert len(lowered) == 2


def test_name_expressions_cover_float_and_double(monkeypatch):
    monkeypatch.setitem(_cuda.SOURCES, "demo", ((), False))
    _cuda.declare("demo", "a<{T}>", "b<{T}, 4>")
    _cuda.declare("demo", "a<{T}>")   # declaring twice keeps one
    assert _cuda.name_expressions("demo") == ["a<float>", "a<double>", "b<float, 4>", "b<double, 4>"]


def test_ctype_rejects_other_dtypes():
    assert _cuda.ctype(np.float32) == "float" and _cuda.ctype("float64") == "double"
    with pytest.raises(TypeError, match="float32 or float64, got int64"):
        _cuda.ctype(np.int64)


def test_compile_errors_parses_nvrtc_logs():
    log = ('/x/kernels/cuda/lstm.cu(12): error: expected a ";"\n'
           '/x/kernels/common/cell.hpp(40): catastrophic error: cannot open source file "y"\n')
    assert _cuda.compile_errors(log) == ('/x/kernels/cuda/lstm.cu:12: expected a ";"\n'
                                         '/x/kernels/common/cell.hpp:40: cannot open source file "y"')
    assert _cuda.compile_errors("something else\n") == "something else"
