"""The GPU report tools on a real device: bench --device cuda's timer, ceilings and rows at
small sizes, and parity --device cuda on a few cases (the full table is gpu_check.sh's
parity step). Each test names what it measured when it fails."""
import json

import numpy as np
import pytest

import engine as en

pytestmark = pytest.mark.gpu

if "cupy" not in en.backends.available():
    pytest.skip(f"no GPU backend: {en.backends.why_unavailable().get('cupy', 'unknown')}",
                allow_module_level=True)

cupy = pytest.importorskip("cupy")

from engine import benchmark_cuda, parity  # noqa: E402


def test_event_timer_sees_the_device_work():
    time_ms = benchmark_cuda.event_timer(cupy)
    small, big = (cupy.random.standard_normal((n, n), dtype=np.float32) for n in (1024, 4096))
    for _ in range(2):  # cuBLAS handle and kernels loaded
        cupy.matmul(small, small), cupy.matmul(big, big)
    t_small = min(time_ms(lambda: small @ small) for _ in range(3))
    t_big = min(time_ms(lambda: big @ big) for _ in range(3))
    # 64× the FLOP: well above launch overhead, so at least several times longer.
    assert t_big > 4 * t_small > 0, f"1024³ matmul {t_small:.3f} ms, 4096³ {t_big:.3f} ms"


def test_ceilings_are_plausible_for_a_datacenter_gpu():
    ceilings = benchmark_cuda.measure_ceilings(cupy, benchmark_cuda.event_timer(cupy), repeat=3)
    # H100/H200: ~50-67 TFLOP/s fp32 and 3-4.8 TB/s; A100: 19.5 and 1.5-2 TB/s.
    assert 5_000 < ceilings["sgemm_gflops"] < 200_000, ceilings
    assert 500 < ceilings["bandwidth_gbs"] < 10_000, ceilings


def test_bench_rows_at_small_sizes(monkeypatch, tmp_path):
    monkeypatch.setattr(benchmark_cuda, "SHAPES", {
        "lstm": [(4, 20, 8, 16)], "gru": [(4, 20, 8, 16)],
        "embedding": [(100, 8, 4, 10, True)], "conv1d": [(2, 30, 4, 5, 3)]})
    path = tmp_path / "bench.json"
    lines = []
    report = benchmark_cuda.run(["lstm", "gru", "embedding", "conv1d"], repeat=1, print_fn=lines.append,
                                json_path=str(path))
    assert json.loads(path.read_text())["rows"] == report["rows"]
    rows = report["rows"]
    assert len(rows) == 2 * 3 * 2 + 2  # lstm, gru × 3 variants × v1, v2; embedding; conv1d
    for row in rows:
        if row["version"] == "v2" and row["error"] and row["error"].startswith("n/a: "):
            continue  # a v2 the backend does not offer for this shape says so in its row
        assert row["error"] is None and row["ms"] > 0, row
        if report["torch"]:
            assert row["torch_error"] is None and row["torch_ms"] > 0, row
    assert report["card"] and "ceilings" in lines[1]


@pytest.mark.parametrize("label", ["lstm mask", "gru reset_before mask", "embedding sparse", "conv1d same s2"])
def test_parity_rows_on_the_device(label):
    make = parity._cases(np.random.default_rng(0), every_option=True)[label]
    for dtype in (np.float32, np.float64):
        rows = parity._check_case(label, make, dtype, "cuda", seed=0)
        assert parity.passed(rows), [parity.format_row(r) for r in rows]
