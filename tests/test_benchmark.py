"""`seqfuse bench` on the CPU (engine/benchmark.py) and the counts it shares with the GPU bench
(engine/_bench.py): FLOP and byte counts against products enumerated by hand, the header
(machine, build, ceilings), rows with GFLOP/s and % of peak, the geometric-mean summary, the
JSON report, and all of it without torch. Times come from a stub timer (nothing is asserted
on a measured time); one test measures the ceilings at tiny sizes to see that it runs."""
import json
import math
import os
import sys

import pytest

import engine as en
from engine import _bench, _cpu, _openblas, benchmark, benchmark_cuda
from engine.cli import main


def gemm(m, k, n):
    """FLOP of one (m,k)·(k,n) product: a multiply and an add per term."""
    return 2 * m * k * n


# --- counts ---

@pytest.mark.parametrize("op, G", [("lstm", 28), ("gru", 21), ("simple_rnn", 7)])
def test_recurrent_flops_are_the_products_listed_by_hand(op, G):
    B, T, Fe, H = size = (2, 3, 5, 7)  # G = 4H, 3H, H columns
    step = gemm(B, Fe, G) + gemm(B, H, G)                    # x_t·W and h·U
    forward = T * step
    backward = T * (gemm(B, G, Fe) + gemm(B, G, H)) \
        + gemm(Fe, T * B, G) + gemm(H, T * B, G)             # dx, dh per step; dW, dU once
    assert _bench.forward_flops(op, size) == forward == 2 * T * B * (Fe + H) * G
    assert _bench.flops(op, size, "infer") == forward
    assert _bench.flops(op, size, "train") == forward + backward == 3 * forward


def test_conv1d_flops_are_the_products_listed_by_hand():
    B, L, C, O, K = size = (2, 10, 3, 4, 5)
    rows = B * (L - K + 1)                                   # one output position per row
    forward = gemm(rows, K * C, O)
    backward = gemm(rows, O, K * C) + gemm(K * C, rows, O)   # dx columns, dkernel
    assert _bench.flops("conv1d", size, "infer") == forward == 2 * 2 * 6 * 3 * 4 * 5
    assert _bench.flops("conv1d", size) == forward + backward


def test_byte_counts_by_hand():
    # embedding (V,D,B,T) = (100,8,2,3): N = 6 ids, N·D = 48 values
    assert _bench.min_bytes("embedding", (100, 8, 2, 3, False), mode="infer") == 4 * 2 * 48 + 8 * 6
    assert _bench.min_bytes("embedding", (100, 8, 2, 3, False)) == 4 * (3 * 48 + 100 * 8) + 16 * 6
    assert _bench.min_bytes("embedding", (100, 8, 2, 3, True)) == 4 * (3 * 48 + 48) + 16 * 6
    assert _bench.flops("embedding", (100, 8, 2, 3, True)) == 0
    # lstm infer: x read (2·3·5), hs written (2·3·7), kernel, U and bias read ((5+7)·28 + 28)
    assert _bench.min_bytes("lstm", (2, 3, 5, 7), mode="infer") == 4 * (30 + 42 + 12 * 28 + 28)
    # conv1d infer: x (2·10·3), y (2·6·4), kernel (5·3·4) and bias (4)
    assert _bench.min_bytes("conv1d", (2, 10, 3, 4, 5), mode="infer") == 4 * (60 + 48 + 60 + 4)


def test_the_gpu_bench_uses_the_same_counts():
    assert benchmark_cuda.flops is _bench.flops and benchmark_cuda.min_bytes is _bench.min_bytes
    assert benchmark_cuda.GATES == {op: _bench.GATES[op] for op in ("lstm", "gru")}
    # the GPU bench times forward + backward: its rows use the train counts
    row = benchmark_cuda.make_row("gru", (2, 3, 5, 7), "plain", "v1", 1.0, None, None, {
        "sgemm_gflops": 1.0, "bandwidth_gbs": 1.0})
    assert row["flops"] == 6 * 2 * 3 * 12 * 21


def test_counts_reject_unknown_ops_and_modes():
    with pytest.raises(ValueError, match=r"flops: unknown op 'transformer'; expected one of"):
        _bench.flops("transformer", (1,))
    with pytest.raises(ValueError, match=r"min_bytes: unknown op 'transformer'"):
        _bench.min_bytes("transformer", (1,))
    with pytest.raises(ValueError, match=r"mode must be one of \('train', 'infer'\), got 'eval'"):
        _bench.flops("lstm", (2, 3, 5, 7), "eval")


def test_fractions_of_the_ceilings():
    ceilings = {"sgemm_gflops": 200.0, "bandwidth_gbs": 20.0}
    # 1e9 FLOP and 1e8 bytes in 10 ms: 100 GFLOP/s, 10 GB/s
    assert _bench.fractions(1e9, 1e8, 10.0, ceilings) == pytest.approx((0.5, 0.5))
    assert _bench.fractions(0.0, 1e8, 10.0, ceilings) == (None, pytest.approx(0.5))
    assert _bench.fractions(1e9, 1e8, None, ceilings) == (None, None)


# --- header ---

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw

processor\t: 1
model name\t: not read
"""


def test_cpu_info_reads_the_first_processor(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    info = _cpu.info(path)
    assert info["model"] == "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz (family 6, model 143)"
    assert {"avx512f", "avx2", "fma"} <= info["flags"]
    missing = _cpu.info(tmp_path / "absent")
    assert missing["flags"] is None and missing["model"]


def test_header_names_cpu_cores_isa_choices_blas_and_torch():
    info = benchmark.machine(["numba"])
    lines = benchmark.describe_machine(info)
    text = "\n".join(lines)
    assert lines[0].startswith(f"CPU: {info['cpu']}; {info['cores']} cores available")
    assert "instruction set (avx512f, avx2, fma): " in text and "CPU offers" in text
    assert f"NumPy {info['numpy']} on {info['blas']}" in text and "kernel choices (engine.tuning): " in text
    numpy_openblas = [p for p in _openblas.bundled_libraries() if "numpy.libs" in p]
    if numpy_openblas and os.path.basename(numpy_openblas[0]) in _openblas.picked:
        core = _openblas.picked[os.path.basename(numpy_openblas[0])]
        assert f"({core} kernels, " in info["blas"]  # the kernels that set the sgemm ceiling
    json.dumps(info)  # the report's machine part is JSON as it is
    if "cpp" in en.backends.available():
        from engine import _C, tuning
        built = _C.build_info()
        assert set(built["isa"]) <= {"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl"}
        assert info["built_isa"] == [f for f in benchmark.ISA_FLAGS if f in built["isa"]]
        assert "C++ extension built for" in text and built["compiler"] in text
        assert info["choices"] == tuning.current()
        assert ", ".join(f"{k}={v}" for k, v in tuning.current().items()) in text
    if info["torch"]:
        assert f"torch {info['torch']} ({info['torch_threads']} threads)" in text


def test_header_says_when_the_build_leaves_cpu_features_unused():
    info = {"cpu": "x", "cores": 2, "cpu_isa": ["avx512f", "avx2", "fma"], "built_isa": ["avx2", "fma"],
            "compiler": "GCC 12", "choices": {"conv1d": "auto"}, "backends": ["cpp"], "python": "3",
            "numpy": "2", "blas": "b", "torch": None, "torch_threads": None}
    text = "\n".join(benchmark.describe_machine(info))
    assert "built for avx2 fma (GCC 12); CPU offers avx512f avx2 fma; the build leaves avx512f unused" in text
    assert "conv1d=auto" in text and "torch not installed" in text
    info.update(built_isa=None, choices=None, cpu_isa=None)
    text = "\n".join(benchmark.describe_machine(info))
    assert "C++ extension not in use; CPU offers unknown (no /proc/cpuinfo)" in text


def test_ceilings_are_measured_and_described(monkeypatch):
    monkeypatch.setattr(benchmark, "CEILING_N", 64)
    monkeypatch.setattr(benchmark, "COPY_BYTES", 1 << 20)
    ceilings = benchmark.measure_ceilings(calls=2)
    assert ceilings["sgemm_gflops"] > 0 and ceilings["bandwidth_gbs"] > 0
    assert ceilings["sgemm_n"] == 64 and ceilings["threads"] == benchmark.CORES
    assert "sgemm " in benchmark.describe_ceilings(ceilings)[0]


def test_cpp_gemms_leave_numpys_openblas_thread_count_alone():
    """engine._C.gemm/gemm_tn run one-thread OpenBLAS calls on the OpenMP threads, the calling
    (Python) thread among them; its count must be restored, or every later NumPy matmul of
    the process (and the sgemm ceiling measured after the rows) runs on one core."""
    lib, _ = benchmark._numpy_openblas()
    if lib is None or "cpp" not in en.backends.available():
        pytest.skip("needs NumPy's bundled OpenBLAS and the C++ extension")
    import ctypes
    import numpy as np
    from engine import _blas
    count = lib.scipy_openblas_get_num_threads64_
    count.restype = ctypes.c_int
    before = count()
    _blas.matmul(np.ones((3000, 64), np.float32), np.ones((64, 512), np.float32))  # engine._C.gemm
    _blas.matmul_tn(np.ones((3000, 64), np.float32), np.ones((3000, 512), np.float32))  # gemm_tn
    assert count() == before


def test_recheck_flags_a_busy_machine():
    before = {"sgemm_gflops": 400.0, "bandwidth_gbs": 30.0}
    quiet = benchmark.describe_recheck(before, {"sgemm_gflops": 420.0, "bandwidth_gbs": 29.0})
    assert quiet == "ceilings again after the rows: sgemm 420.0 GFLOP/s (+5%), copy 29.0 GB/s (-3%)"
    busy = benchmark.describe_recheck(before, {"sgemm_gflops": 200.0, "bandwidth_gbs": 30.0})
    assert "sgemm 200.0 GFLOP/s (-50%)" in busy and "the machine was busy" in busy


# --- rows, summary, the whole run with a stub timer ---

TINY = {"lstm": [(2, 3, 4, 5)], "gru": [(2, 3, 4, 5)], "simple_rnn": [(2, 3, 4, 5)],
        "conv1d": [(2, 12, 3, 4, 3)], "embedding": [(50, 4, 2, 3, True)]}
CEILINGS = {"sgemm_gflops": 1e-3, "sgemm_n": 8, "bandwidth_gbs": 1e-3, "copy_bytes": 1 << 20,
            "threads": 2, "calls": 1}
ROW_GFLOPS, ROW_GBS = 2e-3, 4e-3  # the ceilings timed beside each row


@pytest.fixture
def stub_timer(monkeypatch):
    """Tiny sizes, fixed ceilings, and a timer that answers 2 ms for ours and 3 ms for torch
    (lstm: 4 ms, so one backend's rows have some below 1.0x) without running anything."""
    monkeypatch.setattr(benchmark, "SIZES", TINY)
    monkeypatch.setattr(benchmark, "measure_ceilings", lambda: dict(CEILINGS))
    monkeypatch.setattr(benchmark, "CEILING_N", 8)
    monkeypatch.setattr(benchmark, "COPY_BYTES", 1 << 20)
    current = {}

    def rounds_ms(fns, repeat):
        def ms(name):
            if name in ("sgemm", "copy"):  # the row's ceiling: ROW_GFLOPS, ROW_GBS
                return 2.0 * 8 ** 3 / ROW_GFLOPS / 1e6 if name == "sgemm" else 2.0 * (1 << 20) / ROW_GBS / 1e6
            return 3.0 if name == "torch" else 4.0 if current["op"] == "lstm" else 2.0
        return {name: [ms(name)] * repeat for name in fns}

    def ours(op, size, rng):
        current["op"] = op
        return real_ours(op, size, rng)
    real_ours = benchmark.ours
    monkeypatch.setattr(benchmark, "ours", ours)
    monkeypatch.setattr(benchmark, "_rounds_ms", rounds_ms)


def test_run_prints_rates_fractions_and_the_summary(stub_timer, tmp_path):
    lines = []
    path = tmp_path / "bench.json"
    report = benchmark.run(list(TINY), ["numba"], repeat=1, print_fn=lines.append, json_path=str(path))
    header = lines.index(benchmark.format_header()[0])
    assert lines[0].startswith("CPU: ") and lines[4].startswith("ceilings, measured now: sgemm")
    rows = lines[header + 1:header + 11]
    assert [r.split()[0] for r in rows] == [op for op in TINY for _ in range(2)]
    lstm_train = report["rows"][0]
    gflops = _bench.flops("lstm", (2, 3, 4, 5)) / 4e6  # FLOP in 4 ms, in GFLOP/s
    # % peak is of the sgemm rate timed in the row's rounds, not of the run's first ceiling
    assert lstm_train["gemm_fraction"] == pytest.approx(gflops / ROW_GFLOPS)
    assert lstm_train["ceilings"]["sgemm_gflops"] == pytest.approx(ROW_GFLOPS)
    assert lstm_train["torch_over_ours"] == pytest.approx(0.75)
    assert f"{gflops:.1f}" in rows[0] and f"{gflops / ROW_GFLOPS:.1%}" in rows[0]
    assert rows[0].split()[-1] == f"{ROW_GFLOPS:.1f}"
    embedding = report["rows"][-1]
    assert embedding["mode"] == "infer" and embedding["gemm_fraction"] is None
    moved = _bench.min_bytes('embedding', (50, 4, 2, 3, True), mode='infer')
    assert f"{moved / 2e6:.1f} GB/s" in rows[-1]
    assert embedding["bandwidth_fraction"] == pytest.approx(moved / 2e6 / ROW_GBS)
    assert rows[-1].endswith(f"{ROW_GBS:.1f} GB/s")
    # 2 lstm rows at 0.75, 8 rows at 1.5
    geomean = math.exp((2 * math.log(0.75) + 8 * math.log(1.5)) / 10)
    assert lines[-2] == f"numba: geometric mean torch/ours {geomean:.2f}x over 10 rows, 2 of them below 1.0x"
    assert lines[-1] == "target for numba, every row >= 0.5x torch: met (lowest lstm (2, 3, 4, 5) train 0.75x)"
    assert lines[-3].startswith("ceilings again after the rows: sgemm ") and report["ceilings_after"] == CEILINGS
    assert report["summary"]["numba"] == {"rows": 10, "geomean": pytest.approx(geomean), "below": 2}
    assert [(t["backend"], t["met"]) for t in report["targets"]] == [("numba", True)]
    saved = json.loads(path.read_text())
    assert len(saved["rows"]) == 10 and saved["ceilings"] == CEILINGS and saved["machine"]["cores"] >= 1


def test_markdown_table_with_the_header_as_a_list(stub_timer):
    lines = []
    benchmark.run(["conv1d"], ["numba"], repeat=1, print_fn=lines.append, markdown=True)
    table = [line for line in lines if line.startswith("|")]
    assert table[0] == "| op | size | mode | backend | ms | GFLOP/s | % peak | torch ms | torch GFLOP/s " \
                       "| torch % peak | torch/ours | peak |"
    assert len(table) == 4 and all(len(line.split("|")) == 14 for line in table)
    assert lines[0].startswith("- CPU: ") and lines[-2].startswith("- numba: geometric mean")
    assert lines[-1].startswith("- target for numba, every row >= 0.5x torch: met")
    assert lines[lines.index(table[0]) - 1] == "" and lines[-4] == ""  # blank lines around the table
    assert lines[-3].startswith("- ceilings again after the rows")


def test_run_without_torch(stub_timer, monkeypatch):
    monkeypatch.setattr(benchmark, "theirs", lambda op, size, rng: None)
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    lines = []
    report = benchmark.run(["simple_rnn", "embedding"], ["numba"], repeat=1, print_fn=lines.append)
    assert report["machine"]["torch"] is None and any("torch not installed" in line for line in lines)
    row = report["rows"][0]
    assert row["torch_ms"] is None and row["torch_over_ours"] is None and row["gemm_fraction"]
    assert benchmark.format_row(row).split()[-5:-1] == ["-", "-", "-", "-"]
    assert lines[-2:] == ["numba: 4 rows; no torch/ours ratio (torch not installed)",
                          "target for numba, every row >= 0.5x torch: not measured in this run"]


def test_command_writes_json_and_rejects_cuda_only_options(stub_timer, tmp_path, capsys):
    path = tmp_path / "r.json"
    assert main(["bench", "--ops", "gru", "--backends", "numba", "--repeat", "1", "--json", str(path)]) == 0
    assert "geometric mean" in capsys.readouterr().out
    assert [r["op"] for r in json.loads(path.read_text())["rows"]] == ["gru", "gru"]
    assert main(["bench", "--ops", "gru", "--backends", "numba", "--repeat", "1", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["summary"]["numba"]["rows"] == 2 and "geometric mean" in captured.err
    assert main(["bench", "--max-seconds", "5"]) == 2
    assert "--max-seconds is for --device cuda only" in capsys.readouterr().err


def test_targets_are_judged_on_the_runs_rows():
    def row(op, size, mode, ratio, fraction, backend="cpp"):
        return {"op": op, "size": list(size), "mode": mode, "backend": backend,
                "torch_over_ours": ratio, "gemm_fraction": fraction}
    rows = [row("lstm", (64, 100, 64, 128), "train", 1.5, 0.77),
            row("simple_rnn", (64, 100, 64, 128), "train", 1.2, 0.625),
            row("gru", (32, 100, 32, 32), "train", 0.9, 0.30),  # H < 128: no % target
            row("lstm", (64, 100, 64, 128), "infer", 1.3, 0.50),  # inference: no % target
            row("conv1d", (32, 500, 32, 32, 7), "train", 1.2, 0.40),  # C, O < 128: no % target
            row("conv1d", (64, 1000, 128, 128, 5), "infer", 1.1, 0.95),
            row("embedding", (10, 2, 3, 4, True), "infer", 2.0, None),
            row("lstm", (64, 100, 64, 128), "train", 0.6, 0.5, "numba")]
    verdicts = benchmark.judge_targets(rows, benchmark.summarize(rows))
    assert [(v["backend"], v["met"]) for v in verdicts] == [
        ("cpp", False), ("cpp", False), ("cpp", False), ("cpp", True), ("numba", True)]
    assert benchmark.describe_targets(verdicts) == [
        "target for cpp, every row >= 1.0x torch: missed by gru (32, 100, 32, 32) train 0.90x",
        "target for cpp, geometric mean >= 1.5x torch: missed (1.28x)",
        "target for cpp, recurrent training at H >= 128 >= 75% of peak: missed by "
        "simple_rnn (64, 100, 64, 128) train 62.5%",
        "target for cpp, conv1d at C, O >= 128 >= 80% of peak: met (lowest "
        "conv1d (64, 1000, 128, 128, 5) infer 95.0%)",
        "target for numba, every row >= 0.5x torch: met (lowest lstm (64, 100, 64, 128) train 0.60x)"]
    # every target met; a run without the rows a target holds for (--quick) does not judge it
    good = [dict(r, torch_over_ours=2.0, gemm_fraction=0.9) for r in rows if r["backend"] == "cpp"]
    assert all(v["met"] for v in benchmark.judge_targets(good, benchmark.summarize(good)))
    quick = [r for r in good if r["size"] in ([32, 100, 32, 32], [32, 500, 32, 32, 7])]
    met = [v["met"] for v in benchmark.judge_targets(quick, benchmark.summarize(quick))]
    assert met == [True, True, None, None]
    assert benchmark.describe_targets(benchmark.judge_targets(quick, benchmark.summarize(quick)))[2] == \
        "target for cpp, recurrent training at H >= 128 >= 75% of peak: not measured in this run"


def test_spread_of_the_ceiling_within_rows():
    def row(op, mode, rates, backend="cpp"):
        return {"op": op, "size": [2, 3], "mode": mode, "backend": backend, "ceiling_rounds": rates}
    rows = [row("lstm", "train", [100.0, 80.0, 90.0]), row("lstm", "train", [100.0, 80.0, 90.0], "numba"),
            row("gru", "train", [200.0, 190.0]), row("gru", "infer", [50.0, 50.0])]
    line = benchmark.describe_spread(rows)
    # spreads: lstm train 20% (counted once for both backends), gru train 5%, gru infer 0%
    assert line.startswith("the ceiling within a row's rounds: its slowest round below its fastest by 5% "
                           "(median over rows), at most 20% (lstm (2, 3) train)")
    assert benchmark.describe_spread([row("lstm", "train", [100.0])]) is None  # one round
    assert benchmark.describe_spread([]) is None


def test_run_reports_each_rows_ceiling_rounds(stub_timer, monkeypatch):
    # the stub's ceiling answers ROW_GFLOPS; here the second round's sgemm takes twice as long
    stubbed = benchmark._rounds_ms

    def two_rounds(fns, repeat):
        samples = stubbed(fns, repeat)
        for kind in ("sgemm", "copy"):
            if kind in samples:
                samples[kind][1] *= 2
        return samples
    monkeypatch.setattr(benchmark, "_rounds_ms", two_rounds)
    lines = []
    report = benchmark.run(["gru"], ["numba"], repeat=2, print_fn=lines.append)
    rates = report["rows"][0]["ceiling_rounds"]
    assert rates == pytest.approx([ROW_GFLOPS, ROW_GFLOPS / 2])
    assert report["rows"][0]["ceilings"]["sgemm_gflops"] == pytest.approx(ROW_GFLOPS)  # the fastest
    assert lines[-3].startswith("the ceiling within a row's rounds: its slowest round below its fastest by 50%")
    assert lines[-4].startswith("ceilings again after the rows")
