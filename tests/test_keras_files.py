"""Keras 3 files in and out (engine/models/keras_format.py), with Keras itself (torch backend)
as the oracle: Keras model -> .keras -> seqfuse and seqfuse -> .keras -> Keras give the same
predictions; .weights.h5 both ways; unsupported layers, options and bad files fail clearly."""
from __future__ import annotations

import json
import sys
import zipfile

import numpy as np
import pytest

import engine as en
from test_functional import GRAPHS, _api, _data, encoder_decoder, siamese

pytest.importorskip("h5py")

# float32 models: a few layers of float32 rounding stay well under 1e-5, while a wrong weight
# group, gate order or option moves outputs by O(0.01) or more.
ATOL = 1e-5
T = 7


def _ids(n=6, seed=0):
    """Token ids [n,T] of varied lengths, zero-padded on the right (exercises masks)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 20, size=(n, T))
    for row, length in enumerate([T, 1, 3, 5, T, 2][:n]):
        ids[row, length:] = 0
    return ids


def _floats(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


# name -> (input shape, input dtype, layers from a module with Keras's layer names)
ARCHITECTURES = {
    "embedding_lstm_mask": ((T,), "int32", lambda M: [
        M.Embedding(20, 4, mask_zero=True), M.LSTM(5, return_sequences=True, go_backwards=True),
        M.GlobalAveragePooling1D(), M.Dense(3, activation="softmax")]),
    "bidirectional": ((T,), "int32", lambda M: [
        M.Embedding(20, 4, mask_zero=True), M.Bidirectional(M.GRU(4, return_sequences=True), merge_mode="sum"),
        M.Bidirectional(M.LSTM(3, use_bias=False)), M.Dense(1, activation="sigmoid")]),
    "gru_reset_before_simple_rnn": ((6, 3), "float32", lambda M: [
        M.GRU(4, reset_after=False, return_sequences=True), M.SimpleRNN(3, use_bias=False),
        M.Activation("tanh"), M.Dense(2)]),
    "conv_pooling": ((12, 3), "float32", lambda M: [
        M.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="relu"), M.MaxPooling1D(2),
        M.Conv1D(5, 2, strides=2, padding="same"), M.GlobalMaxPooling1D(), M.Dropout(0.3),
        M.Dense(2, use_bias=False)]),
    "repeat_time_distributed": ((4,), "float32", lambda M: [
        M.Dense(3), M.RepeatVector(5), M.LSTM(4, return_sequences=True), M.TimeDistributed(M.Dense(2))]),
    "conv_flatten": ((5, 2), "float32", lambda M: [
        M.Conv1D(3, 2, activation="tanh"), M.MaxPooling1D(2, strides=1, padding="same"),
        M.Flatten(), M.Dense(4, activation="sigmoid")]),
}


def _keras_model(keras, arch):
    shape, dtype, layers = ARCHITECTURES[arch]
    model = keras.Sequential([keras.Input(shape, dtype=dtype)] + layers(keras.layers))
    rng = np.random.default_rng(1)
    # Keras starts biases at zero; random weights everywhere make every weight count.
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()])
    return model


def _input(arch):
    shape, dtype, _ = ARCHITECTURES[arch]
    return _ids() if dtype == "int32" else _floats((6,) + shape)


def _keras_predict(model, x):
    return np.asarray(model.predict(x, verbose=0))


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_keras_archive_loads_with_the_same_predictions(keras, arch, tmp_path):
    theirs = _keras_model(keras, arch)
    theirs.save(tmp_path / "m.keras")
    ours = en.load_model(tmp_path / "m.keras")
    assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers]
    x = _input(arch)
    np.testing.assert_allclose(ours.predict(x), _keras_predict(theirs, x), atol=ATOL, rtol=0)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_our_archive_loads_in_keras_with_the_same_predictions(keras, arch, tmp_path):
    shape, _, layers = ARCHITECTURES[arch]
    ours = en.Sequential(layers(en.layers), name="ours")
    ours.build((None,) + shape)
    rng = np.random.default_rng(2)
    ours.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in ours.get_weights()])
    ours.save(tmp_path / "m.keras")
    theirs = keras.saving.load_model(tmp_path / "m.keras")
    assert [layer.name for layer in theirs.layers] == [layer.name for layer in ours.layers]
    x = _input(arch)
    np.testing.assert_allclose(_keras_predict(theirs, x), ours.predict(x), atol=ATOL, rtol=0)
    again = en.load_model(tmp_path / "m.keras")         # and back: the configs survive
    assert [a.get_config() for a in again.layers] == [b.get_config() for b in ours.layers]
    np.testing.assert_array_equal(again.predict(x), ours.predict(x))


@pytest.mark.parametrize("arch", ["bidirectional", "conv_pooling"])
def test_weights_files_both_ways(keras, arch, tmp_path):
    theirs = _keras_model(keras, arch)
    shape, _, layers = ARCHITECTURES[arch]
    ours = en.Sequential(layers(en.layers))
    ours.build((None,) + shape)
    theirs.save_weights(tmp_path / "k.weights.h5")
    ours.load_weights(tmp_path / "k.weights.h5")
    x = _input(arch)
    np.testing.assert_allclose(ours.predict(x), _keras_predict(theirs, x), atol=ATOL, rtol=0)

    rng = np.random.default_rng(3)
    ours.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in ours.get_weights()])
    ours.save_weights(tmp_path / "ours.weights.h5")
    theirs.load_weights(tmp_path / "ours.weights.h5")
    np.testing.assert_allclose(_keras_predict(theirs, x), ours.predict(x), atol=ATOL, rtol=0)


def test_weights_file_names_and_model_mismatch(tmp_path):
    model = en.Sequential([en.layers.Dense(3), en.layers.Dense(1)])
    model.build((None, 4))
    with pytest.raises(ValueError, match=r"save_weights: the file name must end in \.weights\.h5"):
        model.save_weights(tmp_path / "w.h5")
    with pytest.raises(ValueError, match="holds weights only"):
        en.load_model(tmp_path / "w.weights.h5")
    with pytest.raises(ValueError, match="use model.save_weights"):
        model.save(tmp_path / "w.weights.h5")
    model.save_weights(tmp_path / "w.weights.h5")
    other = en.Sequential([en.layers.Dense(2), en.layers.Dense(1)])
    other.build((None, 4))
    before = other.get_weights()
    with pytest.raises(ValueError, match=r"w\.weights\.h5 has weight dense\S*/kernel of shape \(4, 3\); "
                                         r"the model's is \(4, 2\)"):
        other.load_weights(tmp_path / "w.weights.h5")
    for a, b in zip(other.get_weights(), before):
        np.testing.assert_array_equal(a, b)     # nothing was set
    fewer = en.Sequential([en.layers.Dense(1)])
    fewer.build((None, 4))
    (tmp_path / "text.weights.h5").write_text("not weights")
    with pytest.raises(ValueError, match="^load_weights: .*text.weights.h5 is not a Keras .weights.h5 file .it looks like text"):
        fewer.load_weights(tmp_path / "text.weights.h5")


def _config_error(keras, tmp_path, layers, shape=(6, 3), **input_kwargs):
    model = keras.Sequential([keras.Input(shape, **input_kwargs)] + layers)
    model.save(tmp_path / "m.keras")
    with pytest.raises(ValueError) as info:
        en.load_model(tmp_path / "m.keras")
    assert str(info.value).startswith(f"load_model: {tmp_path / 'm.keras'} ")
    return str(info.value)


def test_unsupported_layers_and_options_are_named(keras, tmp_path):
    K = keras.layers
    assert "'layer_normalization' (LayerNormalization), a Keras layer seqfuse does not have" in \
        _config_error(keras, tmp_path, [K.LayerNormalization()])
    assert "'lstm_x' (LSTM) with activation='relu'" in \
        _config_error(keras, tmp_path, [K.LSTM(2, activation="relu", name="lstm_x")])
    assert "(Dense) with kernel_regularizer=" in \
        _config_error(keras, tmp_path, [K.Dense(2, kernel_regularizer="l2")])
    assert "(Dense) with activation='gelu'" in _config_error(keras, tmp_path, [K.Dense(2, activation="gelu")])
    assert "(Conv1D) with groups=3" in _config_error(keras, tmp_path, [K.Conv1D(3, 2, groups=3)])
    assert "(GlobalAveragePooling1D) with keepdims=True" in \
        _config_error(keras, tmp_path, [K.GlobalAveragePooling1D(keepdims=True)])
    assert "backward_layer differs from its layer in units" in _config_error(
        keras, tmp_path, [K.Bidirectional(K.LSTM(2), backward_layer=K.LSTM(3, go_backwards=True))])


def test_lambda_layers_are_refused_without_running_their_code(keras, tmp_path):
    marker = tmp_path / "ran"

    def touch(x):
        marker.write_text("code from the file ran")
        return x
    keras.Sequential([keras.Input((3,)), keras.layers.Lambda(touch)]).save(tmp_path / "m.keras")
    marker.unlink()                        # Keras ran it while building the model
    with pytest.raises(ValueError, match=r"\(Lambda\), a Keras layer seqfuse does not have"):
        en.load_model(tmp_path / "m.keras")
    assert not marker.exists()


def _archive(path, entries):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)


def test_bad_keras_archives_fail_with_one_clear_error(keras, tmp_path):
    good = tmp_path / "good.keras"
    _keras_model(keras, "conv_flatten").save(good)
    data = good.read_bytes()
    with zipfile.ZipFile(good) as zf:
        entries = {name: zf.read(name) for name in zf.namelist()}
    cases = {
        "text.keras": (b"hello, I am text\n", "is not a Keras 3 .keras archive .it looks like text"),
        "cut.keras": (data[:len(data) // 2], r"is truncated or corrupt \(its zip directory"),
        "empty.keras": (b"", r"is not a Keras 3 .keras archive \(it is empty\)"),
    }
    for name, (content, pattern) in cases.items():
        (tmp_path / name).write_bytes(content)
    _archive(tmp_path / "noconfig.keras", {k: v for k, v in entries.items() if k != "config.json"})
    cases["noconfig.keras"] = (None, r"is not a Keras 3 archive \(it lacks config\.json\)")
    _archive(tmp_path / "badjson.keras", {**entries, "config.json": b"{not json"})
    cases["badjson.keras"] = (None, "is corrupt")
    _archive(tmp_path / "badh5.keras", {**entries, "model.weights.h5": b"\x89HDF\r\n\x1a\n garbage"})
    cases["badh5.keras"] = (None, r"is corrupt \(its weights are not a readable HDF5 file\)")
    _archive(tmp_path / "shape.keras", {**entries, "config.json": json.dumps(
        {"class_name": "Sequential", "config": {"build_input_shape": [None, 3],
                                                "layers": [{"class_name": "Dense", "config": {}}]}})})
    cases["shape.keras"] = (None, r"is corrupt \(config.json is not a Keras 3 model config: KeyError 'name'\)")
    functional = json.loads(entries["config.json"])
    functional["class_name"] = "Subclassed"
    _archive(tmp_path / "sub.keras", {**entries, "config.json": json.dumps(functional)})
    cases["sub.keras"] = (None, "holds a Keras 'Subclassed' model")
    for name, (_, pattern) in cases.items():
        with pytest.raises(ValueError, match=f"^load_model: {tmp_path / name} {pattern}") as info:
            en.load_model(tmp_path / name)
        assert info.value.__suppress_context__ or info.value.__context__ is None, name
    with pytest.raises(FileNotFoundError):
        en.load_model(tmp_path / "missing.keras")
    with pytest.raises(ValueError, match="old.h5: .h5 is Keras 2's legacy model format"):
        en.load_model(tmp_path / "old.h5")


def test_without_h5py_keras_files_say_which_extra_to_install(tmp_path, monkeypatch):
    model = en.Sequential([en.layers.Dense(2)])
    model.build((None, 3))
    monkeypatch.setitem(sys.modules, "h5py", None)       # import h5py now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "seqfuse\[keras\]"'):
        model.save(tmp_path / "m.keras")
    with pytest.raises(ImportError, match=r'pip install "seqfuse\[keras\]"'):
        model.save_weights(tmp_path / "m.weights.h5")
    model.save(tmp_path / "m.npz")                        # our own format needs nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def test_unbuilt_models_cannot_be_saved_as_keras(tmp_path):
    model = en.Sequential([en.layers.Dense(2)])
    with pytest.raises(ValueError, match="not built yet"):
        model.save(tmp_path / "m.keras")
    assert list(tmp_path.iterdir()) == []


def test_keras_archive_is_what_keras_writes(tmp_path):
    """The layout, checked without Keras: groups by class name in layer order, cells nested."""
    h5py = pytest.importorskip("h5py")
    L = en.layers
    model = en.Sequential([L.Embedding(9, 2, name="words"), L.Bidirectional(L.LSTM(2, return_sequences=True)),
                           L.GRU(3), L.Dense(2, name="hidden"), L.Dense(1, name="out")])
    model.build((None, 4))
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        assert sorted(zf.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
        config = json.loads(zf.read("config.json"))
        zf.extract("model.weights.h5", tmp_path)
    assert config["class_name"] == "Sequential"
    first = config["config"]["layers"][0]
    assert first["class_name"] == "InputLayer" and first["config"]["batch_shape"] == [None, 4]
    assert first["config"]["dtype"] == "int32"
    with h5py.File(tmp_path / "model.weights.h5") as h5:
        datasets = {}
        h5.visititems(lambda name, obj: datasets.update({name: obj.shape}) if isinstance(obj, h5py.Dataset) else None)
        assert datasets == {
            "layers/embedding/vars/0": (9, 2),
            **{f"layers/bidirectional/{d}_layer/cell/vars/{i}": s for d in ("forward", "backward")
               for i, s in enumerate([(2, 8), (2, 8), (8,)])},
            "layers/gru/cell/vars/0": (4, 9), "layers/gru/cell/vars/1": (3, 9), "layers/gru/cell/vars/2": (2, 9),
            "layers/dense/vars/0": (3, 2), "layers/dense/vars/1": (2,),
            "layers/dense_1/vars/0": (2, 1), "layers/dense_1/vars/1": (1,),
        }
        assert h5["layers/dense/vars"].attrs["name"] == "hidden"
        assert h5["layers/dense_1/vars"].attrs["name"] == "out"


def _keras_api(keras):
    """test_functional's graph builders on Keras, decoders called as Keras users write them
    (initial_state= only; Keras then drops the Embedding's mask there, so the data has no padding)."""
    api = _api(keras)
    api.with_state = lambda layer, x, ids, state: layer(x, initial_state=state)
    return api


def _unpadded(graph):
    x, _ = _data(graph)
    return [np.where(a == 0, 1, a) for a in x] if isinstance(x, list) else np.where(x == 0, 1, x)


@pytest.mark.parametrize("graph", GRAPHS, ids=lambda g: g.__name__)
def test_functional_models_both_ways(keras, graph, tmp_path):
    theirs, _ = graph(_keras_api(keras))
    rng = np.random.default_rng(4)
    theirs.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in theirs.get_weights()])
    theirs.save(tmp_path / "keras.keras")
    ours = en.load_model(tmp_path / "keras.keras")
    assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers]
    x = _unpadded(graph)
    for a, b in zip(_as_list(ours.predict(x)), _as_list(theirs.predict(x, verbose=0))):
        np.testing.assert_allclose(a, np.asarray(b), atol=ATOL, rtol=0)

    ours, _ = graph(_api())
    ours.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in ours.get_weights()])
    ours.save(tmp_path / "ours.keras")
    theirs = keras.saving.load_model(tmp_path / "ours.keras")
    assert [layer.name for layer in theirs.layers] == [layer.name for layer in ours.layers]
    for a, b in zip(_as_list(theirs.predict(x, verbose=0)), _as_list(ours.predict(x))):
        np.testing.assert_allclose(np.asarray(a), b, atol=ATOL, rtol=0)
    again = en.load_model(tmp_path / "ours.keras")
    assert json.dumps(again.get_config()) == json.dumps(ours.get_config())


def _as_list(outputs):
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def test_functional_weights_files_both_ways(keras, tmp_path):
    theirs, _ = siamese(_keras_api(keras))
    ours, _ = siamese(_api())
    rng = np.random.default_rng(5)
    theirs.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in theirs.get_weights()])
    theirs.save_weights(tmp_path / "k.weights.h5")
    ours.load_weights(tmp_path / "k.weights.h5")
    x = _unpadded(siamese)
    np.testing.assert_allclose(ours.predict(x), np.asarray(theirs.predict(x, verbose=0)), atol=ATOL, rtol=0)
    ours.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in ours.get_weights()])
    ours.save_weights(tmp_path / "ours.weights.h5")
    theirs.load_weights(tmp_path / "ours.weights.h5")
    np.testing.assert_allclose(np.asarray(theirs.predict(x, verbose=0)), ours.predict(x), atol=ATOL, rtol=0)


def test_embedding_masks_keras_writes_as_ops_load_and_other_masks_are_refused(keras, tmp_path):
    # Keras 3 writes an Embedding(mask_zero=True) mask that reaches a layer as a not_equal op
    # feeding that layer's mask=; the lead's Keras variant of the encoder-decoder also passes the
    # decoder's mask so (Keras would drop it there), which makes padded data agree exactly.
    theirs, _ = encoder_decoder(_api(keras))
    rng = np.random.default_rng(6)
    theirs.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in theirs.get_weights()])
    theirs.save(tmp_path / "masked.keras")
    ours = en.load_model(tmp_path / "masked.keras")
    x, _ = _data(encoder_decoder)
    assert (x[0] == 0).any() and (x[1] == 0).any()
    np.testing.assert_allclose(ours.predict(x), np.asarray(theirs.predict(x, verbose=0)), atol=ATOL, rtol=0)

    source = keras.Input((T,), dtype="int32")
    embedded = keras.layers.Embedding(20, 3)(source)        # no mask_zero: the mask is the user's
    model = keras.Model(source, keras.layers.LSTM(2)(embedded, mask=keras.ops.not_equal(source, 0)))
    model.save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match=r"m\.keras has layer 'lstm\S*' called with an explicit mask="):
        en.load_model(tmp_path / "m.keras")
