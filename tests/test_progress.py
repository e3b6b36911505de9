"""Progress output: Keras's bar (engine.utils.Progbar) and what fit/evaluate/predict print for
verbose 0/1/2/"auto" on a terminal (a fake one: isatty() is True) and in a log file; progress
of long non-training work (adapt, parity) on stderr only when it is a terminal."""
from __future__ import annotations

import contextlib
import io
import re
import sys

import numpy as np
import pytest

import engine as en
from engine import layers as L
from engine.utils import Progbar


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


@contextlib.contextmanager
def stdout(terminal):
    """sys.stdout as a fake terminal or a log file (set in the test body: pytest's own capture
    puts its stream back between fixture setup and the test)."""
    out = FakeTerminal() if terminal else io.StringIO()
    with contextlib.redirect_stdout(out):
        yield out


def _model():
    en.set_random_seed(0)
    model = en.Sequential([L.Dense(4, activation="tanh"), L.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["acc"])
    return model


def _data(n=40):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 5)).astype("float32")
    return x, (x[:, :1] > 0).astype("float32")


TIME = r"\d+s \d+(s|ms|us)/step"          # "0s 3ms/step" (the finished bar)
SHORT_TIME = r"\d+s - \d+(s|ms|us)/step"  # "0s - 3ms/step" (verbose=2)


def test_progbar_redraws_in_place_on_a_terminal():
    with stdout(terminal=True) as terminal:
        bar = Progbar(4, width=10, interval=0)
        for step in range(1, 5):
            bar.update(step, [("loss", 1.0 / step), ("acc", 0.5)])
        frames = terminal.getvalue().split("\r")[1:]
        assert len(frames) == 4 and terminal.getvalue().startswith("\r")
        assert frames[0].startswith("1/4 [=>........] - ETA: ") and "- loss: 1.0000 - acc: 0.5000" in frames[0]
        assert frames[2].startswith("3/4 [======>...] - ETA: ")
        assert re.fullmatch(rf"4/4 \[==========\] - {TIME} - loss: 0\.2500 - acc: 0\.5000\n", frames[3])
        assert not any(f.endswith("\n") for f in frames[:3])


def test_progbar_wipes_a_longer_previous_line_and_throttles():
    with stdout(terminal=True) as terminal:
        bar = Progbar(3, width=4, interval=0)
        bar.update(1, [("a_long_metric_name", 1.0)])
        bar.update(2, [("a_long_metric_name", "x")])
        first, second = terminal.getvalue().split("\r")[1:]
        assert len(second) == len(first) and second.rstrip(" ").endswith("a_long_metric_name: x")
        throttled = Progbar(100, interval=3600)
        before = len(terminal.getvalue())
        for step in range(1, 50):
            throttled.update(step)
        assert terminal.getvalue()[before:].count("\r") == 1      # the first draw only
        throttled.update(100)
        assert terminal.getvalue().endswith("\n")


def test_progbar_writes_only_the_finished_line_to_a_file():
    with stdout(terminal=False) as log_file:
        bar = Progbar(4, width=10)
        for step in range(1, 5):
            bar.update(step, [("loss", 0.25), ("tiny", 1e-5)])
        assert re.fullmatch(rf"4/4 \[==========\] - {TIME} - loss: 0\.2500 - tiny: 1\.0000e-05\n", log_file.getvalue())


@pytest.mark.parametrize("terminal", [True, False])
def test_progbar_verbose_2_and_0(terminal):
    with stdout(terminal) as out:
        for verbose in (2, 0):
            bar = Progbar(12, verbose=verbose)
            for step in range(1, 13):
                bar.update(step, [("loss", 0.5)])
    assert re.fullmatch(rf"12/12 - {SHORT_TIME} - loss: 0\.5000\n", out.getvalue())


def test_progbar_unknown_target_and_bad_arguments():
    with stdout(terminal=False) as log_file:
        bar = Progbar(None)
        bar.update(3, finalize=True)
        assert re.fullmatch(rf"      3/Unknown - {TIME}\n", log_file.getvalue())
        with pytest.raises(ValueError, match="verbose must be 0, 1 or 2"):
            Progbar(3, verbose="auto")
        with pytest.raises(ValueError, match="target must be a non-negative int"):
            Progbar(-1)


def test_progbar_printer_clears_the_line_before_printing():
    with stdout(terminal=True) as terminal:
        bar = Progbar(5, interval=0)
        bar.update(1)
        bar.printer(print)("a row")
        assert terminal.getvalue().endswith("\r" + " " * len(terminal.getvalue().split("\r")[1]) + "\ra row\n")


def _epoch_line(history, epoch):
    return " - ".join(f"{k}: {v[epoch]:.4f}" for k, v in history.history.items())


@pytest.mark.parametrize("verbose", ["auto", 1])
def test_fit_in_a_log_file_writes_one_bar_line_per_epoch(verbose):
    with stdout(terminal=False) as log_file:
        x, y = _data()
        history = _model().fit(x, y, epochs=2, batch_size=8, validation_split=0.25, verbose=verbose)
        lines = log_file.getvalue().splitlines()
        assert len(lines) == 4 and lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
        for epoch, line in enumerate(lines[1::2]):      # 30 training samples: 4 batches
            assert re.fullmatch(rf"4/4 \[={{30}}\] - {TIME} - " + re.escape(_epoch_line(history, epoch)), line)


def test_fit_verbose_2_writes_keras_3s_short_line():
    with stdout(terminal=True) as terminal:
        x, y = _data()
        history = _model().fit(x, y, epochs=2, batch_size=8, verbose=2)
        lines = terminal.getvalue().splitlines()
        assert "\r" not in terminal.getvalue() and lines[0] == "Epoch 1/2" and len(lines) == 4
        assert re.fullmatch(rf"5/5 - {SHORT_TIME} - " + re.escape(_epoch_line(history, 1)), lines[3])


def test_fit_on_a_terminal_draws_the_bar_while_the_epoch_runs():
    with stdout(terminal=True) as terminal:
        x, y = _data()
        history = _model().fit(x, y, epochs=1, batch_size=8)
        text = terminal.getvalue()
        assert not text.startswith("Epoch")                         # one epoch: no header, as Keras 3
        frames = text.split("\r")[1:]
        assert frames[0].startswith("1/5 [=====>.") and " - ETA: " in frames[0] and " - loss: " in frames[0]
        assert re.fullmatch(rf"5/5 \[={{30}}\] - {TIME} - " + re.escape(_epoch_line(history, 0)) + r" *\n",
                            frames[-1])


def test_fit_verbose_0_and_the_validation_pass_print_nothing_else():
    with stdout(terminal=False) as log_file:
        x, y = _data()
        _model().fit(x, y, epochs=3, batch_size=8, validation_split=0.25, verbose=0)
        assert log_file.getvalue() == ""


def test_fit_with_a_dataset_of_unknown_length_learns_the_count():
    with stdout(terminal=False) as log_file:
        x, y = _data()

        class Stream:       # re-iterable, no __len__
            def __iter__(self):
                return ((x[i:i + 16], y[i:i + 16]) for i in range(0, 40, 16))
        _model().fit(Stream(), epochs=2)
        lines = log_file.getvalue().splitlines()
        assert lines[1].startswith("3/3 [====") and lines[3].startswith("3/3 [====")


def test_evaluate_and_predict_verbose():
    with stdout(terminal=False) as log_file:
        x, y = _data()
        model = _model()
        loss, acc = model.evaluate(x, y, batch_size=16)
        assert re.fullmatch(rf"3/3 \[={{30}}\] - {TIME} - loss: {loss:.4f} - acc: {acc:.4f}\n", log_file.getvalue())
        log_file.truncate(0), log_file.seek(0)
        model.evaluate(x, y, verbose=2)
        assert re.fullmatch(rf"2/2 - {SHORT_TIME} - loss: {loss:.4f} - acc: {acc:.4f}\n", log_file.getvalue())
        log_file.truncate(0), log_file.seek(0)
        predicted = model.predict(x, batch_size=16)
        assert re.fullmatch(rf"3/3 \[={{30}}\] - {TIME}\n", log_file.getvalue())
        log_file.truncate(0), log_file.seek(0)
        np.testing.assert_array_equal(model.predict(x, verbose=0), predicted)
        model.evaluate(x, y, verbose=0)
        assert log_file.getvalue() == ""


@pytest.mark.parametrize("bad", [3, -1, True, "loud", None])
def test_verbose_must_be_a_keras_value(bad):
    x, y = _data(8)
    model = _model()
    for call in (lambda: model.fit(x, y, verbose=bad), lambda: model.evaluate(x, y, verbose=bad),
                 lambda: model.predict(x, verbose=bad)):
        with pytest.raises(ValueError, match=r"verbose must be 0, 1, 2 or \"auto\", got"):
            call()


def test_adapt_shows_progress_on_a_terminal_only(monkeypatch, capsys):
    import engine.text as text
    monkeypatch.setattr(text, "_ADAPT_PROGRESS", 10)
    monkeypatch.setattr(text, "_ADAPT_CHUNK", 7)
    docs = [f"word{i % 13} common token{i % 5}" for i in range(30)]
    plain = en.text.TextVectorization()
    plain.adapt(docs)                       # stderr is pytest's capture: no bar
    assert capsys.readouterr().err == ""
    fake = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", fake)
    shown = en.text.TextVectorization()
    shown.adapt(docs)
    assert shown.get_vocabulary() == plain.get_vocabulary()
    assert re.search(r"\r30/30 \[={30}\] - \d+s \d+(s|ms|us)/doc - adapt: 19 distinct tokens\n$", fake.getvalue())
    assert fake.getvalue().startswith("\r 0/30 [")
    whole = en.text.TextVectorization()
    monkeypatch.setattr(text, "_ADAPT_CHUNK", 10_000)
    whole.adapt(docs)                       # chunking changes nothing but the progress shown
    assert whole.get_vocabulary() == plain.get_vocabulary()


def test_parity_draws_progress_on_a_terminal_and_keeps_its_rows(monkeypatch, capsys):
    import engine.parity as parity
    cases = parity._cases
    monkeypatch.setattr(parity, "_cases", lambda rng: {"embedding": cases(rng)["embedding"]})
    assert parity.run()
    quiet = capsys.readouterr()
    assert quiet.err == ""
    fake = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", fake)
    assert parity.run()
    assert capsys.readouterr().out == quiet.out            # the table is the same
    drawn = fake.getvalue()      # the second case may come within the redraw interval
    assert drawn.startswith("\r0/2 [....") and " - checking: embedding float32" in drawn
    assert re.search(r"\r +\r$", drawn)                  # erased at the end
