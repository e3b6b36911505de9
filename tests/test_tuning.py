"""engine.tuning: kernel choices forced by environment variable or in-process, and their errors."""
import os
import subprocess
import sys

import pytest

from engine import backends

pytestmark = pytest.mark.skipif(not backends.get("cpp").available(), reason="engine._C not built")


def test_every_choice_has_variants_and_one_in_force():
    from engine import _C, tuning
    options = _C.choice_options()
    assert "conv1d" in options
    for name, value in tuning.current().items():
        assert value in options[name]


def test_forced_sets_and_restores():
    from engine import tuning
    before = tuning.current()["conv1d"]
    with tuning.forced("conv1d", "direct"):
        assert tuning.current()["conv1d"] == "direct"
    assert tuning.current()["conv1d"] == before


def test_bad_values_name_the_choice_and_the_variants():
    from engine import _C, tuning
    with pytest.raises(ValueError, match="conv1d must be one of auto, direct, gemm, got 'fast'"):
        _C.set_choice("conv1d", "fast")
    with pytest.raises(ValueError, match="unknown choice 'tile'"):
        _C.set_choice("tile", "8x32")
    with pytest.raises(ValueError, match="SEQFUSE_CONV1D must be one of auto, direct, gemm, got 'fast'"):
        tuning.configure({"SEQFUSE_CONV1D": "fast"})
    tuning.configure({})


def _run(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def test_environment_variable_forces_a_choice_at_import():
    code = "from engine import backends, tuning; backends.get('cpp'); print(tuning.current()['conv1d'])"
    result = _run(code, SEQFUSE_CONV1D="gemm")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "gemm"


def test_bad_environment_variable_fails_at_import_with_its_name():
    result = _run("from engine import backends; backends.get('cpp')", SEQFUSE_CONV1D="fast")
    assert result.returncode != 0
    assert "SEQFUSE_CONV1D must be one of auto, direct, gemm, got 'fast'" in result.stderr
