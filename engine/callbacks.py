"""Callbacks for Model.fit / evaluate / predict, with Keras 3's names, arguments and hooks.

fit calls, in this order: on_train_begin; per epoch on_epoch_begin, per batch
on_train_batch_begin/end (logs: running means of loss and metrics over the epoch so far),
the validation pass's on_test_begin, on_test_batch_begin/end, on_test_end, then
on_epoch_end (logs: the epoch's loss and metrics and their val_ versions); on_train_end with
the last epoch's logs. evaluate calls the on_test_* hooks, predict the on_predict_* hooks
(on_predict_batch_end's logs: {"outputs": the batch's predictions}).
Under mpiexec every process runs its callbacks on the same logs (summed over the processes),
so they decide alike; only rank 0 prints and writes files (docs/distributed.md).

Example:
    >>> model.fit(x, y, epochs=20, validation_split=0.2, callbacks=[
    ...     en.callbacks.ReduceLROnPlateau(patience=2), en.callbacks.CSVLogger("log.csv"),
    ...     en.callbacks.EarlyStopping(patience=4, restore_best_weights=True)])
"""
from __future__ import annotations

import csv
import inspect
import os
import sys
import warnings

import numpy as np

from . import distributed
from .utils import Progbar


class Callback:
    """Base class: override the hooks you need. `self.model` is the model being trained and
    `self.params` holds {"verbose", "epochs", "steps"} of the current fit/evaluate/predict."""

    model = None
    params: dict = {}

    def set_params(self, params):
        self.params = params

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_batch_begin(self, batch, logs=None): pass
    def on_batch_end(self, batch, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass

    # As Keras: the training-batch hooks default to the older on_batch_* names.
    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)


class CallbackList(Callback):
    """Calls every callback's hook in order (Keras's CallbackList). fit adds a History and,
    unless verbose=0, a ProgbarLogger after the user's callbacks (so they see logs that
    callbacks such as ReduceLROnPlateau add), and a TerminateOnNaN unless one was given."""

    def __init__(self, callbacks=None, add_history=False, add_progbar=False,
                 add_terminate_on_nan=False, model=None, **params):
        self.callbacks = list(callbacks or [])
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks: expected Callback instances, got {type(cb).__name__}")
        kinds = {type(cb) for cb in self.callbacks}
        if add_terminate_on_nan and not any(issubclass(k, TerminateOnNaN) for k in kinds):
            self.callbacks.append(TerminateOnNaN())
        self.history = next((cb for cb in self.callbacks if isinstance(cb, History)), None)
        if add_history and self.history is None:
            self.history = History()
            self.callbacks.append(self.history)
        if add_progbar and not any(issubclass(k, ProgbarLogger) for k in kinds):
            self.callbacks.append(ProgbarLogger())
        self.set_params(params)
        if model is not None:
            self.set_model(model)

    def set_params(self, params):
        self.params = params
        for cb in self.callbacks:
            cb.set_params(params)

    def set_model(self, model):
        self.model = model
        if self.history is not None:
            model.history = self.history
        for cb in self.callbacks:
            cb.set_model(model)

    def _call(self, hook, *args):
        # Each hook gets one fresh dict, shared along the list (as Keras: a callback may add
        # entries, e.g. learning_rate, that the later ones and History see).
        logs = dict(args[-1] or {})
        for cb in self.callbacks:
            getattr(cb, hook)(*args[:-1], logs)

    def on_train_begin(self, logs=None): self._call("on_train_begin", logs)
    def on_train_end(self, logs=None): self._call("on_train_end", logs)
    def on_epoch_begin(self, epoch, logs=None): self._call("on_epoch_begin", epoch, logs)
    def on_epoch_end(self, epoch, logs=None): self._call("on_epoch_end", epoch, logs)
    def on_test_begin(self, logs=None): self._call("on_test_begin", logs)
    def on_test_end(self, logs=None): self._call("on_test_end", logs)
    def on_predict_begin(self, logs=None): self._call("on_predict_begin", logs)
    def on_predict_end(self, logs=None): self._call("on_predict_end", logs)
    def on_train_batch_begin(self, batch, logs=None): self._call("on_train_batch_begin", batch, logs)
    def on_train_batch_end(self, batch, logs=None): self._call("on_train_batch_end", batch, logs)
    def on_test_batch_begin(self, batch, logs=None): self._call("on_test_batch_begin", batch, logs)
    def on_test_batch_end(self, batch, logs=None): self._call("on_test_batch_end", batch, logs)
    def on_predict_batch_begin(self, batch, logs=None): self._call("on_predict_batch_begin", batch, logs)
    def on_predict_batch_end(self, batch, logs=None): self._call("on_predict_batch_end", batch, logs)


class History(Callback):
    """history.history[name] is the list of per-epoch values (loss, metrics, val_*);
    history.epoch the 0-based epochs they belong to. fit returns it (also model.history)."""

    def __init__(self):
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


class ProgbarLogger(Callback):
    """Prints progress to stdout (fit adds it unless verbose=0; evaluate and predict too).

    verbose=1 ("auto"): "Epoch 3/10" when there are several epochs, then Keras's bar, redrawn
    in place on a terminal and written once per epoch (finished) to a file or pipe;
    verbose=2: one short line per epoch. Inside fit the validation pass draws nothing.
    """

    def __init__(self):
        self.verbose, self.epochs, self.target = 1, 1, None
        self.progbar, self.seen = None, 0
        self._in_fit = False

    def set_params(self, params):
        verbose = params.get("verbose", 1)
        self.verbose = 1 if verbose == "auto" else int(verbose)
        self.epochs, self.target = params.get("epochs", 1), params.get("steps")

    def on_train_begin(self, logs=None):
        self._in_fit = True

    def on_train_end(self, logs=None):
        self._in_fit = False

    def on_epoch_begin(self, epoch, logs=None):
        if self.verbose and self.epochs > 1:
            print(f"Epoch {epoch + 1}/{self.epochs}", flush=True)
        self._start()

    def on_test_begin(self, logs=None):
        if not self._in_fit:
            self._start()

    def on_predict_begin(self, logs=None):
        self._start()

    def on_train_batch_end(self, batch, logs=None):
        self._update(batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        if not self._in_fit:
            self._update(batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._update(batch, None)   # not the predictions themselves

    def on_epoch_end(self, epoch, logs=None):
        self._finish(logs)

    def on_test_end(self, logs=None):
        if not self._in_fit:
            self._finish(logs)

    def on_predict_end(self, logs=None):
        self._finish(logs)

    def _start(self):
        self.progbar, self.seen = Progbar(self.target, verbose=self.verbose), 0

    def _update(self, batch, logs):
        if self.progbar is None:
            self._start()
        self.seen = batch + 1
        self.progbar.update(self.seen, list((logs or {}).items()), finalize=False)

    def _finish(self, logs):
        if self.progbar is None:
            self._start()
        if self.progbar.target is None:   # the data's length was unknown: now it is (as Keras)
            self.target = self.progbar.target = self.seen
        self.progbar.update(self.progbar.target, list((logs or {}).items()), finalize=True)


def _improved(mode, monitor):
    if mode == "auto":
        mode = "max" if "acc" in monitor else "min"
    if mode not in ("min", "max"):
        raise ValueError(f"callback: mode must be auto|min|max, got {mode!r}")
    return (lambda new, best, delta: new < best - delta) if mode == "min" else \
        (lambda new, best, delta: new > best + delta)


def _monitored(callback, logs):
    """logs[monitor], or None with Keras's warning when the logs lack it."""
    value = (logs or {}).get(callback.monitor)
    if value is None:
        warnings.warn(f"{type(callback).__name__}: monitor {callback.monitor!r} is not among the logs "
                      f"{sorted(logs or {})}; skipped", stacklevel=3)
    return value


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
        value = _monitored(self, logs)
        if value is None:
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
    Under mpiexec only rank 0 writes (every process holds the same weights).
    """

    def __init__(self, filepath, monitor="val_loss", save_best_only=False, mode="auto"):
        self.filepath, self.monitor, self.save_best_only = str(filepath), monitor, save_best_only
        self._better = _improved(mode, monitor)
        self.best = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if not distributed.is_main():
            return
        if self.save_best_only:
            value = logs.get(self.monitor)
            if value is None or not np.isfinite(value):
                return
            if self.best is not None and not self._better(value, self.best, 0.0):
                return
            self.best = value
        self.model.save(self.filepath.format(epoch=epoch + 1, **logs))


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` when `monitor` has not improved by min_delta for
    `patience` epochs; then wait `cooldown` epochs before counting again; never below min_lr.
    Adds "learning_rate" to each epoch's logs. Keras 3's rules and defaults.

    Example:
        >>> model.fit(x, y, validation_split=0.2, epochs=30,
        ...           callbacks=[en.callbacks.ReduceLROnPlateau(factor=0.5, patience=2, min_lr=1e-5)])
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        if not factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be < 1.0, got {factor}")
        self.monitor, self.factor, self.patience, self.verbose = monitor, factor, patience, verbose
        self.min_delta, self.cooldown, self.min_lr = abs(min_delta), cooldown, min_lr
        self._better = _improved(mode, monitor)
        self.best, self.wait, self.cooldown_counter = None, 0, 0

    def on_train_begin(self, logs=None):
        self.best, self.wait, self.cooldown_counter = None, 0, 0

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if logs is not None:
            logs["learning_rate"] = float(optimizer.learning_rate)
        current = _monitored(self, logs)
        if current is None:
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self.best is None or self._better(current, self.best, self.min_delta):
            self.best, self.wait = current, 0
        elif not self.in_cooldown():
            self.wait += 1
            old = float(optimizer.learning_rate)
            # Keras compares with min_lr as float32, the dtype of its learning-rate variable.
            if self.wait >= self.patience and old > np.float32(self.min_lr):
                optimizer.learning_rate = max(old * self.factor, self.min_lr)
                if self.verbose and distributed.is_main():
                    print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to "
                          f"{optimizer.learning_rate}.", flush=True)
                self.cooldown_counter, self.wait = self.cooldown, 0


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch to schedule(epoch, lr) (0-based epoch,
    the current rate; a schedule(epoch) of one argument works too). Adds "learning_rate" to
    each epoch's logs, as Keras 3.

    Example:
        >>> halve = en.callbacks.LearningRateScheduler(lambda epoch, lr: lr if epoch < 5 else lr / 2)
    """

    def __init__(self, schedule, verbose=0):
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be callable, got {type(schedule).__name__}")
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if _takes_two_arguments(self.schedule):
            lr = self.schedule(epoch, float(optimizer.learning_rate))
        else:   # schedule(epoch), Keras's older form
            lr = self.schedule(epoch)
        if not isinstance(lr, (float, np.floating)):
            raise ValueError(f"LearningRateScheduler: the schedule must return a float, got {lr!r} "
                             f"at epoch {epoch}")
        optimizer.learning_rate = float(lr)
        if self.verbose and distributed.is_main():
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(lr)}.",
                  flush=True)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


def _takes_two_arguments(fn) -> bool:
    try:
        inspect.signature(fn).bind(0, 0.0)
    except TypeError:
        return False
    except ValueError:   # no signature to inspect (some builtins): try the current form
        pass
    return True


class CSVLogger(Callback):
    """One CSV row per epoch: "epoch" (0-based) and the logs' keys in sorted order (with the
    val_ columns added up front when the first epoch has none), as Keras 3 writes it.
    append=True continues an existing file (a header only if the file is empty).

    Example:
        >>> model.fit(x, y, epochs=10, callbacks=[en.callbacks.CSVLogger("training.log")])
    """

    def __init__(self, filename, separator=",", append=False):
        self.filename, self.sep, self.append = str(filename), separator, append
        self.keys = self.writer = self.csv_file = None

    def on_train_begin(self, logs=None):
        if not distributed.is_main():
            return
        header = True
        if self.append:
            try:
                with open(self.filename, newline="") as f:
                    header = not f.readline()
            except FileNotFoundError:
                pass
        if self.csv_file is not None:
            self.csv_file.close()
        # newline="": the csv module writes its own "\r\n" line ends, as Keras's files have.
        self.csv_file = open(self.filename, "a" if self.append else "w", newline="")
        self.keys, self.writer, self._header = None, None, header

    def on_epoch_end(self, epoch, logs=None):
        if self.csv_file is None:  # not rank 0 under mpiexec
            return
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys += [f"val_{k}" for k in self.keys]
        if self.writer is None:
            dialect = type("Dialect", (csv.excel,), {"delimiter": self.sep})
            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys, dialect=dialect)
            if self._header:
                self.writer.writeheader()
        self.writer.writerow({"epoch": epoch, **{k: _csv_value(logs.get(k, "NA")) for k in self.keys}})
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None:
            self.csv_file.close()
        self.csv_file = self.writer = None


def _csv_value(v):
    if isinstance(v, str) or np.ndim(v) == 0:
        return v
    return f'"[{", ".join(map(str, v))}]"'


class TerminateOnNaN(Callback):
    """Stop training when a batch's loss is NaN or infinite. fit adds one unless you pass your
    own (seqfuse's choice, not Keras's: a diverged loss stays diverged, and the model's step
    skips the update of a non-finite loss, so the weights and checkpoints so far stay good).
    raise_error=True raises RuntimeError instead, so on_train_end never runs (e.g. a
    BackupAndRestore keeps its backup).
    """

    def __init__(self, raise_error=False):
        self.raise_error = raise_error
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or np.isfinite(loss):
            return
        where = f"loss became {loss} at epoch {self._epoch + 1}, batch {batch + 1}"
        if self.raise_error:
            raise RuntimeError(f"TerminateOnNaN: {where}")
        if distributed.is_main():
                print(f"TerminateOnNaN: {where}; training stopped (that batch's update was skipped, so "
                  "the weights and the checkpoints so far are kept)", file=sys.stderr, flush=True)
        self.model.stop_training = True


class BackupAndRestore(Callback):
    """Resume an interrupted fit at the epoch where it stopped (Keras 3's callback).

    After every epoch it writes `backup_dir/latest.npz` in one atomic rename: the weights, the
    optimizer's variables (slots, iterations, learning rate), the state of the random
    generators (the engine's, NumPy's, Python's and seeded layers' own) and the next epoch.
    A later fit with this callback, on the same model and compile (after Ctrl-C, a kill, a
    crash), loads it in on_train_begin and continues at that epoch, taking the very steps the
    uninterrupted run would have taken. A fit that ends normally deletes the backup
    (delete_checkpoint=True). double_checkpoint=True also keeps the one before, used when the
    latest cannot be read. Only save_freq="epoch" is supported (Keras can also save every N
    batches). Not saved, as in Keras: other callbacks' counters (EarlyStopping's patience...)
    and the own generator of a dataset object given to fit (`en.data.Batches(seed=...)`);
    fit's shuffling of arrays draws from the engine's generator, which is saved.

    Example:
        >>> backup = en.callbacks.BackupAndRestore("/tmp/run1")
        >>> model.fit(x, y, epochs=50, callbacks=[backup])   # run it again after a kill: resumes
    """

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True):
        if not backup_dir:
            raise ValueError(f"BackupAndRestore: backup_dir must name a folder, got {backup_dir!r}")
        if save_freq != "epoch":
            raise ValueError(f"BackupAndRestore: save_freq must be 'epoch' (saving every N batches is "
                             f"not supported), got {save_freq!r}")
        self.backup_dir, self.save_freq = os.fspath(backup_dir), save_freq
        self.double_checkpoint, self.delete_checkpoint = double_checkpoint, delete_checkpoint
        self._latest = os.path.join(self.backup_dir, "latest.npz")
        self._previous = os.path.join(self.backup_dir, "previous.npz")

    def _files(self):
        return [self._latest, self._previous] if self.double_checkpoint else [self._latest]

    def on_train_begin(self, logs=None):
        from .models import _training_state
        found = [path for path in self._files() if os.path.exists(path)]
        for i, path in enumerate(found):
            try:
                self.model._initial_epoch = _training_state.load(self.model, path)
                return
            except _training_state.UnreadableBackup:
                if i == len(found) - 1:
                    raise

    def on_epoch_end(self, epoch, logs=None):
        from .models import _training_state
        if not distributed.is_main():  # every process reads the backup; rank 0 writes it
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint and os.path.exists(self._latest):
            os.replace(self._latest, self._previous)
        _training_state.save(self.model, self._latest, epoch + 1)

    def on_train_end(self, logs=None):
        if not self.delete_checkpoint or not distributed.is_main():
            return
        for path in self._files():
            if os.path.exists(path):
                os.remove(path)
        if os.path.isdir(self.backup_dir) and not os.listdir(self.backup_dir):
            os.rmdir(self.backup_dir)
