"""The pride_and_prejudice character model: the task on a slice of the book, `seqfuse generate`,
step-by-step decoding (engine.generation.Stepper) against the whole-sequence forward, and
temperature sampling."""
import contextlib
import io
import json
import math

import numpy as np
import pytest

import engine as en
from engine import cli
from engine.cli import main
from engine.generation import Stepper, reweight, sample
from engine.tasks import pride_and_prejudice as task

L = en.layers


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(model path, --history JSON, printed report) of one epoch on the first 5,000 characters."""
    folder = tmp_path_factory.mktemp("charlm")
    model_path, history = folder / "char.npz", folder / "history.json"
    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        assert main(["train", "--data", "pride_and_prejudice", "--max-chars", "5000", "--epochs", "1",
                     "--units", "16", "--step", "2", "--sequence-length", "30",
                     "--history", str(history), "--save", str(model_path)]) == 0
    return model_path, json.loads(history.read_text()), report.getvalue()


@pytest.fixture(scope="module")
def saved_model(trained):
    return trained[0]


# ---- the task -------------------------------------------------------------------------------

def test_train_on_a_slice_reports_bits_per_char_and_samples(trained):
    model_path, result, out = trained
    assert set(result["history"]) == {"loss", "acc", "val_loss", "val_acc"}
    assert result["val_bits_per_char"] == pytest.approx(result["val_loss"] / math.log(2), rel=1e-12)
    assert result["val_loss"] == pytest.approx(result["history"]["val_loss"][-1], rel=1e-6)
    # one epoch on 4,500 characters already beats the uniform code over the vocabulary
    vocabulary = task.load_vocabulary(task.vocabulary_path(model_path), en.load_model(model_path))
    assert result["val_bits_per_char"] < math.log2(len(vocabulary["chars"]))
    assert vocabulary["lowercase"] and vocabulary["sequence_length"] == 30
    assert set(result["samples"]) == {"0.2", "0.5", "1.0"}
    seed_text = en.datasets.pride_and_prejudice.load_data().lower()[4500:4530]  # validation: last 10%
    for sample_text in result["samples"].values():
        assert sample_text.startswith(seed_text) and len(sample_text) == 30 + task.SAMPLE_LENGTH
        assert set(sample_text) <= set(vocabulary["chars"])
    assert "bits/char" in out and "--- temperature 0.2" in out and "--- temperature 1.0" in out


def test_train_gru(tmp_path):
    history = tmp_path / "h.json"
    assert main(["train", "--data", "pride_and_prejudice", "--model", "gru", "--max-chars", "1500",
                 "--epochs", "1", "--units", "4", "--step", "5", "--history", str(history)]) == 0
    assert np.isfinite(json.loads(history.read_text())["val_bits_per_char"])


def test_windows_take_every_step_and_predict_the_next_id():
    ids = np.arange(20)
    x, y = task.windows(ids, 6, 4)
    assert x.shape == (4, 6) and y.tolist() == [6, 10, 14, 18]
    for i in range(len(x)):
        assert x[i].tolist() == list(range(4 * i, 4 * i + 6))
    assert np.shares_memory(x, ids)               # a view: fit copies one batch at a time
    with pytest.raises(ValueError, match="validation part has 6 characters"):
        task.windows(ids[:6], 6, 1, "validation")


def test_train_options_default_per_task(monkeypatch):
    seen = {}

    def fake_run(args, en):
        seen.update(vars(args))
        return None, None, {}

    monkeypatch.setattr(task, "run", fake_run)
    assert main(["train", "--data", "pride_and_prejudice"]) == 0
    assert (seen["epochs"], seen["units"], seen["batch_size"], seen["sequence_length"]) == (6, 128, 128, 60)
    assert main(["train", "--data", "pride_and_prejudice", "--epochs", "1", "--units", "8"]) == 0
    assert (seen["epochs"], seen["units"], seen["batch_size"]) == (1, 8, 128)
    monkeypatch.setattr(en.tasks.get("jfk_weather"), "run", fake_run)
    assert main(["train", "--data", "jfk_weather"]) == 0
    assert {k: seen[k] for k in cli._TRAIN_DEFAULTS} == cli._TRAIN_DEFAULTS


def test_train_rejects_a_slice_too_short_for_a_window(capsys):
    assert main(["train", "--data", "pride_and_prejudice", "--max-chars", "300", "--epochs", "1"]) == 2
    assert "validation part has 30 characters" in capsys.readouterr().err
    assert main(["train", "--data", "pride_and_prejudice", "--step", "0"]) == 2
    assert "--step must be a positive int, got 0" in capsys.readouterr().err


# ---- seqfuse generate -----------------------------------------------------------------------

def _generate(capsys, model_path, *args):
    code = main(["generate", str(model_path), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_generate_is_reproducible_with_a_seed(saved_model, capsys):
    args = ["--seed-text", "It is a truth", "--length", "50", "--temperature", "0.2", "1.0"]
    code, first, _ = _generate(capsys, saved_model, *args, "--seed", "3")
    assert code == 0
    assert _generate(capsys, saved_model, *args, "--seed", "3")[1] == first
    assert _generate(capsys, saved_model, *args, "--seed", "4")[1] != first
    blocks = first.split("--- temperature ")[1:]
    assert [b.split(" ", 1)[0] for b in blocks] == ["0.2", "1.0"]
    for block in blocks:
        text = block.split("\n", 1)[1].rstrip("\n")
        assert text.startswith("it is a truth") and len(text) == len("it is a truth") + 50


def test_generate_without_a_seed_prints_the_one_it_drew(saved_model, capsys):
    code, out, _ = _generate(capsys, saved_model, "--length", "5", "--temperature", "1")
    seed = int(out.split("pass --seed ")[1].split(" ")[0])
    assert code == 0
    assert _generate(capsys, saved_model, "--length", "5", "--temperature", "1",
                     "--seed", str(seed))[1] == out.split("\n", 1)[1]


def test_generate_at_temperature_zero_is_greedy(saved_model):
    model = en.load_model(saved_model)
    vocabulary = task.load_vocabulary(task.vocabulary_path(saved_model), model)
    chars, prompt = vocabulary["chars"], "she said"
    text = task.generate_text(model, vocabulary, prompt, 12, [0.0], np.random.default_rng(0))[0.0]
    for n in range(len(prompt), len(text)):       # each character is the argmax given the text so far
        ids = task.encode(text[:n], chars)[None]
        assert text[n] == chars[int(np.argmax(model.predict(ids, verbose=0)[0]))]


def test_generate_fails_clearly(saved_model, tmp_path, capsys):
    code, _, err = _generate(capsys, saved_model, "--seed-text", "naïve #1")
    assert code == 2 and "outside the model's vocabulary" in err and "'#ï'" in err
    code, _, err = _generate(capsys, saved_model, "--length", "-1")
    assert code == 2 and "length must be a non-negative int" in err
    code, _, err = _generate(capsys, saved_model, "--temperature", "-0.5")
    assert code == 2 and "temperature must be a finite number >= 0" in err

    orphan = tmp_path / "orphan.npz"
    orphan.write_bytes(saved_model.read_bytes())
    code, _, err = _generate(capsys, orphan)
    assert code == 2 and "no character vocabulary at" in err and "orphan.vocab.json" in err

    vocabulary_file = tmp_path / "orphan.vocab.json"
    data = json.loads(task.vocabulary_path(saved_model).read_text())
    vocabulary_file.write_text(json.dumps({**data, "chars": data["chars"][:-1]}))
    code, _, err = _generate(capsys, orphan)
    assert code == 2 and "belongs to another model" in err
    vocabulary_file.write_text(json.dumps({"chars": ["a"]}))
    code, _, err = _generate(capsys, orphan)
    assert code == 2 and "is not a seqfuse.char_vocabulary file" in err


# ---- Stepper: one step at a time, states carried ---------------------------------------------

def _char_model(*recurrent, vocabulary=11, dtype="float64"):
    model = en.Sequential([L.Embedding(vocabulary, 5, dtype=dtype), *recurrent,
                           L.Dense(vocabulary, activation="softmax", dtype=dtype)])
    model.build((None, None))
    return model


@pytest.mark.parametrize("recurrent", [
    lambda: [L.LSTM(6, dtype="float64")],
    lambda: [L.GRU(6, dtype="float64")],
    lambda: [L.GRU(6, reset_after=False, dtype="float64")],
    lambda: [L.SimpleRNN(6, dtype="float64")],
    lambda: [L.LSTM(7, return_sequences=True, dtype="float64"), L.Dropout(0.5),
             L.GRU(6, dtype="float64")],
], ids=["lstm", "gru", "gru_reset_before", "simple_rnn", "stacked"])
def test_stepwise_equals_the_whole_sequence_forward(recurrent):
    en.set_random_seed(1)
    model = _char_model(*recurrent())
    ids = np.random.default_rng(2).integers(0, 11, (3, 13))        # [B, T]
    stepper = Stepper(model)
    stepper(ids[:, :5])                                             # the prompt once
    for t in range(5, 12):
        stepper(ids[:, t:t + 1])                                    # then one id per call
    last = stepper(ids[:, 12:])                                     # [B, V]
    np.testing.assert_allclose(last, model.predict(ids, verbose=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(Stepper(model)(ids), model.predict(ids, verbose=0), rtol=0, atol=1e-12)


def test_stepper_starts_from_given_states_and_ends_with_the_layers_final_states():
    en.set_random_seed(3)
    rng = np.random.default_rng(4)
    lstm = L.LSTM(4, return_sequences=True, return_state=True, dtype="float64")
    x = rng.standard_normal((2, 9, 3))                              # [B, T, F]
    h0, c0 = rng.standard_normal((2, 2, 4))                         # an encoder's states, say
    outputs, h, c = lstm(x, initial_state=[h0, c0])                 # the whole sequence at once
    stepper = Stepper([lstm], states=[[h0, c0]])
    steps = np.concatenate([stepper(x[:, t:t + 1]) for t in range(9)], axis=1)
    np.testing.assert_allclose(steps, outputs.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(stepper.states[0][0], h.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(stepper.states[0][1], c.numpy(), rtol=0, atol=1e-12)
    stepper.reset()
    assert stepper.states == [None]
    np.testing.assert_allclose(stepper(x), lstm(x)[0].numpy(), rtol=0, atol=1e-12)


def test_stepper_feeds_each_step_once(monkeypatch):
    """The prompt runs through the kernel once; then every call runs exactly one step."""
    en.set_random_seed(0)
    model = _char_model(L.LSTM(6, dtype="float64"))
    steps_per_call, lstm = [], en.functional.lstm

    def counting_lstm(x, *args, **kwargs):
        steps_per_call.append(x.shape[1])
        return lstm(x, *args, **kwargs)

    monkeypatch.setattr(en.functional, "lstm", counting_lstm)
    task.generate_text(model, {"chars": list("abcdefghijk"), "lowercase": False}, "abcabcabca", 20,
                       [0.5, 1.0], np.random.default_rng(0))
    assert steps_per_call == [10] + [1] * 40


def _functional_pair():
    x = en.Input((None, 3))
    return x, L.Dense(2)(L.LSTM(4)(x))


def test_stepper_rejects_what_cannot_step():
    with pytest.raises(ValueError, match="reads the sequence backwards"):
        Stepper(_char_model(L.Bidirectional(L.LSTM(3))))
    with pytest.raises(ValueError, match="reads the sequence backwards"):
        Stepper(_char_model(L.GRU(3, go_backwards=True)))
    with pytest.raises(ValueError, match="is not built"):
        Stepper([L.LSTM(3)])
    for not_a_chain in ([], "lstm", en.Model(*_functional_pair())):
        with pytest.raises(TypeError, match="Sequential or a non-empty list of layers"):
            Stepper(not_a_chain)
    stepper = Stepper(_char_model(L.LSTM(3, dtype="float64")))
    with pytest.raises(ValueError, match="steps >= 1"):
        stepper(np.zeros((2, 0), np.int64))
    with pytest.raises(ValueError, match="one list per recurrent layer"):
        stepper.reset([None, None])


# ---- sampling with temperature ---------------------------------------------------------------

def _book_reweight(preds, temperature):
    """Deep Learning with Python, 8.1, listing 8.6 (the draw left out)."""
    preds = np.log(np.asarray(preds).astype("float64")) / temperature
    exp_preds = np.exp(preds)
    return exp_preds / np.sum(exp_preds)


@pytest.mark.parametrize("temperature", [0.2, 0.5, 1.0, 1.7])
def test_reweight_is_the_books(temperature):
    p = np.random.default_rng(0).dirichlet(np.ones(9)).astype(np.float32)
    np.testing.assert_allclose(reweight(p, temperature), _book_reweight(p, temperature), rtol=1e-12)


def test_sampling_is_reproducible_with_a_seeded_generator():
    p = np.random.default_rng(1).dirichlet(np.ones(30), size=4)    # [B, V]
    draws = [[sample(p, 0.7, rng).tolist() for _ in range(50)]
             for rng in (np.random.default_rng(7), np.random.default_rng(7))]
    assert draws[0] == draws[1]
    assert draws[0] != [sample(p, 0.7, np.random.default_rng(8)).tolist() for _ in range(50)]


def test_sampling_follows_the_reweighted_distribution():
    p = np.array([0.5, 0.0, 0.3, 0.15, 0.05])
    rng = np.random.default_rng(0)
    for temperature in (1.0, 0.5):
        counts = np.bincount(sample(np.tile(p, (20_000, 1)), temperature, rng), minlength=5)
        np.testing.assert_allclose(counts / 20_000, reweight(p, temperature), atol=0.012)
        assert counts[1] == 0                                       # p = 0 is never drawn


def test_temperature_towards_zero_is_argmax():
    p = np.random.default_rng(2).dirichlet(np.ones(40), size=16)
    for temperature in (0.0, 1e-3, 1e-9):
        assert sample(p, temperature, np.random.default_rng(0)).tolist() == np.argmax(p, axis=-1).tolist()
    assert sample([0.2, 0.5, 0.3], 0) == 1 and isinstance(sample([0.2, 0.5, 0.3], 0), int)
    np.testing.assert_array_equal(reweight([0.2, 0.5, 0.3], 0), [0, 1, 0])


def test_sampling_rejects_bad_input():
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
        sample([0.5, 0.5], -1)
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
        sample([0.5, 0.5], float("nan"))
    with pytest.raises(ValueError, match="finite and >= 0"):
        sample([0.5, np.nan], 1.0)
    with pytest.raises(ValueError, match="finite and >= 0"):
        sample([1.5, -0.5], 1.0)
    with pytest.raises(ValueError, match="positive sum"):
        sample([0.0, 0.0], 1.0)
    with pytest.raises(ValueError, match="shape"):
        sample(0.5, 1.0)
