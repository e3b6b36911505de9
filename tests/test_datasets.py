"""engine.datasets: the four bundled data sets (counts from
shared/data/README.md and the files themselves) and the readers for the
formats users bring, on fixtures written here."""
import importlib.resources
import os
import subprocess
import sys

import numpy as np
import pytest

from engine import datasets
from engine.datasets import japanese_vowels, jfk_weather, movie_reviews, pride_and_prejudice
from engine.datasets import load_text_directory, read_timeseries_csv, read_ts

DATA_FILES = ["movieReviewSnippets_GroundTruth.txt", "jfk_hourly_2013.csv", "pride_and_prejudice.txt",
              "JapaneseVowels_TRAIN.ts", "JapaneseVowels_TEST.ts", "fra-eng_short.txt"]


def test_bundled_files_licences_and_provenance():
    folder = importlib.resources.files("engine.datasets") / "data"
    readme = (folder / "README.md").read_text(encoding="utf-8")
    for name in DATA_FILES:
        f = folder / name
        assert f.is_file(), name
        assert len(f.read_bytes()) < 2 * 1024 * 1024, name
        assert name.split("_")[0] in readme, name
    assert "MIT" in (folder / "LICENSE-vaderSentiment.txt").read_text(encoding="utf-8")
    for words in ("CC0", "public domain", "CC BY 4.0", "Hutto", "Kudo"):
        assert words in readme


def test_loaders_do_not_depend_on_the_working_directory(tmp_path):
    code = ("from engine.datasets import pride_and_prejudice as p, japanese_vowels as j;"
            "print(len(p.load_data()), len(j.load_data()[0][0]))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["684768", "270"]


# ---- movie_reviews -------------------------------------------------------------

def test_movie_review_ratings_file():
    ids, ratings, texts = movie_reviews.load_ratings()
    assert len(ids) == len(ratings) == len(texts) == 10605
    assert ids.tolist() == list(range(1, 10606))
    assert (ratings > 0).sum() == 5242 and (ratings < 0).sum() == 5326 and (ratings == 0).sum() == 37
    assert ratings.min() >= -4 and ratings.max() <= 4
    assert texts[2] == "Effective but too tepid biopic"
    assert all(isinstance(t, str) and t and "\r" not in t and "\n" not in t for t in texts)
    assert any(not t.isascii() for t in texts)  # UTF-8 text decoded, not mangled
    assert not any("\ufffd" in t for t in texts)


def test_movie_reviews_load_data_split_labels_and_seed():
    (xtr, ytr), (xte, yte) = movie_reviews.load_data()
    assert (len(xtr), len(xte)) == (8454, 2114)
    assert ytr.dtype == np.int64 and set(np.unique(np.concatenate([ytr, yte]))) == {0, 1}
    assert int(ytr.sum() + yte.sum()) == 5242
    _, ratings, texts = movie_reviews.load_ratings()
    sign = {}
    for t, r in zip(texts, ratings):
        sign.setdefault(t, set()).add(r > 0)
    assert all(sign[t] == {bool(y)} for t, y in zip(xtr[:500], ytr[:500]) if len(sign[t]) == 1)
    (xtr2, _), _ = movie_reviews.load_data()
    np.testing.assert_array_equal(xtr, xtr2)
    (xtr3, _), (xte3, _) = movie_reviews.load_data(test_split=0.5, seed=1)
    assert len(xtr3) == 5284 and not np.array_equal(xtr3[:50], xtr[:50])
    (xall, _), (xnone, _) = movie_reviews.load_data(test_split=0.0)
    assert len(xall) == 10568 and len(xnone) == 0
    with pytest.raises(ValueError, match="test_split"):
        movie_reviews.load_data(test_split=1.0)


# ---- jfk_weather -----------------------------------------------------------------

def test_jfk_weather_raw_missing_counts():
    t, v, cols = jfk_weather.load_data(fill=None)
    assert cols == jfk_weather.COLUMNS and v.shape == (8706, 8) and v.dtype == np.float32
    assert t.dtype == np.dtype("datetime64[s]")
    assert str(t[0]) == "2013-01-01T06:00:00" and str(t[-1]) == "2013-12-30T23:00:00"
    missing = dict(zip(cols, np.isnan(v).sum(axis=0).tolist()))
    assert missing == {"temp": 0, "dewp": 0, "humid": 0, "wind_dir": 51, "wind_speed": 3,
                       "precip": 0, "pressure": 831, "visib": 0}
    np.testing.assert_allclose(v[0], [39.02, 26.06, 59.37, 260.0, 12.65858, 0.0, 1012.6, 10.0], rtol=1e-6)
    gaps = np.diff(t).astype("timedelta64[h]").astype(int)
    assert (gaps > 1).sum() == 14 and gaps.min() == 1


def test_jfk_weather_interpolation_and_regular_grid():
    t, raw, _ = jfk_weather.load_data(fill=None, dtype="float64")
    _, v, _ = jfk_weather.load_data(dtype="float64")
    assert not np.isnan(v).any()
    ok = ~np.isnan(raw)
    np.testing.assert_array_equal(v[ok], raw[ok])  # observed values untouched
    p = jfk_weather.COLUMNS.index("pressure")
    k = int(np.flatnonzero(np.isnan(raw[:, p]))[5])
    lo = k - 1 - np.flatnonzero(~np.isnan(raw[:k, p])[::-1])[0]
    hi = k + np.flatnonzero(~np.isnan(raw[k:, p]))[0]
    frac = (t[k] - t[lo]) / (t[hi] - t[lo])
    np.testing.assert_allclose(v[k, p], raw[lo, p] + frac * (raw[hi, p] - raw[lo, p]))
    tg, vg, _ = jfk_weather.load_data(regular=True)
    assert len(tg) == 8730 and (np.diff(tg) == np.timedelta64(1, "h")).all()
    assert not np.isnan(vg).any()
    assert np.isin(t, tg).all()
    np.testing.assert_array_equal(vg[np.isin(tg, t)], v.astype(np.float32))
    with pytest.raises(ValueError, match="fill"):
        jfk_weather.load_data(fill="zeros")


# ---- pride_and_prejudice / japanese_vowels -----------------------------------------

def test_pride_and_prejudice():
    text = pride_and_prejudice.load_data()
    assert isinstance(text, str) and len(text) == 684768
    assert text.startswith("PRIDE AND PREJUDICE")
    assert "It is a truth universally acknowledged" in text
    assert len(set(text)) < 100


def test_japanese_vowels():
    (xtr, ytr), (xte, yte) = japanese_vowels.load_data()
    assert len(xtr) == 270 and len(xte) == 370
    assert all(x.ndim == 2 and x.shape[1] == 12 and x.dtype == np.float32 for x in xtr + xte)
    lengths = [len(x) for x in xtr + xte]
    assert min(lengths) == 7 and max(lengths) == 29 and len(set(lengths)) > 10
    assert np.bincount(ytr).tolist() == [30] * 9
    assert np.bincount(yte).tolist() == [31, 35, 88, 44, 29, 24, 40, 50, 29]
    # first case of the TRAIN file: dim 1 starts 1.860936,1.891651; dim 2 starts -0.207383
    assert xtr[0].shape == (20, 12)
    np.testing.assert_allclose([xtr[0][0, 0], xtr[0][1, 0], xtr[0][0, 1]], [1.860936, 1.891651, -0.207383],
                               rtol=1e-6)
    (x64, _), _ = japanese_vowels.load_data(dtype="float64")
    assert x64[0].dtype == np.float64


# ---- readers on fixtures ----------------------------------------------------------

TS_FIXTURE = """# comment line
@problemName Toy
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
1,2,3:4,5,6:up
7,?:9,10:down
"""


def test_read_ts_fixture(tmp_path):
    p = tmp_path / "toy.ts"
    p.write_text(TS_FIXTURE, encoding="utf-8")
    x, labels, meta = read_ts(p, dtype="float64")
    assert labels.tolist() == ["up", "down"] and meta["problemname"] == "Toy"
    np.testing.assert_array_equal(x[0], [[1, 4], [2, 5], [3, 6]])
    assert x[1].shape == (2, 2) and np.isnan(x[1][1, 0]) and x[1][1, 1] == 10
    p.write_text(TS_FIXTURE.replace("@classLabel true up down", "@classLabel false")
                 .replace(":up", "").replace(":down", ""), encoding="utf-8")
    x, labels, _ = read_ts(p)
    assert labels is None and len(x) == 2


@pytest.mark.parametrize("body,error,match", [
    ("@classLabel true up\n@data\n1,2:3:up\n", ValueError, "different lengths"),
    ("1,2\n", ValueError, "@header"),
    ("@timeStamps true\n@data\n(0,1)\n", NotImplementedError, "timeStamps"),
    ("@dimensions 3\n@classLabel true a\n@data\n1:2:a\n", ValueError, "expected 3 dimensions"),
    ("@classLabel false\n@data\n1,x\n", ValueError, "expected a number"),
    ("@problemName x\n", ValueError, "no @data"),
])
def test_read_ts_bad_files(tmp_path, body, error, match):
    p = tmp_path / "bad.ts"
    p.write_text(body, encoding="utf-8")
    with pytest.raises(error, match=match):
        read_ts(p)


JENA_FIXTURE = ('"Date Time","p (mbar)","T (degC)","rh (%)"\n'
                "01.01.2009 00:10:00,996.52,-8.02,93.30\n"
                "01.01.2009 00:20:00,996.57,-8.41,93.40\n"
                "01.01.2009 00:30:00,996.53,,93.90\n")


def test_read_timeseries_csv_jena_and_iso(tmp_path):
    p = tmp_path / "jena.csv"
    p.write_text(JENA_FIXTURE, encoding="utf-8")
    t, v, cols = read_timeseries_csv(p)
    assert cols == ("p (mbar)", "T (degC)", "rh (%)") and v.shape == (3, 3)
    assert str(t[0]) == "2009-01-01T00:10:00" and (np.diff(t) == np.timedelta64(600, "s")).all()
    assert np.isnan(v[2, 1]) and v[1, 0] == np.float32(996.57)
    q = tmp_path / "iso.csv"
    q.write_text("a,when,b\n1,2013-01-01T06:00:00Z,NA\n2,2013-01-01T07:00:00Z,4\n", encoding="utf-8")
    t, v, cols = read_timeseries_csv(q, time_column="when", dtype="float64")
    assert cols == ("a", "b") and str(t[1]) == "2013-01-01T07:00:00" and np.isnan(v[0, 1])
    r = tmp_path / "custom.csv"
    r.write_text("t;x\n2020/03/04 05h;1.5\n", encoding="utf-8")
    t, v, _ = read_timeseries_csv(r, time_format="%Y/%m/%d %Hh", delimiter=";")
    assert str(t[0]) == "2020-03-04T05:00:00" and v[0, 0] == 1.5


def test_read_timeseries_csv_bad_files(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("time,x\n2013-01-01T00:00:00,1,2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="expected 2 fields"):
        read_timeseries_csv(p)
    p.write_text("time,x\nyesterday,1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="cannot parse time"):
        read_timeseries_csv(p)
    p.write_text("time,x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no data rows"):
        read_timeseries_csv(p)
    p.write_text("time,x\n2013-01-01T00:00:00,1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="time_column"):
        read_timeseries_csv(p, time_column="date")


def _imdb_tree(root):
    for split_name, cls, name, body in [
        ("train", "pos", "0_9.txt", "Great film, très bien!"),
        ("train", "pos", "1_8.txt", "Loved it"),
        ("train", "neg", "0_2.txt", "Awful 😞"),
        ("train", "unsup", "0_0.txt", "unlabelled"),
        ("train", "neg", "sub/5_1.txt", "Nested review"),
        ("train", "neg", "notes.md", "not a review"),
    ]:
        f = root / split_name / cls / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(body, encoding="utf-8")


def test_load_text_directory_aclimdb_layout(tmp_path):
    _imdb_tree(tmp_path)
    texts, y, names = load_text_directory(tmp_path / "train", class_names=["neg", "pos"])
    assert names == ["neg", "pos"]
    assert texts == ["Awful 😞", "Nested review", "Great film, très bien!", "Loved it"]
    assert y.tolist() == [0, 0, 1, 1] and y.dtype == np.int64
    texts, y, names = load_text_directory(tmp_path / "train")
    assert names == ["neg", "pos", "unsup"] and y.tolist() == [0, 0, 1, 1, 2]
    ts, ys, _ = load_text_directory(tmp_path / "train", shuffle=True, seed=0)
    assert sorted(zip(ts, ys.tolist())) == sorted(zip(texts, y.tolist()))
    with pytest.raises(ValueError, match="class_names"):
        load_text_directory(tmp_path / "train", class_names=["neg", "positive"])
    with pytest.raises(FileNotFoundError, match="directory"):
        load_text_directory(tmp_path / "test")


def test_datasets_docstring_examples_run():
    import doctest

    from engine.datasets import _readers

    for mod in (datasets, movie_reviews, jfk_weather, pride_and_prejudice, japanese_vowels, _readers):
        res = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert res.failed == 0, mod.__name__
