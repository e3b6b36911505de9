"""engine.data: batching, Keras's split and timeseries windows (cases ported
from Keras 3.15's timeseries_dataset_utils_test.py and docstring examples, plus
a brute-force reference of the documented indexing), the book's generator
(transcribed from Deep Learning with Python, 6.3), normalization and bucketing.
"""
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import data as D
from engine.data import timeseries_dataset_from_array as tsd


def _collect(ds):
    xs, ys = [], []
    for b in ds:
        x, y = b if isinstance(b, tuple) else (b, None)
        xs.append(x)
        ys.append(y)
    return xs, ys


# ---- Batches / train_validation_split -----------------------------------------

def test_batches_cover_every_sample_once_and_seed_is_reproducible():
    x, y = np.arange(103), np.arange(103) * 2
    b = D.Batches(x, y, batch_size=10, shuffle=True, seed=7)
    assert len(b) == 11
    epoch1 = list(b)
    xs = np.concatenate([bx for bx, _ in epoch1])
    assert sorted(xs.tolist()) == list(range(103))
    assert all((by == 2 * bx).all() for bx, by in epoch1)
    epoch2 = np.concatenate([bx for bx, _ in b])
    assert not np.array_equal(xs, epoch2)  # a new permutation each epoch
    again = D.Batches(x, y, batch_size=10, shuffle=True, seed=7)
    np.testing.assert_array_equal(np.concatenate([bx for bx, _ in again]), xs)
    np.testing.assert_array_equal(np.concatenate([bx for bx, _ in again]), epoch2)


def test_batches_order_lists_and_drop_remainder():
    assert [b.tolist() for b in D.Batches(np.arange(5), batch_size=2)] == [[0, 1], [2, 3], [4]]
    b = D.Batches(["a", "b", "c"], np.arange(3), batch_size=2, drop_remainder=True)
    assert len(b) == 1 and [(t, y.tolist()) for t, y in b] == [(["a", "b"], [0, 1])]
    with pytest.raises(ValueError, match="same length"):
        D.Batches(np.arange(3), np.arange(4))
    with pytest.raises(ValueError, match="batch_size"):
        D.Batches(np.arange(3), batch_size=0)


def test_train_validation_split_is_keras_floor_split():
    x, y = np.arange(10), np.arange(10) * 3
    (xt, yt), (xv, yv) = D.train_validation_split(x, y, validation_split=0.25)
    assert xt.tolist() == list(range(7)) and xv.tolist() == [7, 8, 9]  # floor(10 * 0.75) = 7
    np.testing.assert_array_equal(yv, xv * 3)
    tr, va = D.train_validation_split(np.arange(10), validation_split=0.25, shuffle=True, seed=0)
    assert sorted(tr.tolist() + va.tolist()) == list(range(10)) and len(va) == 3
    with pytest.raises(ValueError, match="too few"):
        D.train_validation_split(np.arange(1), validation_split=0.1)
    with pytest.raises(ValueError, match="validation_split"):
        D.train_validation_split(np.arange(10), validation_split=1.5)


def test_train_validation_split_equals_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    pytest.importorskip("keras")
    from keras.src.trainers.data_adapters.array_slicing import train_validation_split as keras_split

    for n, vs in [(10, 0.25), (7, 0.3), (100, 0.2), (33, 0.5)]:
        x = np.arange(n)
        (ours_t, ours_v), (ref_t, ref_v) = D.train_validation_split(x, validation_split=vs), \
            keras_split((x,), validation_split=vs)
        np.testing.assert_array_equal(ours_t, ref_t[0])
        np.testing.assert_array_equal(ours_v, ref_v[0])


# ---- timeseries_dataset_from_array --------------------------------------------

def test_keras_docstring_examples():
    # Example 1: indices 0..98, sequence_length=10, sampling_rate=2, stride=3.
    xs, _ = _collect(tsd(np.arange(99), None, 10, sampling_rate=2, sequence_stride=3, batch_size=1000))
    w = xs[0]
    assert w[0].tolist() == list(range(0, 20, 2)) and w[1].tolist() == list(range(3, 22, 2))
    assert w[2].tolist() == list(range(6, 25, 2)) and w[-1].tolist() == list(range(78, 97, 2))
    # Example 2: predict the next step.
    data = np.random.default_rng(0).normal(size=50)
    x, y = next(iter(tsd(data[:-10], data[10:], sequence_length=10)))
    np.testing.assert_array_equal(x[0], data[:10])
    assert y[0] == data[10]
    # Example 3: non-overlapping many-to-many windows.
    X = np.arange(100)
    xi = next(iter(tsd(X, None, 20, sequence_stride=20)))
    yi = next(iter(tsd(X * 2, None, 20, sequence_stride=20)))
    np.testing.assert_array_equal(xi[0], X[:20])
    np.testing.assert_array_equal(yi[1], 2 * X[20:40])


def test_keras_basics_regression_no_targets_sampling_rate():
    xs, ys = _collect(tsd(np.arange(100), np.arange(100) * 2, sequence_length=9, batch_size=5))
    assert len(xs) == 19 and xs[0].shape == (5, 9) and xs[18].shape == (2, 9)
    for i, (x, y) in enumerate(zip(xs, ys)):
        np.testing.assert_array_equal(x[:, 0] * 2, y)
        for j in range(len(x)):
            np.testing.assert_array_equal(x[j], np.arange(i * 5 + j, i * 5 + j + 9))
    data = np.arange(10)
    pairs = list(tsd(data, data[3:], sequence_length=3, batch_size=1))
    assert len(pairs) == 7
    assert all(y[0] == data[3 + i] and x[0].tolist() == data[i:i + 3].tolist() for i, (x, y) in enumerate(pairs))
    xs, _ = _collect(tsd(np.arange(50), None, sequence_length=10, batch_size=5))
    assert len(xs) == 9 and xs[8].shape == (1, 10)
    xs, ys = _collect(tsd(np.arange(100), np.arange(100) * 2, sequence_length=9, batch_size=5, sampling_rate=2))
    assert len(xs) == 17 and xs[16].shape == (4, 9)
    np.testing.assert_array_equal(xs[3][1], np.arange(16, 34, 2))


def test_keras_start_end_index_and_not_batched():
    ds = tsd(np.arange(100), None, 9, batch_size=5, sequence_stride=3, sampling_rate=2,
             start_index=10, end_index=90)
    xs, _ = _collect(ds)
    allx = np.concatenate(xs)
    assert allx.max() < 90 and allx.min() == 10
    assert len(allx) == len(range(0, 80 - 16, 3))
    sample = next(iter(tsd(np.arange(100), None, 9, batch_size=None, shuffle=True)))
    assert sample.shape == (9,)


def _reference_windows(n, L, stride, rate, start, end, n_targets):
    """The documented rule, written out one window at a time."""
    starts, s = [], start
    while s + (L - 1) * rate < end and (n_targets is None or s < n_targets):
        starts.append(s)
        s += stride
    return starts


@settings(max_examples=200, deadline=None)
@given(n=st.integers(5, 60), L=st.integers(1, 6), stride=st.integers(1, 4), rate=st.integers(1, 3),
       start=st.integers(0, 10), span=st.integers(1, 60), batch=st.integers(1, 7),
       n_targets=st.one_of(st.none(), st.integers(1, 70)))
def test_windows_match_reference(n, L, stride, rate, start, span, batch, n_targets):
    end = min(n, start + span)
    if start >= n or stride >= n or rate >= n:
        return
    data = np.arange(n) * 10
    targets = None if n_targets is None else np.arange(n_targets) + 1000
    starts = _reference_windows(n, L, stride, rate, start, end, n_targets)
    if (end - start - (L - 1) * rate) <= 0 or (targets is not None and n_targets <= start):
        with pytest.raises(ValueError):
            tsd(data, targets, L, stride, rate, batch_size=batch, start_index=start, end_index=end)
        return
    ds = tsd(data, targets, L, stride, rate, batch_size=batch, start_index=start, end_index=end)
    xs, ys = _collect(ds)
    assert len(ds) == len(xs)
    got = np.concatenate(xs) if xs else np.zeros((0, L))
    assert got.tolist() == [[10 * (s + k * rate) for k in range(L)] for s in starts]
    if targets is not None:
        assert np.concatenate(ys).tolist() == [1000 + s for s in starts]


def test_shuffle_order_is_keras_randomstate_then_reshuffles():
    data = np.arange(30)
    ds = tsd(data, data * 2, sequence_length=5, batch_size=4, shuffle=True, seed=123)
    expected = np.arange(0, 26, dtype="int32")
    np.random.RandomState(123).shuffle(expected)  # Keras's start-position shuffle
    xs, ys = _collect(ds)
    x = np.concatenate(xs)
    np.testing.assert_array_equal(x[:, 0], expected)
    np.testing.assert_array_equal(x[:, 0] * 2, np.concatenate(ys))
    x2 = np.concatenate(_collect(ds)[0])
    assert not np.array_equal(x2[:, 0], expected) and sorted(x2[:, 0]) == list(range(26))
    again = tsd(data, data * 2, sequence_length=5, batch_size=4, shuffle=True, seed=123)
    np.testing.assert_array_equal(np.concatenate(_collect(again)[0]), x)


def test_timeseries_multifeature_shapes():
    data = np.arange(200, dtype=np.float32).reshape(100, 2)
    x, y = next(iter(tsd(data, data[:, 1], sequence_length=6, sampling_rate=2, batch_size=8)))
    assert x.shape == (8, 6, 2) and y.shape == (8,) and x.dtype == np.float32
    np.testing.assert_array_equal(x[3, :, 0], data[3:15:2, 0])


def test_timeseries_bad_input():
    with pytest.raises(ValueError, match="start_index"):
        tsd(np.arange(10), None, 3, start_index=-1)
    with pytest.raises(ValueError, match="start_index"):
        tsd(np.arange(10), None, 3, start_index=11)
    with pytest.raises(ValueError, match="end_index"):
        tsd(np.arange(10), None, 3, end_index=-1)
    with pytest.raises(ValueError, match="end_index"):
        tsd(np.arange(10), None, 3, end_index=11)
    with pytest.raises(ValueError, match="sampling_rate"):
        tsd(np.arange(10), None, 3, sampling_rate=0)
    with pytest.raises(ValueError, match="sequence_stride"):
        tsd(np.arange(10), None, 3, sequence_stride=0)
    with pytest.raises(ValueError, match="only 10"):
        tsd(np.arange(10), None, 11)
    with pytest.raises(ValueError, match="sequence_length"):
        tsd(np.arange(10), None, 0)
    with pytest.raises(TypeError, match="data"):
        tsd(5, None, 3)


# ---- the book's generator -----------------------------------------------------

def _book_generator(data, lookback, delay, min_index, max_index, shuffle, batch_size, step, rng):
    """Deep Learning with Python (1st ed.), listing 6.33, with a seeded RNG."""
    if max_index is None:
        max_index = len(data) - delay - 1
    i = min_index + lookback
    while 1:
        if shuffle:
            rows = rng.randint(min_index + lookback, max_index, size=batch_size)
        else:
            if i + batch_size >= max_index:
                i = min_index + lookback
            rows = np.arange(i, min(i + batch_size, max_index))
            i += len(rows)
        samples = np.zeros((len(rows), lookback // step, data.shape[-1]))
        targets = np.zeros((len(rows),))
        for j, row in enumerate(rows):
            indices = range(rows[j] - lookback, rows[j], step)
            samples[j] = data[indices]
            targets[j] = data[rows[j] + delay][1]
        yield samples, targets


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("lookback,step,delay,min_index,max_index,batch",
                         [(12, 3, 4, 0, None, 7), (10, 2, 0, 5, 60, 16), (6, 6, 2, 20, 80, 5)])
def test_generator_equals_book(shuffle, lookback, step, delay, min_index, max_index, batch):
    data = np.random.default_rng(1).normal(size=(100, 3))
    ours = D.timeseries_generator(data, lookback, delay, min_index, max_index, shuffle=shuffle,
                                  batch_size=batch, step=step, seed=5)
    ref = _book_generator(data, lookback, delay, min_index, max_index, shuffle, batch, step,
                          np.random.RandomState(5))
    for _ in range(25):  # several wrap-arounds of the sequential walk
        (xo, yo), (xr, yr) = next(ours), next(ref)
        np.testing.assert_array_equal(xo, xr)
        np.testing.assert_array_equal(yo, yr)


def test_generator_whole_row_targets_and_errors():
    data = np.arange(60.0).reshape(20, 3)
    x, y = next(D.timeseries_generator(data, 4, 2, step=1, batch_size=2, target_column=None))
    np.testing.assert_array_equal(y, data[[6, 7]])
    with pytest.raises(ValueError, match="lookback"):
        D.timeseries_generator(data, 30, 1)
    with pytest.raises(ValueError, match="max_index"):
        D.timeseries_generator(data, 4, 5, max_index=19)
    with pytest.raises(ValueError, match="2-D"):
        D.timeseries_generator(np.arange(10.0), 2, 1)
    with pytest.raises(ValueError, match="target_column"):
        D.timeseries_generator(data, 4, 1, target_column=3)


# ---- normalization -------------------------------------------------------------

def test_normalize_uses_training_range_only():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(500, 4)).astype(np.float32)
    z, mean, std = D.normalize(data, train_end=300)
    np.testing.assert_allclose(mean, data[:300].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(std, data[:300].std(axis=0), rtol=1e-6)
    np.testing.assert_allclose(z[:300].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(z[:300].std(axis=0), 1, rtol=1e-4)
    assert z.dtype == np.float32 and data[0, 0] != z[0, 0]  # input untouched, new array
    leaked = data.copy()
    leaked[300:] += 1000.0  # later rows must not move the statistics
    _, m2, s2 = D.normalize(leaked, train_end=300)
    np.testing.assert_array_equal(m2, mean)
    np.testing.assert_array_equal(s2, std)
    z3, _, _ = D.normalize(data[300:], mean=mean, std=std)
    np.testing.assert_allclose(z3, z[300:], rtol=1e-5)


def test_normalize_constant_column_nan_and_errors():
    data = np.array([[1.0, 5.0], [3.0, 5.0], [100.0, 5.0]])
    z, _, std = D.normalize(data, train_end=2)
    assert std[1] == 0 and np.all(z[:, 1] == 0)  # max(std, 1e-7) guard, as Keras
    with pytest.raises(ValueError, match="NaN"):
        D.fit_normalization(np.array([[1.0], [np.nan]]))
    with pytest.raises(ValueError, match="both"):
        D.normalize(data, mean=np.zeros(2))
    with pytest.raises(TypeError, match="numeric"):
        D.fit_normalization(np.array(["a", "b"]))


# ---- bucketing -------------------------------------------------------------------

def _padding_cells(batches):
    return sum(int((x == 0).sum()) for x, _ in batches)


def test_bucketed_batches_cover_all_and_pad_less():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 60, size=300)
    seqs = [list(range(1, n + 1)) for n in lengths]  # ids >= 1, so 0 counts padding
    bb = D.BucketedBatches(seqs, lengths, batch_size=16, shuffle=True, seed=3)
    epoch = list(bb)
    assert len(epoch) == len(bb) == 19
    seen = sorted(int(n) for _, y in epoch for n in y)
    assert seen == sorted(lengths.tolist())
    for x, y in epoch:  # targets travel with their sequences
        assert x.shape[1] == y.max()
        np.testing.assert_array_equal((x != 0).sum(axis=1), y)
    naive = [(x, y) for x, y in D.Batches(D.pad_sequences(seqs, padding="post"), lengths, batch_size=16)]
    assert _padding_cells(epoch) < 0.2 * _padding_cells(naive)
    order2 = [y.tolist() for _, y in bb]
    assert order2 != [y.tolist() for _, y in epoch]
    again = D.BucketedBatches(seqs, lengths, batch_size=16, shuffle=True, seed=3)
    assert [y.tolist() for _, y in again] == [y.tolist() for _, y in epoch]


def test_bucket_boundaries_and_padding_options():
    seqs = [[1] * n for n in [1, 2, 5, 6, 9, 3, 10]]
    bb = D.BucketedBatches(seqs, batch_size=4, bucket_boundaries=[4, 8], shuffle=False,
                           padding="pre", value=-1)
    xs = list(bb)
    assert [x.shape for x in xs] == [(3, 3), (2, 6), (2, 10)]
    assert xs[0].tolist() == [[-1, -1, 1], [-1, 1, 1], [1, 1, 1]]
    bb = D.BucketedBatches(seqs, batch_size=4, shuffle=False, maxlen=4, drop_remainder=True)
    assert [x.shape for x in bb] == [(4, 4)]
    feats = [np.ones((n, 3), np.float32) for n in (2, 4, 3)]
    x = next(iter(D.BucketedBatches(feats, batch_size=3, shuffle=False, dtype="float32")))
    assert x.shape == (3, 4, 3) and x.dtype == np.float32


def test_bucketed_batches_bad_input():
    with pytest.raises(ValueError, match="empty"):
        D.BucketedBatches([])
    with pytest.raises(ValueError, match="bucket_boundaries"):
        D.BucketedBatches([[1]], bucket_boundaries=[5, 3])
    with pytest.raises(TypeError, match=r"sequences\[1\]"):
        D.BucketedBatches([[1], 7])
    with pytest.raises(ValueError, match="same length"):
        D.BucketedBatches([[1], [2]], targets=[1])


def test_docstring_examples_run():
    import doctest

    res = doctest.testmod(D, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0 and res.attempted > 0
