"""Text preprocessing with Keras 3 semantics: standardize, split, n-grams,
`TextVectorization`, `pad_sequences`, stable hashing, one-hot and bag-of-words
encodings, and pretrained GloVe vectors.

NumPy and the standard library only; nothing here touches the autograd core.

Where Keras has the function, the numbers are Keras's (checked against Keras
3.15's source; see docs/text_and_data.md). Two Keras details that surprise:

* ``"lower"`` lowercases ASCII letters only, because Keras calls
  ``tf.strings.lower`` without ``encoding="utf-8"``: ``"École"`` stays
  ``"École"``. Pass ``standardize=lambda s: s.lower()`` for Unicode folding.
* ``"whitespace"`` splits on ASCII whitespace (space, \\t \\n \\v \\f \\r), as
  TensorFlow's ``StringSplitV2`` does, not on Python's wider set (\\xa0 ...).

Example::

    >>> from engine.text import TextVectorization
    >>> tv = TextVectorization(output_mode="int", output_sequence_length=4)
    >>> tv.adapt(["the cat sat", "the dog"])
    >>> tv.get_vocabulary()
    ['', '[UNK]', 'the', 'sat', 'dog', 'cat']
    >>> tv(["the bird sat"]).tolist()
    [[2, 1, 3, 0]]
"""
import collections
import itertools
import numbers
import os
import re
import string

import numpy as np

from engine._text_encoding import (  # noqa: F401  (re-exported public API)
    bag_of_words,
    hashing_trick,
    load_glove,
    one_hot_chars,
    one_hot_hashed,
    one_hot_words,
    pad_sequences,
    text_to_word_sequence,
    vectorize_sequences,
)
from engine.utils import terminal_progress

__all__ = [
    "standardize", "split", "ngrams", "TextVectorization", "pad_sequences",
    "hashing_trick", "text_to_word_sequence", "one_hot_words", "one_hot_hashed", "one_hot_chars",
    "vectorize_sequences", "bag_of_words", "load_glove",
]

MASK_TOKEN = ""
OOV_TOKEN = "[UNK]"
OUTPUT_MODES = ("int", "multi_hot", "count", "tf_idf")
_STANDARDIZE = ("lower_and_strip_punctuation", "lower", "strip_punctuation")
_SPLIT = ("whitespace", "character")

# Keras strips r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']', which is exactly
# string.punctuation; translate() deletes the same characters ~10x faster.
_STRIP_TABLE = str.maketrans("", "", string.punctuation)
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_PUNCT_BYTES = string.punctuation.encode("ascii")
# Characters Python's str.split() treats as whitespace but TF's split does not
# (TF splits on ASCII " \t\n\v\f\r" only).
_PY_ONLY_SPACE = re.compile("[\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")
_TF_TOKEN = re.compile("[^ \t\n\v\f\r]+")
_ADAPT_CHUNK = 10_000        # documents per step of adapt on an in-memory corpus
_ADAPT_PROGRESS = 50_000     # corpora from this size up show a progress bar (on a terminal)


def _lower_ascii(s):
    return s.lower() if s.isascii() else s.translate(_ASCII_LOWER)


def _tf_whitespace_split(s):
    if _PY_ONLY_SPACE.search(s) is None:
        return s.split()  # same tokens; search + split is ~2.5x faster than findall
    return _TF_TOKEN.findall(s)


def _check_str(x, where, index=None):
    if not isinstance(x, str):
        at = "" if index is None else f" at index {index}"
        raise TypeError(f"{where}: expected str items, got {type(x).__name__}{at}: {x!r:.60}")
    return x


def _standardizer(mode):
    if mode is None:
        return None
    if callable(mode):
        return mode
    if mode == "lower_and_strip_punctuation":
        return lambda s: _lower_ascii(s).translate(_STRIP_TABLE)
    if mode == "lower":
        return _lower_ascii
    if mode == "strip_punctuation":
        return lambda s: s.translate(_STRIP_TABLE)
    raise ValueError(f"standardize: expected one of {_STANDARDIZE}, a callable or None, got {mode!r}")


def _byte_standardizer(mode):
    """The built-in modes on UTF-8 bytes, as TF runs them: bytes.lower() and
    deleting ASCII punctuation touch ASCII bytes only, which never occur inside
    a multi-byte UTF-8 sequence, so the result is valid UTF-8."""
    lower = mode in ("lower", "lower_and_strip_punctuation")
    strip = mode in ("strip_punctuation", "lower_and_strip_punctuation")

    def run(b):
        if lower:
            b = b.lower()
        return b.translate(None, _PUNCT_BYTES) if strip else b
    return run


def _splitter(mode):
    if mode is None:
        return lambda s: [s]
    if callable(mode):
        return mode
    if mode == "whitespace":
        return _tf_whitespace_split
    if mode == "character":
        return list
    raise ValueError(f"split: expected one of {_SPLIT}, a callable or None, got {mode!r}")


def _ngram_widths(n):
    if n is None:
        return None
    if isinstance(n, numbers.Integral) and not isinstance(n, bool):
        if n < 1:
            raise ValueError(f"ngrams: expected an integer >= 1, got {n}")
        return tuple(range(1, int(n) + 1))
    if isinstance(n, tuple) and n and all(isinstance(w, numbers.Integral) and w >= 1 for w in n):
        return tuple(int(w) for w in n)
    raise ValueError(f"ngrams: expected None, an int >= 1 or a tuple of ints >= 1, got {n!r}")


def standardize(text, mode="lower_and_strip_punctuation"):
    """Standardize one string (or a list of strings) the way Keras does.

    mode: "lower_and_strip_punctuation" | "lower" | "strip_punctuation" |
    callable(str) -> str | None.

    >>> standardize("Hello, World!")
    'hello world'
    """
    fn = _standardizer(mode) or (lambda s: s)
    if isinstance(text, str):
        return fn(text)
    return [fn(_check_str(t, "standardize", i)) for i, t in enumerate(text)]


def split(text, mode="whitespace"):
    """Split a string into tokens: "whitespace" (runs of ASCII whitespace,
    no empty tokens), "character" (Unicode code points) or a callable.

    >>> split("  a  b\\tc ")
    ['a', 'b', 'c']
    """
    return list(_splitter(mode)(_check_str(text, "split")))


def ngrams(tokens, n):
    """Token n-grams joined by a space, as ``tf.strings.ngrams``: an int ``n``
    means widths 1..n, a tuple lists the widths; all n-grams of the first width
    come first. Sequences shorter than a width give none of that width.

    >>> ngrams(["a", "b", "c"], 2)
    ['a', 'b', 'c', 'a b', 'b c']
    """
    return _ngrams(list(tokens), _ngram_widths(n), " ")


def _ngrams(tokens, widths, sep):
    out = []
    for w in widths:
        if w == 1:
            out.extend(tokens)
        else:
            out.extend(map(sep.join, zip(*(tokens[k:] for k in range(w)))))
    return out


def _as_documents(data, where):
    """A batch of strings as a list; a bare str is one document."""
    if isinstance(data, str):
        return [data]
    if isinstance(data, np.ndarray):
        if data.ndim == 2 and data.shape[1] == 1:
            data = data[:, 0]
        elif data.ndim != 1:
            raise ValueError(f"{where}: expected shape (N,) or (N, 1), got {data.shape}")
        data = data.tolist()
    elif not isinstance(data, (list, tuple)):
        raise TypeError(f"{where}: expected a str, list/tuple or ndarray of str, got {type(data).__name__}")
    docs = []
    for i, d in enumerate(data):
        if isinstance(d, (list, tuple)) and len(d) == 1:
            d = d[0]  # Keras-style [["text"], ...] batches
        if isinstance(d, bytes):
            d = d.decode("utf-8")
        docs.append(_check_str(d, where, i))
    return docs


class TextVectorization:
    """Map strings to token ids or bag-of-token vectors, as Keras 3's layer.

    Pipeline per document: standardize -> split -> n-grams -> look up.
    Vocabulary from `adapt`: tokens by count descending, ties by the token
    itself descending (Keras: ``np.lexsort((tokens, counts))[::-1]``).
    In "int" mode index 0 is the mask token "" and 1 is "[UNK]"; in the other
    modes index 0 is "[UNK]" and there is no mask token. ``max_tokens``
    counts those special tokens. tf-idf weight of a token = count in the
    document * log(1 + N / (1 + document frequency)) (float32); "[UNK]" gets
    the mean of the learned weights.

    Output for a batch of N strings:
      "int": int64 [N, L] (L = output_sequence_length, else the longest
             document; right-padded with 0); ``ragged=True`` gives a list of
             int64 [L_i] arrays.
      "multi_hot" | "count" | "tf_idf": float32 [N, V] (V = vocabulary size,
             or max_tokens when pad_to_max_tokens).
    A single str gives the same without the batch axis.

    >>> tv = TextVectorization(max_tokens=4, output_mode="multi_hot")
    >>> tv.adapt(["a a b", "c b a"])
    >>> tv.get_vocabulary(), tv(["a z"]).tolist()
    (['[UNK]', 'a', 'b', 'c'], [[1.0, 1.0, 0.0, 0.0]])
    """

    def __init__(self, max_tokens=None, standardize="lower_and_strip_punctuation",
                 split="whitespace", ngrams=None, output_mode="int",
                 output_sequence_length=None, pad_to_max_tokens=False,
                 vocabulary=None, idf_weights=None, ragged=False):
        if output_mode == "tf-idf":
            output_mode = "tf_idf"
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"output_mode: expected one of {OUTPUT_MODES}, got {output_mode!r}")
        if max_tokens is not None and (not isinstance(max_tokens, numbers.Integral) or max_tokens <= 1):
            raise ValueError(f"max_tokens: expected None or an integer > 1, got {max_tokens!r}")
        if pad_to_max_tokens and max_tokens is None:
            raise ValueError("pad_to_max_tokens=True needs max_tokens to be set, got max_tokens=None")
        if output_sequence_length is not None:
            if output_mode != "int":
                raise ValueError(f"output_sequence_length: only valid with output_mode='int', "
                                 f"got output_mode={output_mode!r}")
            if not isinstance(output_sequence_length, numbers.Integral) or output_sequence_length < 1:
                raise ValueError(f"output_sequence_length: expected None or an integer >= 1, "
                                 f"got {output_sequence_length!r}")
        if ragged and output_mode != "int":
            raise ValueError(f"ragged=True is only valid with output_mode='int', got {output_mode!r}")
        if split is None and ngrams is not None:
            raise ValueError("ngrams: needs a split; got split=None with ngrams set")
        self.max_tokens = max_tokens
        self.output_mode = output_mode
        self.output_sequence_length = output_sequence_length
        self.pad_to_max_tokens = bool(pad_to_max_tokens)
        self.ragged = bool(ragged)
        self.ngrams = ngrams
        self._standardize_mode, self._split_mode = standardize, split
        self._standardize = _standardizer(standardize)
        self._split = _splitter(split)
        self._ngrams = _ngram_widths(ngrams)
        self._bytes_mode = split == "whitespace" and (standardize is None or isinstance(standardize, str))
        self._bstandardize = _byte_standardizer(standardize)
        self._tokens = None  # learned tokens, without special tokens
        self._index = None
        self.idf_weights = None
        self._fixed_vocabulary = False
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)
        elif idf_weights is not None:
            raise ValueError("idf_weights: only valid together with `vocabulary`")

    @property
    def _special(self):
        return [MASK_TOKEN, OOV_TOKEN] if self.output_mode == "int" else [OOV_TOKEN]

    def tokenize(self, text):
        """The token list of one document (after standardize, split, n-grams)."""
        if self._bytes_mode:
            return [t.decode("utf-8") for t in self._byte_tokens(text)]
        if self._standardize is not None:
            text = self._standardize(text)
        toks = self._split(text)
        if self._ngrams is not None:
            toks = _ngrams(list(toks), self._ngrams, " ")
        return toks

    def _byte_tokens(self, text):
        # bytes.split() splits on exactly TF's ASCII whitespace; working on
        # bytes avoids str.translate's slow path for non-ASCII text (~3x on adapt).
        toks = self._bstandardize(text.encode("utf-8")).split()
        if self._ngrams is not None:
            toks = _ngrams(toks, self._ngrams, b" ")
        return toks

    def _doc_tokens(self, text):
        """Tokens as the lookup keys: bytes in bytes mode, else str."""
        return self._byte_tokens(text) if self._bytes_mode else self.tokenize(text)

    def adapt(self, data, batch_size=None, steps=None):
        """Learn the vocabulary (and document frequencies for tf_idf).

        data: a str, a list/tuple/ndarray of str [N] or [N, 1], or an iterable
        of such batches (a generator). ``steps`` caps the number of batches.
        """
        if self._fixed_vocabulary:
            raise ValueError("adapt: this layer was given a fixed `vocabulary`; create a new layer to adapt")
        total = None
        if isinstance(data, (str, list, tuple, np.ndarray)):
            docs = _as_documents(data, "adapt")
            # Counts add up over chunks, so chunking changes nothing but the progress shown.
            size = batch_size or _ADAPT_CHUNK
            batches, total = [docs[i:i + size] for i in range(0, len(docs), size)], len(docs)
        elif hasattr(data, "__iter__"):
            batches = (_as_documents(b, "adapt") for b in data)
        else:
            raise TypeError(f"adapt: expected strings or an iterable of batches, got {type(data).__name__}")
        counts, doc_freq, n_docs = collections.Counter(), collections.Counter(), 0
        tf_idf = self.output_mode == "tf_idf"
        # A bar on stderr, only on a terminal and for a large or unsized corpus.
        progress = terminal_progress(total, unit_name="doc") if total is None or total >= _ADAPT_PROGRESS \
            else None
        for b, docs in enumerate(batches):
            if steps is not None and b >= steps:
                break
            if progress is not None:
                progress.update(n_docs, [("adapt", f"{len(counts)} distinct tokens")])
            n_docs += len(docs)
            if self._bytes_mode and self._ngrams is None and not tf_idf:
                # Standardize and split a whole batch at once: joining on "\n"
                # cannot merge tokens, and no per-document state is needed.
                joined = b"\n".join(d.encode("utf-8") for d in docs)
                counts.update(self._bstandardize(joined).split())
                continue
            for d in docs:
                toks = self._doc_tokens(d)
                counts.update(toks)
                if tf_idf:
                    doc_freq.update(set(toks))
        if progress is not None:
            progress.update(n_docs, finalize=True)
        if n_docs == 0:
            raise ValueError("adapt: `data` is empty (0 documents); cannot learn a vocabulary")
        if self._bytes_mode:
            counts = {t.decode("utf-8"): c for t, c in counts.items()}
            doc_freq = {t.decode("utf-8"): c for t, c in doc_freq.items()}
        counts.pop(MASK_TOKEN, None)
        counts.pop(OOV_TOKEN, None)
        if not counts:
            raise ValueError(f"adapt: the {n_docs} documents contain no tokens after standardize/split")
        # Keras: np.lexsort((tokens, counts))[::-1] -> count desc, token desc.
        ordered = sorted(counts.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
        if self.max_tokens is not None:
            ordered = ordered[: self.max_tokens - len(self._special)]
        self._set_tokens([t for t, _ in ordered])
        if tf_idf:
            df = np.array([doc_freq[t] for t in self._tokens], dtype=np.float64)
            idf = np.log(1.0 + n_docs / (1.0 + df)).astype(np.float32)
            oov = np.mean(idf, dtype=np.float32)
            self.idf_weights = self._pad_idf(np.concatenate([[oov], idf]).astype(np.float32))

    def _pad_idf(self, w):
        if self.pad_to_max_tokens and self.max_tokens is not None and len(w) < self.max_tokens:
            w = np.concatenate([w, np.zeros(self.max_tokens - len(w), np.float32)])
        return w

    def _set_tokens(self, tokens):
        self._tokens = list(tokens)
        start = len(self._special)
        self._index = {t: i + start for i, t in enumerate(self._tokens)}
        if self._bytes_mode:
            self._index = {t.encode("utf-8"): i for t, i in self._index.items()}

    def set_vocabulary(self, vocabulary, idf_weights=None):
        """Set the vocabulary directly: a list of tokens or a UTF-8 file with
        one token per line, with or without the leading special tokens (as
        Keras accepts). tf_idf needs ``idf_weights`` of the same
        length as ``vocabulary``; without special tokens the "[UNK]" weight is
        their mean."""
        if isinstance(vocabulary, (str, os.PathLike)):
            if self.output_mode == "tf_idf":
                raise ValueError("vocabulary: output_mode='tf_idf' cannot load a vocabulary file")
            with open(vocabulary, encoding="utf-8") as f:
                vocabulary = f.read().splitlines()
        vocab = [_check_str(t, "set_vocabulary", i) for i, t in enumerate(list(vocabulary))]
        if not vocab:
            raise ValueError("set_vocabulary: cannot set an empty vocabulary")
        special = self._special
        has_special = vocab[: len(special)] == special
        tokens = vocab[len(special):] if has_special else vocab
        dup = [t for t, c in collections.Counter(tokens).items() if c > 1]
        if dup:
            raise ValueError(f"set_vocabulary: repeated tokens {dup[:10]}")
        if MASK_TOKEN in tokens:
            raise ValueError(f"set_vocabulary: the mask token '' may only appear first, as in {special}")
        if self.max_tokens is not None and len(special) + len(tokens) > self.max_tokens:
            raise ValueError(f"set_vocabulary: vocabulary size {len(special) + len(tokens)} "
                             f"exceeds max_tokens={self.max_tokens}")
        if self.output_mode == "tf_idf":
            if idf_weights is None:
                raise ValueError("set_vocabulary: output_mode='tf_idf' needs idf_weights")
            w = np.asarray(idf_weights, dtype=np.float64)
            if w.ndim != 1 or len(w) != len(vocab):
                raise ValueError(f"idf_weights: expected shape ({len(vocab)},) like vocabulary, got {w.shape}")
            if not has_special:
                w = np.concatenate([[np.average(w)] * len(special), w])
            self.idf_weights = self._pad_idf(w.astype(np.float32))
        elif idf_weights is not None:
            raise ValueError(f"idf_weights: only valid with output_mode='tf_idf', got {self.output_mode!r}")
        self._set_tokens(tokens)
        self._fixed_vocabulary = True

    def get_vocabulary(self, include_special_tokens=True):
        """The vocabulary as a list, index i = token id i."""
        if self._tokens is None:
            return list(self._special) if include_special_tokens else []
        return (list(self._special) if include_special_tokens else []) + list(self._tokens)

    def vocabulary_size(self):
        """Number of ids including the special tokens."""
        return len(self.get_vocabulary())

    def __call__(self, texts):
        if self._tokens is None:
            raise RuntimeError("TextVectorization: no vocabulary yet; call adapt() or pass vocabulary=")
        single = isinstance(texts, str)
        docs = _as_documents(texts, "TextVectorization")
        index, oov = self._index, len(self._special) - 1
        if self._bytes_mode:  # whitespace split never yields the mask token ""
            get, unk = index.get, itertools.repeat(oov)
            rows = [list(map(get, self._byte_tokens(d), unk)) for d in docs]
        else:
            rows = [[index.get(t, oov) if t != MASK_TOKEN else -1 for t in self.tokenize(d)] for d in docs]
        if self.output_mode == "int":
            out = self._int_output(rows)
        else:
            out = self._bag_output(rows)
        return out[0] if single else out

    def _int_output(self, rows):
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum()))
        np.maximum(flat, 0, out=flat)  # the mask token "" (-1 here) is id 0 in int mode
        L = self.output_sequence_length
        if self.ragged:
            return [r[:L] for r in np.split(flat, np.cumsum(lengths)[:-1])] if rows else []
        if L is None:
            L = int(lengths.max(initial=0))
        # One scatter instead of a Python loop per row: position of each token in its row.
        row = np.repeat(np.arange(len(rows)), lengths)
        pos = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        keep = pos < L
        out = np.zeros((len(rows), L), dtype=np.int64)
        out[row[keep], pos[keep]] = flat[keep]
        return out

    def _bag_output(self, rows):
        depth = self.max_tokens if self.pad_to_max_tokens else self.vocabulary_size()
        out = np.zeros((len(rows), depth), dtype=np.float32)
        r_idx = np.repeat(np.arange(len(rows)), [len(r) for r in rows])
        c_idx = np.fromiter((i for r in rows for i in r), dtype=np.int64, count=len(r_idx))
        keep = c_idx >= 0  # the mask token "" is dropped in these modes, as in Keras
        r_idx, c_idx = r_idx[keep], c_idx[keep]
        if self.output_mode == "multi_hot":
            out[r_idx, c_idx] = 1.0
        else:
            np.add.at(out, (r_idx, c_idx), 1.0)
            if self.output_mode == "tf_idf":
                out *= self.idf_weights[None, :]
        return out
