"""English -> French: the bundled pairs and their split, corpus BLEU (by hand and against
sacrebleu), standardization, greedy step-by-step decoding against re-running the prefix,
the train task on a small slice and `seqfuse translate` on a saved model."""
import argparse
import importlib.resources
import json
import math
import random
import shutil

import numpy as np
import pytest

import engine as en
from engine import translation as tr
from engine.cli import main
from engine.datasets import translation as data
from engine.metrics import corpus_bleu
from engine.tasks import translation as task
from engine.translation import standardize

# ---- data --------------------------------------------------------------------------


def test_bundled_pairs_licence_and_counts():
    folder = importlib.resources.files("engine.datasets") / "data"
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert "fra-eng_short.txt" in readme and "CC BY 2.0 FR" in readme
    assert "Tatoeba Project (tatoeba.org), pairs prepared by manythings.org/anki" in readme.replace("\n", " ")
    pairs = data.load_data()
    assert len(pairs) == 18065 and len({en for en, _ in pairs}) == 10974
    assert pairs[0] == ("Go.", "Va !") and pairs[1] == ("Run!", "Cours\u202f!")
    assert pairs[-1] == ("They deported Tom.", "Ils ont déporté Tom.")
    assert all(isinstance(en, str) and isinstance(fr, str) and en and fr for en, fr in pairs)
    assert max(len(en) for en, _ in pairs) == 18 and min(len(en) for en, _ in pairs) == 3


def test_split_keeps_every_english_sentence_on_one_side():
    pairs = data.load_data()
    train, test = data.split_by_source(pairs)
    train_en, test_en = {en for en, _ in train}, {en for en, _ in test}
    assert not train_en & test_en
    assert len(test_en) == 1097 and len(train_en) + len(test_en) == 10974
    assert sorted(train + test) == sorted(pairs)
    # every translation of a test sentence is in test
    counts = {}
    for en, _ in pairs:
        counts[en] = counts.get(en, 0) + 1
    assert sum(counts[en] for en in test_en) == len(test)
    # fixed seed: the same split every time, another seed another split
    assert data.split_by_source(pairs) == (train, test)
    assert {en for en, _ in data.split_by_source(pairs, seed=1)[1]} != test_en
    assert data.split_by_source(pairs, test_split=0.0)[1] == []
    with pytest.raises(ValueError, match="test_split"):
        data.split_by_source(pairs, test_split=1.0)


# ---- BLEU --------------------------------------------------------------------------


def test_corpus_bleu_hand_computed():
    hypotheses = ["the cat sat on the mat", "hello there"]
    references = [["the cat sat on a mat", "a cat is on the mat"],
                  ["hello there general kenobi", "hello there you bold one"]]
    # Clipped matches / hypothesis n-grams summed over both sentences:
    #   1-grams 7/8 ("the" twice in the hypothesis, at most once per reference)
    #   2-grams 6/6, 3-grams 3/4 ("sat on the" in neither), 4-grams 1/3 ("the cat sat on")
    # c = 6 + 2 = 8; r = 6 + 4 (closest reference lengths) = 10: brevity exp(1 - 10/8)
    expected = math.exp(1 - 10 / 8) * (7 / 8 * 6 / 6 * 3 / 4 * 1 / 3) ** 0.25
    assert corpus_bleu(hypotheses, references) == pytest.approx(expected, rel=1e-12)
    tokens = [h.split() for h in hypotheses]
    assert corpus_bleu(tokens, [[r.split() for r in refs] for refs in references]) == pytest.approx(expected)
    # max_n=2: only the first two precisions
    assert corpus_bleu(hypotheses, references, max_n=2) == pytest.approx(
        math.exp(1 - 10 / 8) * (7 / 8) ** 0.5)


def test_corpus_bleu_closest_reference_ties_shorter_and_zero_precision():
    # hypothesis length 2, references of length 3 and 1: a tie, the shorter (1) counts -> no penalty
    assert corpus_bleu(["a b"], [["a b c", "a"]], max_n=1) == 1.0
    assert corpus_bleu(["a b"], [["a b c"]], max_n=1) == pytest.approx(math.exp(1 - 3 / 2))
    assert corpus_bleu(["a b c d"], [["a b c e"]]) == 0.0  # no 4-gram match, no smoothing
    assert corpus_bleu(["x"], [["y"]]) == 0.0


def test_corpus_bleu_bad_input():
    with pytest.raises(ValueError, match="2 hypotheses but 1"):
        corpus_bleu(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match=r"references_lists\[0\]"):
        corpus_bleu(["a"], ["a"])
    with pytest.raises(ValueError, match="max_n"):
        corpus_bleu(["a"], [["a"]], max_n=0)


def test_corpus_bleu_matches_sacrebleu():
    sacrebleu = pytest.importorskip("sacrebleu")
    rng = random.Random(0)
    words = "le chat est sur un tapis rouge".split()
    references = [[" ".join(rng.choices(words, k=rng.randint(1, 9))) for _ in range(rng.randint(1, 4))]
                  for _ in range(300)]
    hypotheses = [" ".join(rng.choices(words, k=rng.randint(1, 10))) for _ in range(300)]
    hypotheses[:50] = [refs[-1] for refs in references[:50]]
    # sacrebleu takes reference streams; a sentence with fewer references has None there
    streams = [[refs[k] if k < len(refs) else None for refs in references] for k in range(4)]
    bleu = sacrebleu.metrics.BLEU(tokenize="none", smooth_method="none", force=True)
    for n in (4, 2):
        bleu.max_ngram_order = n
        expected = bleu.corpus_score(hypotheses, streams).score / 100
        assert corpus_bleu(hypotheses, references, max_n=n) == pytest.approx(expected, rel=1e-9)
    assert 0.0 < corpus_bleu(hypotheses, references) < 1.0


# ---- text ----------------------------------------------------------------------------


def test_standardize_splits_punctuation_and_folds_case_and_spaces():
    assert standardize("J’ai faim\u202f!") == "j'ai faim !"
    assert standardize("Ça alors\u2009!") == "ça alors !"
    assert standardize("I'm hungry.") == "i'm hungry ."
    assert standardize("Arrête-toi, Tom !") == "arrête-toi , tom !"
    assert standardize("  «Non»  ") == "« non »"
    with pytest.raises(TypeError, match="str"):
        standardize(3)
    assert np.all([standardize(standardize(fr)) == standardize(fr) for _, fr in data.load_data()[:2000]])


# ---- model, decoding, task, command -------------------------------------------------

SLICE = 800


def _args(**overrides):
    values = {"model": "bigru", "epochs": 6, "batch_size": 32, "units": 32, "max_tokens": 400,
              "sequence_length": 20, "seed": 0, "save": None, "verbose": 2}
    return argparse.Namespace(**{**values, **overrides})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained on a slice of the pairs, saved with its vocabularies."""
    en.set_random_seed(0)
    path = tmp_path_factory.mktemp("translation") / "fr.npz"
    model, history, results = task.run(_args(save=str(path)), en, pairs=data.load_data()[:SLICE])
    model.save(path)
    return model, history, results, path


def test_task_end_to_end_on_a_slice(trained, capsys):
    model, history, results, path = trained
    losses = history.history["loss"]
    assert len(losses) == 6 and losses[-1] < losses[0] and np.isfinite(losses).all()
    _, test = data.split_by_source(data.load_data()[:SLICE])
    assert 0.0 <= results["test_bleu"] <= 100.0 and results["test_sentences"] == len({e for e, _ in test})
    names = [layer.name for layer in model.layers]
    for name in (tr.SOURCE_EMBEDDING, tr.ENCODER, tr.TARGET_EMBEDDING, tr.DECODER, tr.NEXT_TOKEN):
        assert name in names
    vocabularies = tr.load_vocabularies(path)
    assert vocabularies["target_vocabulary"][:2] == ["", "[UNK]"]
    assert model.get_layer(tr.NEXT_TOKEN).units == len(vocabularies["target_vocabulary"]) <= 400
    assert vocabularies["max_length"] == 19


def test_length_batches_trim_and_cover_every_pair():
    rng = np.random.default_rng(0)
    targets = np.where(np.arange(10) < rng.integers(1, 9, 50)[:, None], rng.integers(1, 9, (50, 10)), 0)
    source = np.where(np.arange(6) < rng.integers(1, 7, 50)[:, None], rng.integers(1, 9, (50, 6)), 0)
    batches = task.LengthBatches(source, targets + 100, targets, batch_size=8, seed=0)
    passes = []
    for _ in range(2):
        seen = []
        for (s, d), y in batches:
            assert y.shape[1] == (y != 0).sum(axis=1).max() and d.shape == y.shape
            assert s.shape[1] == (s != 0).sum(axis=1).max() and len(s) == len(y) <= 8
            lengths = (y != 0).sum(axis=1)
            assert lengths.max() - lengths.min() <= 2  # similar lengths share a batch
            seen += [(tuple(a[a != 0]), tuple(b[b != 0]), tuple(c[c != 100])) for a, b, c in zip(s, y, d)]
        passes.append(seen)
        expected = [(tuple(a[a != 0]), tuple(b[b != 0]), tuple(b[b != 0] + 100)) for a, b in zip(source, targets)]
        assert sorted(seen) == sorted(expected)
    assert len(batches) == 7 and passes[0] != passes[1]  # a new order on every pass


@pytest.mark.parametrize("kind", task.MODELS)
def test_greedy_steps_equal_rerunning_the_prefix(kind):
    en.set_random_seed(1)
    model = task.build_model(kind, 30, 40, 8, en)
    rng = np.random.default_rng(0)
    source = np.where(np.arange(5) < rng.integers(1, 6, 6)[:, None], rng.integers(1, 30, (6, 5)), 0)
    start, end, max_length = 2, 3, 7
    ids, probabilities = tr.greedy_decode(model, source, start, end, max_length)
    stepper = tr.decoder_stepper(model, source)
    tokens = np.full(len(source), start)
    for row in range(len(source)):
        prefix = [start]
        for t in range(max_length):
            full = model.predict([source[row:row + 1], np.array([prefix])], verbose=0)[0, -1]   # the whole prefix again
            full[0] = -1.0
            assert ids[row, t] == full.argmax()
            np.testing.assert_allclose(probabilities[row, t], full.max(), rtol=1e-5)
            prefix.append(int(full.argmax()))
            if prefix[-1] == end:
                assert (ids[row, t + 1:] == 0).all()
                break
    # one step carries the state: every distribution matches the full run's last position
    for t in range(3):
        probs = stepper(tokens[:, None])[:, 0]
        full = model.predict([source, np.column_stack([np.full(len(source), start), ids[:, :t]])
                              if t else np.full((len(source), 1), start)], verbose=0)[:, -1]
        np.testing.assert_allclose(probs, full, rtol=1e-5, atol=1e-7)
        tokens = ids[:, t]
        if (tokens == 0).any():
            break


def test_translate_command_on_a_saved_model(trained, capsys):
    model, _, _, path = trained
    sentences = ["I'm hungry.", "Go!"]
    expected = tr.translate(model, tr.load_vocabularies(path), sentences)
    capsys.readouterr()
    assert main(["translate", str(path), *sentences]) == 0
    assert capsys.readouterr().out.splitlines() == expected
    assert main(["translate", str(path), "Go!", "--max-length", "1"]) == 0
    assert len(capsys.readouterr().out.split()) <= 1
    assert main(["translate", str(path), "Go!", "..", " "]) == 2
    assert "sentences [2]" in capsys.readouterr().err
    assert main(["translate", str(path), "Go!", "--max-length", "0"]) == 2
    assert "max_length must be a positive int, got 0" in capsys.readouterr().err
    alone = path.with_name("alone.npz")
    shutil.copy(path, alone)  # the model without its vocabularies
    assert main(["translate", str(alone), "Go!"]) == 2
    assert "alone.vocab.json" in capsys.readouterr().err


def test_vocabulary_file_is_checked(tmp_path):
    path = tmp_path / "m.npz"
    (tmp_path / "m.vocab.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="seqfuse-translation-vocabularies"):
        tr.load_vocabularies(path)
    tr.save_vocabularies(path, ["", "[UNK]", "go"], ["", "[UNK]", "va"], 5)
    with pytest.raises(ValueError, match=r"\[start\]"):
        tr.load_vocabularies(path)
    assert tr.vocabulary_path("a/fr.keras") == "a/fr.vocab.json"


def test_translate_reads_a_keras_archive_too(trained, tmp_path, capsys):
    pytest.importorskip("h5py")
    model, _, _, path = trained
    archive = tmp_path / "fr.keras"
    model.save(archive)
    shutil.copy(tr.vocabulary_path(path), tr.vocabulary_path(archive))
    capsys.readouterr()
    assert main(["translate", str(archive), "I'm hungry.", "Where is Tom?"]) == 0
    assert capsys.readouterr().out.splitlines() == tr.translate(model, tr.load_vocabularies(path),
                                                                ["I'm hungry.", "Where is Tom?"])
