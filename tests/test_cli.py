"""The seqfuse command: train (the main job, small), info, parity, bench."""
import json

import numpy as np
import pytest

import engine as en
from engine.cli import main


def test_train_movie_reviews_small(tmp_path, capsys):
    history, model = tmp_path / "history.json", tmp_path / "model.npz"
    code = main(["train", "--epochs", "1", "--units", "8", "--sequence-length", "12",
                 "--max-tokens", "2000", "--history", str(history), "--save", str(model)])
    assert code == 0
    result = json.loads(history.read_text())
    assert set(result["history"]) == {"loss", "acc", "val_loss", "val_acc"}
    assert 0.5 < result["test_acc"] <= 1.0  # one epoch already beats chance on real reviews
    assert en.load_model(model).count_params() > 0
    assert "test: loss" in capsys.readouterr().out


def test_train_jfk_weather_small(tmp_path):
    history = tmp_path / "h.json"
    assert main(["train", "--data", "jfk_weather", "--model", "gru", "--epochs", "1", "--units", "4",
                 "--sequence-length", "8", "--history", str(history)]) == 0
    assert np.isfinite(json.loads(history.read_text())["test_mae_fahrenheit"])


def test_train_rejects_bad_choices(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--model", "transformer"])
    assert main(["train", "--backend", "nope", "--epochs", "1"]) == 2
    assert "unknown name 'nope'" in capsys.readouterr().err


def test_info_lists_backends(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for name in en.backends.names():
        assert name in out


def test_parity_passes_and_catches_a_wrong_backend(monkeypatch, capsys):
    assert main(["parity"]) == 0
    assert "FAIL" not in capsys.readouterr().out
    numba = en.backends.get("numba")
    good = numba.simple_rnn_forward
    monkeypatch.setattr(numba, "simple_rnn_forward", lambda *a, **k: good(*a, **k) * 1.001)
    assert main(["parity"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_bench_quick_prints_ratios(capsys):
    assert main(["bench", "--ops", "simple_rnn", "--quick", "--repeat", "1", "--backends", "numba"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[:4] for line in lines if line.startswith("simple_rnn")] == [
        ["simple_rnn", "(32,", "100,", "32,"]] * 2  # train, infer
    # each row ends with the sgemm rate timed in its own rounds (engine.benchmark.CeilingCalls)
    assert all(float(line.split()[-1]) > 0 for line in lines if line.startswith("simple_rnn"))
    assert lines[0].startswith("CPU: ") and lines[-2].startswith("numba: ")
    assert lines[-1].startswith("target for numba, every row >= 0.5x torch: ")
    with pytest.raises(SystemExit):
        main(["bench", "--ops"])
    assert main(["bench", "--ops", "transformer"]) == 2


def test_parity_writes_json_rows(tmp_path, capsys):
    path = tmp_path / "parity.json"
    assert main(["parity", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    assert report["device"] == "cpu" and report["passed"] is True
    assert {"op", "dtype", "backend", "forward", "gradients", "worst", "status", "detail"} <= set(report["rows"][0])
    assert len(report["rows"]) == len(capsys.readouterr().out.strip().splitlines()) - 1  # all but the header


@pytest.mark.parametrize("command", [["parity", "--device", "cuda"], ["bench", "--device", "cuda", "--json"]])
def test_gpu_commands_without_a_device_exit_2_with_the_reason(command, capsys):
    if "cupy" in en.backends.available():
        pytest.skip("a GPU is here")
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "--device cuda: the cupy backend is unavailable here: " in err
    assert en.backends.why_unavailable()["cupy"] in err


def test_bench_options_for_the_gpu_only(capsys):
    assert main(["bench", "--max-seconds", "5"]) == 2
    assert "--max-seconds is for --device cuda only" in capsys.readouterr().err
    assert main(["bench", "--device", "cuda", "--backends", "cpp"]) == 2
    assert "--backends: not used with --device cuda" in capsys.readouterr().err
    assert main(["bench", "--device", "cuda", "--ops", "simple_rnn"]) == 2
    assert "expected some of ['conv1d', 'embedding', 'gru', 'lstm']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "--device", "tpu"])
