"""English -> French sentence pairs from the Tatoeba Project (tatoeba.org), pairs
prepared by manythings.org/anki (CC BY 2.0 FR): the 18,065 shortest pairs of the
``fra-eng`` set, 10,974 distinct English sentences of 3-18 characters, for
sequence-to-sequence learning.
"""
import numpy as np

from engine.datasets._readers import read_tab_separated

FILE = "fra-eng_short.txt"


def load_data():
    """Every pair in file order (shortest English first), as a list of
    ``(english, french)`` str tuples, exactly as in the file (French keeps its
    narrow no-break spaces before "!" and "?").

    >>> pairs = load_data()
    >>> len(pairs), pairs[1]
    (18065, ('Run!', 'Cours\\u202f!'))
    """
    return [(english, french) for english, french in read_tab_separated(FILE, 2)]


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
