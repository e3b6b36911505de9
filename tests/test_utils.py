"""engine.utils plots: the figure's data (titles, labels, lines' x/y equal to the history), not
its pixels; `seqfuse train --plot` writing the PNGs. Skipped without matplotlib."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import engine as en
from engine.cli import main


@pytest.fixture
def matplotlib():
    return pytest.importorskip("matplotlib")


def _lines(ax):
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()}


HISTORY = {"loss": [0.9, 0.6, 0.5], "acc": [0.5, 0.7, 0.75],
           "val_loss": [0.8, 0.7, 0.72], "val_acc": [0.55, 0.65, 0.6]}


def test_plot_history_draws_the_books_curves(matplotlib, tmp_path):
    path = tmp_path / "curves.png"
    fig = en.utils.plot_history(HISTORY, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loss, acc = fig.axes
    assert loss.get_title() == "Training and validation loss" and acc.get_title() == "Training and validation acc"
    assert loss.get_xlabel() == "Epochs" and acc.get_ylabel() == "acc"
    assert _lines(loss) == {"Training loss": ([1, 2, 3], HISTORY["loss"]),
                            "Validation loss": ([1, 2, 3], HISTORY["val_loss"])}
    assert _lines(acc) == {"Training acc": ([1, 2, 3], HISTORY["acc"]),
                           "Validation acc": ([1, 2, 3], HISTORY["val_acc"])}
    styles = {line.get_label(): (line.get_marker(), line.get_linestyle()) for line in loss.get_lines()}
    assert styles == {"Training loss": ("o", "None"), "Validation loss": ("None", "-")}   # "bo" and "b"
    assert [t.get_text() for t in loss.get_legend().get_texts()] == ["Training loss", "Validation loss"]


def test_plot_history_from_fit_picks_metrics_and_epochs(matplotlib):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    model = en.Sequential([en.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["acc"])
    history = model.fit(x, y, epochs=2, verbose=0)
    history.epoch = [3, 4]                 # e.g. a run resumed by BackupAndRestore
    import matplotlib.pyplot as plt
    fig = en.utils.plot_history(history, metrics="loss")     # no path: a pyplot figure to show
    try:
        (ax,) = fig.axes
        assert ax.get_title() == "Training loss"
        assert _lines(ax) == {"Training loss": ([4, 5], history.history["loss"])}
    finally:
        plt.close(fig)


def test_plot_history_bad_input(matplotlib):
    with pytest.raises(ValueError, match=r"metrics \['mae'\] are not in the history; it has \['acc', 'loss'"):
        en.utils.plot_history(HISTORY, metrics=["loss", "mae"])
    with pytest.raises(ValueError, match="the history is empty"):
        en.utils.plot_history({}, "unused.png")
    with pytest.raises(TypeError, match="history must be a History or a dict"):
        en.utils.plot_history([0.5, 0.4])


def test_plot_forecast_data_and_errors(matplotlib, tmp_path):
    times = np.arange("2013-10-01T00", "2013-10-01T05", dtype="datetime64[h]")
    true, predicted = np.array([50.0, 51, 53, 52, 49]), np.array([[50.5], [50], [52], [53], [50]])
    fig = en.utils.plot_forecast(true, predicted, tmp_path / "f.png", x=times, ylabel="°F")
    (ax,) = fig.axes
    lines = {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}
    assert lines == {"True": true.tolist(), "Predicted": predicted[:, 0].tolist()}
    assert ax.get_ylabel() == "°F" and (tmp_path / "f.png").stat().st_size > 0
    with pytest.raises(ValueError, match=r"same N, got \(5,\) and \(4,\)"):
        en.utils.plot_forecast(true, predicted[:4, 0])
    with pytest.raises(ValueError, match="x must have 5 entries, got 2"):
        en.utils.plot_forecast(true, true, x=[0, 1])


def test_train_plot_writes_curves_and_the_forecast(matplotlib, tmp_path, capsys):
    path = tmp_path / "curves.png"
    assert main(["train", "--data", "jfk_weather", "--model", "gru", "--epochs", "2", "--units", "4",
                 "--sequence-length", "8", "--batch-size", "256", "--plot", str(path), "--verbose", "0"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {path} and {tmp_path / 'curves_forecast.png'}" in out and "Epoch" not in out
    for name in ("curves.png", "curves_forecast.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_plots_without_matplotlib_name_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)      # import matplotlib now fails
    for plot in (lambda: en.utils.plot_history(HISTORY), lambda: en.utils.plot_forecast([1.0], [1.0])):
        with pytest.raises(ImportError, match=r'pip install "seqfuse\[plot\]"'):
            plot()
