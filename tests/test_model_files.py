"""seqfuse's own .npz model files (engine/models/saving.py): the format version, and one
ValueError naming the file for every kind of bad file (never numpy's or zipfile's message)."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import engine as en
from engine.models import saving


@pytest.fixture
def saved(tmp_path):
    model = en.Sequential([en.layers.Embedding(10, 3), en.layers.LSTM(4), en.layers.Dense(1)])
    model.build((None, 5))
    path = tmp_path / "model.npz"
    model.save(path)
    return model, path


def _load_error(path, pattern):
    """load_model(path) raises our one ValueError: the file, then what is wrong, nothing chained."""
    with pytest.raises(ValueError, match=f"^load_model: {path} {pattern}") as info:
        en.load_model(path)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__ or info.value.__context__ is None
    return str(info.value)


def test_files_carry_the_format_version_and_load(saved):
    model, path = saved
    with np.load(path) as data:
        assert int(data["format_version"]) == saving.FORMAT_VERSION == 1
        assert sorted(data.files) == ["config", "format_version", "w0", "w1", "w2", "w3", "w4", "w5"]
    loaded = en.load_model(path)
    x = np.array([[1, 2, 3, 4, 5]])
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_files_from_before_the_version_number_still_load(saved, tmp_path):
    model, path = saved
    with np.load(path) as data:
        entries = {k: data[k] for k in data.files if k != "format_version"}
    np.savez(tmp_path / "old.npz", **entries)
    for a, b in zip(en.load_model(tmp_path / "old.npz").get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_truncated_and_corrupt_files(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[:len(data) // 2])
    _load_error(tmp_path / "cut.npz", r"is truncated or corrupt \(its zip directory cannot be read\)")
    (tmp_path / "cut_end.npz").write_bytes(data[:-10])
    _load_error(tmp_path / "cut_end.npz", "is truncated or corrupt")
    # One flipped byte inside the last weight's data: the zip's CRC catches it.
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("w5.npy")
    flipped = bytearray(data)
    flipped[info.header_offset + 30 + len(info.filename) + info.file_size - 1] ^= 0xFF
    (tmp_path / "flipped.npz").write_bytes(bytes(flipped))
    _load_error(tmp_path / "flipped.npz", r"is corrupt \(its entry 'w5' cannot be read back intact\)")


def test_foreign_files(tmp_path):
    np.savez(tmp_path / "random.npz", a=np.zeros(3), b=np.ones((2, 2)))
    _load_error(tmp_path / "random.npz", r"is not a seqfuse model file \(it holds a, b; ")
    (tmp_path / "notes.npz").write_text("some text, not a model\n")
    _load_error(tmp_path / "notes.npz", r"is not a seqfuse model file \(it looks like text\)")
    with zipfile.ZipFile(tmp_path / "other.npz", "w") as zf:
        zf.writestr("readme.txt", "hello")
    _load_error(tmp_path / "other.npz", r"is not a seqfuse model file \(it holds readme.txt; ")
    np.save(tmp_path / "array.npy", np.zeros(3))
    (tmp_path / "array.npz").write_bytes((tmp_path / "array.npy").read_bytes())
    _load_error(tmp_path / "array.npz", r"is not a seqfuse model file \(it is a single .npy array")
    (tmp_path / "empty.npz").write_bytes(b"")
    _load_error(tmp_path / "empty.npz", r"is not a seqfuse model file \(it is empty\)")
    np.savez(tmp_path / "extra.npz", config=np.array("{}"), w0=np.zeros(2), w2=np.zeros(2))
    _load_error(tmp_path / "extra.npz", "is not a seqfuse model file .unexpected entries: weights not numbered")
    with pytest.raises(FileNotFoundError):
        en.load_model(tmp_path / "missing.npz")


def test_newer_versions_and_bad_contents(saved, tmp_path):
    model, path = saved
    with np.load(path) as data:
        entries = {k: data[k] for k in data.files}
    np.savez(tmp_path / "newer.npz", **{**entries, "format_version": np.array(2)})
    _load_error(tmp_path / "newer.npz", r"was written by a newer seqfuse \(model format version 2; "
                                        r"this one reads versions up to 1\)")
    np.savez(tmp_path / "version.npz", **{**entries, "format_version": np.array("one")})
    _load_error(tmp_path / "version.npz", "is corrupt .format_version is")
    np.savez(tmp_path / "json.npz", **{**entries, "config": np.array("{not json")})
    _load_error(tmp_path / "json.npz", r"is corrupt \(its config is not a JSON object\)")
    config = json.loads(str(entries["config"]))
    config["layers"][1]["class_name"] = "Transformer"
    np.savez(tmp_path / "class.npz", **{**entries, "config": np.array(json.dumps(config))})
    _load_error(tmp_path / "class.npz", "describes a model seqfuse cannot build .load_model: unknown layer class 'Transformer'")
    config["layers"][1] = {"class_name": "LSTM", "config": {"units": 4, "bogus": 1}}
    np.savez(tmp_path / "option.npz", **{**entries, "config": np.array(json.dumps(config))})
    _load_error(tmp_path / "option.npz", "describes a model seqfuse cannot build .layer None .LSTM.: .*bogus")
    np.savez(tmp_path / "weights.npz", **{**entries, "w1": np.zeros((2, 2))})
    _load_error(tmp_path / "weights.npz", r"has weights that do not fit its architecture \(.*lstm\S*/kernel")


def test_loading_never_unpickles(saved, tmp_path):
    _, path = saved
    with np.load(path) as data:
        entries = {k: data[k] for k in data.files}
    # An object array is stored as a pickle; loading it would run code chosen by the file.
    np.savez(tmp_path / "pickle.npz", **{**entries, "w0": np.array([{"a": 1}], dtype=object)})
    _load_error(tmp_path / "pickle.npz", r"is corrupt \(its entry 'w0' cannot be read back intact\)")


def test_saving_into_a_missing_folder_names_the_path(tmp_path):
    model = en.Sequential([en.layers.Dense(1)])
    model.build((None, 2))
    with pytest.raises(FileNotFoundError, match="missing.*does not exist"):
        model.save(tmp_path / "missing" / "m.npz")
