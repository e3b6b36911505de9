"""en.layers.Masking against Keras 3 (torch backend): the same outputs, mask and, through an
LSTM after it, the same final states; padded steps change nothing downstream."""
from __future__ import annotations

import numpy as np
import pytest

import engine as en
from engine import layers as L

ATOL = 1e-5  # float32 on both sides over <= 6 steps; a semantic difference is O(0.1)


def _padded(seed=0, mask_value=0.0):
    """x [3, 6, 4]: row 0 full, row 1 padded after 3 steps, row 2 padded before its 2 steps;
    row 0 also has one feature equal to mask_value (a step is masked only if all are)."""
    x = np.random.default_rng(seed).normal(size=(3, 6, 4)).astype("float32")
    x[0, 2, 1] = mask_value
    x[1, 3:] = mask_value
    x[2, :4] = mask_value
    return x


@pytest.mark.parametrize("mask_value", [0.0, -1.0])
def test_masking_matches_keras(keras, mask_value):
    x = _padded(mask_value=mask_value)
    theirs = keras.layers.Masking(mask_value=mask_value)
    out = L.Masking(mask_value=mask_value)(x)
    np.testing.assert_array_equal(out.numpy(), keras.ops.convert_to_numpy(theirs(x)))
    expected_mask = keras.ops.convert_to_numpy(theirs.compute_mask(keras.ops.convert_to_tensor(x)))
    np.testing.assert_array_equal(out._keras_mask, expected_mask)
    np.testing.assert_array_equal(out._keras_mask, [[True] * 6, [True] * 3 + [False] * 3,
                                                    [False] * 4 + [True] * 2])


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_masking_then_recurrent_matches_keras(keras, kind):
    x = _padded(1)
    theirs = keras.Sequential([keras.Input((6, 4)), keras.layers.Masking(),
                               getattr(keras.layers, kind)(3)])
    ours = en.Sequential([L.Masking(), getattr(L, kind)(3)])
    ours(x)
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(ours(x).numpy(), keras.ops.convert_to_numpy(theirs(x)), atol=ATOL, rtol=0)


def test_padding_does_not_change_the_recurrent_output():
    x = np.random.default_rng(2).normal(size=(1, 5, 4)).astype("float32")
    padded = np.concatenate([x, np.zeros((1, 7, 4), "float32")], axis=1)
    model = en.Sequential([L.Masking(), L.GRU(3)])
    np.testing.assert_allclose(model(padded).numpy(), model(x).numpy(), atol=1e-6, rtol=0)


def test_masking_gradient_flows_only_through_kept_steps():
    x = en.Tensor(_padded(3), requires_grad=True)
    L.Masking()(x).sum().backward()
    np.testing.assert_array_equal(x.grad, np.broadcast_to(L.Masking()(x)._keras_mask[..., None], x.shape))


def test_masking_model_keras_files_both_ways(keras, tmp_path):
    pytest.importorskip("h5py")
    x = _padded(4, mask_value=-1.0)
    ours = en.Sequential([en.Input((None, 4)), L.Masking(mask_value=-1.0), L.LSTM(3), L.Dense(2)])
    ours.save(tmp_path / "ours.keras")
    theirs = keras.saving.load_model(tmp_path / "ours.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(theirs(x)), ours.predict(x), atol=ATOL, rtol=0)
    theirs.save(tmp_path / "theirs.keras")
    again = en.load_model(tmp_path / "theirs.keras")
    assert again.layers[0].get_config() == ours.layers[0].get_config()
    np.testing.assert_allclose(again.predict(x), ours.predict(x), atol=ATOL, rtol=0)


def test_masking_rejects_non_sequences_and_round_trips_its_config():
    with pytest.raises(ValueError, match=r"\(batch, timesteps, features\).*\(2, 3\)"):
        L.Masking()(np.ones((2, 3), "float32"))
    layer = L.Masking(mask_value=-1.0)
    assert L.Masking(**layer.get_config()).mask_value == -1.0


def test_merge_layers_and_their_input_masks():
    a, b = np.array([[True, True, False]]), np.array([[True, False, False]])
    add = en.layers.Add()
    np.testing.assert_array_equal(add.compute_mask(None, [a, b]), a & b)
    np.testing.assert_array_equal(add.compute_mask(None, [None, b]), b)
    assert add.compute_mask(None, [None, None]) is None   # as Keras: no input mask, no output mask
    assert add.compute_mask(None, None) is None
