"""Batches and windows for training: mini-batches with a seeded shuffle,
Keras's train/validation split and ``timeseries_dataset_from_array``, the
book's lookback/delay generator, normalization from the training range, and
length-bucketed batches of variable-length sequences.

NumPy and the standard library only; everything yields NumPy arrays.

Example::

    >>> import numpy as np
    >>> from engine.data import timeseries_dataset_from_array
    >>> data = np.arange(10)
    >>> ds = timeseries_dataset_from_array(data[:-3], data[3:], sequence_length=3, batch_size=4)
    >>> x, y = next(iter(ds))
    >>> x.tolist(), y.tolist()
    ([[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]], [3, 4, 5, 6])
"""
import math
import numbers

import numpy as np

from engine.text import pad_sequences

__all__ = [
    "Batches", "train_validation_split", "timeseries_dataset_from_array",
    "TimeseriesDataset", "timeseries_generator", "fit_normalization",
    "normalize", "BucketedBatches",
]

# Keras's Normalization layer divides by max(std, epsilon) with this epsilon.
_EPSILON = 1e-7


def _int_arg(name, v, minimum):
    if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {v!r}")
    return int(v)


def _take(a, idx):
    """a[idx] for arrays; a list comprehension for lists (ragged data)."""
    if isinstance(a, np.ndarray):
        return a[idx]
    return [a[i] for i in idx]


def _check_aligned(arrays, where):
    if not arrays:
        raise ValueError(f"{where}: expected at least one array")
    n = len(arrays[0])
    for k, a in enumerate(arrays):
        if isinstance(a, (str, bytes)) or not hasattr(a, "__len__"):
            raise TypeError(f"{where}: argument {k} must be an array or list, got {type(a).__name__}")
        if len(a) != n:
            raise ValueError(f"{where}: arrays must have the same length along axis 0, "
                             f"got {[len(x) for x in arrays]}")
    return n


class Batches:
    """Mini-batches over aligned arrays (or lists), one epoch per iteration.

    With ``shuffle=True`` each epoch draws a new permutation from a generator
    seeded once with ``seed``, so the sequence of epochs is reproducible.
    Yields a tuple of batches (or the batch itself for a single array); the
    last batch is smaller unless ``drop_remainder``.

    >>> x, y = np.arange(5), np.arange(5) * 10
    >>> [b[1].tolist() for b in Batches(x, y, batch_size=2)]
    [[0, 10], [20, 30], [40]]
    """

    def __init__(self, *arrays, batch_size=32, shuffle=False, seed=None, drop_remainder=False):
        self.n = _check_aligned(arrays, "Batches")
        self.arrays = arrays
        self.batch_size = _int_arg("batch_size", batch_size, 1)
        self.shuffle, self.drop_remainder = bool(shuffle), bool(drop_remainder)
        self._rng = np.random.default_rng(seed)

    def __len__(self):
        if self.drop_remainder:
            return self.n // self.batch_size
        return math.ceil(self.n / self.batch_size)

    def __iter__(self):
        order = self._rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            out = tuple(_take(a, idx) for a in self.arrays)
            yield out if len(out) > 1 else out[0]


def train_validation_split(*arrays, validation_split=0.2, shuffle=False, seed=None):
    """Split aligned arrays as Keras's ``fit(validation_split=...)`` does: the
    first floor(N * (1 - validation_split)) samples train, the last ones
    validate (taken before any shuffling unless ``shuffle=True``).

    Returns ``(train, val)``; each a tuple of arrays, or an array if one was given.

    >>> tr, va = train_validation_split(np.arange(10), validation_split=0.3)
    >>> tr.tolist(), va.tolist()
    ([0, 1, 2, 3, 4, 5, 6], [7, 8, 9])
    """
    n = _check_aligned(arrays, "train_validation_split")
    if not isinstance(validation_split, numbers.Real) or not 0.0 < validation_split < 1.0:
        raise ValueError(f"validation_split: expected a float in (0, 1), got {validation_split!r}")
    split_at = int(math.floor(n * (1.0 - validation_split)))
    if split_at == 0 or split_at == n:
        raise ValueError(f"validation_split: {n} samples are too few to split with "
                         f"validation_split={validation_split}")
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    train = tuple(_take(a, order[:split_at]) for a in arrays)
    val = tuple(_take(a, order[split_at:]) for a in arrays)
    return (train, val) if len(arrays) > 1 else (train[0], val[0])


class TimeseriesDataset:
    """The iterable returned by `timeseries_dataset_from_array`.

    ``start_positions``: int64 [S], window starts relative to ``start_index``
    in the order of the next epoch. Iterating yields ``(x, y)`` with x [B,
    sequence_length, ...] and y [B, ...] (or only x without targets);
    ``len()`` is the number of batches. With shuffling, every epoch after the
    first reshuffles the starts from the same seeded stream (Keras's tf.data
    pipeline also reorders each epoch).
    """

    def __init__(self, data, targets, start_positions, sequence_length, sampling_rate,
                 batch_size, start_index, rng=None):
        self.data, self.targets = data, targets
        self.start_positions = start_positions
        self._offsets = np.arange(sequence_length) * sampling_rate
        self.batch_size, self.start_index = batch_size, start_index
        self._rng, self._epochs = rng, 0

    def __len__(self):
        if self.batch_size is None:
            return len(self.start_positions)
        return math.ceil(len(self.start_positions) / self.batch_size)

    def __iter__(self):
        if self._rng is not None and self._epochs > 0:
            self._rng.shuffle(self.start_positions)
        self._epochs += 1
        step = self.batch_size or 1
        for lo in range(0, len(self.start_positions), step):
            pos = self.start_positions[lo:lo + step] + self.start_index
            x = self.data[pos[:, None] + self._offsets]
            y = None if self.targets is None else self.targets[pos]
            if self.batch_size is None:
                x, y = x[0], (None if y is None else y[0])
            yield x if y is None else (x, y)


def timeseries_dataset_from_array(data, targets, sequence_length, sequence_stride=1,
                                  sampling_rate=1, batch_size=128, shuffle=False, seed=None,
                                  start_index=None, end_index=None):
    """Sliding windows over a series, with ``keras.utils.timeseries_dataset_from_array``'s
    indexing: window k starts at ``s_k = start_index + k * sequence_stride`` and
    holds ``data[s_k], data[s_k + sampling_rate], ...`` (sequence_length steps),
    all before ``end_index``; its target is ``targets[s_k]`` (so pass
    ``targets = data[sequence_length:]`` to predict the next step).

    data: [T, ...]; targets: [T', ...] or None. Number of windows =
    ``min(end - start - (sequence_length - 1) * sampling_rate, len(targets))``
    starts, taken every ``sequence_stride``. ``shuffle`` permutes the starts
    with ``np.random.RandomState(seed).shuffle`` as Keras does; Keras's extra
    tf.data buffer shuffle is not reproduced, later epochs reshuffle from the
    same stream. ``batch_size=None`` yields single windows.

    >>> ds = timeseries_dataset_from_array(np.arange(8), None, 3, sequence_stride=2, batch_size=None)
    >>> [w.tolist() for w in ds]
    [[0, 1, 2], [2, 3, 4], [4, 5, 6]]
    """
    if isinstance(data, (list, tuple)):
        data = np.asarray(data)
    if not isinstance(data, np.ndarray) or data.ndim == 0:
        raise TypeError(f"data: expected an array [T, ...], got {type(data).__name__}")
    n = len(data)
    sequence_length = _int_arg("sequence_length", sequence_length, 1)
    sequence_stride = _int_arg("sequence_stride", sequence_stride, 1)
    sampling_rate = _int_arg("sampling_rate", sampling_rate, 1)
    if batch_size is not None:
        batch_size = _int_arg("batch_size", batch_size, 1)
    start = 0 if start_index is None else _int_arg("start_index", start_index, 0)
    end = n if end_index is None else _int_arg("end_index", end_index, 1)
    if start >= n:
        raise ValueError(f"start_index: must be < len(data)={n}, got {start}")
    if end > n or end <= start:
        raise ValueError(f"end_index: must be in ({start}, {n}], got {end}")
    num_seqs = end - start - (sequence_length - 1) * sampling_rate
    if num_seqs <= 0:
        raise ValueError(f"sequence_length: a window spans {(sequence_length - 1) * sampling_rate + 1} "
                         f"steps but data[{start}:{end}] has only {end - start}")
    if targets is not None:
        targets = np.asarray(targets)
        if targets.ndim == 0 or len(targets) <= start:
            raise ValueError(f"targets: expected length > start_index={start}, got shape {targets.shape}")
        num_seqs = min(num_seqs, len(targets) - start)
    positions = np.arange(0, num_seqs, sequence_stride, dtype=np.int64)
    rng = None
    if shuffle:
        if seed is None:
            seed = np.random.randint(1e6)
        rng = np.random.RandomState(seed)
        rng.shuffle(positions)
    return TimeseriesDataset(data, targets, positions, sequence_length, sampling_rate,
                             batch_size, start, rng)


def timeseries_generator(data, lookback, delay, min_index=0, max_index=None, shuffle=False,
                         batch_size=128, step=6, target_column=1, seed=None):
    """The book's infinite weather generator (Deep Learning with Python, 6.3).

    Yields ``(samples, targets)`` forever: samples [B, lookback // step, F]
    hold rows ``data[r - lookback : r : step]`` and targets [B] are
    ``data[r + delay, target_column]`` (the whole row [B, F] when
    ``target_column`` is None), for ``r`` in [min_index + lookback, max_index).
    Sequentially, ``r`` walks on in batches and wraps to the start when the
    next batch would reach max_index; with ``shuffle`` each batch draws ``r``
    uniformly (``np.random.RandomState(seed).randint``).
    max_index defaults to ``len(data) - delay - 1`` as in the book.

    >>> g = timeseries_generator(np.arange(40.).reshape(20, 2), lookback=4, delay=1,
    ...                          step=2, batch_size=3)
    >>> x, y = next(g); x.shape, y.tolist()
    ((3, 2, 2), [11.0, 13.0, 15.0])
    """
    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"data: expected a 2-D array [T, F], got shape {data.shape}")
    lookback = _int_arg("lookback", lookback, 1)
    delay = _int_arg("delay", delay, 0)
    step = _int_arg("step", step, 1)
    batch_size = _int_arg("batch_size", batch_size, 1)
    min_index = _int_arg("min_index", min_index, 0)
    if max_index is None:
        max_index = len(data) - delay - 1
    max_index = _int_arg("max_index", max_index, 1)
    if max_index + delay > len(data):
        raise ValueError(f"max_index: targets reach row max_index - 1 + delay = {max_index - 1 + delay}, "
                         f"beyond the {len(data)} rows of data")
    if min_index + lookback >= max_index:
        raise ValueError(f"lookback: min_index + lookback = {min_index + lookback} leaves no rows "
                         f"before max_index = {max_index}")
    if target_column is not None and not -data.shape[1] <= target_column < data.shape[1]:
        raise ValueError(f"target_column: expected in [0, {data.shape[1]}), got {target_column}")
    return _generate(data, lookback, delay, min_index, max_index, shuffle, batch_size, step,
                     target_column, np.random.RandomState(seed))


def _generate(data, lookback, delay, min_index, max_index, shuffle, batch_size, step,
              target_column, rng):
    dtype = data.dtype if np.issubdtype(data.dtype, np.floating) else np.float64
    offsets = np.arange(-lookback, 0, step)
    i = min_index + lookback
    while True:
        if shuffle:
            rows = rng.randint(min_index + lookback, max_index, size=batch_size)
        else:
            if i + batch_size >= max_index:
                i = min_index + lookback
            rows = np.arange(i, min(i + batch_size, max_index))
            i += len(rows)
        samples = data[rows[:, None] + offsets].astype(dtype, copy=False)
        target_rows = data[rows + delay]
        targets = target_rows if target_column is None else target_rows[:, target_column]
        yield samples, targets.astype(dtype, copy=False)


def fit_normalization(data, train_end=None, axis=0):
    """Mean and standard deviation (ddof=0, as NumPy and Keras's
    Normalization) over ``data[:train_end]`` only, so validation and test
    rows do not leak into the statistics. Returns ``(mean, std)`` with the
    reduced axis kept out: [F] for data [T, F].

    >>> fit_normalization(np.array([[1.], [3.], [100.]]), train_end=2)
    (array([2.]), array([1.]))
    """
    data = np.asarray(data)
    if not np.issubdtype(data.dtype, np.number):
        raise TypeError(f"data: expected a numeric array, got dtype {data.dtype}")
    train = data if train_end is None else data[: _int_arg("train_end", train_end, 1)]
    if train.shape[axis] == 0:
        raise ValueError("train_end: the training range is empty")
    if np.isnan(train).any():
        raise ValueError("data: the training range holds NaN; fill missing values first "
                         "(e.g. jfk_weather.load_data(fill='interpolate'))")
    return train.mean(axis=axis), train.std(axis=axis)


def normalize(data, train_end=None, mean=None, std=None, axis=0):
    """Standardize ``data`` with statistics from its training range
    ``data[:train_end]`` (or the given ``mean``/``std``): ``(x - mean) /
    max(std, 1e-7)``. Returns ``(normalized, mean, std)``; data is not modified.

    >>> z, m, s = normalize(np.array([[1.], [3.], [100.]]), train_end=2)
    >>> z.ravel().tolist()
    [-1.0, 1.0, 98.0]
    """
    data = np.asarray(data)
    if (mean is None) != (std is None):
        raise ValueError("mean/std: pass both or neither")
    if mean is None:
        mean, std = fit_normalization(data, train_end, axis)
    mean, std = np.asarray(mean), np.asarray(std)
    z = (data - np.expand_dims(mean, axis)) / np.maximum(np.expand_dims(std, axis), _EPSILON)
    if np.issubdtype(data.dtype, np.floating):
        z = z.astype(data.dtype, copy=False)
    return z, mean, std


class BucketedBatches:
    """Padded mini-batches of variable-length sequences, grouped by length so
    each batch is padded only to its own longest member.

    sequences: list of N sequences ([T_i] or [T_i, F]); targets: [N, ...] or None.
    ``bucket_boundaries`` (increasing ints) puts lengths in [b_{k-1}, b_k)
    into bucket k, as ``tf.data``'s ``bucket_by_sequence_length``; without
    boundaries the sequences are sorted by length and cut into batches (the
    least padding). With ``shuffle`` the members of a bucket and the order of
    batches change every epoch (seeded once). Each batch is
    ``pad_sequences(batch, maxlen=min(maxlen, longest), padding=..., ...)``.

    Yields ``(x [B, L_batch, ...], y [B, ...])`` or x alone without targets.

    >>> seqs = [[1], [1, 2, 3], [1, 2], [1, 2, 3, 4]]
    >>> [x.shape for x in BucketedBatches(seqs, batch_size=2, shuffle=False)]
    [(2, 2), (2, 4)]
    """

    def __init__(self, sequences, targets=None, batch_size=32, bucket_boundaries=None,
                 shuffle=True, seed=None, maxlen=None, padding="post", truncating="post",
                 value=0, dtype="int32", drop_remainder=False):
        self.sequences = list(sequences)
        if not self.sequences:
            raise ValueError("sequences: empty; nothing to batch")
        for i, s in enumerate(self.sequences):
            if isinstance(s, (str, bytes)) or not hasattr(s, "__len__"):
                raise TypeError(f"sequences[{i}]: expected a list/array, got {type(s).__name__}")
        if targets is not None:
            _check_aligned((self.sequences, targets), "BucketedBatches")
            targets = np.asarray(targets)
        self.targets = targets
        self.lengths = np.array([len(s) for s in self.sequences], dtype=np.int64)
        self.batch_size = _int_arg("batch_size", batch_size, 1)
        if bucket_boundaries is not None:
            b = np.asarray(bucket_boundaries)
            if b.ndim != 1 or b.size == 0 or not np.issubdtype(b.dtype, np.integer) or np.any(np.diff(b) <= 0):
                raise ValueError(f"bucket_boundaries: expected increasing ints, got {bucket_boundaries!r}")
            bucket_boundaries = b
        self.bucket_boundaries = bucket_boundaries
        if maxlen is not None:
            maxlen = _int_arg("maxlen", maxlen, 1)
        self.shuffle, self.drop_remainder = bool(shuffle), bool(drop_remainder)
        self._pad = dict(maxlen=maxlen, padding=padding, truncating=truncating, value=value, dtype=dtype)
        self._rng = np.random.default_rng(seed)
        self._n_batches = len(self.batch_indices())

    def batch_indices(self):
        """One epoch's batches as a list of index arrays (a fresh draw when shuffling)."""
        n = len(self.sequences)
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        if self.bucket_boundaries is None:
            buckets = [order[np.argsort(self.lengths[order], kind="stable")]]
        else:
            ids = np.searchsorted(self.bucket_boundaries, self.lengths[order], side="right")
            buckets = [order[ids == k] for k in range(len(self.bucket_boundaries) + 1)]
        batches = []
        for members in buckets:
            for lo in range(0, len(members), self.batch_size):
                chunk = members[lo:lo + self.batch_size]
                if len(chunk) == self.batch_size or not self.drop_remainder:
                    batches.append(chunk)
        if self.shuffle:
            batches = [batches[k] for k in self._rng.permutation(len(batches))]
        return batches

    def __len__(self):
        return self._n_batches

    def __iter__(self):
        for idx in self.batch_indices():
            seqs = [self.sequences[i] for i in idx]
            longest = int(self.lengths[idx].max())
            maxlen = longest if self._pad["maxlen"] is None else min(longest, self._pad["maxlen"])
            x = pad_sequences(seqs, **{**self._pad, "maxlen": max(maxlen, 1)})
            yield x if self.targets is None else (x, self.targets[idx])
