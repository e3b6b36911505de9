"""engine.layers against Keras 3 (torch backend): the same weights (Keras's order and shapes
through get_weights/set_weights) give the same outputs, masks and parameter counts.
The Keras checks skip cleanly when keras or torch is missing; the rest always run."""
from __future__ import annotations


import numpy as np
import pytest

import engine as en
from engine import layers as L

# float32 throughout, as Keras: both sides round each op to float32, and a handful of ops
# over T <= 6 steps accumulate well under 1e-5; a semantic difference is O(0.1).
ATOL = 1e-5

B, T, FEATURES, UNITS = 3, 6, 4, 3


def _np(keras, value):
    return keras.ops.convert_to_numpy(value)


def _ids(padding="right", seed=0, vocab=9):
    """ids [B,T] with zeros as padding on one side; row 2 is fully padded except one token."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab, size=(B, T))
    lengths = [T, 3, 1]
    for row, n in enumerate(lengths):
        if padding == "right":
            ids[row, n:] = 0
        else:
            ids[row, :T - n] = 0
    return ids


def _x(seed=0, shape=(B, T, FEATURES)):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _same_weights(ours, theirs, x, **call_kwargs):
    """Build `ours` on x, copy `theirs` weights in, and check the shapes agreed."""
    ours(x, **call_kwargs)
    weights = theirs.get_weights()
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in weights]
    ours.set_weights(weights)
    assert ours.count_params() == theirs.count_params()


def _assert_outputs(keras, ours, theirs):
    ours = ours if isinstance(ours, list) else [ours]
    theirs = theirs if isinstance(theirs, (list, tuple)) else [theirs]
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        b = _np(keras, b)
        assert a.shape == b.shape, f"output {i}: shape {a.shape} vs Keras {b.shape}"
        np.testing.assert_allclose(a.numpy(), b, atol=ATOL, rtol=0, err_msg=f"output {i}")


def test_dense_matches_keras_2d_and_3d(keras):
    for shape, activation in (((B, FEATURES), "relu"), ((B, T, FEATURES), "sigmoid")):
        x = _x(1, shape)
        theirs = keras.layers.Dense(5, activation=activation)
        expected = theirs(x)
        ours = L.Dense(5, activation=activation)
        _same_weights(ours, theirs, x)
        _assert_outputs(keras, ours(x), expected)


@pytest.mark.parametrize("mask_zero", [False, True])
def test_embedding_matches_keras_with_its_mask(keras, mask_zero):
    ids = _ids()
    theirs = keras.layers.Embedding(10, 4, mask_zero=mask_zero)
    expected = theirs(ids)
    ours = L.Embedding(10, 4, mask_zero=mask_zero)
    _same_weights(ours, theirs, ids)
    out = ours(ids)
    _assert_outputs(keras, out, expected)
    keras_mask = theirs.compute_mask(ids)
    if mask_zero:
        np.testing.assert_array_equal(out._keras_mask, _np(keras, keras_mask))
    else:
        assert keras_mask is None and getattr(out, "_keras_mask", None) is None


def _rnn_pair(keras, kind, **options):
    if kind.startswith("gru"):
        reset_after = kind == "gru"
        return L.GRU(UNITS, reset_after=reset_after, **options), \
            keras.layers.GRU(UNITS, reset_after=reset_after, **options)
    cls = {"simple_rnn": "SimpleRNN", "lstm": "LSTM"}[kind]
    return getattr(L, cls)(UNITS, **options), getattr(keras.layers, cls)(UNITS, **options)


RNN_KINDS = ["simple_rnn", "lstm", "gru", "gru_reset_before"]
RNN_OPTIONS = [
    {},
    {"return_sequences": True},
    {"return_state": True},
    {"return_sequences": True, "return_state": True, "go_backwards": True},
    {"go_backwards": True},
]


@pytest.mark.parametrize("options", RNN_OPTIONS, ids=lambda o: "-".join(o) or "default")
@pytest.mark.parametrize("kind", RNN_KINDS)
def test_recurrent_layer_matches_keras(keras, kind, options):
    x = _x(2)
    ours, theirs = _rnn_pair(keras, kind, **options)
    expected = theirs(x)
    _same_weights(ours, theirs, x)
    _assert_outputs(keras, ours(x), expected)


@pytest.mark.parametrize("padding", ["right", "left"])
@pytest.mark.parametrize("options", [{}, {"return_sequences": True}, {"go_backwards": True}],
                         ids=lambda o: "-".join(o) or "default")
@pytest.mark.parametrize("kind", RNN_KINDS)
def test_recurrent_layer_with_mask_matches_keras(keras, kind, options, padding):
    x, mask = _x(3), _ids(padding) != 0
    ours, theirs = _rnn_pair(keras, kind, **options)
    expected = theirs(x, mask=keras.ops.convert_to_tensor(mask))
    _same_weights(ours, theirs, x)
    out = ours(x, mask=mask)
    _assert_outputs(keras, out, expected)
    keras_mask = theirs.compute_mask(x, keras.ops.convert_to_tensor(mask))
    if options.get("return_sequences"):
        np.testing.assert_array_equal(out._keras_mask, _np(keras, keras_mask))
    else:
        assert keras_mask is None and getattr(out, "_keras_mask", None) is None


def test_lstm_forget_bias_starts_at_one_as_keras(keras):
    ours = L.LSTM(UNITS)
    ours(_x())
    bias = ours.get_weights()[2]
    np.testing.assert_array_equal(bias, np.r_[np.zeros(UNITS), np.ones(UNITS), np.zeros(2 * UNITS)])


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_bidirectional_matches_keras(keras, kind, merge_mode, return_sequences):
    x = _x(4)
    inner_ours, inner_theirs = _rnn_pair(keras, kind, return_sequences=return_sequences)
    theirs = keras.layers.Bidirectional(inner_theirs, merge_mode=merge_mode)
    expected = theirs(x)
    ours = L.Bidirectional(inner_ours, merge_mode=merge_mode)
    _same_weights(ours, theirs, x)
    _assert_outputs(keras, ours(x), expected)


@pytest.mark.parametrize("padding", ["right", "left"])
@pytest.mark.parametrize("merge_mode", ["concat", "ave"])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru"])
def test_bidirectional_with_embedding_mask_matches_keras(keras, kind, return_sequences, merge_mode,
                                                         padding):
    ids = _ids(padding)
    emb_theirs = keras.layers.Embedding(10, FEATURES, mask_zero=True)
    embedded_theirs = emb_theirs(ids)
    emb_ours = L.Embedding(10, FEATURES, mask_zero=True)
    _same_weights(emb_ours, emb_theirs, ids)
    inner_ours, inner_theirs = _rnn_pair(keras, kind, return_sequences=return_sequences)
    theirs = keras.layers.Bidirectional(inner_theirs, merge_mode=merge_mode)
    expected = theirs(embedded_theirs, mask=emb_theirs.compute_mask(ids))
    ours = L.Bidirectional(inner_ours, merge_mode=merge_mode)
    embedded = emb_ours(ids)
    _same_weights(ours, theirs, embedded)
    out = ours(embedded)        # the mask rides on the Embedding's output
    _assert_outputs(keras, out, expected)
    if return_sequences:
        np.testing.assert_array_equal(out._keras_mask, ids != 0)
    else:
        assert getattr(out, "_keras_mask", None) is None


def test_bidirectional_return_state_matches_keras(keras):
    x = _x(5)
    theirs = keras.layers.Bidirectional(keras.layers.LSTM(UNITS, return_state=True))
    expected = theirs(x)
    ours = L.Bidirectional(L.LSTM(UNITS, return_state=True))
    _same_weights(ours, theirs, x)
    _assert_outputs(keras, ours(x), expected)


def test_bidirectional_makes_fresh_directions_from_the_layer_config():
    inner = L.GRU(UNITS, return_sequences=True)
    inner(_x())                 # already built: its weights must not be reused
    layer = L.Bidirectional(inner)
    layer(_x())
    assert [n.split("/")[0] for n in layer._weight_names] == \
        [f"forward_{inner.name}"] * 3 + [f"backward_{inner.name}"] * 3
    fwd, bwd = layer.get_weights()[:3], layer.get_weights()[3:]
    assert not np.array_equal(fwd[0], bwd[0]), "the backward layer needs its own initial kernel"
    assert not any(w is v for w in inner.weights for v in layer.weights)
    assert not inner.zero_output_for_mask and layer.forward_layer.zero_output_for_mask


CONV_CASES = [
    {"padding": "valid"}, {"padding": "same"}, {"padding": "causal"},
    {"padding": "valid", "strides": 2}, {"padding": "same", "strides": 2},
    {"padding": "causal", "dilation_rate": 2}, {"padding": "same", "dilation_rate": 2},
    {"padding": "valid", "activation": "relu"},
]


@pytest.mark.parametrize("options", CONV_CASES, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_conv1d_matches_keras(keras, options):
    x = _x(6, (B, 9, FEATURES))
    theirs = keras.layers.Conv1D(5, 3, **options)
    expected = theirs(x)
    ours = L.Conv1D(5, 3, **options)
    _same_weights(ours, theirs, x)
    _assert_outputs(keras, ours(x), expected)


@pytest.mark.parametrize("options", [{}, {"pool_size": 3}, {"pool_size": 3, "strides": 2},
                                     {"pool_size": 2, "padding": "same"},
                                     {"pool_size": 3, "strides": 2, "padding": "same"}],
                         ids=str)
def test_max_pooling1d_matches_keras(keras, options):
    x = _x(7, (B, 7, FEATURES))
    _assert_outputs(keras, L.MaxPooling1D(**options)(x), keras.layers.MaxPooling1D(**options)(x))


@pytest.mark.parametrize("padding", ["right", "left"])
def test_global_pooling_and_flatten_match_keras(keras, padding):
    x, mask = _x(8), _ids(padding) != 0
    tmask = keras.ops.convert_to_tensor(mask)
    _assert_outputs(keras, L.GlobalMaxPooling1D()(x), keras.layers.GlobalMaxPooling1D()(x))
    _assert_outputs(keras, L.GlobalAveragePooling1D()(x), keras.layers.GlobalAveragePooling1D()(x))
    pooled = L.GlobalAveragePooling1D()(x, mask=mask)
    _assert_outputs(keras, pooled, keras.layers.GlobalAveragePooling1D()(x, mask=tmask))
    assert getattr(pooled, "_keras_mask", None) is None, "pooling consumes the mask"
    _assert_outputs(keras, L.Flatten()(x), keras.layers.Flatten()(x))


def test_dropout_is_identity_at_inference_and_scales_in_training(keras):
    x = _x(9)
    _assert_outputs(keras, L.Dropout(0.5)(x), keras.layers.Dropout(0.5)(x, training=False))
    en.set_random_seed(0)
    y = L.Dropout(0.25)(x, training=True).numpy()
    kept = y != 0
    assert 0.5 < kept.mean() < 0.95, "about 3/4 of the units must be kept"
    np.testing.assert_allclose(y[kept], x[kept] / 0.75, rtol=1e-6)   # float32 rounding of 1/0.75


def test_mask_passes_through_dense_and_dropout_as_keras():
    ids = _ids()
    emb = L.Embedding(10, FEATURES, mask_zero=True)
    y = L.Dropout(0.5)(L.Dense(2)(emb(ids)))
    np.testing.assert_array_equal(y._keras_mask, ids != 0)
    for layer in (L.Conv1D(2, 2, padding="same"), L.GlobalMaxPooling1D(), L.Flatten(),
                  L.MaxPooling1D(1)):
        assert getattr(layer(emb(ids)), "_keras_mask", None) is None, type(layer).__name__


def test_set_weights_errors_name_the_weight_and_both_shapes():
    layer = L.LSTM(UNITS)
    with pytest.raises(ValueError, match="before the layer is built"):
        layer.set_weights([np.zeros((FEATURES, 4 * UNITS))] * 3)
    layer(_x())
    weights = layer.get_weights()
    with pytest.raises(ValueError, match=r"expected 3 arrays.*got 2"):
        layer.set_weights(weights[:2])
    weights[1] = np.zeros((UNITS, 3 * UNITS))
    with pytest.raises(ValueError, match=r"recurrent_kernel.*\(3, 12\).*\(3, 9\)"):
        layer.set_weights(weights)


def test_layer_constructor_errors_are_clear():
    with pytest.raises(ValueError, match="units"):
        L.Dense(0)
    with pytest.raises(ValueError, match="merge_mode"):
        L.Bidirectional(L.LSTM(2), merge_mode="max")
    with pytest.raises(TypeError, match="Bidirectional"):
        L.Bidirectional(L.Dense(2))
    with pytest.raises(ValueError, match="activation"):
        L.Dense(2, activation="swishy")
    with pytest.raises(ValueError, match="recurrent_dropout"):
        L.GRU(2, recurrent_dropout=1.0)
    with pytest.raises(ValueError, match=r"\(batch, timesteps, features\)"):
        L.LSTM(2)(np.zeros((2, 3), "float32"))


def test_embedding_starts_from_given_weights_and_can_be_frozen():
    matrix = np.arange(12, dtype="float32").reshape(6, 2)
    layer = L.Embedding(6, 2, weights=[matrix], trainable=False)
    np.testing.assert_array_equal(layer(np.array([[5, 0]])).numpy(), matrix[[[5, 0]]])
    assert layer.trainable_weights == [] and layer.count_params() == 12


def test_recurrent_dropout_only_in_training():
    x = _x(10)
    layer = L.LSTM(UNITS, dropout=0.5, recurrent_dropout=0.5, return_sequences=True)
    a, b = layer(x).numpy(), layer(x).numpy()
    np.testing.assert_array_equal(a, b)       # inference is deterministic
    en.set_random_seed(1)
    c = layer(x, training=True).numpy()
    assert not np.allclose(a, c, atol=1e-3), "dropout must change the training outputs"


def test_embedding_accepts_whole_number_float_ids_as_keras():
    layer = L.Embedding(10, 2, mask_zero=True)
    ids = _ids()
    as_float = layer(ids.astype("float32"))
    np.testing.assert_array_equal(as_float.numpy(), layer(ids).numpy())
    np.testing.assert_array_equal(as_float._keras_mask, ids != 0)
    with pytest.raises(TypeError, match="integers"):
        layer(ids + 0.5)
    with pytest.raises(IndexError):
        layer(ids + 10)


def test_seeded_dropout_is_reproducible_and_changes_every_call():
    x = np.ones((4, 50), "float32")
    a, b = L.Dropout(0.5, seed=3), L.Dropout(0.5, seed=3)
    first, second = a(x, training=True).numpy(), a(x, training=True).numpy()
    assert not np.array_equal(first, second), "a new mask every call"
    np.testing.assert_array_equal(b(x, training=True).numpy(), first)


def test_return_state_output_carries_the_mask():
    x, mask = _x(11), _ids() != 0
    out, h, c = L.LSTM(UNITS, return_sequences=True, return_state=True)(x, mask=mask)
    np.testing.assert_array_equal(out._keras_mask, mask)
    assert getattr(h, "_keras_mask", None) is None and getattr(c, "_keras_mask", None) is None


def test_initializers_follow_keras_formulas():
    en.set_random_seed(0)
    kernel = en.initializers.get("glorot_uniform")((3, 40, 60), "float32")   # conv: fans * K
    limit = np.sqrt(6 / (3 * 40 + 3 * 60))
    assert kernel.dtype == np.float32 and np.abs(kernel).max() <= limit
    assert np.abs(kernel).max() > 0.95 * limit, "draws must fill the range"
    q = en.initializers.get("orthogonal")((5, 20), "float64")
    np.testing.assert_allclose(q @ q.T, np.eye(5), atol=1e-12)   # float64 QR round-off
    table = en.initializers.get("uniform")((100, 8), "float32")
    assert np.abs(table).max() <= 0.05
    with pytest.raises(ValueError, match="initializer"):
        en.initializers.get("nope")
