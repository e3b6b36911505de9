"""Model files: where a path's suffix sends it, our own .npz format, and the config helpers.

    model.keras        Keras 3 archive (keras_format.py; needs h5py)
    x.weights.h5       Keras 3 weights only (save_weights / load_weights; needs h5py)
    anything else      seqfuse .npz: the architecture as JSON and the weights as arrays

The .npz holds `config` (JSON text), `format_version` (an int) and `w0`..`wN-1` (the weights
in get_weights order). Version 1 is the first with a number; files from before it (no
`format_version`) read as version 0, which has the same layout. Loading reads JSON and plain
arrays only (allow_pickle=False): it never executes code from the file.

Every file is written to a temporary name in the target folder and renamed, so an
interrupted save never leaves a half-written model behind.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import zipfile
import zlib

import numpy as np

from .. import layers as layers_module

FORMAT_VERSION = 1
_MODELS = ("Sequential", "Functional")


def layer_config(layer) -> dict:
    """{"class_name", "config"} of a layer, as Keras serializes it (a model used as a layer
    gives its whole model config)."""
    if type(layer).__name__ in _MODELS:
        return layer.get_config()
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def layer_from_config(entry):
    """The layer (or nested model) an entry of layer_config describes (no weights yet)."""
    if entry.get("class_name") in _MODELS:
        return model_from_config(entry)
    cls = getattr(layers_module, entry["class_name"], None)
    if cls is None or not isinstance(cls, type) or not issubclass(cls, layers_module.Layer):
        raise ValueError(f"load_model: unknown layer class {entry['class_name']!r}")
    config = dict(entry["config"])
    if entry["class_name"] in ("Bidirectional", "TimeDistributed"):
        config["layer"] = layer_from_config(config["layer"])
    try:
        return cls(**config)
    except (TypeError, ValueError) as e:
        raise ValueError(f"layer {config.get('name')!r} ({entry['class_name']}): {e}") from None


def model_from_config(config):
    """The model a get_config() dict describes, built, with fresh weights."""
    from .functional import Functional
    from .sequential import Sequential
    if config.get("class_name") == "Functional":
        return Functional.from_config(config, layer_from_config)
    if config.get("class_name") != "Sequential":
        raise ValueError(f"load_model: unknown model class {config.get('class_name')!r}")
    model = Sequential([layer_from_config(e) for e in config["layers"]], name=config["name"])
    if config["input_shape"]:
        model.build(tuple(None if d is None else d for d in config["input_shape"]))
    return model


def file_format(path) -> str:
    """"keras", "weights" or "npz", from the file name (the one place the suffix decides)."""
    name = os.fspath(path).lower()
    if name.endswith(".weights.h5"):
        return "weights"
    if name.endswith(".keras"):
        return "keras"
    if name.endswith((".h5", ".hdf5")):
        raise ValueError(f"{os.fspath(path)}: .h5 is Keras 2's legacy model format, which seqfuse "
                         "neither reads nor writes; use .keras (or .weights.h5 for weights only)")
    return "npz"


def save_model(model, path) -> None:
    """Write `model` to `path`: a Keras 3 archive for .keras, else seqfuse's .npz."""
    kind = file_format(path)
    if kind == "weights":
        raise ValueError(f"save: {os.fspath(path)} names a weights-only file; use "
                         "model.save_weights(path) for .weights.h5, or save to .keras or .npz")
    if kind == "keras":
        from . import keras_format
        keras_format.save_keras(model, path)
        return
    arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    config = json.dumps(model.get_config())
    with atomic_write(path) as f:
        np.savez(f, config=np.array(config), format_version=np.array(FORMAT_VERSION), **arrays)


def load_model(path):
    """Rebuild a saved model (architecture and weights) from .npz (ours) or .keras (Keras 3).

    A file that is truncated, corrupt, foreign or from a newer seqfuse raises one ValueError
    naming the file and what is wrong.

    Example:
        >>> model.save("model.keras"); same = en.load_model("model.keras")
    """
    kind = file_format(path)
    if kind == "weights":
        raise ValueError(f"load_model: {os.fspath(path)} holds weights only (no architecture); build "
                         "the model and call model.load_weights(path)")
    if kind == "keras":
        from . import keras_format
        return keras_format.load_keras(path)
    config, weights = _read_npz(path)
    try:
        model = model_from_config(config)
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise bad_file(path, f"describes a model seqfuse cannot build ({describe_error(e)})") from None
    try:
        model.set_weights(weights)
    except ValueError as e:
        raise bad_file(path, f"has weights that do not fit its architecture ({e})") from None
    return model


def bad_file(path, what, op="load_model") -> ValueError:
    """The one error a model file that cannot be read raises: the file and what is wrong."""
    return ValueError(f"{op}: {os.fspath(path)} {what}")


def _read_npz(path):
    """(config dict, list of weight arrays) from a seqfuse .npz, or bad_file's error."""
    with open(path, "rb") as f:          # a missing file stays FileNotFoundError
        head = f.read(8)
        if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            raise bad_file(path, f"is not a seqfuse model file ({describe_head(head)})")
        f.seek(0)
        try:
            data = np.load(f, allow_pickle=False)
        except _DAMAGED:
            raise bad_file(path, "is truncated or corrupt (its zip directory cannot be read)") from None
        with data:
            text, weights = _npz_entries(data, path)
    try:
        config = json.loads(str(text))
    except ValueError:
        config = None
    if not isinstance(config, dict):
        raise bad_file(path, "is corrupt (its config is not a JSON object)")
    return config, weights


def _npz_entries(data, path):
    """(config text, weights) of an open seqfuse .npz, after checking what it holds."""
    names = set(data.files)
    if "config" not in names:
        shown = ", ".join(sorted(names)[:6]) or "nothing"
        raise bad_file(path, f"is not a seqfuse model file (it holds {shown}; "
                             "a seqfuse .npz holds config and w0, w1, ...)")
    weight_names = sorted((n for n in names if re.fullmatch(r"w\d+", n)), key=lambda n: int(n[1:]))
    extra = names - {"config", "format_version", *weight_names}
    if weight_names != [f"w{i}" for i in range(len(weight_names))] or extra:
        raise bad_file(path, f"is not a seqfuse model file (unexpected entries: "
                             f"{', '.join(sorted(extra)) or 'weights not numbered w0..wN-1'})")
    version = _entry(data, "format_version", path) if "format_version" in names else np.array(0)
    if version.shape != () or version.dtype.kind not in "iu":
        raise bad_file(path, f"is corrupt (format_version is {version!r}, not an integer)")
    if version > FORMAT_VERSION:
        raise bad_file(path, f"was written by a newer seqfuse (model format version {int(version)}; "
                             f"this one reads versions up to {FORMAT_VERSION})")
    text = _entry(data, "config", path)
    weights = [_entry(data, n, path) for n in weight_names]
    return text, weights


# zipfile, zlib and numpy report damage with their own types and words; each becomes bad_file's.
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, TypeError)


def _entry(data, name, path):
    try:
        return data[name]
    except _DAMAGED:
        raise bad_file(path, f"is corrupt (its entry {name!r} cannot be read back intact)") from None


def describe_head(head: bytes) -> str:
    """What a file's first bytes say it is, for errors about foreign files."""
    if head.startswith(b"\x89HDF"):
        return "it is an HDF5 file; Keras weights files are named .weights.h5"
    if head.startswith(b"\x93NUMPY"):
        return "it is a single .npy array, not an .npz archive"
    if not head:
        return "it is empty"
    if all(32 <= c < 127 or c in b"\t\r\n" for c in head):
        return "it looks like text"
    return f"it starts with bytes {head!r}, not a zip archive"


def describe_error(e: Exception) -> str:
    # A KeyError's str() is the bare key in quotes; say it is a missing entry.
    return f"missing entry {e}" if isinstance(e, KeyError) else str(e)


@contextlib.contextmanager
def atomic_write(path):
    """Yields a binary file object; on success it replaces `path` in one rename."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {path}: the folder {directory} does not exist")
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a saved model is an ordinary file
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
