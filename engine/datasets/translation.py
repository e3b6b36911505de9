"""English -> French sentence pairs from the Tatoeba Project (tatoeba.org), pairs
prepared by manythings.org/anki (CC BY 2.0 FR): the 18,065 shortest pairs of the
``fra-eng`` set, 10,974 distinct English sentences of 3-18 characters, for
sequence-to-sequence learning.
"""
import numpy as np

from engine.datasets._readers import bundled_file

FILE = "fra-eng_short.txt"


def load_data():
    """Every pair in file order (shortest English first), as a list of
    ``(english, french)`` str tuples, exactly as in the file (French keeps its
    narrow no-break spaces before "!" and "?").

    >>> pairs = load_data()
    >>> len(pairs), pairs[1]
    (18065, ('Run!', 'Cours\\u202f!'))
    """
    pairs = []
    with bundled_file(FILE) as path, open(path, encoding="utf-8", newline="") as f:
        for lineno, line in enumerate(f.read().split("\n"), 1):
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) != 2:
                raise ValueError(f"{FILE}:{lineno}: expected 2 tab-separated fields, got {len(fields)}")
            pairs.append((fields[0], fields[1]))
    return pairs


def split_by_source(pairs, test_split=0.1, seed=0):
    """Split pairs into ``(train, test)`` by their first (source) sentence: all
    translations of one English sentence land on the same side, so no test
    sentence was seen in training. ``int(S * test_split)`` of the S distinct
    sources, drawn with ``np.random.RandomState(seed)``, go to test; each side
    keeps the file order.

    >>> train, test = split_by_source(load_data())
    >>> len({en for en, _ in test}), len(train) + len(test)
    (1097, 18065)
    """
    if not isinstance(test_split, (int, float)) or not 0.0 <= test_split < 1.0:
        raise ValueError(f"test_split: expected a float in [0, 1), got {test_split!r}")
    sources = list(dict.fromkeys(source for source, _ in pairs))
    order = np.random.RandomState(seed).permutation(len(sources))
    test_sources = {sources[i] for i in order[:int(len(sources) * test_split)]}
    train = [pair for pair in pairs if pair[0] not in test_sources]
    test = [pair for pair in pairs if pair[0] in test_sources]
    return train, test
