"""The japanese_vowels and vowel_pairs tasks end to end on a small slice of the bundled data
(the full runs are benchmarks), metrics.roc_auc against hand-computed values, a brute-force
pairwise count and sklearn, and the pair sampler's guarantees."""
from __future__ import annotations

import doctest
import json

import numpy as np
import pytest

import engine as en
from engine.cli import main
from engine.metrics import roc_auc
from engine.tasks import japanese_vowels, vowel_pairs

# ---- roc_auc ------------------------------------------------------------------------------


def _pairwise_auc(y, s):
    """The definition: P(positive scores above negative), ties counting 1/2, over all pairs."""
    pos, neg = s[y == 1][:, None], s[y == 0][None, :]
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def test_roc_auc_hand_computed():
    # 4 (positive, negative) pairs: 0.35 < 0.4 is the one the positive loses.
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    # Positives 0.5, 0.9, 0.1 against negatives 0.5, 0.2: pairs score 1/2, 1, 1, 1, 0, 0 -> 3.5/6.
    assert roc_auc([0, 1, 0, 1, 1], [0.5, 0.5, 0.2, 0.9, 0.1]) == pytest.approx(3.5 / 6, abs=1e-15)
    assert roc_auc([1, 0, 1, 0], [3, 3, 3, 3]) == 0.5       # all tied: chance
    assert roc_auc([True, False], [[0.9], [0.2]]) == 1.0     # bool labels, [N, 1] scores
    assert roc_auc([1, 0], [0.2, 0.9]) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_is_the_pairwise_probability(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200)
    s = rng.integers(0, 12, 200) / 4.0                       # few distinct values: many ties
    assert roc_auc(y, s) == pytest.approx(_pairwise_auc(y, s), abs=1e-12)


def test_roc_auc_is_scipys_mann_whitney_u():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(size=300) + y, 1)
    u = stats.mannwhitneyu(s[y == 1], s[y == 0]).statistic
    assert roc_auc(y, s) == pytest.approx(u / ((y == 1).sum() * (y == 0).sum()), abs=1e-12)


def test_roc_auc_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 500)
    for s in (rng.normal(size=500) + y, np.round(rng.normal(size=500), 1)):
        assert roc_auc(y, s) == pytest.approx(metrics.roc_auc_score(y, s), abs=1e-12)


@pytest.mark.parametrize("y, s, message", [
    ([1, 1, 1], [0.1, 0.2, 0.3], "both classes, got 3 positives and 0 negatives"),
    ([0, 2, 1], [0.1, 0.2, 0.3], "0/1 labels"),
    ([0, 1], [0.1, np.nan], "finite"),
    ([0, 1, 1], [0.1, 0.2], r"shapes \(3,\) and \(2,\)"),
    ([[0, 1]], [[0.1, 0.2]], r"\[N\] or \[N, 1\]"),
])
def test_roc_auc_rejects_bad_input(y, s, message):
    with pytest.raises(ValueError, match=message):
        roc_auc(y, s)


def test_docstring_examples_run():
    for obj in (roc_auc, vowel_pairs.sample_pairs, en.layers.Masking):
        test, = [t for t in doctest.DocTestFinder().find(obj, extraglobs={"np": np}) if t.examples]
        result = doctest.DocTestRunner().run(test)
        assert result.attempted and not result.failed, test.name


# ---- the pair sampler ---------------------------------------------------------------------


def test_sample_pairs_is_balanced_distinct_and_reproducible():
    labels = np.repeat(np.arange(4), [3, 5, 2, 6])
    first, second, same = vowel_pairs.sample_pairs(labels, 30, seed=1)
    assert same.dtype == np.float32 and same.sum() == 15
    np.testing.assert_array_equal(same, labels[first] == labels[second])
    assert (first < second).all()                              # never an utterance with itself
    assert len(set(zip(first.tolist(), second.tolist()))) == 30  # never the same pair twice
    again = vowel_pairs.sample_pairs(labels, 30, seed=1)
    for a, b in zip((first, second, same), again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(vowel_pairs.sample_pairs(labels, 30, seed=2)[0], first)


def test_sample_pairs_rejects_impossible_requests():
    labels = np.array([0, 0, 1, 1])                            # 2 same-label pairs exist
    with pytest.raises(ValueError, match="need 3 same-label pairs, but 4 labels give only 2"):
        vowel_pairs.sample_pairs(labels, 6, seed=0)
    for n in (3, 0, 2.0):
        with pytest.raises(ValueError, match="positive even int"):
            vowel_pairs.sample_pairs(labels, n, seed=0)
    with pytest.raises(ValueError, match=r"\[N\]"):
        vowel_pairs.sample_pairs(labels.reshape(2, 2), 2, seed=0)


def _row_keys(x):
    return {row.tobytes() for row in x}


def test_test_pairs_hold_only_test_utterances():
    (x_train, y_train), (x_test, y_test) = en.datasets.japanese_vowels.load_data()
    x_train, x_test = (japanese_vowels.pad_for_masking(en, s)
                       for s in japanese_vowels.normalize_frames(en, x_train, x_test))
    train_keys = _row_keys(x_train)
    assert not train_keys & _row_keys(x_test), "the UCI split shares no utterance"
    (a, b), same = vowel_pairs.pairs_of(x_test, y_test, vowel_pairs.TEST_PAIRS, vowel_pairs.TEST_SEED)
    assert same.mean() == 0.5
    assert _row_keys(a) | _row_keys(b) <= _row_keys(x_test)
    assert not (_row_keys(a) | _row_keys(b)) & train_keys
    (a, b), _ = vowel_pairs.pairs_of(x_train, y_train, vowel_pairs.TRAIN_PAIRS, 0)
    assert _row_keys(a) | _row_keys(b) <= train_keys


# ---- data preparation ---------------------------------------------------------------------


def test_padding_is_masked_exactly_and_conv_batches_are_unpadded():
    (x_train, y_train), _ = en.datasets.japanese_vowels.load_data()
    x_train, = japanese_vowels.normalize_frames(en, x_train)
    frames = np.concatenate(x_train)
    np.testing.assert_allclose(frames.mean(0), 0, atol=1e-5)   # statistics of the training frames
    np.testing.assert_allclose(frames.std(0), 1, atol=1e-5)
    padded = japanese_vowels.pad_for_masking(en, x_train)
    mask = en.layers.Masking(mask_value=0.0)(padded)._keras_mask
    np.testing.assert_array_equal(mask.sum(1), [len(s) for s in x_train])
    for x, y in japanese_vowels.equal_length_batches(en, x_train, y_train, 16, True, 0):
        assert x.dtype == np.float32 and np.any(x, axis=-1).all()   # no padded (all-zero) frame
    with pytest.raises(ValueError, match="all zeros"):
        japanese_vowels.pad_for_masking(en, [np.ones((3, 2)), np.zeros((2, 2))])


# ---- the tasks on a small slice ----------------------------------------------------------


def _small_slice(per_speaker_train=4, per_speaker_test=3):
    """load_data's result cut to a few utterances per speaker (the full set is a benchmark)."""
    (x_train, y_train), (x_test, y_test) = en.datasets.japanese_vowels.load_data()

    def cut(x, y, n):
        keep = np.concatenate([np.flatnonzero(y == k)[:n] for k in range(9)])
        return [x[i] for i in keep], y[keep]
    small = cut(x_train, y_train, per_speaker_train), cut(x_test, y_test, per_speaker_test)
    return lambda dtype="float32": small


def _train(tmp_path, *options):
    history = tmp_path / "history.json"
    assert main(["train", *options, "--history", str(history)]) == 0
    return json.loads(history.read_text())


@pytest.mark.parametrize("model", japanese_vowels.MODELS)
def test_japanese_vowels_end_to_end(monkeypatch, tmp_path, model):
    monkeypatch.setattr(en.datasets.japanese_vowels, "load_data", _small_slice())
    result = _train(tmp_path, "--data", "japanese_vowels", "--model", model, "--epochs", "2", "--units", "4")
    assert set(result) == {"history", "test_loss", "test_acc"}
    assert set(result["history"]) == {"loss", "acc"} and len(result["history"]["loss"]) == 2
    assert np.isfinite(result["test_loss"]) and 0 <= result["test_acc"] <= 1


def test_japanese_vowels_learns_and_its_default_epochs_apply(monkeypatch, tmp_path):
    monkeypatch.setattr(en.datasets.japanese_vowels, "load_data", _small_slice(8, 6))
    monkeypatch.setitem(japanese_vowels.DEFAULTS, "epochs", 20)  # no --epochs: the task's own
    result = _train(tmp_path, "--data", "japanese_vowels", "--model", "bilstm", "--units", "8",
                    "--batch-size", "8")
    assert len(result["history"]["loss"]) == 20
    assert result["history"]["loss"][-1] < result["history"]["loss"][0]
    assert result["test_acc"] > 3 / 9                            # chance is 1/9


@pytest.mark.parametrize("model", vowel_pairs.MODELS)
def test_vowel_pairs_end_to_end(monkeypatch, tmp_path, model):
    monkeypatch.setattr(en.datasets.japanese_vowels, "load_data", _small_slice())
    monkeypatch.setattr(vowel_pairs, "TRAIN_PAIRS", 40)
    monkeypatch.setattr(vowel_pairs, "TEST_PAIRS", 20)
    saved = tmp_path / "pairs.npz"
    result = _train(tmp_path, "--data", "vowel_pairs", "--model", model, "--epochs", "1", "--units", "4",
                    "--save", str(saved))
    assert set(result) == {"history", "test_loss", "test_acc", "test_roc_auc"}
    assert np.isfinite(result["test_loss"]) and 0 <= result["test_acc"] <= 1
    assert 0 <= result["test_roc_auc"] <= 1
    model = en.load_model(saved)
    assert len(model.inputs) == 2 and model.layers[-1].get_config()["activation"] == "sigmoid"


def test_vowel_pairs_encoder_is_shared():
    model = vowel_pairs.build_model(en, "lstm", 3)
    x = np.random.default_rng(0).normal(size=(5, 7, 12)).astype("float32")
    y = np.random.default_rng(1).normal(size=(5, 7, 12)).astype("float32")
    # One encoder for both inputs: the model is symmetric and a pair of equal inputs has cosine 1.
    np.testing.assert_allclose(model.predict([x, y]), model.predict([y, x]), atol=1e-6, rtol=0)
    dense = model.layers[-1]
    expected = 1 / (1 + np.exp(-(dense.get_weights()[0].sum() + dense.get_weights()[1])))
    np.testing.assert_allclose(model.predict([x, x]), np.full((5, 1), expected), atol=1e-5, rtol=0)
    assert sum(type(layer).__name__ == "LSTM" for layer in model.layers) == 1


@pytest.mark.parametrize("kind", vowel_pairs.MODELS)
def test_vowel_pairs_model_predicts_as_keras_on_padded_pairs(keras, tmp_path, kind):
    pytest.importorskip("h5py")
    ours = vowel_pairs.build_model(en, kind, 3)
    rng = np.random.default_rng(0)
    ours.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in ours.get_weights()])
    ours.save(tmp_path / "pairs.keras")
    theirs = keras.saving.load_model(tmp_path / "pairs.keras")
    a, b = rng.normal(size=(2, 6, 9, 12)).astype("float32")
    a[:3, 5:] = 0                     # padding after 5 frames, and a pair with unequal lengths
    b[2:, 3:] = 0
    np.testing.assert_allclose(ours.predict([a, b], verbose=0),
                               np.asarray(theirs.predict([a, b], verbose=0)), atol=1e-5, rtol=0)
