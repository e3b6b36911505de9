"""Character-level language model on Pride and Prejudice, as in Deep Learning with Python
(Chollet, 1st ed., section 8.1): windows of 60 characters of the lowercased novel, taken every
`--step` characters, each predicting the character that follows; Embedding -> LSTM(128) (or
GRU) -> Dense(softmax) trained with sparse_categorical_crossentropy. The last 10% of the book
is held out (no window crosses the cut); the report is the validation loss in nats and bits
per character, then text sampled at temperatures 0.2, 0.5 and 1.0.

The character vocabulary is saved beside the model (`vocabulary_path`) so that
`seqfuse generate MODEL` needs nothing else; see docs/generation.md.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

MODELS = ("lstm", "gru")
DEFAULTS = {"epochs": 6, "units": 128, "batch_size": 128, "sequence_length": 60}
EMBEDDING_DIM = 32        # ids, not one-hot: as fast per step, no one-hot array (docs/generation.md)
LEARNING_RATE = 0.01      # RMSprop(lr=0.01), the book's setting
VALIDATION_FRACTION = 0.1
TEMPERATURES = (0.2, 0.5, 1.0)
SAMPLE_LENGTH = 400
VOCABULARY_FORMAT = "seqfuse.char_vocabulary"


def run(args, en):
    for option, value in (("--max-chars", args.max_chars), ("--step", args.step),
                          ("--sequence-length", args.sequence_length)):
        if value is not None and value < 1:
            raise ValueError(f"{option} must be a positive int, got {value}")
    text = en.datasets.pride_and_prejudice.load_data().lower()   # the book lowercases too
    text = text[:args.max_chars]                                  # max_chars None: all of it
    chars = sorted(set(text))
    ids = encode(text, chars)
    cut = int(len(ids) * (1 - VALIDATION_FRACTION))
    x_train, y_train = windows(ids[:cut], args.sequence_length, args.step, "training")
    x_val, y_val = windows(ids[cut:], args.sequence_length, args.step, "validation")
    print(f"{len(text)} characters, {len(chars)} distinct; {len(x_train)} training windows "
          f"(text[:{cut}]), {len(x_val)} validation windows (text[{cut}:]), "
          f"{args.sequence_length} characters every {args.step}")

    layer = {"lstm": en.layers.LSTM, "gru": en.layers.GRU}[args.model]
    model = en.Sequential([en.layers.Embedding(len(chars), EMBEDDING_DIM), layer(args.units),
                           en.layers.Dense(len(chars), activation="softmax")])
    model.compile(optimizer=en.optimizers.RMSprop(learning_rate=LEARNING_RATE),
                  loss="sparse_categorical_crossentropy", metrics=["acc"])
    history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                        validation_data=(x_val, y_val), verbose=args.verbose)
    val = model.evaluate(x_val, y_val, batch_size=1024, verbose=0, return_dict=True)
    bits = val["loss"] / math.log(2)
    print(f"validation: loss {val['loss']:.4f} nats/char - {bits:.3f} bits/char - acc {val['acc']:.4f}")

    if args.plot:
        en.utils.plot_history(history, args.plot)
        print(f"wrote {args.plot}")
    vocabulary = {"chars": chars, "lowercase": True, "sequence_length": args.sequence_length}
    if args.save:
        save_vocabulary(vocabulary_path(args.save), vocabulary)
    seed_text = text[cut:cut + args.sequence_length]
    samples = generate_text(model, vocabulary, seed_text, SAMPLE_LENGTH, TEMPERATURES,
                            np.random.default_rng(args.seed))
    _print_samples(seed_text, samples)
    return model, history, {"val_loss": val["loss"], "val_bits_per_char": bits, "val_acc": val["acc"],
                            "samples": {str(t): s for t, s in samples.items()}}


def generate(args, en):
    """`seqfuse generate MODEL`: samples from a model saved by `train --data pride_and_prejudice`."""
    model = en.load_model(args.model)
    vocabulary = load_vocabulary(vocabulary_path(args.model), model)
    seed = args.seed
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % 2**32)
        print(f"seed: {seed} (pass --seed {seed} to repeat this text)")
    samples = generate_text(model, vocabulary, args.seed_text, args.length, args.temperature,
                            np.random.default_rng(seed))
    _print_samples(args.seed_text, samples)
    return 0


def generate_text(model, vocabulary, seed_text, length, temperatures, rng) -> dict:
    """{temperature: seed_text + `length` sampled characters}.

    The seed runs through the model once (a Stepper); every temperature starts from the
    states it leaves, and each new character is one recurrent step from the states before.
    """
    from ..generation import Stepper, sample
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
        raise ValueError(f"length must be a non-negative int, got {length!r}")
    chars = vocabulary["chars"]
    prompt = seed_text.lower() if vocabulary["lowercase"] else seed_text
    if not prompt:
        raise ValueError("seed text must hold at least one character")
    stepper = Stepper(model)
    after_prompt = stepper(encode(prompt, chars)[None])          # [1, V]
    start_states = stepper.states
    samples = {}
    for temperature in temperatures:
        stepper.reset(start_states)
        probabilities, out = after_prompt, []
        for _ in range(length):
            next_id = sample(probabilities[0], temperature, rng)
            out.append(chars[next_id])
            probabilities = stepper(np.array([[next_id]]))      # one step, states carried
        samples[temperature] = prompt + "".join(out)
    return samples


def encode(text, chars) -> np.ndarray:
    """Character ids [len(text)] (int64) of `text` in the vocabulary `chars`."""
    index = {c: i for i, c in enumerate(chars)}
    unknown = sorted(set(text) - index.keys())
    if unknown:
        raise ValueError(f"text has characters outside the model's vocabulary: "
                         f"{''.join(unknown)!r}; the vocabulary is {''.join(chars)!r}")
    return np.fromiter((index[c] for c in text), np.int64, len(text))


def windows(ids, length, step, what="text"):
    """(x [N, length], y [N]): ids[i·step : i·step + length] and the id that follows each.

    x is a read-only strided view of `ids` (no copy): fit copies one batch at a time.
    """
    if len(ids) <= length:
        raise ValueError(f"the {what} part has {len(ids)} characters; windows of {length} "
                         f"need at least {length + 1} (raise --max-chars or lower --sequence-length)")
    x = np.lib.stride_tricks.sliding_window_view(ids[:-1], length)[::step]
    return x, ids[length::step]


def vocabulary_path(model_path) -> Path:
    """Where the vocabulary of the model at `model_path` lives: model.npz -> model.vocab.json."""
    return Path(os.fspath(model_path)).with_suffix(".vocab.json")


def save_vocabulary(path, vocabulary) -> None:
    """Write {"chars", "lowercase", "sequence_length"} as JSON (data only: loading runs no code)."""
    from ..models.saving import atomic_write
    text = json.dumps({"format": VOCABULARY_FORMAT, "version": 1, **vocabulary}, indent=1)
    with atomic_write(path) as f:
        f.write(text.encode("utf-8"))


def load_vocabulary(path, model=None) -> dict:
    """The vocabulary saved by save_vocabulary; with `model`, checked against its sizes."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"no character vocabulary at {path}: `seqfuse train --data "
                                f"pride_and_prejudice --save MODEL` writes it beside MODEL") from None
    if not isinstance(data, dict) or data.get("format") != VOCABULARY_FORMAT:
        raise ValueError(f"{path} is not a {VOCABULARY_FORMAT} file")
    chars = data.get("chars")
    if not isinstance(chars, list) or not chars or not all(isinstance(c, str) and len(c) == 1 for c in chars) \
            or len(set(chars)) != len(chars):
        raise ValueError(f"{path}: chars must be a non-empty list of distinct single characters")
    if model is not None:
        sizes = {"input ids (Embedding input_dim)": getattr(model.layers[0], "input_dim", None),
                 "outputs (last layer's units)": getattr(model.layers[-1], "units", None)}
        for what, size in sizes.items():
            if size != len(chars):
                raise ValueError(f"{path} has {len(chars)} characters but the model has {size} "
                                 f"{what}: the vocabulary belongs to another model")
    return {"chars": chars, "lowercase": bool(data.get("lowercase", False)),
            "sequence_length": data.get("sequence_length")}


def _print_samples(seed_text, samples):
    for temperature, text in samples.items():
        print(f"--- temperature {temperature} (seed: {seed_text!r})\n{text}\n")
