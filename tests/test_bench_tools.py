"""The profiling tools bench/RESULTS.md quotes keep working: bench/profile_step.py and
tools/gemm_peak.cpp, run at tiny sizes (their numbers are not checked, only that they run)."""
import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

import engine as en

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("op", ["lstm", "gru", "simple_rnn"])
def test_profile_step_prints_every_part(op, capsys):
    if "cpp" not in en.backends.available():
        pytest.skip("the C++ backend is not built here")
    spec = importlib.util.spec_from_file_location("profile_step", ROOT / "bench" / "profile_step.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main([op, "3", "4", "2", "5", "--repeat", "1"])
    out = capsys.readouterr().out
    for part in ("forward", "backward", "dkernel", "drecurrent", "step", "step - parts"):
        assert f"  {part} " in out
    assert "GFLOP/s" in out


def test_gemm_peak_builds_and_runs(tmp_path):
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("no g++ here")
    binary = tmp_path / "gemm_peak"
    subprocess.run([compiler, "-O2", "-std=c++17", "-pthread", f"-I{ROOT / 'kernels'}",
                    str(ROOT / "tools" / "gemm_peak.cpp"), "-o", str(binary)], check=True)
    out = subprocess.run([str(binary), "2"], check=True, capture_output=True, text=True).stdout
    assert "2 thread(s) at once" in out and "(64, 256, 1024)" in out
