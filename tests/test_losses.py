"""Losses: gradcheck in float64 and Keras 3's numbers where Keras is installed."""
import os

import numpy as np
import pytest

import engine as en
from engine import losses
from engine.testing import gradcheck

rng = np.random.default_rng(3)
B, C = 6, 4


def _cases():
    probs = rng.random((B, 1)) * 0.98 + 0.01
    logits = rng.standard_normal((B, C)) * 3
    # moderate probabilities: near 0, -log p is too curved for central differences
    softmax = np.exp(logits / 3) / np.exp(logits / 3).sum(-1, keepdims=True)
    labels = rng.integers(0, C, B)
    onehot = np.eye(C)[labels]
    binary = (rng.random((B, 1)) > 0.5).astype(float)
    return [
        ("binary_crossentropy", binary, probs, {}),
        ("binary_crossentropy", binary, rng.standard_normal((B, 1)) * 5, {"from_logits": True}),
        ("categorical_crossentropy", onehot, softmax, {}),
        ("categorical_crossentropy", onehot, logits, {"from_logits": True}),
        ("sparse_categorical_crossentropy", labels, softmax, {}),
        ("sparse_categorical_crossentropy", labels, logits, {"from_logits": True}),
        ("mean_squared_error", logits * 0.5, logits, {}),
        ("mean_absolute_error", logits * 0.5 + 0.1, logits, {}),
    ]


CASES = _cases()


@pytest.mark.parametrize("name,y_true,y_pred,kwargs", CASES)
def test_gradcheck(name, y_true, y_pred, kwargs):
    fn = losses.get(name)
    assert gradcheck(lambda p: fn(y_true, p, **kwargs), [en.Tensor(y_pred.copy(), requires_grad=True)])


@pytest.mark.parametrize("name,y_true,y_pred,kwargs", CASES)
def test_matches_keras(name, y_true, y_pred, kwargs):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    expected = float(keras.losses.get(name)(y_true, y_pred, **kwargs).mean())
    ours = losses.get(name)(y_true, y_pred, **kwargs).item()
    np.testing.assert_allclose(ours, expected, rtol=1e-6)


def test_logits_stay_finite_for_extreme_values():
    x = en.Tensor(np.array([[1000.0], [-1000.0]]), requires_grad=True)
    loss = losses.binary_crossentropy(np.array([[0.0], [1.0]]), x, from_logits=True)
    loss.backward()
    np.testing.assert_allclose(loss.item(), 1000.0)
    assert np.isfinite(x.grad).all()


def test_bad_inputs():
    with pytest.raises(ValueError, match="does not match y_pred shape"):
        losses.mse(np.zeros((3, 2)), np.zeros((3, 4)))
    with pytest.raises(IndexError, match=r"labels must be in \[0, 4\)"):
        losses.sparse_categorical_crossentropy(np.array([0, 4]), np.full((2, 4), 0.25))
    with pytest.raises(ValueError, match="expected a callable"):
        losses.get("nope")
