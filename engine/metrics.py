"""Metrics on arrays (no gradients; NumPy, or CuPy on the GPU), with Keras's names; "acc"/"accuracy" resolve by
loss as Keras does (binary, categorical or sparse categorical accuracy).

Every built-in metric takes (y_true, y_pred, mask=None): a mask (y_pred's shape without the
last axis, the mask of a sequence output) averages over the kept entries only, as Keras.
roc_auc and corpus_bleu (translations) are whole-set scores (a mean of per-batch AUCs or BLEUs
is not the score), so they are called on predictions, not named in compile().
"""
from __future__ import annotations

import collections
import math

import numpy as np

from .tensor import array_module


def _mean(values, mask) -> float:
    """values: [B, ...] per entry -> their mean where mask is true (mask None = everywhere).

    On the GPU the mean stays there as a float64 0-d array (no host round trip per batch);
    float() reads it."""
    xp = array_module(values)
    if xp is not np:
        values = values.astype(np.float64)
        if mask is None:
            return values.mean()
        kept = xp.broadcast_to(xp.asarray(mask, bool), values.shape)
        return xp.where(kept, values, 0).sum() / xp.maximum(kept.sum(), 1)   # 0.0 with none kept
    values = np.asarray(values, dtype=np.float64)
    if mask is None:
        return float(np.mean(values))
    mask = np.broadcast_to(np.asarray(mask, bool), values.shape)
    return float(values[mask].mean()) if mask.any() else 0.0


def _pair(y_true, y_pred):
    """(y_true, y_pred) as arrays where y_pred lives (NumPy labels are copied to the GPU)."""
    xp = array_module(y_pred)
    return xp.asarray(y_true), xp.asarray(y_pred), xp


def binary_accuracy(y_true, y_pred, threshold=0.5, mask=None) -> float:
    y_true, y_pred, _ = _pair(y_true, y_pred)
    hits = (y_pred > threshold) == (y_true.reshape(y_pred.shape) > 0.5)
    return _mean(hits.mean(axis=-1), mask)


def categorical_accuracy(y_true, y_pred, mask=None) -> float:
    y_true, y_pred, xp = _pair(y_true, y_pred)
    return _mean(xp.argmax(y_true, -1) == xp.argmax(y_pred, -1), mask)


def sparse_categorical_accuracy(y_true, y_pred, mask=None) -> float:
    y_true, y_pred, xp = _pair(y_true, y_pred)
    return _mean(y_true.reshape(y_pred.shape[:-1]) == xp.argmax(y_pred, -1), mask)


def mean_absolute_error(y_true, y_pred, mask=None) -> float:
    y_true, y_pred, xp = _pair(y_true, y_pred)
    return _mean(xp.abs(y_pred - y_true.reshape(y_pred.shape)).mean(axis=-1), mask)


def mean_squared_error(y_true, y_pred, mask=None) -> float:
    y_true, y_pred, _ = _pair(y_true, y_pred)
    return _mean(((y_pred - y_true.reshape(y_pred.shape)) ** 2).mean(axis=-1), mask)


def roc_auc(y_true, y_score) -> float:
    """Area under the ROC curve, as sklearn.metrics.roc_auc_score for binary labels: the
    probability that a random positive scores above a random negative, ties counting 1/2
    (the Mann-Whitney U statistic from tie-averaged ranks, so it is exact, not binned).

    y_true: [N] (or [N, 1]) labels in {0, 1} (or bool), both present; y_score: [N] (or
    [N, 1]) finite scores, higher meaning "positive".

    Example:
        >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        0.75
    """
    y_true, y_score = np.asarray(y_true), np.asarray(y_score, dtype=np.float64)
    if not (_is_column(y_true) and _is_column(y_score) and len(y_true) == len(y_score)):
        raise ValueError(f"roc_auc: y_true and y_score must be [N] or [N, 1] of one length N, "
                         f"got shapes {y_true.shape} and {y_score.shape}")
    y_true, y_score = y_true.reshape(-1), y_score.reshape(-1)
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError(f"roc_auc: y_true must hold 0/1 labels, got values {np.unique(y_true)[:5]}")
    if not np.isfinite(y_score).all():
        raise ValueError("roc_auc: y_score must be finite, got NaN or infinity")
    positive = y_true == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"roc_auc: y_true needs both classes, got {n_pos} positives and {n_neg} negatives")
    ranks = _average_ranks(y_score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _is_column(a):
    return a.ndim == 1 or (a.ndim == 2 and a.shape[1] == 1)


def _average_ranks(values):
    """1-based ranks of values [N]; tied values share the mean of their ranks."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    # Tie groups are runs of equal sorted values; each gets the mean of ranks first..last.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values))
    ranks[order] = np.repeat((starts + 1 + ends) / 2, ends - starts)
    return ranks


def corpus_bleu(hypotheses, references_lists, max_n=4) -> float:
    """Corpus BLEU (Papineni et al. 2002) in [0, 1]; x100 for the usual 0-100 scale.

    hypotheses: [N] token lists (a str is split on whitespace); references_lists: [N] lists
    of one or more references each, in the same form. Counts are summed over the corpus:
    each n-gram precision (n = 1..max_n) clips a hypothesis n-gram's count at its largest
    count in any one reference; the brevity penalty exp(1 - r/c) compares the total
    hypothesis length c with r, the sum of each sentence's closest reference length (the
    shorter on ties), as sacrebleu and NLTK do. No smoothing: a precision with no match
    gives 0. Tokenization is the caller's (the tokens given are the tokens scored).

    >>> corpus_bleu(["the cat sat on the mat"], [["the cat sat on the mat", "a cat sat"]])
    1.0
    """
    if isinstance(max_n, bool) or not isinstance(max_n, int) or max_n < 1:
        raise ValueError(f"corpus_bleu: max_n must be a positive int, got {max_n!r}")
    hypotheses, references_lists = list(hypotheses), list(references_lists)
    if len(hypotheses) != len(references_lists):
        raise ValueError(f"corpus_bleu: {len(hypotheses)} hypotheses but {len(references_lists)} "
                         "reference lists; expected one list of references per hypothesis")
    matches, totals = [0] * max_n, [0] * max_n
    hyp_length = ref_length = 0
    for i, (hypothesis, references) in enumerate(zip(hypotheses, references_lists)):
        if isinstance(references, str) or not references:
            raise ValueError(f"corpus_bleu: references_lists[{i}] must be a non-empty list of "
                             f"references, got {references!r:.60}")
        hyp = _tokens(hypothesis)
        refs = [_tokens(r) for r in references]
        hyp_length += len(hyp)
        ref_length += min((len(r) for r in refs), key=lambda n: (abs(n - len(hyp)), n))
        for n in range(1, max_n + 1):
            counts = _ngram_counts(hyp, n)
            most = collections.Counter()
            for ref in refs:
                most |= _ngram_counts(ref, n)  # | keeps the larger count of each n-gram
            matches[n - 1] += sum(min(c, most[g]) for g, c in counts.items())
            totals[n - 1] += max(len(hyp) - n + 1, 0)
    if min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals)) / max_n
    brevity = 1.0 if hyp_length > ref_length else math.exp(1 - ref_length / hyp_length)
    return brevity * math.exp(log_precision)


def _tokens(text):
    return text.split() if isinstance(text, str) else list(text)


def _ngram_counts(tokens, n):
    return collections.Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


_BY_NAME = {"binary_accuracy": binary_accuracy, "categorical_accuracy": categorical_accuracy,
            "sparse_categorical_accuracy": sparse_categorical_accuracy,
            "mae": mean_absolute_error, "mean_absolute_error": mean_absolute_error,
            "mse": mean_squared_error, "mean_squared_error": mean_squared_error}
_ACCURACY_FOR_LOSS = {"binary_crossentropy": binary_accuracy,
                      "categorical_crossentropy": categorical_accuracy,
                      "sparse_categorical_crossentropy": sparse_categorical_accuracy}


def get(identifier, loss_name=None):
    """(name, fn) for a metric name or callable; "acc"/"accuracy" follow the loss."""
    if callable(identifier):
        return getattr(identifier, "__name__", "metric"), identifier
    if identifier in ("acc", "accuracy"):
        fn = _ACCURACY_FOR_LOSS.get(loss_name)
        if fn is None:
            raise ValueError(f"metric {identifier!r}: cannot infer the accuracy for loss {loss_name!r}; "
                             "name it (binary_accuracy, categorical_accuracy, sparse_categorical_accuracy)")
        return identifier, fn
    if identifier in _BY_NAME:
        return identifier, _BY_NAME[identifier]
    raise ValueError(f"metric: expected a callable, 'acc' or one of {sorted(_BY_NAME)}, got {identifier!r}")
