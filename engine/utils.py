"""Helpers around training: Keras's progress bar and the book's training-curve plots.

Example:
    >>> history = model.fit(x, y, epochs=10, validation_split=0.2)
    >>> en.utils.plot_history(history, "curves.png")      # loss and each metric, train vs val
"""
from __future__ import annotations

import math
import os
import sys
import time

import numpy as np


def is_terminal(stream) -> bool:
    """True when `stream` redraws a line in place on "\\r" (a terminal or a Jupyter kernel)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) or "ipykernel" in sys.modules


class Progbar:
    """Keras's progress line: `37/133 [=====>........] - ETA: 3s - loss: 0.5123 - acc: 0.7412`.

    The line is drawn here rather than by rich (installed only as a Keras dependency, not one
    of ours) or tqdm, because users compare it with Keras's output line for line and grep
    logs for it. verbose=1 redraws the line in place ("\\r") on a terminal, at most every
    `interval` seconds, and writes only the finished line (`133/133 [======] - 3s 22ms/step -
    loss: ...`) when `file` is a log file or a pipe; verbose=2 writes only Keras 3's short
    finished line (`133/133 - 3s - 22ms/step - loss: ...`); verbose=0 writes nothing.
    Values are shown as given (fit's logs are already running means over the epoch), numbers
    as Keras formats them, strings as they are. target=None counts up (`   12/Unknown`).

    Example:
        >>> bar = Progbar(3)
        >>> for step in range(1, 4): bar.update(step, [("loss", 1.0 / step)])
        3/3 [==============================] - 0s 4ms/step - loss: 0.3333
    """

    def __init__(self, target, width=30, verbose=1, interval=0.05, unit_name="step", file=None):
        if target is not None and (isinstance(target, bool) or not isinstance(target, (int, np.integer))
                                   or target < 0):
            raise ValueError(f"Progbar: target must be a non-negative int or None, got {target!r}")
        if verbose not in (0, 1, 2):
            raise ValueError(f"Progbar: verbose must be 0, 1 or 2, got {verbose!r}")
        self.target, self.width, self.verbose = target, width, verbose
        self.interval, self.unit_name = interval, unit_name
        self._file = file
        self._values: dict = {}
        self._start = time.perf_counter()
        self._last_update = -math.inf
        self._first_step = None      # (count, time) of the first update
        self._drawn_width = 0

    @property
    def file(self):
        # Looked up at each write, so a redirected sys.stdout (pytest's capture) is honoured.
        return sys.stdout if self._file is None else self._file

    def update(self, current, values=None, finalize=None) -> None:
        """Show `current` steps done; values: (name, value) pairs; finalize ends the line
        (default: when current reaches target)."""
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        self._values.update(values or [])
        now = time.perf_counter()
        per_step = self._step_seconds(current, now)
        if self.verbose == 0 or (self.verbose == 2 and not finalize):
            return
        terminal = is_terminal(self.file)
        if not finalize and (not terminal or now - self._last_update < self.interval):
            return
        self._last_update = now
        if self.verbose == 2:
            line = f"{self._count(current)} - {now - self._start:.0f}s -{_format_step(per_step, self.unit_name)}"
        else:
            line = self._bar(current)
            if finalize or self.target is None:
                line += f" - {now - self._start:.0f}s{_format_step(per_step, self.unit_name)}"
            else:
                line += f" - ETA: {_format_eta(per_step * (self.target - current))}"
        line += "".join(f" - {k}: {_format_value(v)}" for k, v in self._values.items())
        if terminal and self.verbose == 1:
            pad = " " * max(self._drawn_width - len(line), 0)   # wipe a longer previous line
            self._write("\r" + line + pad + ("\n" if finalize else ""))
            self._drawn_width = 0 if finalize else len(line)
        else:
            self._write(line + "\n")

    def clear(self) -> None:
        """Erase a line being redrawn (before other output goes to the same terminal)."""
        if self._drawn_width:
            self._write("\r" + " " * self._drawn_width + "\r")
            self._drawn_width = 0

    def printer(self, print_fn=print):
        """print_fn, erasing the line being redrawn first so the printed text gets lines of its own."""
        def emit(*args, **kwargs):
            self.clear()
            print_fn(*args, **kwargs)
        return emit

    def _write(self, text):
        self.file.write(text)
        self.file.flush()

    def _count(self, current):
        if self.target is None:
            return f"{current:7d}/Unknown"
        digits = len(str(self.target))
        return f"{current:{digits}d}/{self.target}"

    def _bar(self, current):
        if not self.target:
            return self._count(current)
        done = int(self.width * min(current / self.target, 1.0))
        head = ("=" * (done - 1) + (">" if current < self.target else "=")) if done else ""
        return f"{self._count(current)} [{head}{'.' * (self.width - done)}]"

    def _step_seconds(self, current, now):
        # As Keras: the first step (warm-up, first-call compilation) is left out once there are more.
        if not current:
            return 0.0
        if self._first_step is None:
            self._first_step = (current, now)
        count, then = self._first_step
        if current > count:
            return (now - then) / (current - count)
        return (now - self._start) / current


def _format_value(v):
    if isinstance(v, str):
        return v
    v = float(v)
    return f"{v:.4f}" if abs(v) > 1e-3 else f"{v:.4e}"


def _format_step(seconds, unit):
    if seconds >= 1 or seconds == 0:
        return f" {seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f" {seconds * 1e3:.0f}ms/{unit}"
    return f" {seconds * 1e6:.0f}us/{unit}"


def _format_eta(seconds):
    s = int(seconds)   # truncated, as Keras's "%d"
    if seconds > 3600:
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    if seconds > 60:
        return f"{s // 60}:{s % 60:02d}"
    return f"{s}s"


def terminal_progress(target, unit_name="step") -> Progbar:
    """A Progbar on stderr for long non-training work (adapt, bench, parity): drawn only when
    stderr is a terminal, so logs, pipes and test output stay clean."""
    return Progbar(target, verbose=1 if is_terminal(sys.stderr) else 0, unit_name=unit_name,
                   file=sys.stderr)


def _figure(path, ncols):
    """A matplotlib Figure: with a path, a bare Figure (it renders with Agg and never opens a
    window or touches pyplot's state); without, a pyplot figure so plt.show() and notebooks
    display it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError('plotting needs matplotlib: pip install "seqfuse[plot]"') from None
    size = (5.0 * ncols, 4.0)
    if path is not None:
        from matplotlib.figure import Figure
        return Figure(figsize=size, layout="constrained")
    import matplotlib.pyplot as plt
    return plt.figure(figsize=size, layout="constrained")


def plot_history(history, path=None, metrics=None):
    """The book's training curves: one panel per metric (loss first), training values as dots
    ("bo") and validation values as a line ("b"), against the epoch number (1-based).

    history: a History (what fit returns) or its .history dict. metrics: names to plot
    (default: loss and every metric in the history, without the val_ ones, which are drawn
    beside their training curve). path: write a PNG (or any format matplotlib knows by the
    suffix) there. Returns the matplotlib Figure.

    Example:
        >>> history = model.fit(x, y, epochs=10, validation_split=0.2, verbose=0)
        >>> fig = en.utils.plot_history(history, "curves.png", metrics=["loss", "acc"])
        >>> fig.axes[0].get_title()
        'Training and validation loss'
    """
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict):
        raise TypeError(f"plot_history: history must be a History or a dict of per-epoch lists, "
                        f"got {type(history).__name__}")
    if not logs:
        raise ValueError("plot_history: the history is empty (no epoch was trained)")
    trained = [k for k in logs if not k.startswith("val_")]
    if metrics is None:
        metrics = sorted(trained, key=lambda k: k != "loss")
    elif isinstance(metrics, str):
        metrics = [metrics]
    unknown = [m for m in metrics if m not in logs]
    if unknown or not metrics:
        raise ValueError(f"plot_history: metrics {unknown or metrics} are not in the history; "
                         f"it has {sorted(logs)}")
    fig = _figure(path, len(metrics))
    from matplotlib.ticker import MaxNLocator
    first = getattr(history, "epoch", None)
    for i, name in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), i + 1)
        values = logs[name]
        epochs = np.asarray(first) + 1 if first and len(first) == len(values) else np.arange(1, len(values) + 1)
        ax.plot(epochs, values, "bo", label=f"Training {name}")
        val = logs.get(f"val_{name}")
        if val is not None:
            ax.plot(epochs[:len(val)], val, "b", label=f"Validation {name}")
        ax.set_title(f"Training and validation {name}" if val is not None else f"Training {name}")
        ax.set_xlabel("Epochs")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name)
        ax.legend()
    if path is not None:
        fig.savefig(os.fspath(path))
    return fig


def plot_forecast(y_true, y_pred, path=None, x=None, title="Forecast on the test range",
                  ylabel="value"):
    """A predicted series beside the true one (e.g. temperature over the test range).

    y_true, y_pred: [N] (a trailing axis of 1 is dropped); x: [N] positions or datetimes
    (default 0..N-1). Returns the matplotlib Figure; path: write it there.

    Example:
        >>> en.utils.plot_forecast(y_test, model.predict(x_test), "forecast.png", ylabel="°F")
    """
    y_true, y_pred = _series(y_true), _series(y_pred)
    if y_true.ndim != 1 or y_true.shape != y_pred.shape:
        raise ValueError(f"plot_forecast: y_true and y_pred must be [N] (or [N, 1]) of the same N, "
                         f"got {np.shape(y_true)} and {np.shape(y_pred)}")
    x = np.arange(len(y_true)) if x is None else np.asarray(x)
    if len(x) != len(y_true):
        raise ValueError(f"plot_forecast: x must have {len(y_true)} entries, got {len(x)}")
    fig = _figure(path, 2)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(x, y_true, color="0.3", linewidth=1, label="True")
    ax.plot(x, y_pred, color="tab:orange", linewidth=1, label="Predicted")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.legend()
    if np.issubdtype(x.dtype, np.datetime64):
        fig.autofmt_xdate()
    if path is not None:
        fig.savefig(os.fspath(path))
    return fig


def _series(a):
    a = np.asarray(a)
    return a[:, 0] if a.ndim == 2 and a.shape[1] == 1 else a
