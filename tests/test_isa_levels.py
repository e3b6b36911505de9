"""engine/_cpu.py: which build of the C++ extension stands as engine._C (SEQFUSE_ISA).

The default build (-march=native) is engine._C alone; a portable build (SEQFUSE_NATIVE=OFF,
as CI's second run makes) also has one build per x86-64 level, and the kernel tests run on
every level this CPU can execute."""
import importlib.util
from pathlib import Path

import pytest

from engine import _cpu
from fresh_process import run, run_python

V3 = _cpu.LEVELS["x86-64-v3"][1]
V4 = _cpu.LEVELS["x86-64-v4"][1]
BOTH = {"x86-64-v3", "x86-64-v4"}
BUILT = {level for level, (module, _) in _cpu.LEVELS.items()
         if level != "x86-64" and importlib.util.find_spec(f"engine.{module}") is not None}
RUNNABLE = [level for level in _cpu.LEVELS if level == "x86-64"
            or (level in BUILT and _cpu.LEVELS[level][1] <= _cpu.flags())]


@pytest.mark.parametrize("choice, flags, built, expected", [
    ("", V4, BOTH, "x86-64-v4"),
    ("auto", V3 | {"avx512f"}, BOTH, "x86-64-v3"),        # AVX-512 without BW/DQ/VL/CD
    ("auto", {"sse2"}, BOTH, "x86-64"),
    ("auto", frozenset(), BOTH, "x86-64"),                  # flags unknown: the baseline
    ("auto", V4, {"x86-64-v3"}, "x86-64-v3"),              # a compiler without v4
    ("x86-64-v3", V4, BOTH, "x86-64-v3"),
    ("x86-64", V4, BOTH, "x86-64"),
    ("auto", V4, set(), None),                              # the -march=native build
    ("", frozenset(), set(), None),
])
def test_pick_level(choice, flags, built, expected):
    assert _cpu.pick_level(choice, frozenset(flags), built) == expected


@pytest.mark.parametrize("choice, flags, built, message", [
    ("avx512", V4, BOTH, "SEQFUSE_ISA must be one of auto, x86-64-v4, x86-64-v3, x86-64, got 'avx512'"),
    ("x86-64-v4", V3, BOTH, "SEQFUSE_ISA=x86-64-v4: this CPU lacks avx512bw, avx512cd, avx512dq"),
    ("x86-64-v4", V4, {"x86-64-v3"}, "SEQFUSE_ISA=x86-64-v4: this install has no _C_x86_64_v4"),
    ("x86-64-v3", V4, set(), "SEQFUSE_ISA=x86-64-v3: this engine._C is a single build"),
])
def test_bad_choices_name_the_variable_and_what_is_wrong(choice, flags, built, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        _cpu.pick_level(choice, frozenset(flags), built)


def test_bad_environment_variable_fails_at_import():
    result = run_python("import engine", SEQFUSE_ISA="avx512")
    assert result.returncode != 0
    assert "SEQFUSE_ISA must be one of" in result.stderr


@pytest.mark.parametrize("level", RUNNABLE)
def test_forced_level_is_the_one_loaded(level):
    if not BUILT and level == "x86-64":
        pytest.skip("the -march=native build has one engine._C and no levels")
    code = ("import engine; from engine import _C; import engine._C as again; "
            "print(_C.__name__, again is _C, ' '.join(_C.build_info()['isa']))")
    result = run_python(code, SEQFUSE_ISA=level)
    assert result.returncode == 0, result.stderr
    name, same, *isa = result.stdout.split()
    assert name == "engine." + _cpu.LEVELS[level][0] and same == "True"
    assert ("avx512f" in isa) == (level == "x86-64-v4")
    assert ("avx2" in isa) == (level != "x86-64")


KERNEL_TESTS = ["test_lstm.py", "test_gru.py", "test_simple_rnn.py", "test_conv1d.py",
                "test_conv1d_algorithms.py", "test_pooling.py", "test_embedding.py",
                "test_tuning.py", "test_backward_rows.py", "test_weights_in_loop.py"]


# The level loaded by default runs the kernel tests in this process; each other one this CPU
# runs gets them in a fresh process.
OTHERS = [level for level in RUNNABLE if BUILT and level != max(
    RUNNABLE, key=lambda name: len(_cpu.LEVELS[name][1]))]


@pytest.mark.slow
@pytest.mark.parametrize("level", OTHERS or [pytest.param(None, marks=pytest.mark.skip(
    reason="no other level of engine._C here to run (the -march=native build has none)"))])
def test_kernels_pass_on_every_other_level(level):
    here = Path(__file__).parent
    done = run(["-m", "pytest", "-q", "-p", "no:cacheprovider",
                *(str(here / name) for name in KERNEL_TESTS)], timeout=900, SEQFUSE_ISA=level)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
