"""Keras 3 files: `.keras` archives and `.weights.h5` weights, read and written with h5py.

A `.keras` file is a zip of metadata.json, config.json (the model's Keras config) and
model.weights.h5. In the h5 each layer's weights lie in `layers/<group>/vars/0..N-1`, where
<group> is the layer's snake_case class name made unique in the model's layer order (dense,
dense_1, ...; never the layer's own name). Recurrent layers keep theirs in `cell/vars`,
Bidirectional in `forward_layer/` and `backward_layer/`, TimeDistributed in `layer/`; every
object also gets a `vars` group carrying its name. A `.weights.h5` file is that h5 alone.
Our weights already use Keras's order and shapes, so they map 1:1.

Reading never executes code from the file: config.json is parsed as JSON and translated by
keras_config.py, which looks each class name up in a fixed table (no imports by name, no
Lambda, no pickles), and the h5 holds plain arrays. A Keras class or option seqfuse lacks is a
ValueError naming the layer, the option and its value.

Example:
    >>> model.save("model.keras")                       # keras.saving.load_model opens it
    >>> model = en.load_model("trained_in_keras.keras")
    >>> model.save_weights("model.weights.h5"); model.load_weights("model.weights.h5")
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from datetime import datetime, timezone

import numpy as np

from ..layers.base import to_snake_case
from .keras_config import MODEL_CLASSES, RECURRENT_CLASSES, model_from_keras, model_to_keras
from .saving import atomic_write, bad_file, describe_error, describe_head, model_from_config

KERAS_VERSION = "3.15.1"     # written to metadata.json: the Keras release this layout was checked on
_CONFIG, _METADATA, _WEIGHTS = "config.json", "metadata.json", "model.weights.h5"


def save_keras(model, path) -> None:
    """Write `model` as a Keras 3 `.keras` archive (config.json + model.weights.h5)."""
    config = model_to_keras(model)
    metadata = {"keras_version": KERAS_VERSION,
                "date_saved": datetime.now(timezone.utc).strftime("%Y-%m-%d@%H:%M:%S")}
    weights = _h5_bytes(model)
    with atomic_write(path) as f, zipfile.ZipFile(f, "w") as zf:
        zf.writestr(_METADATA, json.dumps(metadata))
        zf.writestr(_CONFIG, json.dumps(config))
        zf.writestr(_WEIGHTS, weights)


def load_keras(path):
    """The model a Keras 3 `.keras` archive holds, with its weights (ValueError if unsupported)."""
    zf = _open_archive(path)
    with zf:
        names = set(zf.namelist())
        missing = {_CONFIG, _WEIGHTS} - names
        if missing:
            raise bad_file(path, f"is not a Keras 3 archive (it lacks {', '.join(sorted(missing))})")
        try:
            config = json.loads(zf.read(_CONFIG))
            weights = zf.read(_WEIGHTS)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError):
            raise bad_file(path, "is corrupt (an entry of the archive cannot be read back intact)") from None
    if not isinstance(config, dict):
        raise bad_file(path, "is corrupt (config.json is not a JSON object)")
    try:
        ours = model_from_keras(config, path)
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        raise bad_file(path, f"is corrupt (config.json is not a Keras 3 model config: "
                             f"{type(e).__name__} {e})") from None
    try:
        model = model_from_config(ours)
    except (ValueError, TypeError, KeyError) as e:
        raise bad_file(path, f"describes a model seqfuse cannot build ({describe_error(e)})") from None
    with _open_h5(io.BytesIO(weights), path) as h5:
        _read_weights(model, h5, path)
    return model


def save_weights(model, path) -> None:
    """Write the weights in Keras 3's `.weights.h5` layout (keras `model.load_weights` reads it)."""
    _check_weights_suffix(path, "save_weights")
    data = _h5_bytes(model)
    with atomic_write(path) as f:
        f.write(data)


def load_weights(model, path) -> None:
    """Read a Keras 3 `.weights.h5` file into `model` (built, with the same layers)."""
    _check_weights_suffix(path, "load_weights")
    with open(path, "rb") as f:              # a missing file stays FileNotFoundError
        data = f.read()
    if not data.startswith(b"\x89HDF"):
        raise bad_file(path, f"is not a Keras .weights.h5 file ({describe_head(data[:8])})", "load_weights")
    with _open_h5(io.BytesIO(data), path, "load_weights") as h5:
        _read_weights(model, h5, path, "load_weights")


def _layer_groups(model, prefix="layers") -> list[tuple[str, object]]:
    """(h5 group, layer) for each layer, in the order Keras names them (dense, dense_1, ...):
    model.layers, which for Functional models includes the InputLayers and follows Keras's
    graph order, as Keras's own `model.layers` does."""
    used, out = {}, []
    for layer in model.layers:
        base = to_snake_case(type(layer).__name__)
        used[base] = used.get(base, -1) + 1
        out.append((f"{prefix}/{base}" if used[base] == 0 else f"{prefix}/{base}_{used[base]}", layer))
    return out


def _saveables(layer, group) -> list[tuple[str, str, list]]:
    """(group, name, [(weight name, weight)]) for `layer` and each object Keras saves inside it,
    in weight order."""
    cls = type(layer).__name__
    if cls in MODEL_CLASSES:
        return [(group, layer.name, [])] + [item for sub, inner in _layer_groups(layer, f"{group}/layers")
                                             for item in _saveables(inner, sub)]
    if cls in RECURRENT_CLASSES:
        return [(group, layer.name, []), (f"{group}/cell", f"{to_snake_case(cls)}_cell", _named(layer))]
    if cls == "Bidirectional":
        return ([(group, layer.name, [])] + _saveables(layer.forward_layer, f"{group}/forward_layer")
                + _saveables(layer.backward_layer, f"{group}/backward_layer"))
    if cls == "TimeDistributed":
        return [(group, layer.name, [])] + _saveables(layer.layer, f"{group}/layer")
    return [(group, layer.name, _named(layer))]


def _named(layer):
    return list(zip(layer._weight_names, layer.weights))


def _h5_bytes(model) -> bytes:
    """model.weights.h5 for `model`, in memory."""
    h5py = _h5py()
    _check_built(model, "save")
    saveables = _saveables(model, "")
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        for group, name, weights in saveables:
            entry = h5.create_group(f"{group}/vars".lstrip("/"))
            entry.attrs["name"] = name
            for i, (_, w) in enumerate(weights):
                entry.create_dataset(str(i), data=w.numpy())
    return buffer.getvalue()


def _check_built(model, what):
    if any(not getattr(layer, "built", True) for layer in model.layers):
        raise ValueError(f"{what}: {model.name} is not built yet; call it on data or "
                         "model.build(input_shape) first")


def _read_weights(model, h5, path, op="load_model") -> None:
    """Set every weight from an open Keras weights h5; all are checked before any is set."""
    _check_built(model, op)
    values = []
    for group, name, weights in _saveables(model, ""):
        sub = f"{group}/vars".lstrip("/")
        entry = h5.get(sub)
        found = 0 if entry is None else len(entry)
        if found != len(weights):
            raise bad_file(path, f"has {found} weights in {sub} where {name!r} has {len(weights)}", op)
        for i, (weight_name, w) in enumerate(weights):
            try:
                value = np.asarray(entry[str(i)])
            except (KeyError, OSError, TypeError):
                raise bad_file(path, f"is corrupt ({sub}/{i} cannot be read)", op) from None
            if value.shape != w.shape:
                raise bad_file(path, f"has weight {weight_name} of shape {value.shape}; "
                                     f"the model's is {w.shape}", op)
            values.append((w, value))
    for w, value in values:
        w.data[...] = value.astype(w.dtype)


def _h5py():
    """h5py, or an ImportError saying which extra brings it."""
    try:
        import h5py
        return h5py
    except ImportError:
        raise ImportError('Keras .keras and .weights.h5 files need h5py: pip install "seqfuse[keras]"') from None


def _open_archive(path):
    with open(path, "rb") as f:               # a missing file stays FileNotFoundError
        head = f.read(8)
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise bad_file(path, f"is not a Keras 3 .keras archive ({describe_head(head)})")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError):
        raise bad_file(path, "is truncated or corrupt (its zip directory cannot be read)") from None


def _open_h5(buffer, path, op="load_model"):
    h5py = _h5py()
    try:
        return h5py.File(buffer, "r")
    except OSError:
        raise bad_file(path, "is corrupt (its weights are not a readable HDF5 file)", op) from None


def _check_weights_suffix(path, what):
    if not os.fspath(path).lower().endswith(".weights.h5"):
        raise ValueError(f"{what}: the file name must end in .weights.h5 (Keras 3's weights "
                         f"format), got {os.fspath(path)!r}")
