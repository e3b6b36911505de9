"""English -> French with an encoder-decoder: the text standardization both sides share, the
two vocabularies (saved beside the model as JSON), greedy decoding one step at a time, and
the `seqfuse translate` command.

The model is the one `seqfuse train --data translation` builds (engine/tasks/translation.py):
inputs [source ids [B,S], decoder inputs [B,T]] -> next-token probabilities [B,T,V], with the
layers named below, so decoding finds them in a loaded model.

Example:
    >>> model, vocabularies = load("fr.npz")              # fr.npz and fr.vocab.json
    >>> translate(model, vocabularies, ["I'm hungry.", "Where is Tom?"])
    ["j'ai faim !", 'où est tom ?']
"""
from __future__ import annotations

import json
import os
import re

import numpy as np

from .tensor import no_grad

START, END = "[start]", "[end]"
SOURCE_EMBEDDING, ENCODER = "source_embedding", "encoder"
TARGET_EMBEDDING, DECODER, NEXT_TOKEN = "target_embedding", "decoder", "next_token"
VOCABULARY_FORMAT = "seqfuse-translation-vocabularies"

# Sentence punctuation becomes tokens of its own ("faim." -> "faim ."); apostrophes and
# hyphens stay inside words ("j'ai", "arrête-toi"), as in the Tatoeba text.
_PUNCTUATION = re.compile(r"""([!?.,:;«»"()&$%])""")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})


def standardize(text: str) -> str:
    """Lowercase (all of Unicode: "À" -> "à"), typographic apostrophes as "'", punctuation
    split off as tokens, any whitespace (French's narrow no-break spaces too) as one space.

    >>> standardize("J’ai faim\\u202f!")
    "j'ai faim !"
    """
    if not isinstance(text, str):
        raise TypeError(f"standardize: text must be a str, got {type(text).__name__}")
    return " ".join(_PUNCTUATION.sub(r" \1 ", text.lower().translate(_APOSTROPHES)).split())


def vocabulary_path(model_path) -> str:
    """Where the vocabularies of a model saved at `model_path` live: "fr.npz" -> "fr.vocab.json"."""
    return os.path.splitext(os.fspath(model_path))[0] + ".vocab.json"


def save_vocabularies(model_path, source, target, max_length) -> str:
    """Write both vocabularies (lists of tokens, id = position) and the longest output to
    decode beside the model; plain JSON, so loading runs no code. Returns the path."""
    from .models.saving import atomic_write
    path = vocabulary_path(model_path)
    entry = {"format": VOCABULARY_FORMAT, "version": 1, "standardize": "engine.translation.standardize",
             "source_vocabulary": list(source), "target_vocabulary": list(target),
             "max_length": int(max_length)}
    with atomic_write(path) as f:
        f.write(json.dumps(entry, ensure_ascii=False).encode("utf-8"))
    return path


def load_vocabularies(model_path) -> dict:
    """The dict save_vocabularies wrote beside `model_path` (checked)."""
    path = vocabulary_path(model_path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"translation vocabularies {path!r} not found beside the model "
                                f"{os.fspath(model_path)!r}; `seqfuse train --data translation --save` writes both")
    with open(path, encoding="utf-8") as f:
        entry = json.load(f)
    if not isinstance(entry, dict) or entry.get("format") != VOCABULARY_FORMAT:
        raise ValueError(f"{path}: expected a {VOCABULARY_FORMAT!r} JSON file, got format "
                         f"{entry.get('format') if isinstance(entry, dict) else type(entry).__name__!r}")
    for key in ("source_vocabulary", "target_vocabulary"):
        if not isinstance(entry.get(key), list) or not all(isinstance(t, str) for t in entry[key]):
            raise ValueError(f"{path}: {key} must be a list of str")
    if START not in entry["target_vocabulary"] or END not in entry["target_vocabulary"]:
        raise ValueError(f"{path}: target_vocabulary must hold {START!r} and {END!r}")
    return entry


def load(model_path):
    """(model, vocabularies) saved by `seqfuse train --data translation --save PATH`."""
    from .models import load_model
    return load_model(model_path), load_vocabularies(model_path)


def decoder_stepper(model, source_ids):
    """An engine.generation.Stepper over the model's decoder (target embedding, decoder GRU,
    output layer), started from the encoder's final state for source_ids int [B, S]
    (0 = padding). Each call stepper(tokens [B, 1]) returns next-token probabilities
    [B, 1, V] and carries the GRU state to the next call: no step recomputes the prefix.
    Dropout, the identity at inference, is left out.

    >>> stepper = decoder_stepper(model, source_ids)
    >>> probabilities = stepper(np.full((len(source_ids), 1), start_id))[:, 0]   # [B, V]
    """
    from .generation import Stepper
    with no_grad():
        state = model.get_layer(ENCODER)(model.get_layer(SOURCE_EMBEDDING)(np.asarray(source_ids)))  # [B, H]
    return Stepper([model.get_layer(name) for name in (TARGET_EMBEDDING, DECODER, NEXT_TOKEN)],
                   states=[[state]])


def greedy_decode(model, source_ids, start_id, end_id, max_length):
    """Most likely next token at every step, until every sentence has produced `end_id` or
    `max_length` tokens. Padding (id 0) is never chosen.

    Returns (ids int64 [B, L], probabilities float [B, L]): the chosen tokens (end included;
    0 after it) and the probability the model gave each.
    """
    if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)) or max_length < 1:
        raise ValueError(f"greedy_decode: max_length must be a positive int, got {max_length!r}")
    source_ids = np.asarray(source_ids)
    stepper = decoder_stepper(model, source_ids)
    tokens = np.full(len(source_ids), start_id, dtype=np.int64)
    done = np.zeros(len(source_ids), dtype=bool)
    ids, probabilities = [], []
    for _ in range(max_length):
        probs = stepper(tokens[:, None])[:, 0]                          # [B, V]
        probs[:, 0] = -1.0  # padding is not a word
        tokens = probs.argmax(axis=-1)
        ids.append(np.where(done, 0, tokens))
        probabilities.append(np.where(done, 0.0, probs[np.arange(len(tokens)), tokens]))
        done |= tokens == end_id
        if done.all():
            break
    return np.stack(ids, axis=1), np.stack(probabilities, axis=1)


def to_tokens(ids, vocabulary):
    """Token lists from decoded ids [B, L]: up to (without) the end token, padding dropped."""
    out = []
    for row in np.asarray(ids):
        words = []
        for i in row:
            token = vocabulary[i]
            if token == END:
                break
            if i:
                words.append(token)
        out.append(words)
    return out


def vectorizer(vocabulary):
    """A TextVectorization over already-standardized text with a fixed vocabulary."""
    from .text import TextVectorization
    return TextVectorization(standardize=None, vocabulary=vocabulary)


def translate(model, vocabularies, sentences, max_length=None):
    """English sentences -> French sentences (tokens joined by spaces, lowercase)."""
    if isinstance(sentences, str):
        raise TypeError("translate: sentences must be a list of str, got one str; wrap it in a list")
    texts = [standardize(s) for s in sentences]
    empty = [i for i, text in enumerate(texts) if not text]
    if empty:
        raise ValueError(f"translate: sentences {empty} have no words to translate")
    source = vectorizer(vocabularies["source_vocabulary"])(texts)
    target = vocabularies["target_vocabulary"]
    ids, _ = greedy_decode(model, source, target.index(START), target.index(END),
                           vocabularies["max_length"] if max_length is None else max_length)
    return [" ".join(words) for words in to_tokens(ids, target)]


def main(args) -> int:
    """`seqfuse translate MODEL SENTENCE...`: one translation per line."""
    model, vocabularies = load(args.model)
    for sentence in translate(model, vocabularies, args.sentences, args.max_length):
        print(sentence)
    return 0
