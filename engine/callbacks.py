"""Callbacks for Model.fit: History, EarlyStopping, ModelCheckpoint (Keras names and defaults)."""
from __future__ import annotations

import warnings

import numpy as np


class Callback:
    model = None

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass


class History(Callback):
    """history.history[name] is the list of per-epoch values (loss, metrics, val_*)."""

    def __init__(self):
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


def _improved(mode, monitor):
    if mode == "auto":
        mode = "max" if "acc" in monitor else "min"
    if mode not in ("min", "max"):
        raise ValueError(f"callback: mode must be auto|min|max, got {mode!r}")
    return (lambda new, best, delta: new < best - delta) if mode == "min" else \
        (lambda new, best, delta: new > best + delta)


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by min_delta for `patience` epochs (Keras 3 rules).

    restore_best_weights=True puts back the weights of the best epoch when training ends,
    whether or not it stopped early. A monitor missing from the logs (e.g. val_loss without
    validation data) warns and is skipped, as Keras does.
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, mode="auto",
                 restore_best_weights=False):
        self.monitor, self.min_delta, self.patience = monitor, abs(min_delta), patience
        self.restore_best_weights = restore_best_weights
        self._better = _improved(mode, monitor)

    def on_train_begin(self, logs=None):
        self.wait, self.best, self.best_weights, self.stopped_epoch = 0, None, None, None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(f"EarlyStopping: monitor {self.monitor!r} is not among the logs "
                          f"{sorted(logs or {})}; skipped", stacklevel=2)
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        # Keras counts this epoch before asking whether it improved.
        self.wait += 1
        if self.best is None or self._better(value, self.best, self.min_delta):
            self.best, self.wait = value, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model after each epoch (or only when `monitor` improves). The file is written
    to a temporary name and renamed, so an interrupted save never corrupts the last good one.
    filepath may contain {epoch} (1-based) and any log name, e.g. "m-{epoch:02d}-{val_loss:.3f}.npz".
    """

    def __init__(self, filepath, monitor="val_loss", save_best_only=False, mode="auto"):
        self.filepath, self.monitor, self.save_best_only = str(filepath), monitor, save_best_only
        self._better = _improved(mode, monitor)
        self.best = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            value = logs.get(self.monitor)
            if value is None or not np.isfinite(value):
                return
            if self.best is not None and not self._better(value, self.best, 0.0):
                return
            self.best = value
        self.model.save(self.filepath.format(epoch=epoch + 1, **logs))
