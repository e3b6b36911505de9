"""Rotten Tomatoes movie-review sentences (Pang & Lee), each with the mean of
about 20 human sentiment ratings on -4..+4, from the ground-truth files of
Hutto & Gilbert, "VADER", ICWSM 2014 (vaderSentiment 3.3.2, MIT licence).

10,605 sentences; the binary label is the sign of the mean rating, and the
37 sentences rated exactly 0 are dropped: 5,242 positive + 5,326 negative = 10,568.
"""
import numpy as np

from engine.datasets._readers import read_tab_separated

FILE = "movieReviewSnippets_GroundTruth.txt"


def load_ratings():
    """All 10,605 rows in file order: ``(ids, ratings, texts)`` with ids int64
    [N], ratings float64 [N] (mean rating, -4..+4) and texts an object array
    of str [N] (UTF-8, as in the source; some use '' for quotes).

    >>> ids, ratings, texts = load_ratings()
    >>> int(ids[0]), round(float(ratings[0]), 3), texts[0][:8]
    (1, 2.267, 'The Rock')
    """
    rows = read_tab_separated(FILE, 3, line_end="\r\n")
    ids = [int(row[0]) for row in rows]
    ratings = [float(row[1]) for row in rows]
    texts = [row[2] for row in rows]
    return (np.asarray(ids, dtype=np.int64), np.asarray(ratings, dtype=np.float64),
            np.asarray(texts, dtype=object))


def load_data(test_split=0.2, seed=113):
    """Binary sentiment split into train and test.

    Drops zero ratings, labels y = 1 for a positive mean rating and 0 for a
    negative one, shuffles with ``np.random.RandomState(seed)`` (113 as
    Keras's imdb) and keeps the first ``int(N * (1 - test_split))`` for training.
    Returns ``((x_train, y_train), (x_test, y_test))``: x object arrays of
    str, y int64. The default gives 8,454 training and 2,114 test sentences.

    >>> (x_train, y_train), (x_test, y_test) = load_data()
    >>> len(x_train), len(x_test), int(y_train.sum() + y_test.sum())
    (8454, 2114, 5242)
    """
    if not isinstance(test_split, (int, float)) or not 0.0 <= test_split < 1.0:
        raise ValueError(f"test_split: expected a float in [0, 1), got {test_split!r}")
    _, ratings, texts = load_ratings()
    keep = ratings != 0.0
    x, y = texts[keep], (ratings[keep] > 0).astype(np.int64)
    order = np.random.RandomState(seed).permutation(len(x))
    x, y = x[order], y[order]
    split_at = int(len(x) * (1.0 - test_split))
    return (x[:split_at], y[:split_at]), (x[split_at:], y[split_at:])
