"""The Functional API against Keras 3 (torch backend): the same graphs built in both with the
same weights give the same predictions, losses and gradients, and one optimizer step gives the
same weights; save -> load_model round trips; bad graphs and bad files fail clearly."""
from __future__ import annotations

import json
import types

import numpy as np
import pytest

import engine as en
from engine import layers as L

# float32 on both sides; every graph here is a few small ops deep, so rounding differences
# stay well under 1e-5 while a semantic difference is O(0.01) or more.
ATOL = 2e-5
B, T, F, V = 4, 6, 5, 11


def _api(keras=None):
    if keras is None:
        return types.SimpleNamespace(Input=en.Input, Model=en.Model, layers=L,
                                     with_state=lambda layer, x, ids, state: layer(x, initial_state=state))

    def with_state(layer, x, ids, state):
        # Keras 3 passes a layer its input's mask only when the call has one tensor argument,
        # so a decoder given initial_state= loses its Embedding's mask unless it is passed;
        # seqfuse passes it (the mask is the first input's either way).
        return layer(x, mask=keras.ops.not_equal(ids, 0), initial_state=state)
    return types.SimpleNamespace(Input=keras.Input, Model=keras.Model, layers=keras.layers,
                                 with_state=with_state)


def _ids(rng, n, t, vocab, padding="right"):
    """ids [n,t] in 1..vocab-1 padded with zeros (lengths from t down to 1)."""
    ids = rng.integers(1, vocab, size=(n, t))
    for row in range(n):
        keep = max(1, t - 2 * row)
        if padding == "right":
            ids[row, keep:] = 0
        else:
            ids[row, :t - keep] = 0
    return ids


def siamese(M):
    a, b = M.Input((T, F)), M.Input((T, F))
    encode = M.layers.LSTM(4)
    score = M.layers.Dot(axes=1, normalize=True)([encode(a), encode(b)])
    return M.Model([a, b], M.layers.Dense(1, activation="sigmoid")(score)), "binary_crossentropy"


def merges(M):
    a, b = M.Input((F,)), M.Input((F,))
    p, q = M.layers.Dense(3)(a), M.layers.Dense(3)(b)
    parts = [M.layers.Add()([p, q]), M.layers.Subtract()([p, q]), M.layers.Multiply()([p, q]),
             M.layers.Average()([p, q]), M.layers.Dot(axes=1)([p, q]),
             M.layers.Dot(axes=-1, normalize=True)([p, q])]
    return M.Model([a, b], M.layers.Dense(2)(M.layers.Concatenate()(parts))), "mse"


def encoder_decoder(M):
    """Embedding(mask_zero) -> LSTM states start the decoder; masked sequence loss."""
    source, target = M.Input((T,), dtype="int32"), M.Input((T - 1,), dtype="int32")
    _, h, c = M.layers.LSTM(7, return_state=True)(M.layers.Embedding(V, 4, mask_zero=True)(source))
    decoded = M.with_state(M.layers.LSTM(7, return_sequences=True),
                           M.layers.Embedding(V, 4, mask_zero=True)(target), target, [h, c])
    probs = M.layers.TimeDistributed(M.layers.Dense(V, activation="softmax"))(decoded)
    return M.Model([source, target], probs), "sparse_categorical_crossentropy"


def bidirectional_encoder(M):
    """Bidirectional GRU with return_state; its two states, concatenated, start a GRU decoder."""
    source, target = M.Input((T,), dtype="int32"), M.Input((T - 1,), dtype="int32")
    _, forward, backward = M.layers.Bidirectional(M.layers.GRU(3, return_state=True))(
        M.layers.Embedding(V, 4, mask_zero=True)(source))
    state = M.layers.Concatenate()([forward, backward])
    decoded = M.with_state(M.layers.GRU(6, return_sequences=True),
                           M.layers.Embedding(V, 4, mask_zero=True)(target), target, [state])
    return M.Model([source, target], M.layers.Dense(V, activation="softmax")(decoded)), \
        "sparse_categorical_crossentropy"


def repeat_vector(M):
    x = M.Input((F,))
    steps = M.layers.SimpleRNN(3, return_sequences=True)(M.layers.RepeatVector(T)(x))
    return M.Model(x, M.layers.TimeDistributed(M.layers.Dense(2))(steps)), "mse"


def nested_model(M):
    inner_in = M.Input((T, F))
    inner = M.Model(inner_in, M.layers.GRU(3)(inner_in))
    a, b = M.Input((T, F)), M.Input((T, F))
    return M.Model([a, b], M.layers.Dense(1)(M.layers.Subtract()([inner(a), inner(b)]))), "mse"


GRAPHS = [siamese, merges, encoder_decoder, bidirectional_encoder, repeat_vector, nested_model]


def _data(graph, seed=0):
    rng = np.random.default_rng(seed)
    if graph in (encoder_decoder, bidirectional_encoder):
        x = [_ids(rng, B, T, V), _ids(rng, B, T - 1, V, padding="right")]
        return x, rng.integers(0, V, size=(B, T - 1))
    if graph is merges:
        return [rng.normal(size=(B, F)).astype("float32") for _ in range(2)], rng.normal(size=(B, 2)).astype("float32")
    if graph is repeat_vector:
        return rng.normal(size=(B, F)).astype("float32"), rng.normal(size=(B, T, 2)).astype("float32")
    x = [rng.normal(size=(B, T, F)).astype("float32") for _ in range(2)]
    y = rng.integers(0, 2, size=(B, 1)).astype("float32") if graph is siamese else rng.normal(size=(B, 1)).astype("float32")
    return x, y


def _pair(keras, graph):
    theirs, loss = graph(_api(keras))
    ours, _ = graph(_api())
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    ours.set_weights(theirs.get_weights())
    return theirs, ours, loss


def _torch_inputs(x):
    import torch
    return [torch.tensor(a) for a in x] if isinstance(x, list) else torch.tensor(x)


@pytest.mark.parametrize("graph", GRAPHS, ids=lambda g: g.__name__)
def test_predictions_losses_and_gradients_match_keras(keras, graph):
    import torch
    theirs, ours, loss = _pair(keras, graph)
    x, y = _data(graph)
    theirs.compile(optimizer="sgd", loss=loss)
    ours.compile(optimizer="sgd", loss=loss)
    np.testing.assert_allclose(ours.predict(x), theirs.predict(x, verbose=0), atol=ATOL)

    y_pred = theirs(_torch_inputs(x), training=False)
    their_loss = theirs.compute_loss(x=_torch_inputs(x), y=torch.tensor(y), y_pred=y_pred)
    their_loss.backward()
    their_grads = [v.value.grad.numpy() for v in theirs.trainable_weights]

    params = ours.trainable_weights
    out = ours(x)
    our_loss, _, _ = ours._loss_and_metrics(y, out, "test")
    our_loss.backward()
    np.testing.assert_allclose(our_loss.item(), their_loss.item(), rtol=1e-5)
    assert len(params) == len(their_grads)
    for p, g in zip(params, their_grads):
        np.testing.assert_allclose(p.grad, g, atol=ATOL, err_msg=f"gradient of {p.shape}")


@pytest.mark.parametrize("graph", [siamese, encoder_decoder, nested_model], ids=lambda g: g.__name__)
def test_one_adam_step_gives_keras_weights(keras, graph):
    theirs, ours, loss = _pair(keras, graph)
    x, y = _data(graph, seed=1)
    theirs.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss)
    ours.compile(optimizer=en.optimizers.Adam(0.01), loss=loss)
    their_logs = theirs.train_on_batch(x, y, return_dict=True)
    our_logs = ours.train_on_batch(x, y)
    np.testing.assert_allclose(our_logs["loss"], their_logs["loss"], rtol=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, atol=ATOL)


def test_masked_sequence_loss_and_accuracy_count_only_real_steps(keras):
    theirs, ours, loss = _pair(keras, encoder_decoder)
    x, y = _data(encoder_decoder, seed=2)
    theirs.compile(loss=loss, metrics=["accuracy"])
    ours.compile(loss=loss, metrics=["accuracy"])
    their = theirs.evaluate(x, y, verbose=0, return_dict=True, batch_size=B)
    our = ours.evaluate(x, y, return_dict=True, batch_size=B)
    np.testing.assert_allclose(our["loss"], their["loss"], rtol=1e-5)
    np.testing.assert_allclose(our["accuracy"], their["accuracy"], rtol=1e-6)
    # Changing the targets under padding changes nothing.
    padded = x[1] == 0
    y2 = np.where(padded, (y + 1) % V, y)
    assert ours.evaluate(x, y2, return_dict=True, batch_size=B) == our


@pytest.mark.parametrize("graph", GRAPHS, ids=lambda g: g.__name__)
def test_layer_order_and_summary_counts_match_keras(keras, graph):
    theirs, ours, _ = _pair(keras, graph)
    assert [type(l).__name__ for l in ours.layers] == [type(l).__name__ for l in theirs.layers]
    assert ours.count_params() == theirs.count_params()
    lines = []
    ours.summary(print_fn=lines.append)
    assert f"Total params: {theirs.count_params()}" in "\n".join(lines)


@pytest.mark.parametrize("graph", GRAPHS, ids=lambda g: g.__name__)
def test_save_and_load_round_trip(tmp_path, graph):
    model, loss = graph(_api())
    x, y = _data(graph)
    model.compile(optimizer="adam", loss=loss)
    model.fit(x, y, epochs=2, batch_size=2, verbose=0)
    model.save(tmp_path / "m.npz")
    loaded = en.load_model(tmp_path / "m.npz")
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert json.dumps(loaded.get_config()) == json.dumps(model.get_config())


def test_shared_layer_has_one_set_of_weights_and_both_gradients():
    a, b = en.Input((F,)), en.Input((F,))
    dense = L.Dense(3)
    model = en.Model([a, b], L.Add()([dense(a), dense(b)]))
    assert len(model.weights) == 2
    x = [np.ones((2, F), "float32"), 2 * np.ones((2, F), "float32")]
    model(x).sum().backward()
    np.testing.assert_allclose(dense.kernel.grad, np.full((F, 3), 2 * 3.0))  # 2 rows × (1 + 2)


def test_dict_inputs_and_several_outputs_train_with_a_loss_each():
    tokens, numbers = en.Input((T,), name="tokens"), en.Input((F,), name="numbers")
    encoded = L.GRU(4)(L.Embedding(V, 3, mask_zero=True)(tokens))
    joined = L.Concatenate()([encoded, numbers])
    outputs = {"kind": L.Dense(3, activation="softmax", name="kind")(joined),
               "size": L.Dense(1, name="size")(joined)}
    model = en.Model({"tokens": tokens, "numbers": numbers}, outputs)
    assert model.output_names == ["kind", "size"]
    model.compile("adam", loss={"kind": "sparse_categorical_crossentropy", "size": "mse"},
                  metrics={"kind": ["acc"]})
    rng = np.random.default_rng(0)
    x = {"tokens": _ids(rng, 8, T, V), "numbers": rng.normal(size=(8, F)).astype("float32")}
    y = {"kind": rng.integers(0, 3, 8), "size": rng.normal(size=(8, 1)).astype("float32")}
    history = model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert set(history.history) == {"loss", "kind_loss", "size_loss", "kind_acc"}
    logs = model.evaluate(x, y, return_dict=True)
    np.testing.assert_allclose(logs["loss"], logs["kind_loss"] + logs["size_loss"], rtol=1e-6)
    predicted = model.predict(x, batch_size=3)
    assert predicted["kind"].shape == (8, 3) and predicted["size"].shape == (8, 1)


def test_get_layer_by_name_and_index():
    x = en.Input((F,), name="x")
    model = en.Model(x, L.Dense(2, name="head")(L.Dense(3, name="body")(x)))
    assert model.get_layer("head") is model.layers[-1] is model.get_layer(index=-1)
    with pytest.raises(ValueError, match="no layer named 'tail'"):
        model.get_layer("tail")


def test_bad_graphs_fail_clearly():
    a, b = en.Input((F,)), en.Input((F,))
    out = L.Dense(2)(a)
    with pytest.raises(ValueError, match="not connected to the outputs"):
        en.Model([a, b], out)
    with pytest.raises(ValueError, match="not among the model's inputs"):
        en.Model(b, L.Add()([L.Dense(2)(a), L.Dense(2)(b)]))
    with pytest.raises(TypeError, match="symbolic tensors"):
        en.Model(a, np.ones(3))
    with pytest.raises(TypeError, match="shape must be a tuple"):
        en.Input(5)
    with pytest.raises(TypeError, match="training="):
        L.Dense(2)(a, training=True)
    model = en.Model([a, b], L.Add()([out, L.Dense(2)(b)]))
    with pytest.raises(ValueError, match="expected 2 inputs"):
        model.predict(np.ones((2, F)))
    with pytest.raises(ValueError, match=r"must have shape \(None, 5\)"):
        model.predict([np.ones((2, F)), np.ones((2, F + 1))])
    with pytest.raises(ValueError, match="subtract.*exactly 2"):
        L.Subtract()([a, a, a])
    with pytest.raises(ValueError, match="same shape"):
        L.Add()([a, L.Dense(3)(a)])


def test_loading_unknown_layers_or_missing_weights_fails_clearly(tmp_path):
    model, _ = siamese(_api())
    config = model.get_config()
    config["config"]["layers"][2]["class_name"] = "Lambda"
    weights = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    np.savez(tmp_path / "lambda.npz", config=np.array(json.dumps(config)), **weights)
    with pytest.raises(ValueError, match="unknown layer class 'Lambda'"):
        en.load_model(tmp_path / "lambda.npz")
    model.save(tmp_path / "ok.npz")
    with np.load(tmp_path / "ok.npz") as data:
        arrays = {k: data[k] for k in data.files if k != "w0"}
    np.savez(tmp_path / "missing.npz", **arrays)
    with pytest.raises(ValueError, match="missing"):
        en.load_model(tmp_path / "missing.npz")


def test_sequential_may_start_with_an_input_and_builds_at_once():
    model = en.Sequential([en.Input((T,), dtype="int64"), L.Embedding(V, 3), L.GRU(4), L.Dense(1)])
    assert [w.shape for w in model.get_weights()] == [(V, 3), (3, 12), (4, 12), (2, 12), (4, 1), (1,)]
    with pytest.raises(ValueError, match="Input can only come first"):
        en.Sequential([L.Dense(2), en.Input((F,))])
