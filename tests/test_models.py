"""engine.models (Sequential, compile/fit/evaluate/predict/summary/save) and engine.callbacks:
whole models against Keras 3 with copied weights, the training loop's contract, and a small
learning test. Keras checks skip cleanly when keras or torch is missing."""
from __future__ import annotations


import numpy as np
import pytest

import engine as en
from engine import callbacks as C
from engine import layers as L

# float32 models, as Keras; a few layers of float32 rounding stay well under 1e-5, while a
# semantic difference (mask, gate order, merge) moves outputs by O(0.01) or more.
ATOL = 1e-5


def _padded_ids(n=8, T=7, vocab=20, seed=0, padding="right"):
    """ids [n,T] of varied lengths (1..T), zero-padded on one side."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab, size=(n, T))
    for row, length in enumerate(rng.integers(1, T + 1, size=n)):
        if padding == "right":
            ids[row, length:] = 0
        else:
            ids[row, :T - length] = 0
    return ids


def _binary_data(n=64, features=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    y = (x[:, :1] + x[:, 1:2] > 0).astype("float32")
    return x, y


def _dense_model(features=5):
    model = en.Sequential([L.Dense(4, activation="tanh"), L.Dense(1, activation="sigmoid")])
    model.build((None, features))
    return model


def _compiled(optimizer="sgd", metrics=("acc",)):
    model = _dense_model()
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=list(metrics))
    return model


ARCHITECTURES = {
    "lstm_gru": lambda M: [M.Embedding(20, 6, mask_zero=True), M.LSTM(5, return_sequences=True),
                           M.GRU(4), M.Dense(1, activation="sigmoid")],
    "bidirectional_avg": lambda M: [M.Embedding(20, 6, mask_zero=True),
                                    M.Bidirectional(M.LSTM(4, return_sequences=True)),
                                    M.GlobalAveragePooling1D(), M.Dense(2, activation="softmax")],
    "bidirectional_gru_sum": lambda M: [M.Embedding(20, 6, mask_zero=True),
                                        M.Bidirectional(M.GRU(4, reset_after=False), merge_mode="sum"),
                                        M.Dense(1)],
    "conv": lambda M: [M.Embedding(20, 6), M.Conv1D(4, 3, padding="same", activation="relu"),
                       M.MaxPooling1D(2), M.Conv1D(3, 2), M.GlobalMaxPooling1D(), M.Dense(1)],
    # No mask here: Keras warns when Flatten drops one.
    "simple_rnn_flatten": lambda M: [M.Embedding(20, 3),
                                     M.SimpleRNN(3, return_sequences=True, go_backwards=True),
                                     M.Flatten(), M.Dropout(0.3), M.Dense(2)],
}


def _keras_and_ours(keras, arch, T=7):
    theirs = keras.Sequential([keras.Input((T,), dtype="int32")] + ARCHITECTURES[arch](keras.layers))
    ours = en.Sequential(ARCHITECTURES[arch](L))
    ours.build((None, T))
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    ours.set_weights(theirs.get_weights())
    return theirs, ours


@pytest.mark.parametrize("padding", ["right", "left"])
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_sequential_predictions_match_keras(keras, arch, padding):
    theirs, ours = _keras_and_ours(keras, arch)
    ids = _padded_ids(padding=padding)
    np.testing.assert_allclose(ours.predict(ids, batch_size=3), theirs.predict(ids, verbose=0),
                               atol=ATOL, rtol=0)


def test_mask_propagation_matches_keras(keras):
    """Recurrent layers pass the mask on only with return_sequences; pooling consumes it."""
    ids = _padded_ids()
    for arch in ("lstm_gru", "bidirectional_avg"):
        theirs, ours = _keras_and_ours(keras, arch)
        x_theirs, x_ours = ids, ids
        for k_layer, e_layer in zip(theirs.layers, ours.layers):
            k_mask_in = getattr(x_theirs, "_keras_mask", None)
            x_theirs = k_layer(x_theirs, mask=k_mask_in) if k_mask_in is not None else k_layer(x_theirs)
            x_ours = e_layer(x_ours)
            k_mask = k_layer.compute_mask(x_theirs, k_mask_in) if k_layer.supports_masking else None
            if isinstance(k_layer, keras.layers.Embedding):
                k_mask = k_layer.compute_mask(ids)
            ours_mask = getattr(x_ours, "_keras_mask", None)
            assert (k_mask is None) == (ours_mask is None), f"{arch}: {e_layer.name}"
            if k_mask is not None:
                np.testing.assert_array_equal(ours_mask, keras.ops.convert_to_numpy(k_mask))
                x_theirs._keras_mask = k_mask


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_summary_param_counts_match_keras(keras, arch, capsys):
    theirs, ours = _keras_and_ours(keras, arch)
    lines = []
    ours.summary(print_fn=lines.append)
    text = "\n".join(lines)
    for k_layer, e_layer in zip(theirs.layers, ours.layers):
        assert e_layer.count_params() == k_layer.count_params(), e_layer.name
        assert type(e_layer).__name__ in text
    assert ours.count_params() == theirs.count_params()
    assert f"Total params: {theirs.count_params()}" in text
    # Output shapes as Keras prints them: batch None, then the known dimensions.
    for k_layer, e_layer in zip(theirs.layers, ours.layers):
        assert str(tuple(k_layer.output.shape)) in text, (e_layer.name, tuple(k_layer.output.shape))


def test_summary_counts_frozen_weights_as_non_trainable():
    model = en.Sequential([L.Embedding(10, 4, trainable=False), L.GlobalAveragePooling1D(), L.Dense(1)])
    model.build((None, 3))
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Total params: 45" in text and "Trainable params: 5" in text and "Non-trainable params: 40" in text


def test_fit_history_keys_and_evaluate_return_types():
    x, y = _binary_data()
    model = _compiled()
    history = model.fit(x, y, epochs=2, batch_size=16, validation_split=0.25, verbose=0)
    assert sorted(history.history) == ["acc", "loss", "val_acc", "val_loss"]
    assert all(len(v) == 2 for v in history.history.values()) and history.epoch == [0, 1]
    loss, acc = model.evaluate(x, y, batch_size=7)
    assert isinstance(loss, float) and 0 <= acc <= 1
    plain = _dense_model()
    plain.compile(optimizer="sgd", loss="binary_crossentropy")
    assert isinstance(plain.evaluate(x, y), float)


def test_validation_split_takes_the_last_samples_before_shuffling():
    x, y = _binary_data(n=40)
    x[30:] = np.nan          # training on any of these would make the loss NaN
    model = _compiled()
    history = model.fit(x, y, epochs=2, batch_size=8, validation_split=0.25, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert np.isnan(history.history["val_loss"]).all()


def test_validation_loss_is_evaluate_on_the_held_out_tail():
    x, y = _binary_data(n=40)
    model = _compiled()
    history = model.fit(x, y, epochs=1, batch_size=8, validation_split=0.25, verbose=0)
    loss, acc = model.evaluate(x[30:], y[30:])
    assert history.history["val_loss"][0] == pytest.approx(loss, rel=1e-6)
    assert history.history["val_acc"][0] == pytest.approx(acc)


def test_predict_is_independent_of_batch_size():
    x, _ = _binary_data(n=10)
    model = _dense_model()
    whole = model.predict(x, batch_size=100)
    assert whole.shape == (10, 1)
    np.testing.assert_allclose(model.predict(x, batch_size=3), whole, rtol=1e-6)  # float32 GEMM blocking


def test_set_random_seed_makes_fit_reproducible():
    x, y = _binary_data()
    runs = []
    for _ in range(2):
        en.set_random_seed(123)
        model = en.Sequential([L.Dense(4, activation="relu"), L.Dropout(0.5), L.Dense(1, activation="sigmoid")])
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["acc"])
        history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
        runs.append((history.history, model.get_weights()))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)


class _Recorder(C.Callback):
    """Weights after every epoch (what EarlyStopping / ModelCheckpoint should have kept)."""

    def on_train_begin(self, logs=None):
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


class _StubModel:
    def __init__(self):
        self.stop_training, self.state = False, 0

    def get_weights(self):
        return [np.array([self.state])]

    def set_weights(self, weights):
        self.state = int(weights[0][0])


@pytest.mark.parametrize("patience", [0, 1, 2, 7])
@pytest.mark.parametrize("values", [[1.0, 0.9, 0.95, 0.97, 0.8, 0.85, 0.9, 0.99],
                                    [0.5, 0.6, 0.7, 0.4, 0.45, 0.46, 0.47, 0.48],
                                    [1.0, 0.5, 0.9, 0.6, 0.55, 0.52, 0.51, 0.7],
                                    [1.0, 0.99, 0.98, 0.97, 0.96, 0.95, 0.94, 0.93]])
def test_early_stopping_follows_keras(keras, values, patience):
    """Feed the same val_loss sequence to both callbacks: same stop epoch, same weights restored."""
    outcomes = []
    for cb in (C.EarlyStopping(patience=patience, restore_best_weights=True, min_delta=0.001),
               keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True,
                                             min_delta=0.001, mode="min")):
        stub = _StubModel()
        cb.set_model(stub)
        cb.on_train_begin()
        epochs = 0
        for epoch, value in enumerate(values):
            stub.state = epoch
            cb.on_epoch_end(epoch, {"val_loss": value})
            epochs += 1
            if stub.stop_training:
                break
        cb.on_train_end()
        outcomes.append((epochs, stub.state))
    assert outcomes[0] == outcomes[1]


def test_early_stopping_restores_best_weights_in_fit():
    x, y = _binary_data()
    model = _compiled(optimizer=en.optimizers.SGD(learning_rate=5.0))   # noisy on purpose
    recorder = _Recorder()
    stopper = C.EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)
    history = model.fit(x, y, epochs=12, batch_size=8, validation_split=0.5, verbose=0,
                        callbacks=[recorder, stopper])
    val = history.history["val_loss"]
    best = int(np.argmin(val))
    for a, b in zip(model.get_weights(), recorder.weights[best]):
        np.testing.assert_array_equal(a, b)
    if len(val) < 12:   # stopped early: exactly `patience` epochs without improvement
        assert len(val) - 1 - best == 1


def test_model_checkpoint_keeps_the_best_and_writes_atomically(tmp_path, monkeypatch):
    x, y = _binary_data()
    model = _compiled(optimizer=en.optimizers.SGD(learning_rate=5.0))
    recorder = _Recorder()
    path = tmp_path / "best.npz"
    checkpoint = C.ModelCheckpoint(path, monitor="val_loss", save_best_only=True)
    history = model.fit(x, y, epochs=6, batch_size=8, validation_split=0.5, verbose=0,
                        callbacks=[recorder, checkpoint])
    best = int(np.argmin(history.history["val_loss"]))
    for a, b in zip(en.load_model(path).get_weights(), recorder.weights[best]):
        np.testing.assert_array_equal(a, b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.npz"], "no temporary file left"
    before = path.read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt("disk pulled mid-write")
    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        model.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.npz"]


def test_nan_loss_stops_training_and_keeps_weights_and_checkpoints(tmp_path, capsys):
    x, y = _binary_data(n=32)
    model = _compiled()
    recorder = _Recorder()

    class _PoisonLabels(C.Callback):
        def on_epoch_end(self, epoch, logs=None):
            y[20] = np.nan          # the second epoch's third batch has a NaN label

    path = tmp_path / "epoch{epoch}.npz"
    history = model.fit(x, y, epochs=5, batch_size=8, shuffle=False, verbose=0,
                        callbacks=[recorder, C.ModelCheckpoint(path, monitor="loss"), _PoisonLabels()])
    assert "loss became nan" in capsys.readouterr().err
    assert len(history.history["loss"]) == 2 and np.isnan(history.history["loss"][-1])
    weights = model.get_weights()
    assert all(np.isfinite(w).all() for w in weights)
    saved = en.load_model(tmp_path / "epoch1.npz").get_weights()
    for a, b in zip(saved, recorder.weights[0]):
        np.testing.assert_array_equal(a, b)


def test_save_and_load_round_trip(tmp_path):
    ids = _padded_ids()
    for arch in ("bidirectional_avg", "lstm_gru", "conv"):
        model = en.Sequential(ARCHITECTURES[arch](L))
        model.compile(optimizer="adam", loss="mse")
        model.build((None, ids.shape[1]))
        path = tmp_path / f"{arch}.npz"
        model.save(path)
        loaded = en.load_model(path)
        assert [type(a) for a in loaded.layers] == [type(b) for b in model.layers]
        assert [a.get_config() for a in loaded.layers] == [b.get_config() for b in model.layers]
        np.testing.assert_array_equal(loaded.predict(ids), model.predict(ids))


def test_compile_and_fit_errors_are_clear():
    x, y = _binary_data(n=10)
    model = _dense_model()
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="loss is required"):
        model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="optimizer"):
        model.compile(optimizer="adagrad-ish", loss="mse")
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["acc"])
    for bad in (0, -1, 2.5, "8"):
        with pytest.raises(ValueError, match="batch_size"):
            model.fit(x, y, batch_size=bad, verbose=0)
    with pytest.raises(ValueError, match="batch_size"):
        model.predict(x, batch_size=0)
    with pytest.raises(ValueError, match="same number of samples.*10 and 9"):
        model.fit(x, y[:9], verbose=0)
    with pytest.raises(ValueError, match="y is required"):
        model.fit(x, verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(x, y, validation_split=1.0, verbose=0)
    with pytest.raises(ValueError, match="epochs"):
        model.fit(x, y, epochs=-1, verbose=0)


def test_model_set_weights_names_the_weight_and_both_shapes():
    model = _dense_model()
    weights = model.get_weights()
    weights[2] = np.zeros((3, 1), "float32")
    with pytest.raises(ValueError, match=r"dense\S*/kernel.*\(4, 1\).*\(3, 1\)"):
        model.set_weights(weights)
    with pytest.raises(ValueError, match="expected 4 arrays"):
        model.set_weights(weights[:3])


def test_learns_whether_token_7_is_present():
    """A small LSTM classifier reaches > 90% on held-out data in a few seconds."""
    en.set_random_seed(0)
    rng = np.random.default_rng(0)
    ids = _padded_ids(n=700, T=10, vocab=12, seed=1)
    ids[ids == 7] = 8
    has7 = rng.random(700) < 0.5
    for row in np.flatnonzero(has7):
        ids[row, rng.integers(0, max(1, np.count_nonzero(ids[row])))] = 7
    y = (ids == 7).any(axis=1).astype("float32")
    model = en.Sequential([L.Embedding(12, 8, mask_zero=True), L.LSTM(8), L.Dense(1, activation="sigmoid")])
    model.compile(optimizer=en.optimizers.Adam(learning_rate=0.02), loss="binary_crossentropy",
                  metrics=["acc"])
    model.fit(ids[:500], y[:500], epochs=6, batch_size=32, verbose=0)
    _, acc = model.evaluate(ids[500:], y[500:])
    assert acc > 0.9


def test_fit_and_evaluate_on_batched_datasets():
    series = np.sin(np.arange(120, dtype="float32") / 5)[:, None]
    data = en.data.timeseries_dataset_from_array(series[:-1], series[4:, 0], sequence_length=4,
                                                 batch_size=16)
    model = en.Sequential([L.GRU(3), L.Dense(1)])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    history = model.fit(data, epochs=2, validation_data=data, verbose=0)
    assert sorted(history.history) == ["loss", "mae", "val_loss", "val_mae"]
    x_all = np.concatenate([xb for xb, _ in data])
    y_all = np.concatenate([yb for _, yb in data])
    loss = model.evaluate(data)[0]
    # float32 per-batch means re-weighted vs one mean over all samples: rounding only.
    assert loss == pytest.approx(model.evaluate(x_all, y_all, batch_size=len(x_all))[0], rel=1e-5)
    with pytest.raises(ValueError, match="validation_split needs array inputs"):
        model.fit(data, validation_split=0.2, verbose=0)


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "sgd"])
def test_sparse_embedding_trains_and_leaves_unused_rows_alone(optimizer):
    en.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(1, 50, (64, 6))  # ids 50..99 never occur
    y = (x[:, 0] > 25).astype("float32")
    model = en.Sequential([L.Embedding(100, 4, sparse=True), L.GlobalAveragePooling1D(),
                           L.Dense(1, activation="sigmoid")])
    model.compile(optimizer, "binary_crossentropy")
    model.build((None, 6))
    before = model.layers[0].get_weights()[0]
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    after = model.layers[0].get_weights()[0]
    assert all(np.isfinite(history.history["loss"]))
    assert not np.allclose(after[1:50], before[1:50])
    np.testing.assert_array_equal(after[50:], before[50:])


def test_first_step_of_an_unbuilt_model_updates_it():
    # The first call builds the layers inside the first step; that step must still train them,
    # exactly as it trains a model built beforehand.
    x, y = _binary_data(n=16)
    trained = []
    for build in (False, True):
        en.set_random_seed(0)
        model = en.Sequential([L.Dense(4, activation="tanh"), L.Dense(1, activation="sigmoid")])
        if build:
            model.build((None, 5))
        model.compile(optimizer="sgd", loss="binary_crossentropy")
        model.train_on_batch(x, y)
        trained.append(model.get_weights())
    for a, b in zip(*trained):
        np.testing.assert_array_equal(a, b)
