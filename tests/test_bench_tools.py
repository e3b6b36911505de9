"""The profiling tools bench/RESULTS.md quotes keep working: bench/profile_step.py and
tools/gemm_peak.cpp, run at tiny sizes (their numbers are not checked, only that they run);
and the GPU tools' host logic without a GPU: bench --device cuda's counts, rows and table,
parity --device cuda's version loop, bench/gpu_check.sh's steps with a stub python."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import engine as en

ROOT = Path(__file__).resolve().parents[1]


def _profile_step():
    if "cpp" not in en.backends.available():
        pytest.skip("the C++ backend is not built here")
    spec = importlib.util.spec_from_file_location("profile_step", ROOT / "bench" / "profile_step.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("op", ["lstm", "gru", "simple_rnn"])
def test_profile_step_prints_every_part(op, capsys):
    _profile_step().main([op, "3", "4", "2", "5", "--repeat", "1"])
    out = capsys.readouterr().out
    for part in ("forward", "backward", "weights", "step", "step - parts"):
        assert f"  {part} " in out
    assert "GFLOP/s" in out
    # SimpleRNN's and GRU's backward is timed the step's way: with the weights in its loop.
    in_loop = op != "lstm" and en.backends.cpp_cpu.weights_in_loop()
    assert ("weight gradients summed in its loop" in out) == in_loop


def test_profile_step_help_names_the_size_arguments(capsys):
    # One positional with nargs=4 and a tuple metavar made argparse's --help raise ValueError.
    with pytest.raises(SystemExit) as done:
        _profile_step().main(["--help"])
    assert done.value.code == 0
    assert "B T F H" in capsys.readouterr().out


def test_profile_step_toggle_times_both_ways_and_leaves_the_variable_unset(monkeypatch, capsys):
    module = _profile_step()
    seen = []
    monkeypatch.delenv("SEQFUSE_AB_TEST", raising=False)
    assert module.alternating_ms(lambda: seen.append(os.environ.get("SEQFUSE_AB_TEST")), 3,
                                 module.toggle_ways("SEQFUSE_AB_TEST"))[0] >= 0
    assert seen == [None, None, "1", "1"] * 3  # per round: one untimed and one timed call each way
    assert "SEQFUSE_AB_TEST" not in os.environ
    module.main(["lstm", "3", "4", "2", "5", "--repeat", "1", "--toggle", "SEQFUSE_AB_TEST"])
    out = capsys.readouterr().out
    assert "SEQFUSE_AB_TEST unset | SEQFUSE_AB_TEST=1" in out
    assert all(line.count("|") == 1 for line in out.splitlines()[1:])
    assert "SEQFUSE_AB_TEST" not in os.environ


def test_profile_step_against_times_two_builds_and_leaves_engine_c_as_it_was(capsys):
    module = _profile_step()
    ours = en._C
    module.main(["gru", "3", "4", "2", "5", "--repeat", "1", "--against", ours.__file__])
    out = capsys.readouterr().out
    assert f"engine._C | {ours.__file__}" in out
    assert all(line.count("|") == 1 for line in out.splitlines()[1:])
    assert en._C is ours and en.backends.cpp_cpu._C is ours


def test_profile_step_against_loads_another_instruction_set_level_of_a_portable_build(capsys):
    # A SEQFUSE_NATIVE=OFF build puts each level in its own module (engine/_C_x86_64_v3...):
    # its init function carries that name, so it loads under it. Only a level this CPU runs:
    # the other's kernels would stop the process on an illegal instruction.
    from engine import _cpu
    runs = {module for module, needs in _cpu.LEVELS.values() if needs <= _cpu.flags()}
    levels = sorted(path for path in Path(en.__file__).parent.glob("_C_*.so")
                    if path.name.split(".")[0] in runs)
    if not levels:
        pytest.skip("not a portable build: no other instruction-set level here")
    module = _profile_step()
    ours = en._C
    module.main(["lstm", "3", "4", "2", "5", "--repeat", "1", "--against", str(levels[0])])
    assert f"engine._C | {levels[0]}" in capsys.readouterr().out
    assert en._C is ours and en.backends.cpp_cpu._C is ours


def test_profile_step_choice_times_two_variants_and_puts_the_choice_back(capsys):
    module = _profile_step()
    before = en._C.choices()["weights_in_loop"]
    module.main(["gru", "3", "4", "2", "5", "--repeat", "1", "--choice", "weights_in_loop=off,on"])
    out = capsys.readouterr().out
    assert "weights_in_loop=off | on" in out
    assert all(line.count("|") == 1 for line in out.splitlines()[1:])
    assert en._C.choices()["weights_in_loop"] == before
    for bad in ("weights_in_loop=on", "weights_in_loop=on,fast", "nothing=a,b"):
        with pytest.raises(SystemExit):
            module.main(["gru", "3", "4", "2", "5", "--choice", bad])
        assert "--choice must be NAME=A,B" in capsys.readouterr().err


def test_gemm_peak_builds_and_runs(tmp_path):
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("no g++ here")
    binary = tmp_path / "gemm_peak"
    subprocess.run([compiler, "-O2", "-std=c++17", "-pthread", f"-I{ROOT / 'kernels'}",
                    str(ROOT / "tools" / "gemm_peak.cpp"), "-o", str(binary)], check=True)
    out = subprocess.run([str(binary), "2"], check=True, capture_output=True, text=True).stdout
    assert "2 thread(s) at once" in out and "(64, 256, 1024)" in out


# --- the GPU tools' host logic (bench --device cuda, parity --device cuda, gpu_check.sh) ---

def test_gpu_bench_flop_and_byte_counts():
    from engine.benchmark_cuda import flops, min_bytes
    # LSTM (B,T,F,H) = (2,3,5,7): 6·B·T·G·H·(F+H) = 6·2·3·4·7·12
    assert flops("lstm", (2, 3, 5, 7)) == 6 * 2 * 3 * 4 * 7 * 12
    assert flops("gru", (2, 3, 5, 7)) == 6 * 2 * 3 * 3 * 7 * 12
    # conv1d (B,L,C,O,K) = (2,10,3,4,5): L_out 6, 3 × 2·B·L_out·K·C·O
    assert flops("conv1d", (2, 10, 3, 4, 5)) == 6 * 2 * 6 * 5 * 3 * 4
    assert flops("embedding", (100, 8, 2, 3, False)) == 0
    # x, dx: 2·B·T·F; y, dy: 2·B·T·H; gates saved and read: 2·B·T·G·H; params read, grads written
    params = (5 + 7) * 4 * 7 + 4 * 7
    assert min_bytes("lstm", (2, 3, 5, 7)) == 4 * (2 * 6 * 5 + 2 * 6 * 7 + 2 * 6 * 28 + 2 * params)
    gru_params = (5 + 7) * 3 * 7 + 2 * 3 * 7  # reset_after: two bias rows
    assert min_bytes("gru", (2, 3, 5, 7)) == 4 * (2 * 6 * 5 + 2 * 6 * 7 + 2 * 6 * 21 + 2 * gru_params)
    assert min_bytes("lstm", (2, 3, 5, 7), "mask") - min_bytes("lstm", (2, 3, 5, 7)) == 2 * 3
    assert min_bytes("lstm", (2, 3, 5, 7), "recurrent_dropout") - min_bytes("lstm", (2, 3, 5, 7)) == 4 * 2 * 7
    assert min_bytes("conv1d", (2, 10, 3, 4, 5)) == 4 * (2 * 60 + 2 * 2 * 6 * 4 + 2 * 60 + 2 * 4)
    # embedding N = 6 ids of D = 8: 3·N·D moved, then the dense [V,D] or N·D sparse gradient
    assert min_bytes("embedding", (100, 8, 2, 3, False)) == 4 * (3 * 48 + 800) + 16 * 6
    assert min_bytes("embedding", (100, 8, 2, 3, True)) == 4 * (3 * 48 + 48) + 16 * 6
    with pytest.raises(ValueError, match="unknown op 'transformer'"):
        flops("transformer", (1,))


def test_gpu_bench_rows_ratios_fractions_and_table():
    from engine.benchmark_cuda import format_header, format_row, make_row
    ceilings = {"sgemm_gflops": 50_000.0, "sgemm_n": 8192, "bandwidth_gbs": 4000.0, "copy_bytes": 1 << 30}
    size = (16, 1000, 128, 512)
    row = make_row("lstm", size, "mask", "v2", 40.0, 100.0, "cudnn packed", ceilings, plain_ms=32.0)
    assert row["torch_over_ours"] == pytest.approx(2.5)
    assert row["vs_plain"] == pytest.approx(0.25)
    # 6·16·1000·4·512·640 FLOP in 40 ms = 3.1457e12 FLOP/s: 6.3% of 50 TFLOP/s
    assert row["gemm_fraction"] == pytest.approx(6 * 16 * 1000 * 4 * 512 * 640 / 0.040 / 50e12)
    assert row["bandwidth_fraction"] == pytest.approx(row["min_bytes"] / 0.040 / 4e12)
    assert row["torch_gemm_fraction"] == pytest.approx(row["gemm_fraction"] * 40 / 100)  # the JSON has torch's too
    json.dumps(row)  # the JSON report holds rows as they are
    text = format_row(row)
    header = format_header()[0]
    assert len(text) == len(header)
    for cell in ("lstm", "16x1000x128x512", "mask", "v2", "40.00", "cudnn packed", "100.00", "2.50", "+25%", "6.3%"):
        assert cell in text
    broken = make_row("gru", size, "plain", "v2", "NotImplementedError: H=512 does not fit", None, None, ceilings)
    assert broken["ms"] is None and broken["error"].startswith("NotImplementedError")
    assert "error" in format_row(broken) and broken["gemm_fraction"] is None
    unsupported = make_row("gru", size, "plain", "v2", "n/a: SEQFUSE_CUDA_RNN=v2, but ...", 9.0, "cudnn", ceilings)
    assert format_row(unsupported).split()[3:5] == ["v2", "n/a"]
    markdown = format_row(make_row("embedding", (50_000, 256, 64, 500, True), "plain", None, 1.0, 1.1,
                                   "embedding", ceilings), markdown=True)
    assert markdown.startswith("| embedding | 50000x256x64x500 sparse | plain | cupy | 1.00 | embedding | 1.10 |")
    assert markdown.endswith("| - | - | 3.3% |")  # no products, no GEMM %; 131.6 MB in 1 ms of 4 TB/s
    assert format_header(markdown=True)[1] == "|" + "---|" * 11


def test_gpu_bench_interleaves_and_survives_a_broken_contender():
    from engine.benchmark_cuda import median_ms
    calls = []

    def contender(name, ms):
        def fn():
            calls.append(name)
            return ms
        return fn

    def broken():
        raise NotImplementedError("v2: not for this shape")

    fake_timer = lambda fn: fn()  # noqa: E731  (the "time" is what the fake returns)
    times = iter([3.0, 1.0, 2.0])
    result = median_ms({"a": contender("a", 5.0), "b": lambda: next(times), "c": broken}, 3, fake_timer, warmup=0)
    assert result == {"a": 5.0, "b": 2.0, "c": "NotImplementedError: v2: not for this shape"}
    calls.clear()
    median_ms({"a": contender("a", 1.0), "b": contender("b", 1.0)}, 2, fake_timer, warmup=1)
    assert calls == ["a", "b", "a", "b", "a", "b"]  # warm-up each, then rounds in turn


def test_parity_cuda_runs_each_version_and_marks_an_unsupported_one(monkeypatch):
    from engine import parity
    from engine.backends import _cuda_rnn
    seen = []

    class FakePersistent:  # v2 for lstm and gru only
        @staticmethod
        def supports(op, B, H, dtype):
            return op != "simple_rnn"

    def fake_errors(fn, arrays, requires_grad, names, seed):
        version = os.environ.get(parity.RNN_VERSION_ENV)
        seen.append(version)
        if version is None and arrays[0].dtype == np.float64 and len(arrays) == 3 and arrays[1].ndim == 3:
            raise RuntimeError("illegal memory access")  # conv1d float64 breaks: an error row
        return {"cupy": {"forward[0]": 1e-12, "grad[0]": 1e-12}}

    monkeypatch.setattr(parity, "backend_errors", fake_errors)
    monkeypatch.setattr(_cuda_rnn, "_cuda_persistent", FakePersistent)
    monkeypatch.setattr(parity, "check_device", lambda device: None)
    monkeypatch.delenv(parity.RNN_VERSION_ENV, raising=False)
    rows = parity.check(print_fn=lambda line: None, device="cuda")
    assert parity.RNN_VERSION_ENV not in os.environ  # restored after each case
    recurrent = [r for r in rows if r["op"].split()[0] in ("lstm", "gru", "simple_rnn")]
    assert {r["backend"] for r in recurrent} == {"cupy v1", "cupy v2"}
    assert {r["op"] for r in recurrent} >= {"lstm dropout state", "gru reset_before no bias", "simple_rnn infer"}
    na = [r for r in rows if r["status"] == "n/a"]
    assert na and all(r["op"].startswith("simple_rnn") and r["backend"] == "cupy v2" for r in na)
    errors = [r for r in rows if r["status"] == "error"]
    assert errors and all(r["op"].startswith("conv1d") and "illegal memory access" in r["detail"] for r in errors)
    assert not parity.passed(rows)
    assert parity.passed([r for r in rows if r["status"] != "error"])  # n/a counts as passed
    assert "n/a: SEQFUSE_CUDA_RNN=v2, but the v2 persistent simple_rnn kernel does not support B=3, H=4" \
        in parity.format_row(na[0])
    assert seen.count("v2") == seen.count("v1") - 7 * 2  # simple_rnn: 7 cases × 2 dtypes ran v1 only


def test_parity_row_fails_on_nan_and_names_the_output():
    from engine import parity
    row = parity._row("lstm mask", np.float32, "cupy v1",
                      {"forward[0]": 1e-7, "grad[1]": 1e-6, "grad[2]": float("nan"), "grad[3]": 1e-6})
    assert row["status"] == "FAIL" and row["detail"] == "grad[2]" and row["worst"] == "grad[2]"
    assert np.isnan(row["gradients"])  # shown, not hidden behind a smaller error
    assert parity.format_row(row).endswith("FAIL grad[2]")
    ok = parity._row("lstm mask", np.float64, "cpp", {"forward[0]": 1e-12, "grad[0]": 5e-11})
    assert ok["status"] == "ok" and ok["worst"] == "grad[0]"


def _stub_python(tmp_path):
    """A PYTHON for gpu_check.sh: fakes every step's output files, runs gpu_results.py for real."""
    stub = tmp_path / "python3"
    stub.write_text(f"""#!{sys.executable}
import json, os, runpy, sys
args = sys.argv[1:]
with open(os.environ["STUB_CALLS"], "a") as f:
    f.write(" ".join(args) + "\\n")
sys.path.insert(0, {str(ROOT)!r})
def after(flag):
    return next((a.split("=", 1)[1] for a in args if a.startswith(flag + "=")), None) or args[args.index(flag) + 1]
if args[0] == "bench/gpu_results.py":
    sys.argv = args
    runpy.run_path(args[0], run_name="__main__")
elif args[:2] == ["-m", "pytest"]:
    open(after("--junitxml"), "w").write('<testsuites><testsuite tests="3" failures="1" errors="0" skipped="1">'
        '<testcase classname="tests.test_gpu_lstm" name="test_x"><failure message="grad[1] 2e-3"/></testcase>'
        '</testsuite></testsuites>')
    sys.exit(1)
elif args[:3] == ["-m", "engine", "parity"]:
    from engine import parity
    rows = [parity._row("lstm mask", __import__("numpy").float32, "cupy v1", {{"forward[0]": 0.0, "grad[0]": 0.0}})]
    json.dump({{"passed": True, "rows": rows}}, open(after("--json"), "w"), default=str)
elif args[:3] == ["-m", "engine", "train"] and "cuda" in args and os.environ.get("STUB_HANG"):
    __import__("time").sleep(60)
elif args[:3] == ["-m", "engine", "train"]:
    json.dump({{"history": {{"loss": [0.7, 0.5]}}, "test_acc": 0.8}}, open(after("--history"), "w"))
elif args[:3] == ["-m", "engine", "bench"]:
    from engine.benchmark_cuda import make_row
    row = make_row("lstm", (16, 1000, 128, 512), "plain", "v1", 20.0, 40.0, "cudnn", None)
    json.dump({{"card": "Fake H200", "date": "2026-12-01", "rows": [row], "skipped": []}}, open(after("--json"), "w"))
elif args[:3] == ["-m", "engine", "info"]:
    sys.exit(3)
elif args[:1] == ["-c"] and "pytest_timeout" in args[1]:
    sys.exit(1)
""")
    stub.chmod(0o755)
    return stub


def test_gpu_check_runs_every_step_and_writes_one_results_json(tmp_path):
    if shutil.which("timeout") is None:
        pytest.skip("no coreutils timeout here")
    out, calls = tmp_path / "out", tmp_path / "calls.txt"
    env = {**os.environ, "PYTHON": str(_stub_python(tmp_path)), "STUB_CALLS": str(calls), "TOTAL_S": "200"}
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), str(out)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "card: Fake H200" in done.stdout  # the summary ends the output (no nvidia-smi here)
    files = sorted(p.name for p in out.iterdir())
    assert files == ["bench.json", "log.txt", "parity.json", "results.json", "steps.tsv", "tests_gpu.xml"]
    results = json.loads((out / "results.json").read_text())
    steps = {s["name"]: s["exit_code"] for s in results["steps"]}
    assert list(steps) == ["env", "build", "info", "tests_gpu", "parity", "train_cuda", "train_cpu",
                           "check_cuda", "bench"]
    assert steps["info"] == 3 and steps["tests_gpu"] == 1 and steps["bench"] == 0  # later steps still ran
    assert results["passed"] is False
    assert results["tests"]["failures"] == 1
    assert results["tests"]["failed"] == ["tests.test_gpu_lstm::test_x: grad[1] 2e-3"]
    assert results["parity"]["rows"][0]["backend"] == "cupy v1" and results["parity"]["not_ok"] == []
    assert results["bench"]["rows"][0]["torch_over_ours"] == 2.0
    assert results["train_cuda"]["test_acc"] == results["train_cpu"]["test_acc"] == 0.8
    assert "main job on cuda: final loss 0.5000, test_acc 0.8" in done.stdout
    invoked = calls.read_text()
    assert "parity --device cuda --json" in invoked and "bench --device cuda --json" in invoked
    assert "train --data movie_reviews --model lstm --epochs 3 --device cuda" in invoked
    assert "-m pytest -q -p no:cacheprovider -m gpu" in invoked and "--max-seconds" in invoked
    table = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_results.py"), "--markdown",
                            str(out / "results.json")], capture_output=True, text=True, check=True).stdout
    assert "on Fake H200 (2026-12-01)" in table and "| lstm | 16x1000x128x512 | plain | v1 | 20.00 |" in table


@pytest.mark.parametrize("op, size", [("lstm", (3, 6, 4, 5)), ("gru", (3, 6, 4, 5)),
                                      ("embedding", (30, 4, 2, 3, False)), ("embedding", (30, 4, 2, 3, True)),
                                      ("conv1d", (2, 9, 3, 4, 3))])
def test_gpu_bench_contenders_run_on_the_cpu(op, size):
    # The closures bench --device cuda times, run here with numpy / torch CPU: every variant's
    # inputs and options are well formed before a GPU ever sees them.
    from engine.benchmark_cuda import GATES, VARIANTS, ours, theirs
    torch = pytest.importorskip("torch")
    for name in VARIANTS if op in GATES else ("plain",):
        rng = np.random.default_rng(0)
        ours(op, size, name, rng, xp=np)()
        kind, step = theirs(torch, op, size, name, rng, device="cpu")
        step()
        assert kind == {"plain": "cudnn", "mask": "cudnn packed", "recurrent_dropout": "cell loop"}[name] \
            if op in GATES else kind in ("cudnn", "embedding")


def test_gpu_check_cuts_a_hanging_step_and_goes_on(tmp_path):
    if shutil.which("timeout") is None:
        pytest.skip("no coreutils timeout here")
    out = tmp_path / "out"
    # TOTAL_S=60: the limits shrink to fit, the hanging train --device cuda gets the 5 s floor.
    env = {**os.environ, "PYTHON": str(_stub_python(tmp_path)), "STUB_CALLS": str(tmp_path / "calls"),
           "TOTAL_S": "60", "STUB_HANG": "1"}
    subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), str(out)], env=env, capture_output=True,
                   timeout=60, check=True)
    steps = {s["name"]: s for s in json.loads((out / "results.json").read_text())["steps"]}
    assert steps["train_cuda"]["timed_out"] and steps["train_cuda"]["exit_code"] == 124
    assert steps["train_cuda"]["seconds"] < 10 and steps["train_cuda"]["limit_s"] == 5
    assert steps["bench"]["exit_code"] == 0  # the step after still ran
