"""engine.callbacks against Keras 3: the hooks fit/evaluate/predict call and the logs they pass,
ReduceLROnPlateau, LearningRateScheduler, CSVLogger and TerminateOnNaN on scripted logs, and
BackupAndRestore resuming a fit killed with SIGKILL to the very weights of an uninterrupted run."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import engine as en
from engine import callbacks as C
from engine import layers as L

HOOKS = ["on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_test_begin",
         "on_test_end", "on_predict_begin", "on_predict_end", "on_train_batch_begin",
         "on_train_batch_end", "on_test_batch_begin", "on_test_batch_end",
         "on_predict_batch_begin", "on_predict_batch_end"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _recorder(base):
    """A callback (on `base`: ours or Keras's class) that records (hook, [index,] logs)."""
    def hook(name):
        if "batch" in name or "epoch" in name:
            def record(self, index, logs=None):
                self.calls.append((name, index, dict(logs or {})))
        else:
            def record(self, logs=None):
                self.calls.append((name, dict(logs or {})))
        return record

    def __init__(self):
        base.__init__(self)
        self.calls = []
    return type("Recorder", (base,), {"__init__": __init__, **{name: hook(name) for name in HOOKS}})()


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype("float32")
    return x, (x[:, :1] + x[:, 1:2] > 0).astype("float32")


def _same_dense_models(keras):
    theirs = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="tanh"),
                               keras.layers.Dense(1, activation="sigmoid")])
    theirs.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy", metrics=["acc"])
    ours = en.Sequential([L.Dense(4, activation="tanh"), L.Dense(1, activation="sigmoid")])
    ours.build((None, 5))
    ours.set_weights(theirs.get_weights())
    ours.compile(optimizer=en.optimizers.SGD(0.1), loss="binary_crossentropy", metrics=["acc"])
    return ours, theirs


def _assert_same_calls(ours, theirs):
    assert [c[:-1] for c in ours] == [c[:-1] for c in theirs]
    for a, b in zip(ours, theirs):
        assert sorted(a[-1]) == sorted(b[-1]), a[0]
        if a[0] != "on_predict_batch_end":
            for key in a[-1]:
                assert a[-1][key] == pytest.approx(float(b[-1][key]), rel=1e-5, abs=1e-6), (a[0], key)


def test_fit_evaluate_predict_call_the_hooks_with_kerass_logs(keras):
    """Same weights, no shuffling: the same hook sequence, batch indices and log values
    (per-batch logs are running means over the epoch; the last batch is smaller)."""
    x, y = _data()
    ours, theirs = _same_dense_models(keras)
    runs = []
    for model, base in ((ours, C.Callback), (theirs, keras.callbacks.Callback)):
        recorder = _recorder(base)
        model.fit(x, y, batch_size=8, epochs=2, validation_split=0.25, shuffle=False, verbose=0,
                  callbacks=[recorder])
        model.evaluate(x, y, batch_size=16, verbose=0, callbacks=[recorder])
        model.predict(x, batch_size=16, verbose=0, callbacks=[recorder])
        runs.append(recorder.calls)
    _assert_same_calls(*runs)
    outputs = [c[-1]["outputs"] for c in runs[0] if c[0] == "on_predict_batch_end"]
    np.testing.assert_allclose(np.concatenate(outputs), ours.predict(x, verbose=0))


def test_fit_gives_callbacks_params_and_model_history():
    x, y = _data()
    model = en.Sequential([L.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    recorder = _recorder(C.Callback)
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=2, callbacks=[recorder])
    assert recorder.params == {"verbose": 2, "epochs": 3, "steps": 3}
    assert recorder.model is model and model.history is history
    assert recorder.calls[-1] == ("on_train_end", {"loss": history.history["loss"][-1]})


@pytest.mark.parametrize("patience, cooldown, min_lr, factor, min_delta", [
    (0, 0, 0.0, 0.5, 1e-4), (1, 0, 0.0, 0.1, 1e-4), (2, 1, 0.0, 0.5, 1e-4),
    (1, 2, 0.02, 0.5, 1e-4), (3, 0, 0.0, 0.2, 0.05), (0, 3, 0.01, 0.3, 0.0)])
def test_reduce_lr_on_plateau_follows_keras(keras, patience, cooldown, min_lr, factor, min_delta):
    series = [1.0, 0.9, 0.95, 0.91, 0.96, 0.97, 0.8, 0.85, 0.85, 0.86, 0.79, 0.9, 0.95, 0.99, 1.0, 0.7]
    runs = []
    for cls in (C.ReduceLROnPlateau, keras.callbacks.ReduceLROnPlateau):
        model = _StubModel(learning_rate=0.1)
        cb = cls(monitor="val_loss", factor=factor, patience=patience, cooldown=cooldown,
                 min_lr=min_lr, min_delta=min_delta)
        cb.set_model(model)
        cb.on_train_begin({})
        rates, logged = [], []
        for epoch, value in enumerate(series):
            logs = {"val_loss": value}
            cb.on_epoch_end(epoch, logs)
            rates.append(model.optimizer.learning_rate)
            logged.append(logs["learning_rate"])
        runs.append((rates, logged))
    assert runs[0] == runs[1]
    assert min(runs[0][0]) < 0.1          # the series does plateau


def test_reduce_lr_on_plateau_in_fit_sets_the_optimizers_rate():
    x, y = _data()
    model = en.Sequential([L.Dense(1, activation="sigmoid")])
    model.compile(optimizer=en.optimizers.Adam(0.01), loss="binary_crossentropy")
    history = model.fit(x, y, epochs=4, verbose=0, callbacks=[
        C.ReduceLROnPlateau(monitor="loss", patience=0, factor=0.5, min_delta=10.0)])  # never improves
    # logged at the start of on_epoch_end, before that epoch's reduction (as Keras)
    assert history.history["learning_rate"] == [0.01, 0.01, 0.005, 0.0025]
    assert model.optimizer.learning_rate == 0.00125
    with pytest.raises(ValueError, match="factor must be < 1.0"):
        C.ReduceLROnPlateau(factor=1.0)


class _StubOptimizer:
    def __init__(self, learning_rate):
        self.learning_rate = learning_rate


class _StubModel:
    def __init__(self, learning_rate):
        self.optimizer, self.stop_training = _StubOptimizer(learning_rate), False


@pytest.mark.parametrize("schedule", [lambda epoch, lr: lr * 0.5 if epoch % 2 else lr + 0.01,
                                      lambda epoch: 0.1 / (epoch + 1),
                                      lambda epoch, lr: np.float32(lr * 0.9)])
def test_learning_rate_scheduler_follows_keras(keras, schedule):
    runs = []
    for cls in (C.LearningRateScheduler, keras.callbacks.LearningRateScheduler):
        model = _StubModel(0.1)
        cb = cls(schedule)
        cb.set_model(model)
        rates = []
        for epoch in range(6):
            cb.on_epoch_begin(epoch, {})
            logs = {"loss": 1.0}       # not empty: Keras replaces an empty dict with its own
            cb.on_epoch_end(epoch, logs)
            rates.append((float(model.optimizer.learning_rate), logs["learning_rate"]))
        runs.append(rates)
    assert runs[0] == runs[1]


def test_learning_rate_scheduler_in_fit_and_its_errors(keras):
    x, y = _data()
    model = en.Sequential([L.Dense(1, activation="sigmoid")])
    model.compile(optimizer=en.optimizers.SGD(0.1), loss="binary_crossentropy")
    history = model.fit(x, y, epochs=3, verbose=0,
                        callbacks=[C.LearningRateScheduler(lambda epoch, lr: 0.1 * 0.5 ** epoch)])
    assert history.history["learning_rate"] == [0.1, 0.05, 0.025]
    for cls in (C.LearningRateScheduler, keras.callbacks.LearningRateScheduler):
        cb = cls(lambda epoch, lr: 1)          # an int, not a float: Keras refuses it
        cb.set_model(_StubModel(0.1))
        with pytest.raises(ValueError, match="should be a float|must return a float"):
            cb.on_epoch_begin(0, {})
    model.compile(optimizer=en.optimizers.SGD(lambda step: 0.1), loss="binary_crossentropy")
    with pytest.raises(TypeError, match="schedule, so its learning rate cannot be set"):
        model.fit(x, y, verbose=0, callbacks=[C.LearningRateScheduler(lambda epoch, lr: 0.5)])


LOGS = [{"loss": 0.5, "acc": 0.25, "val_loss": 0.625, "val_acc": 0.75},
        {"loss": 0.4, "acc": 1 / 3, "val_loss": 0.6, "val_acc": np.float32(0.8), "learning_rate": 0.1},
        {"loss": float("nan"), "acc": 0.5}]


@pytest.mark.parametrize("separator", [",", ";", "\t"])
@pytest.mark.parametrize("logs", [LOGS, [{"loss": 0.5, "acc": 0.25}, {"loss": 0.25, "acc": 0.5}]])
def test_csv_logger_writes_kerass_file(keras, tmp_path, separator, logs):
    files = []
    for cls, name in ((C.CSVLogger, "ours.csv"), (keras.callbacks.CSVLogger, "keras.csv")):
        path = tmp_path / name
        for run in range(2):           # a second fit appends without a second header
            cb = cls(path, separator=separator, append=run == 1)
            cb.on_train_begin({})
            for epoch, entry in enumerate(logs):
                cb.on_epoch_end(epoch, dict(entry))
            cb.on_train_end({})
        files.append(path.read_bytes())
    assert files[0] == files[1]
    assert files[0].count(b"epoch") == 1 and files[0].count(b"\r\n") == 2 * len(logs) + 1


def test_csv_logger_in_fit(tmp_path):
    x, y = _data()
    model = en.Sequential([L.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["acc"])
    path = tmp_path / "log.csv"
    history = model.fit(x, y, epochs=2, validation_split=0.25, verbose=0, callbacks=[C.CSVLogger(path)])
    rows = path.read_text().splitlines()
    assert rows[0] == "epoch,acc,loss,val_acc,val_loss"
    assert rows[2] == ",".join(["1"] + [repr(history.history[k][1]) for k in ("acc", "loss", "val_acc", "val_loss")])


def test_terminate_on_nan_is_added_once_and_can_raise(capsys):
    x, y = _data(16)
    y[9] = np.nan                    # the second batch of 8
    model = en.Sequential([L.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    mine = C.TerminateOnNaN()
    listed = C.CallbackList([mine], add_history=True, add_terminate_on_nan=True)
    assert sum(isinstance(cb, C.TerminateOnNaN) for cb in listed.callbacks) == 1
    history = model.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0, callbacks=[mine])
    assert len(history.history["loss"]) == 1 and np.isnan(history.history["loss"][0])
    assert "TerminateOnNaN: loss became nan at epoch 1, batch 2" in capsys.readouterr().err
    ended = _recorder(C.Callback)
    with pytest.raises(RuntimeError, match="loss became nan at epoch 1, batch 2"):
        model.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0,
                  callbacks=[C.TerminateOnNaN(raise_error=True), ended])
    assert "on_train_end" not in [c[0] for c in ended.calls]


_RESUME_SCRIPT = """
import os, signal, sys
import numpy as np
import engine as en
L = en.layers
mode, backup_dir, out = sys.argv[1:4]
en.set_random_seed(7)
rng = np.random.default_rng(0)
x = rng.normal(size=(96, 6)).astype("float32")
y = (x[:, :2].sum(1, keepdims=True) > 0).astype("float32")
# Unseeded dropout draws from the engine's generator; the seeded one from its own.
model = en.Sequential([L.Dense(16, activation="relu"), L.Dropout(0.3), L.Dense(8, activation="relu"),
                       L.Dropout(0.2, seed=5), L.Dense(1, activation="sigmoid")])
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["acc"])

class KillAfterEpoch2(en.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:           # after BackupAndRestore wrote epoch 2's backup
            os.kill(os.getpid(), signal.SIGKILL)

callbacks = [en.callbacks.BackupAndRestore(backup_dir)] + ([KillAfterEpoch2()] if mode == "kill" else [])
history = model.fit(x, y, epochs=5, batch_size=16, validation_split=0.125, callbacks=callbacks, verbose=0)
np.savez(out, *model.get_weights(), epochs=np.array(history.epoch), iterations=model.optimizer.iterations)
"""


def test_backup_and_restore_resumes_a_killed_fit_exactly(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(_RESUME_SCRIPT))
    env = {**os.environ, "PYTHONPATH": REPO}

    def run(mode, backup, out):
        return subprocess.run([sys.executable, str(script), mode, str(tmp_path / backup), str(tmp_path / out)],
                              env=env, capture_output=True, text=True, timeout=120)
    killed = run("kill", "backup", "unused.npz")
    assert killed.returncode == -9, killed.stderr
    assert sorted(os.listdir(tmp_path / "backup")) == ["latest.npz"]
    resumed = run("resume", "backup", "resumed.npz")
    assert resumed.returncode == 0, resumed.stderr
    assert not (tmp_path / "backup").exists(), "deleted when training ends normally"
    plain = run("plain", "other", "plain.npz")
    assert plain.returncode == 0, plain.stderr
    with np.load(tmp_path / "resumed.npz") as a, np.load(tmp_path / "plain.npz") as b:
        assert a["epochs"].tolist() == [2, 3, 4] and b["epochs"].tolist() == [0, 1, 2, 3, 4]
        assert int(a["iterations"]) == int(b["iterations"]) == 5 * 6
        weights = [k for k in b.files if k.startswith("arr_")]
        assert len(weights) == 6
        for k in weights:
            np.testing.assert_array_equal(a[k], b[k])


def _backup_model(seed=3, kind="sequential"):
    en.set_random_seed(seed)
    if kind == "sequential":
        model = en.Sequential([L.Dense(8, activation="relu"), L.Dropout(0.25), L.Dense(1, activation="sigmoid")])
    else:   # functional, with a seeded Dropout inside a nested model
        inner_in = en.Input((5,))
        inner = en.Model(inner_in, L.Dropout(0.3, seed=11)(L.Dense(8, activation="relu")(inner_in)))
        x = en.Input((5,))
        model = en.Model(x, L.Dense(1, activation="sigmoid")(L.Dropout(0.25)(inner(x))))
    model.compile(optimizer=en.optimizers.RMSprop(0.01, momentum=0.5), loss="binary_crossentropy")
    return model


class _Interrupt(C.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 3:
            raise KeyboardInterrupt("Ctrl-C")


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_backup_and_restore_after_an_exception_in_process(tmp_path, kind):
    x, y = _data(64)
    backup = C.BackupAndRestore(tmp_path / "b", delete_checkpoint=False)
    with pytest.raises(KeyboardInterrupt):
        _backup_model(kind=kind).fit(x, y, epochs=6, batch_size=16, verbose=0, callbacks=[backup, _Interrupt()])
    resumed = _backup_model(seed=99, kind=kind)     # another seed: the backup brings the state back
    history = resumed.fit(x, y, epochs=6, batch_size=16, verbose=0, callbacks=[backup])
    plain = _backup_model(kind=kind)
    plain.fit(x, y, epochs=6, batch_size=16, verbose=0)
    assert history.epoch == [3, 4, 5] and resumed.optimizer.iterations == plain.optimizer.iterations == 24
    for a, b in zip(resumed.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert os.listdir(tmp_path / "b") == ["latest.npz"]      # kept: delete_checkpoint=False
    finished = _backup_model(kind=kind)
    assert finished.fit(x, y, epochs=6, verbose=0, callbacks=[backup]).epoch == []   # nothing left to do


def test_backup_and_restore_bad_files_and_models(tmp_path):
    x, y = _data(32)
    backup = C.BackupAndRestore(tmp_path, double_checkpoint=True, delete_checkpoint=False)
    _backup_model().fit(x, y, epochs=2, verbose=0, callbacks=[backup])
    assert sorted(os.listdir(tmp_path)) == ["latest.npz", "previous.npz"]
    (tmp_path / "latest.npz").write_bytes((tmp_path / "latest.npz").read_bytes()[:100])   # truncated
    history = _backup_model().fit(x, y, epochs=3, verbose=0, callbacks=[backup])
    assert history.epoch == [1, 2], "resumed from the previous backup"
    (tmp_path / "latest.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match=r"latest.npz is not a readable backup"):
        _backup_model().fit(x, y, epochs=3, verbose=0, callbacks=[C.BackupAndRestore(tmp_path)])
    (tmp_path / "latest.npz").unlink()
    wider = en.Sequential([L.Dense(9), L.Dense(1, activation="sigmoid")])
    wider.compile(optimizer="rmsprop", loss="binary_crossentropy")
    with pytest.raises(ValueError, match=r"previous.npz does not fit this model.*shape"):
        wider.fit(x, y, epochs=3, verbose=0, callbacks=[backup])
    with pytest.raises(ValueError, match="save_freq must be 'epoch'"):
        C.BackupAndRestore(tmp_path, save_freq=10)
