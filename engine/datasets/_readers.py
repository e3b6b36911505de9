"""File-format readers behind `engine.datasets`: the UCR/UEA ``.ts`` format,
time-stamped CSV (Jena-climate style), and aclImdb-style class directories.
Public through `engine.datasets`; NumPy and the standard library only.
"""
import contextlib
import csv
import datetime
import importlib.resources
import os

import numpy as np

MISSING = ("", "NA", "N/A", "NaN", "nan", "?")


@contextlib.contextmanager
def bundled_file(name):
    """Filesystem path of a file shipped in engine/datasets/data (works from a wheel too)."""
    ref = importlib.resources.files("engine.datasets") / "data" / name
    if not ref.is_file():
        raise FileNotFoundError(f"bundled data file {name!r} is missing from engine/datasets/data")
    with importlib.resources.as_file(ref) as path:
        yield path


def read_tab_separated(name, fields, line_end="\n"):
    """Rows of the bundled file `name`, each a list of exactly `fields` tab-separated strings
    (empty lines skipped); a row with another count raises ValueError naming file and line."""
    rows = []
    with bundled_file(name) as path, open(path, encoding="utf-8", newline="") as f:
        for lineno, line in enumerate(f.read().split(line_end), 1):
            if not line:
                continue
            row = line.split("\t")
            if len(row) != fields:
                raise ValueError(f"{name}:{lineno}: expected {fields} tab-separated fields, got {len(row)}")
            rows.append(row)
    return rows


def _float(field, where):
    if field.strip() in MISSING:
        return np.nan
    try:
        return float(field)
    except ValueError:
        raise ValueError(f"{where}: expected a number, got {field!r}") from None


def read_ts(path, dtype="float32"):
    """Read a UCR/UEA ``.ts`` file (``@timeStamps false``; equal or unequal length).

    Each data line is ``dim_1:dim_2:...:dim_D[:label]`` with comma-separated
    values per dimension; "?" is missing (NaN).
    Returns ``(x, labels, meta)``: x a list of ``dtype`` [T_i, D] arrays,
    labels a str array [N] (None without ``@classLabel true``), meta the
    ``@`` header as a dict of lowercase keys.

    >>> x, labels, meta = read_ts("JapaneseVowels_TRAIN.ts")  # doctest: +SKIP
    >>> x[0].shape, labels[0], meta["dimensions"]             # doctest: +SKIP
    ((20, 12), '1', '12')
    """
    meta, x, labels = {}, [], []
    in_data = False
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            where = f"{path}:{lineno}"
            if not in_data:
                if not line.startswith("@"):
                    raise ValueError(f"{where}: expected an @header line before @data, got {line[:40]!r}")
                key, _, value = line[1:].partition(" ")
                key = key.lower()
                if key == "data":
                    in_data = True
                    if meta.get("timestamps", "false").lower() == "true":
                        raise NotImplementedError(f"{path}: '@timeStamps true' files are not supported")
                else:
                    meta[key] = value.strip()
                continue
            has_label = meta.get("classlabel", "false").split()[0].lower() == "true"
            fields = line.split(":")
            if has_label:
                labels.append(fields.pop().strip())
            dims = [[_float(v, where) for v in fld.split(",")] for fld in fields]
            if len({len(d) for d in dims}) != 1:
                raise ValueError(f"{where}: dimensions have different lengths {[len(d) for d in dims]}")
            if "dimensions" in meta and len(dims) != int(meta["dimensions"]):
                raise ValueError(f"{where}: expected {meta['dimensions']} dimensions, got {len(dims)}")
            x.append(np.asarray(dims, dtype=dtype).T.copy())  # [D, T] -> [T, D]
    if not in_data:
        raise ValueError(f"{path}: no @data section; not a .ts file")
    return x, (np.asarray(labels) if labels else None), meta


def _parse_time(field, time_format):
    if time_format is not None:
        return np.datetime64(datetime.datetime.strptime(field, time_format), "s")
    text = field.strip().rstrip("Z")
    try:
        return np.datetime64(text, "s")
    except ValueError:
        pass
    # Jena climate: "01.01.2009 00:10:00"
    return np.datetime64(datetime.datetime.strptime(text, "%d.%m.%Y %H:%M:%S"), "s")


def read_timeseries_csv(path, time_column=0, time_format=None, dtype="float32", delimiter=","):
    """Read a CSV of time-stamped numeric rows (Jena-climate or NOAA style).

    The header names the columns; ``time_column`` (index or name) holds ISO
    8601 times ("2013-01-01T06:00:00Z") or Jena's "01.01.2009 00:10:00", or
    any ``time_format`` for ``datetime.strptime``. Empty, "NA", "NaN" and "?"
    fields become NaN. Returns ``(timestamps, values, columns)``:
    datetime64[s] [T], ``dtype`` [T, F], tuple of F names.

    >>> t, v, cols = read_timeseries_csv("jena_climate_2009_2016.csv")  # doctest: +SKIP
    """
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError(f"{path}: empty file, expected a header row") from None
        if isinstance(time_column, str):
            if time_column not in header:
                raise ValueError(f"time_column: {time_column!r} not in header {header}")
            time_column = header.index(time_column)
        if not -len(header) <= time_column < len(header):
            raise ValueError(f"time_column: expected an index < {len(header)}, got {time_column}")
        time_column %= len(header)
        columns = tuple(h for k, h in enumerate(header) if k != time_column)
        times, rows = [], []
        for lineno, row in enumerate(reader, 2):
            if not row:
                continue
            where = f"{path}:{lineno}"
            if len(row) != len(header):
                raise ValueError(f"{where}: expected {len(header)} fields, got {len(row)}")
            try:
                times.append(_parse_time(row[time_column], time_format))
            except ValueError:
                raise ValueError(f"{where}: cannot parse time {row[time_column]!r}") from None
            rows.append([_float(v, where) for k, v in enumerate(row) if k != time_column])
    if not rows:
        raise ValueError(f"{path}: no data rows after the header")
    return (np.array(times, dtype="datetime64[s]"),
            np.array(rows, dtype=dtype).reshape(len(rows), len(columns)), columns)


def load_text_directory(directory, class_names=None, extensions=(".txt",), shuffle=False, seed=None,
                        encoding="utf-8"):
    """Texts and labels from one sub-directory per class (aclImdb style:
    ``train/neg/*.txt``, ``train/pos/*.txt``), as Keras's
    ``text_dataset_from_directory`` indexes them: class names are the sorted
    sub-directory names (or ``class_names`` in the given order, e.g.
    ``["neg", "pos"]`` to skip aclImdb's ``unsup``); label = position in that
    list; files are found recursively and read in sorted order.

    Returns ``(texts, labels, class_names)``: list of str [N], int64 [N], list.

    >>> texts, y, names = load_text_directory("aclImdb/train", ["neg", "pos"])  # doctest: +SKIP
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"directory: {directory!r} is not a directory")
    subdirs = sorted(d for d in os.listdir(directory) if os.path.isdir(os.path.join(directory, d)))
    if class_names is None:
        class_names = subdirs
    else:
        class_names = list(class_names)
        missing = [c for c in class_names if c not in subdirs]
        if missing:
            raise ValueError(f"class_names: {missing} are not sub-directories of {directory!r} "
                             f"(found {subdirs})")
    if not class_names:
        raise ValueError(f"directory: {directory!r} has no class sub-directories")
    texts, labels = [], []
    for label, name in enumerate(class_names):
        paths = []
        for root, _, files in os.walk(os.path.join(directory, name), followlinks=True):
            paths += [os.path.join(root, fn) for fn in files if fn.lower().endswith(tuple(extensions))]
        for p in sorted(paths):
            with open(p, encoding=encoding) as f:
                texts.append(f.read())
            labels.append(label)
    if not texts:
        raise ValueError(f"directory: no {extensions} files under {directory!r} for classes {class_names}")
    labels = np.asarray(labels, dtype=np.int64)
    if shuffle:
        order = np.random.default_rng(seed).permutation(len(texts))
        texts, labels = [texts[i] for i in order], labels[order]
    return texts, labels, list(class_names)
