"""Model files: the architecture as JSON and the weights as arrays, in one .npz.

Every file is written to a temporary name in the target folder and renamed, so an
interrupted save never leaves a half-written model behind.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile

import numpy as np

from .. import layers as layers_module


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
    return cls(**config)


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


@contextlib.contextmanager
def atomic_write(path):
    """Yields a binary file object; on success it replaces `path` in one rename."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
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


def save_model(model, path) -> None:
    """Architecture (JSON) and weights in one .npz at `path`."""
    arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    config = json.dumps(model.get_config())
    with atomic_write(path) as f:
        np.savez(f, config=np.array(config), **arrays)


def load_model(path):
    """Rebuild a model saved by Model.save (architecture and weights)."""
    with np.load(os.fspath(path), allow_pickle=False) as data:
        config = json.loads(str(data["config"]))
        names = sorted(k for k in data.files if k != "config")
        expected = sorted(f"w{i}" for i in range(len(names)))
        if names != expected:
            raise ValueError(f"load_model: {path}: weight arrays {sorted(set(expected) - set(names))} are missing")
        weights = [data[f"w{i}"] for i in range(len(names))]
    model = model_from_config(config)
    model.set_weights(weights)
    return model


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
